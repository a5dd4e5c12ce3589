"""A device's series beyond its raw rows: buckets whose raw rows are past retention
come from the device's rollup, merged with the raw rows that remain."""

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
from schemas.rollups import SERIES_STATISTICS
from schemas.topics import Kind

DAY = datetime(2026, 11, 30, tzinfo=UTC)
TWO_HOURS = {"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T02:00:00Z"}
DEVICES = {Kind.POLE: "p1", Kind.SIGNAL: "s1", Kind.ENERGY: "e1"}


def at(minute: float) -> datetime:
    return DAY + timedelta(minutes=minute)


@pytest.fixture
async def history(db: asyncpg.Connection) -> None:
    """One device of each kind with readings over two hours (some fields missing),
    rolled up as the collector's refresher would."""
    devices = [{"device_id": d, "kind": k, "city": "alpha"} for k, d in DEVICES.items()]
    await upsert_devices(db, [Device.model_validate(d) for d in devices])
    await insert_rows(
        db,
        "pole_telemetry",
        [
            {"device_id": "p1", "ts": at(0), "pm25_ugm3": 10.0, "lamp_on": True},
            {
                "device_id": "p1",
                "ts": at(20),
                "pm25_ugm3": 30.0,
                "lamp_on": False,
                "noise_dba": 50.0,
            },
            {"device_id": "p1", "ts": at(40), "lamp_on": True, "noise_dba": 60.0},
            {"device_id": "p1", "ts": at(70), "pm25_ugm3": 50.0, "cell_online": True},
            {"device_id": "p1", "ts": at(100), "pm25_ugm3": 70.0, "cell_online": False},
        ],
    )
    await insert_rows(
        db,
        "signal_telemetry",
        [
            {
                "device_id": "s1",
                "ts": at(0),
                "mode": "actuated",
                "volume": 7,
                "occupancy_pct": 10.0,
                "cycle_s": 90.0,
            },
            {
                "device_id": "s1",
                "ts": at(50),
                "mode": "actuated",
                "volume": 5,
                "occupancy_pct": 30.0,
            },
            {"device_id": "s1", "ts": at(65), "mode": "actuated", "volume": 9, "cycle_s": 120.0},
        ],
    )
    await insert_rows(
        db,
        "energy_telemetry",
        [
            {"device_id": "e1", "ts": at(5), "soc_pct": 40.0, "load_kw": 10.0},
            {"device_id": "e1", "ts": at(35), "soc_pct": 55.0, "load_kw": 12.0},
            {"device_id": "e1", "ts": at(80), "load_kw": 11.0},
            {"device_id": "e1", "ts": at(95), "soc_pct": 50.0, "load_kw": 9.0},
        ],
    )
    await RollupRefresher().refresh_range(db, DAY, DAY + timedelta(days=1))


async def drop_raw_before(db: asyncpg.Connection, table: str, cutoff: datetime) -> None:
    """What retention does to raw rows; the rollups keep them."""
    await db.execute(f"DELETE FROM {table} WHERE ts < $1", cutoff)


