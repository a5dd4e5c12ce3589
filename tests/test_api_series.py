"""Telemetry series of one device, and aggregates over a kind in a city."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from support import insert_rows

from ingest.registry import upsert_devices
from ingest.rollups import RollupRefresher
from schemas.registry import Device

DAY = datetime(2026, 11, 30, tzinfo=UTC)
WINDOW = {"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T01:00:00Z"}


def at(minute: float) -> datetime:
    return DAY + timedelta(minutes=minute)


@pytest.fixture
async def seeded(db: asyncpg.Connection) -> None:
    """Poles p1, p2 in alpha (north, south), p9 in beta; signal s1 in alpha."""
    devices = [
        {"device_id": "p1", "kind": "pole", "city": "alpha", "district": "north"},
        {"device_id": "p2", "kind": "pole", "city": "alpha", "district": "south"},
        {"device_id": "p9", "kind": "pole", "city": "beta"},
        {"device_id": "s1", "kind": "signal", "city": "alpha"},
    ]
    await upsert_devices(db, [Device.model_validate(d) for d in devices])
    await insert_rows(
        db,
        "pole_telemetry",
        [
            {"device_id": "p1", "ts": at(0), "pm25_ugm3": 10.0, "lamp_on": True},
            {"device_id": "p1", "ts": at(2), "pm25_ugm3": 20.0, "lamp_on": False},
            {"device_id": "p1", "ts": at(6), "pm25_ugm3": 40.0, "noise_dba": 55.5},
            {"device_id": "p2", "ts": at(1), "pm25_ugm3": 100.0},
            {"device_id": "p9", "ts": at(1), "pm25_ugm3": 1000.0},
        ],
    )
    await insert_rows(
        db,
        "signal_telemetry",
        [
            {"device_id": "s1", "ts": at(0), "mode": "fixed_time", "volume": 7},
            {"device_id": "s1", "ts": at(3), "mode": "flash", "volume": 5},
        ],
    )


async def get_series(client: httpx.AsyncClient, device_id: str, **params: Any) -> httpx.Response:
    return await client.get(f"/v1/devices/{device_id}/series", params=WINDOW | params)


@pytest.mark.usefixtures("seeded")
async def test_series_raw_returns_rows_in_time_order_with_utc_timestamps(
    client: httpx.AsyncClient,
) -> None:
    body = (await get_series(client, "p1", fields="pm25_ugm3,noise_dba")).json()
    assert body["fields"] == ["pm25_ugm3", "noise_dba"]
    assert body["points"] == [
        {"ts": "2026-11-30T00:00:00Z", "pm25_ugm3": 10.0, "noise_dba": None},
        {"ts": "2026-11-30T00:02:00Z", "pm25_ugm3": 20.0, "noise_dba": None},
        {"ts": "2026-11-30T00:06:00Z", "pm25_ugm3": 40.0, "noise_dba": 55.5},
    ]
    assert (body["from"], body["truncated"]) == ("2026-11-30T00:00:00Z", False)


@pytest.mark.usefixtures("seeded")
async def test_series_raw_limit_marks_truncated(client: httpx.AsyncClient) -> None:
    body = (await get_series(client, "p1", fields="pm25_ugm3", limit=2)).json()
    assert [p["pm25_ugm3"] for p in body["points"]] == [10.0, 20.0]
    assert body["truncated"] is True


@pytest.mark.usefixtures("seeded")
async def test_series_bucketed_averages_per_bucket(client: httpx.AsyncClient) -> None:
    body = (await get_series(client, "p1", fields="pm25_ugm3", bucket="5m")).json()
    assert body["points"] == [
        {"ts": "2026-11-30T00:00:00Z", "n": 2, "pm25_ugm3": 15.0},
        {"ts": "2026-11-30T00:05:00Z", "n": 1, "pm25_ugm3": 40.0},
    ]


@pytest.mark.usefixtures("seeded")
async def test_series_bucketed_bool_average_is_share_of_true(client: httpx.AsyncClient) -> None:
    body = (await get_series(client, "p1", fields="lamp_on", bucket="1h")).json()
    assert body["points"][0]["lamp_on"] == 0.5


@pytest.mark.usefixtures("seeded")
async def test_series_bucketed_last_takes_latest_value(client: httpx.AsyncClient) -> None:
    body = (await get_series(client, "s1", fields="mode,volume", bucket="1h", agg="last")).json()
    assert body["points"] == [{"ts": "2026-11-30T00:00:00Z", "n": 2, "mode": "flash", "volume": 5}]


@pytest.mark.usefixtures("seeded")
async def test_series_text_field_with_avg_is_422(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "s1", fields="mode", bucket="1h", agg="avg")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["type"] == "agg_type"


@pytest.mark.usefixtures("seeded")
async def test_series_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "p1", fields="pm25_ugm3,volume")
    error = response.json()["error"]["details"][0]
    assert response.status_code == 422
    assert (error["loc"], error["type"]) == (["query", "fields"], "unknown_field")
    assert "volume" in error["msg"] and "pm25_ugm3" in error["msg"]  # the known ones listed


@pytest.mark.usefixtures("seeded")
async def test_series_fields_outside_the_name_pattern_are_422(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "p1", fields="pm25_ugm3,volume;DROP TABLE devices")
    error = response.json()["error"]["details"][0]
    assert (error["loc"], error["type"]) == (["query", "fields"], "string_pattern_mismatch")


@pytest.mark.usefixtures("seeded")
async def test_series_from_after_to_is_422(client: httpx.AsyncClient) -> None:
    params = {"from": "2026-11-30T02:00:00Z", "to": "2026-11-30T01:00:00Z"}
    response = await client.get("/v1/devices/p1/series", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["type"] == "time_range"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "value",
    ["2026-11-30T00:00:00", "1764460800", "1764460800000", "2026-11-30", "1999-12-31T00:00:00Z"],
)
async def test_series_time_that_is_not_rfc3339_in_window_is_422(
    client: httpx.AsyncClient, value: str
) -> None:
    response = await get_series(client, "p1", **{"from": value})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["query", "from"]


@pytest.mark.usefixtures("seeded")
async def test_series_raw_range_too_large_is_point_budget_400(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "p1", **{"from": "2026-10-01T00:00:00Z"})
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, "point_budget")
    assert "set a bucket" in error["message"]


async def test_series_over_point_budget_is_400_before_the_device_is_looked_up(
    client: httpx.AsyncClient,
) -> None:
    # An unknown device: the budget refuses the request before any query would say 404.
    params = {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "1m"}
    response = await client.get("/v1/devices/ghost/series", params=params)
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (400, "point_budget")
    assert error["details"][0]["loc"] == ["query", "bucket"]
    assert "84960 buckets" in error["message"]


@pytest.mark.usefixtures("seeded")
async def test_series_within_point_budget_is_answered(client: httpx.AsyncClient) -> None:
    # 7 days of 1-minute buckets: 10,080 points > 10,000; of 2-minute buckets: 5,040.
    params = {"from": "2026-11-24T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    over = await get_series(client, "p1", bucket="1m", **params)
    within = await get_series(client, "p1", bucket="2m", **params)
    assert (over.status_code, within.status_code) == (400, 200)


@pytest.mark.usefixtures("seeded")
async def test_series_malformed_bucket_is_422(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "p1", bucket="5 minutes")
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["type"] == "string_pattern_mismatch"


async def test_series_unknown_device_is_404(client: httpx.AsyncClient) -> None:
    response = await get_series(client, "ghost")
    assert response.status_code == 404


@pytest.fixture
async def rolled_up(db: asyncpg.Connection, seeded: None) -> None:
    """The seeded rows were written by SQL, not the collector: refresh their range."""
    await RollupRefresher().refresh_range(db, DAY - timedelta(days=1), DAY + timedelta(days=1))


@pytest.mark.usefixtures("rolled_up")
async def test_aggregates_by_city_cover_only_its_devices(client: httpx.AsyncClient) -> None:
    params = WINDOW | {"city": "alpha", "bucket": "1h", "fields": "pm25_avg_ugm3,pm25_samples"}
    body = (await client.get("/v1/aggregates/pole", params=params)).json()
    assert body["source"] == "pole_area_1h"
    # p1: 10, 20, 40 and p2: 100 (beta's p9 is not in alpha): mean over the 4 samples.
    assert body["points"] == [
        {"ts": "2026-11-30T00:00:00Z", "pm25_avg_ugm3": 42.5, "pm25_samples": 4}
    ]


@pytest.mark.usefixtures("rolled_up")
async def test_aggregates_by_district_and_every_statistic(client: httpx.AsyncClient) -> None:
    params = WINDOW | {"city": "alpha", "district": "north", "bucket": "15m"}
    body = (await client.get("/v1/aggregates/pole", params=params)).json()
    assert body["source"] == "pole_area_15m"
    (point,) = body["points"]
    assert (point["devices"], point["samples"], point["pm25_max_ugm3"]) == (1, 3, 40.0)
    assert (point["lamp_samples"], point["lamp_on_share"], point["noise_max_dba"]) == (2, 0.5, 55.5)


@pytest.mark.usefixtures("rolled_up")
async def test_aggregates_sum_of_signal_volume_per_local_day(client: httpx.AsyncClient) -> None:
    params = WINDOW | {"city": "alpha", "bucket": "1d", "fields": "volume_sum,flash_samples"}
    body = (await client.get("/v1/aggregates/signal", params=params)).json()
    # Days are local (Asia/Shanghai): 2026-11-30T00:00Z falls in the day that began at 16:00Z.
    assert body["points"] == [{"ts": "2026-11-29T16:00:00Z", "volume_sum": 12, "flash_samples": 1}]


async def test_aggregates_unknown_statistic_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/aggregates/energy", params={"fields": "pm25_avg_ugm3"})
    error = response.json()["error"]["details"][0]
    assert (response.status_code, error["loc"]) == (422, ["query", "fields"])


async def test_aggregates_bucket_not_on_rollup_edges_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/aggregates/energy", params={"bucket": "10m"})
    error = response.json()["error"]["details"][0]
    assert (response.status_code, error["type"]) == (422, "bucket_rollup")


async def test_aggregates_too_many_buckets_is_point_budget_400(client: httpx.AsyncClient) -> None:
    params = {"bucket": "15m"} | {
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-12-01T00:00:00Z",
    }
    response = await client.get("/v1/aggregates/energy", params=params)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "point_budget")
