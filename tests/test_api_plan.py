"""Plan indicators, targets and feed health through the API, against the numbers worked out
by hand in tests/plan_scenario.py."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
import pytest
from plan_scenario import DAY1, DAY2, END, device, messages, register, store

from core.urls import DatabaseUrl
from ingest.rollups import RollupRefresher

RANGE = {"from": DAY1.isoformat(), "to": END.isoformat()}


@pytest.fixture
async def scenario(db: asyncpg.Connection, database_url: DatabaseUrl, city: str) -> str:
    await register(db, city)
    await store(db, str(database_url), messages(city))
    await RollupRefresher().refresh(db)
    return city


async def test_indicator_answers_in_the_agreed_shape(
    client: httpx.AsyncClient, scenario: str
) -> None:
    params = RANGE | {"city": scenario, "district": "north", "period": "day"}
    response = await client.get("/v1/indicators/signal_timing_coverage", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "indicator": "signal_timing_coverage",
        "unit": "ratio",
        "scope": {"city": scenario, "district": "north"},
        "target": {"value": 0.4, "due": "2023-12-31"},
        "points": [
            {
                "start": "2026-11-02T00:00:00+08:00",
                "end": "2026-11-03T00:00:00+08:00",
                "value": 0.5,
                "numerator": 2,
                "denominator": 4,
            },
            {
                "start": "2026-11-03T00:00:00+08:00",
                "end": "2026-11-04T00:00:00+08:00",
                "value": 0.25,
                "numerator": 1,
                "denominator": 4,
            },
        ],
        "total": {"value": 0.375, "numerator": 3, "denominator": 8, "gap": pytest.approx(-0.025)},
    }


async def test_indicator_of_a_whole_city_by_week_and_the_province(
    client: httpx.AsyncClient, scenario: str
) -> None:
    week = RANGE | {"city": scenario, "period": "week"}
    body = (await client.get("/v1/indicators/pole_online_rate", params=week)).json()
    assert [(p["numerator"], p["denominator"]) for p in body["points"]] == [(216, 576)]
    assert body["target"] is None and body["total"]["gap"] is None
    province = (await client.get("/v1/indicators/pole_online_rate", params=RANGE)).json()
    assert province["scope"] == {"province": "shandong"}


async def test_mode_mix_carries_the_share_of_every_mode(
    client: httpx.AsyncClient, scenario: str
) -> None:
    params = RANGE | {"city": scenario}
    body = (await client.get("/v1/indicators/signal_mode_mix", params=params)).json()
    day1, day2 = body["points"]
    assert (day1["value"], day2["value"]) == (0.5, 0.7)
    assert day1["parts"]["fixed_time"] == pytest.approx(10 / 30)
    assert day2["parts"]["coordinated"] == 0.5 and day2["parts"]["off"] == 0


async def test_catalogue_lists_every_indicator_with_targets(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/v1/indicators")).json()
    names = {entry["name"]: entry for entry in body}
    assert len(names) == 15
    coverage = names["signal_timing_coverage"]
    assert coverage["unit"] == "ratio" and "50 %" in coverage["definition"]
    assert [(t["scope"], t["value"]) for t in coverage["targets"]] == [("shandong", 0.4)]


async def test_unknown_indicator_or_city_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/indicators/nope")).status_code == 404
    unknown_city = await client.get("/v1/indicators/pole_online_rate", params={"city": "nowhere"})
    assert unknown_city.status_code == 404


async def test_a_decade_of_days_is_over_the_budget(client: httpx.AsyncClient) -> None:
    params = {"from": "2000-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    response = await client.get("/v1/indicators/pole_online_rate", params=params)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "point_budget")


async def test_targets_are_data_operators_edit(
    client: httpx.AsyncClient, viewer_client: httpx.AsyncClient, scenario: str
) -> None:
    body = {
        "indicator": "signal_timing_coverage",
        "scope_type": "city",
        "scope": scenario,
        "value": 0.5,
        "due": "2027-12-31",
    }
    assert (await viewer_client.post("/v1/targets", json=body)).status_code == 403
    created = await client.post("/v1/targets", json=body)
    assert created.status_code == 200, created.text
    again = await client.post("/v1/targets", json=body | {"value": 0.55})
    assert again.json()["id"] == created.json()["id"] and again.json()["value"] == 0.55
    params = RANGE | {"city": scenario}
    series = (await client.get("/v1/indicators/signal_timing_coverage", params=params)).json()
    assert series["target"] == {"value": 0.55, "due": "2027-12-31"}  # the city's own wins
    assert series["total"]["gap"] == pytest.approx(0.3 - 0.55)
    target_id = created.json()["id"]
    assert (await client.delete(f"/v1/targets/{target_id}")).status_code == 204
    assert (await client.delete(f"/v1/targets/{target_id}")).status_code == 404
    unknown = await client.post("/v1/targets", json=body | {"indicator": "nope"})
    assert unknown.status_code == 404


async def test_feed_health_per_device_and_summed(client: httpx.AsyncClient, scenario: str) -> None:
    window = {"from": DAY1.isoformat(), "to": DAY2.isoformat(), "city": scenario}
    devices = (await client.get("/v1/feeds/health", params=window | {"kind": "pole"})).json()
    assert [(d["device_id"], d["completeness"]) for d in devices] == [
        (device(scenario, "p2"), 0),  # least complete first
        (device(scenario, "p1"), 1),
    ]
    incomplete = await client.get("/v1/feeds/health", params=window | {"below": 0.9})
    names = {d["device_id"].rsplit("-", 1)[1] for d in incomplete.json()}
    # Signals report a few samples an hour or nothing (288 expected a day); e1 is complete.
    assert names == {"p2", "s1", "s2", "s3", "s4", "s5"}
    summary = (await client.get("/v1/feeds/health/summary", params=window)).json()
    poles = next(s for s in summary if s["kind"] == "pole")
    assert (poles["devices"], poles["samples"], poles["expected"]) == (2, 144, 288)
    assert poles["completeness"] == 0.5


async def test_feed_health_window_is_bounded(client: httpx.AsyncClient) -> None:
    params = {"from": "2020-01-01T00:00:00Z", "to": (END + timedelta(days=1)).isoformat()}
    response = await client.get("/v1/feeds/health", params=params)
    assert response.status_code == 400