async def series(client: httpx.AsyncClient, device_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/devices/{device_id}/series", params=TWO_HOURS | params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.usefixtures("history")
async def test_buckets_past_raw_retention_come_from_the_rollup(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await drop_raw_before(db, "pole_telemetry", at(60))
    body = await series(client, "p1", fields="pm25_ugm3,lamp_on,noise_dba", bucket="1h")
    assert body["sources"] == ["pole_rollup_1h", "pole_telemetry"]
    first, second = body["points"]
    # Hour 0 (raw rows gone): pm25 of 10 and 30, lamps on 2 of 3, noise of 50 and 60.
    assert first["ts"] == "2026-11-30T00:00:00Z"
    assert (first["n"], first["pm25_ugm3"], first["noise_dba"]) == (3, 20.0, 55.0)
    assert first["lamp_on"] == pytest.approx(2 / 3)
    # Hour 1 (raw rows kept): pm25 of 50 and 70, no lamp or noise readings.
    assert second == {
        "ts": "2026-11-30T01:00:00Z",
        "n": 2,
        "pm25_ugm3": 60.0,
        "lamp_on": None,
        "noise_dba": None,
    }


@pytest.mark.usefixtures("history")
async def test_a_bucket_across_the_retention_edge_merges_rollup_and_raw(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await drop_raw_before(db, "pole_telemetry", at(60))
    body = await series(client, "p1", fields="pm25_ugm3", bucket="2h", agg="max")
    assert body["sources"] == ["pole_rollup_1h", "pole_telemetry"]
    assert body["points"] == [{"ts": "2026-11-30T00:00:00Z", "n": 5, "pm25_ugm3": 70.0}]


@pytest.mark.usefixtures("history")
async def test_energy_soc_last_and_min_across_the_edge(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await drop_raw_before(db, "energy_telemetry", at(60))
    last = await series(client, "e1", fields="soc_pct", bucket="1h", agg="last")
    assert [p["soc_pct"] for p in last["points"]] == [55.0, 50.0]
    lowest = await series(client, "e1", fields="soc_pct", bucket="2h", agg="min")
    assert lowest["points"] == [{"ts": "2026-11-30T00:00:00Z", "n": 4, "soc_pct": 40.0}]


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize(
    ("kind", "params", "field", "values"),
    [
        # load_kw has no rollup statistic for avg: the whole request reads raw rows.
        (Kind.ENERGY, {"fields": "soc_pct,load_kw", "bucket": "1h"}, "load_kw", [10.0]),
        # 10 minutes is not a multiple of the rollups' 15.
        (Kind.POLE, {"fields": "pm25_ugm3", "bucket": "10m"}, "pm25_ugm3", [50.0, 70.0]),
    ],
    ids=["field-without-rollup-statistic", "bucket-off-the-rollup-grid"],
)
async def test_other_requests_read_raw_rows_only(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    *,
    kind: Kind,
    params: dict[str, str],
    field: str,
    values: list[float],
) -> None:
    await drop_raw_before(db, f"{kind}_telemetry", at(60))
    body = await series(client, DEVICES[kind], **params)
    assert body["sources"] == [f"{kind}_telemetry"]
    assert [p[field] for p in body["points"]] == values


@pytest.mark.usefixtures("history")
async def test_with_raw_rows_kept_the_series_reads_them_alone(client: httpx.AsyncClient) -> None:
    body = await series(client, "p1", fields="pm25_ugm3", bucket="1h")
    assert body["sources"] == ["pole_telemetry"]
    assert [p["pm25_ugm3"] for p in body["points"]] == [20.0, 60.0]


@pytest.mark.usefixtures("history")
@pytest.mark.parametrize("bucket", ["15m", "1h", "2h"])
async def test_every_rollup_statistic_answers_what_the_raw_rows_answer(
    client: httpx.AsyncClient, db: asyncpg.Connection, bucket: str
) -> None:
    """Each (field, agg) the rollups can serve, before and after the raw rows are gone."""
    for kind, device_id in DEVICES.items():
        by_agg: dict[str, list[str]] = {}
        for field, agg in SERIES_STATISTICS[kind]:
            by_agg.setdefault(agg, []).append(field)
        raw = {
            agg: await series(client, device_id, fields=",".join(f), bucket=bucket, agg=agg)
            for agg, f in by_agg.items()
        }
        await drop_raw_before(db, f"{kind}_telemetry", at(24 * 60))
        for agg, fields in by_agg.items():
            rolled = await series(
                client, device_id, fields=",".join(fields), bucket=bucket, agg=agg
            )
            assert rolled["sources"] == [f"{kind}_rollup_{'1h' if bucket != '15m' else '15m'}"]
            assert len(rolled["points"]) == len(raw[agg]["points"]) > 0
            for got, want in zip(rolled["points"], raw[agg]["points"], strict=True):
                assert got == pytest.approx(want), (kind, agg, bucket)
