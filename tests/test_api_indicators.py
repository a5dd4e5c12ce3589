"""GET /v1/indicators/now and /now/{city}: the views' numbers, per city, through HTTP."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

SEED = """
SELECT citytel_ensure_partitions(t::regclass, ARRAY[
    (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date])
FROM unnest(ARRAY['signal_telemetry', 'energy_telemetry']) t;

INSERT INTO devices (device_id, kind, city, district, interval_s) VALUES
    ('s1', 'signal', 'alpha', 'north', 60),
    ('s2', 'signal', 'alpha', 'north', 60),
    ('s3', 'signal', 'alpha', 'south', 60),
    ('s4', 'signal', 'alpha', 'south', 60),
    ('s5', 'signal', 'alpha', 'south', 60),
    ('p1', 'pole', 'alpha', 'north', 60),
    ('p2', 'pole', 'alpha', 'north', 60),
    ('p3', 'pole', 'alpha', NULL, 60),
    ('p4', 'pole', 'alpha', NULL, 60),
    ('e1', 'energy', 'alpha', 'south', 60),
    ('e2', 'energy', 'alpha', 'south', 60),
    ('e3', 'energy', 'alpha', 'south', 60),
    ('q1', 'pole', 'beta', 'east', 60);

INSERT INTO device_status (device_id, online, last_seen) VALUES
    ('p1', true, now() - INTERVAL '30 seconds'),
    ('p2', true, now() - INTERVAL '10 minutes'),
    ('p3', false, now() - INTERVAL '30 seconds'),
    ('s1', true, now() - INTERVAL '30 seconds'),
    ('e1', true, now() - INTERVAL '30 seconds'),
    ('q1', true, now() - INTERVAL '30 seconds');

INSERT INTO signal_telemetry (device_id, ts, mode) VALUES
    ('s1', now() - INTERVAL '1 minute', 'adaptive'),
    ('s2', now() - INTERVAL '2 minutes', 'adaptive'),
    ('s3', now() - INTERVAL '3 minutes', 'coordinated'),
    ('s4', now() - INTERVAL '4 minutes', 'fixed_time'),
    ('s5', now() - INTERVAL '20 minutes', 'adaptive');

INSERT INTO energy_telemetry (device_id, ts, pv_kw, wind_kw, grid_kw) VALUES
    ('e1', now() - INTERVAL '5 minutes', 10, 0, -3),
    ('e2', now() - INTERVAL '5 minutes', 4, 1, -4),
    ('e3', now() - INTERVAL '5 minutes', 0, 0, 2);
"""


@pytest.fixture
async def seeded(db: asyncpg.Connection) -> asyncpg.Connection:
    await db.execute(SEED)
    return db


async def test_indicators_of_a_city(client: httpx.AsyncClient, seeded: asyncpg.Connection) -> None:
    response = await client.get("/v1/indicators/now/alpha")
    assert response.status_code == 200
    body = response.json()
    assert body["city"] == "alpha"
    assert body["signal_timing_coverage"] == {
        "intersections": 5,
        "reporting": 4,  # s5's mode is 20 minutes old
        "intelligent": 3,
        "coverage_pct": 60.0,
        "target_pct": 40.0,
    }
    # p1 only: p2 is 10 min old (> 3 x 60 s), p3 offline, p4 never heard.
    assert body["pole_online_rate"] == {"poles": 4, "online": 1, "online_pct": 25.0}
    freshness = {f["kind"]: (f["devices"], f["fresh"], f["stale"]) for f in body["feed_freshness"]}
    assert freshness == {"energy": (3, 1, 2), "pole": (4, 2, 2), "signal": (5, 1, 4)}
    # e1 70 %, e2 20 %; e3 generates nothing and is no part of the mean.
    assert body["renewable_self_consumption"] == {
        "sites": 3,
        "generating_sites": 2,
        "self_consumption_pct": 45.0,
    }


async def test_indicators_equal_the_views(
    client: httpx.AsyncClient, seeded: asyncpg.Connection
) -> None:
    body = (await client.get("/v1/indicators/now/alpha")).json()
    coverage = await seeded.fetchrow("SELECT * FROM signal_timing_coverage WHERE city = 'alpha'")
    poles = await seeded.fetchrow("SELECT * FROM pole_online_rate WHERE city = 'alpha'")
    assert body["signal_timing_coverage"]["coverage_pct"] == float(coverage["coverage_pct"])
    assert body["pole_online_rate"]["online_pct"] == float(poles["online_pct"])


async def test_indicators_list_every_city_or_one(
    client: httpx.AsyncClient, seeded: asyncpg.Connection
) -> None:
    everything = (await client.get("/v1/indicators/now")).json()
    assert [c["city"] for c in everything] == ["alpha", "beta"]
    beta = everything[1]
    assert beta == {
        "city": "beta",
        "signal_timing_coverage": None,  # no registered signals
        "pole_online_rate": {"poles": 1, "online": 1, "online_pct": 100.0},
        "feed_freshness": [
            {
                "kind": "pole",
                "devices": 1,
                "fresh": 1,
                "stale": 0,
                "fresh_pct": 100.0,
                "median_age_s": pytest.approx(30, abs=5),
                "max_age_s": pytest.approx(30, abs=5),
            }
        ],
        "renewable_self_consumption": None,  # no energy site
    }
    only = (await client.get("/v1/indicators/now", params={"city": "beta"})).json()
    assert [c["city"] for c in only] == ["beta"]
    assert (await client.get("/v1/indicators/now", params={"city": "nowhere"})).json() == []


async def test_indicators_of_an_unknown_city_is_404(
    client: httpx.AsyncClient, seeded: asyncpg.Connection
) -> None:
    response = await client.get("/v1/indicators/now/nowhere")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "city 'nowhere' has no registered devices"}
    }


async def test_indicators_are_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/v1/indicators/now", "/v1/indicators/now/{city}"} <= set(schema["paths"])
    assert "CityIndicators" in schema["components"]["schemas"]
