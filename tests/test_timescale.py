"""The TimescaleDB storage path: hypertables, compression, retention, same ingest.

Runs when a server with the extension preloaded is reachable: the one named by
``CITYTEL_TEST_TIMESCALE_URL``, or the main test server if it has it. Otherwise every
test here is skipped with that reason. Policies are run with ``CALL run_job(id)``
(their schedules are paused first) rather than waiting for the scheduler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import plan_scenario
import pytest
from conftest import ADMIN_URL, TIMESCALE_ADMIN_URL
from support import (
    collector_settings,
    pole_message,
    publish_all,
    running_collector,
    wait_until,
)
from support import wait_for_count as wait_count

from api import queries
from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from ingest.maintenance import maintain_partitions
from ingest.rollups import RollupRefresher
from schemas.migrate import StorageMode, migrate, migration_status, timescale_available
from schemas.scratch import create_database, drop_database
from schemas.topics import Kind

pytestmark = pytest.mark.timescale


async def _timescale_server() -> DatabaseUrl | None:
    for candidate in (TIMESCALE_ADMIN_URL, str(ADMIN_URL)):
        if not candidate:
            continue
        try:
            conn = await asyncpg.connect(candidate, timeout=5)
        except (OSError, asyncpg.PostgresError):
            continue
        try:
            if await timescale_available(conn):
                return DatabaseUrl(candidate)
        finally:
            await conn.close()
    return None


@pytest.fixture(scope="module")
async def timescale_url() -> AsyncIterator[DatabaseUrl]:
    admin = await _timescale_server()
    if admin is None:
        pytest.skip(
            "TimescaleDB not available: set CITYTEL_TEST_TIMESCALE_URL to a server with the"
            " extension in shared_preload_libraries (docs/development.md)"
        )
    url = await create_database(admin, "citytel_ts")
    conn = await asyncpg.connect(str(url))
    try:
        await migrate(conn, retention_days=90)
    finally:
        await conn.close()
    yield url
    await drop_database(admin, url)


@pytest.fixture
async def tsdb(timescale_url: DatabaseUrl) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(str(timescale_url))
    await conn.execute("TRUNCATE pole_telemetry, devices, dead_letters, device_status")
    # Run policies by hand only: pause their schedules so the scheduler cannot race us.
    await conn.execute(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
        " WHERE job_id >= 1000"  # every policy of ours (the extension's own jobs are below)
    )
    try:
        yield conn
    finally:
        await conn.close()


async def _job(conn: asyncpg.Connection, proc: str, table: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = $1 AND hypertable_name = $2",
            proc,
            table,
        )
    )


async def test_timescale_migration_makes_hypertables_with_policies(
    tsdb: asyncpg.Connection,
) -> None:
    status = await migration_status(tsdb)
    assert status.storage_mode is StorageMode.TIMESCALE and not status.pending
    dims = await tsdb.fetch(
        "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name LIKE '%_telemetry'"  # not the rollups' own hypertables
    )
    assert {(r["hypertable_name"], r["time_interval"]) for r in dims} == {
        (f"{k}_telemetry", timedelta(days=1)) for k in ("pole", "signal", "energy")
    }
    segment = await tsdb.fetchval(
        "SELECT attname FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'pole_telemetry' AND segmentby_column_index = 1"
    )
    assert segment == "device_id"
    jobs = {
        (r["proc_name"], r["hypertable_name"]): r["config"]
        for r in await tsdb.fetch(
            "SELECT proc_name, hypertable_name, config::text AS config"
            " FROM timescaledb_information.jobs WHERE hypertable_name LIKE '%_telemetry'"
        )
    }
    assert '"7 days"' in jobs[("policy_compression", "pole_telemetry")]
    assert '"90 days"' in jobs[("policy_retention", "energy_telemetry")]
    assert await maintain_partitions(tsdb, ahead_days=2, retention_days=90) == (0, 0)


async def test_timescale_ingest_dedups_into_compressed_chunks_and_retention_drops(
    tsdb: asyncpg.Connection,
    timescale_url: DatabaseUrl,
    mosquitto: MosquittoProcess,
    city: str,
) -> None:
    await tsdb.execute(
        "INSERT INTO devices (device_id, kind, city) VALUES ('p1', 'pole', $1)", city
    )
    now = datetime.now(UTC)

    def ms(days: float) -> int:
        return int((now - timedelta(days=days)).timestamp() * 1000)

    old = [pole_message(city, "p1", ms(10) + i * 1000) for i in range(50)]
    recent = [pole_message(city, "p1", ms(0.1) + i * 1000) for i in range(50)]
    settings = collector_settings(timescale_url, mosquitto.url, city=city)
    async with running_collector(settings) as collector:
        publish_all(mosquitto.url, old + recent)
        assert await wait_count(tsdb, "SELECT count(*) FROM pole_telemetry", 100) == 100

        await tsdb.execute(
            f"CALL run_job({await _job(tsdb, 'policy_compression', 'pole_telemetry')})"
        )
        compressed = await tsdb.fetchval(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'pole_telemetry' AND is_compressed"
        )
        assert compressed >= 1

        # A redelivery into a compressed chunk is absorbed by the unique key.
        publish_all(mosquitto.url, [*old[:10], pole_message(city, "p1", ms(10) - 5000)])
        assert await wait_count(tsdb, "SELECT count(*) FROM pole_telemetry", 101) == 101
        await wait_until(lambda: collector.metrics.received >= 111, timeout_s=10)
        assert collector.metrics.duplicates["pole_telemetry"] == 10

    # A new collector remembers no keys: it copies straight into the compressed chunk,
    # meets the duplicates there, and falls back to ON CONFLICT for the batch.
    async with running_collector(settings) as collector:
        publish_all(mosquitto.url, [*old[10:20], pole_message(city, "p1", ms(10) - 9000)])
        assert await wait_count(tsdb, "SELECT count(*) FROM pole_telemetry", 102) == 102
        await wait_until(lambda: collector.metrics.received >= 11, timeout_s=10)
        assert collector.metrics.duplicates["pole_telemetry"] == 10
        assert collector.writer._staged_only["pole_telemetry"] > 0

    # `db migrate` with a new retention replaces the policies; run the new one.
    await migrate(tsdb, retention_days=5)
    try:
        await tsdb.execute(
            f"CALL run_job({await _job(tsdb, 'policy_retention', 'pole_telemetry')})"
        )
        assert await tsdb.fetchval("SELECT count(*) FROM pole_telemetry") == 50
    finally:
        await migrate(tsdb, retention_days=90)


# --- rollups ----------------------------------------------------------------------------------


async def _columns(conn: asyncpg.Connection) -> dict[str, list[tuple[str, str]]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND (table_name LIKE '%\\_rollup\\_%'"
        " OR table_name LIKE '%\\_area\\_%') ORDER BY table_name, ordinal_position"
    )
    columns: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append((row["column_name"], row["data_type"]))
    return columns


async def test_rollups_have_the_same_names_and_columns_in_both_modes(
    tsdb: asyncpg.Connection, db: asyncpg.Connection
) -> None:
    timescale, postgres = await _columns(tsdb), await _columns(db)
    assert len(postgres) == 15  # 9 per-device rollups, 6 area rollups
    assert timescale == postgres
    caggs = await tsdb.fetch(
        "SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1"
    )
    assert [r["view_name"] for r in caggs] == sorted(
        f"{kind}_rollup_{level}"
        for kind in ("pole", "signal", "energy")
        for level in ("15m", "1h", "1d")
    )


async def test_timescale_rollups_give_the_hand_computed_indicators(
    tsdb: asyncpg.Connection, timescale_url: DatabaseUrl, city: str
) -> None:
    await plan_scenario.register(tsdb, city)
    await plan_scenario.store(tsdb, str(timescale_url), plan_scenario.messages(city))
    report = await RollupRefresher().refresh(tsdb)
    assert report.log_rows > 0
    day1, end = plan_scenario.DAY1, plan_scenario.END

    async def points(name: str) -> list[tuple[float, float, float]]:
        rows = await tsdb.fetch(
            "SELECT value, numerator, denominator"
            " FROM citytel_indicator($1, $2::text, 'north', $3, $4)",
            name,
            city,
            day1,
            end,
        )
        return [tuple(r) for r in rows]

    assert await points("signal_timing_coverage") == [(0.5, 2, 4), (0.25, 1, 4), (0.375, 3, 8)]
    assert await points("pole_online_rate") == [(0.5, 144, 288), (0.25, 72, 288), (0.375, 216, 576)]
    self_consumption = await points("energy_self_consumption")
    assert self_consumption[0] == (0.75, 120, 160)

    # Late data: the collector's log makes the refresher recompute the aggregates' bucket.
    late_ts = int((day1 + timedelta(hours=3)).timestamp() * 1000)
    s4 = plan_scenario.device(city, "s4")
    late = [
        (
            f"citytel/v1/{city}/signal/{s4}/telemetry",
            orjson.dumps({"ts": late_ts, "mode": "adaptive"}),
        )
    ]
    await plan_scenario.store(tsdb, str(timescale_url), iter(late))
    await RollupRefresher().refresh(tsdb)
    assert (await points("signal_timing_coverage"))[0] == (0.75, 3, 4)
    assert (
        await tsdb.fetchval(
            "SELECT adaptive_samples FROM signal_rollup_1d WHERE device_id = $1", s4
        )
        == 1
    )


async def test_timescale_rollup_policies_run(tsdb: asyncpg.Connection) -> None:
    jobs = await tsdb.fetch(
        "SELECT job_id, proc_name FROM timescaledb_information.jobs"
        " WHERE hypertable_name = 'pole_rollup_15m' ORDER BY proc_name"
    )
    assert [r["proc_name"] for r in jobs] == [
        "policy_refresh_continuous_aggregate",
        "policy_retention",
    ]
    started = await tsdb.fetchval("SELECT clock_timestamp()")
    for job in jobs:
        await tsdb.execute(f"CALL run_job({job['job_id']})")
    errors = await tsdb.fetchval(
        "SELECT count(*) FROM timescaledb_information.job_errors"
        " WHERE job_id = ANY($1::int[]) AND start_time >= $2",  # not a scheduler run before
        [j["job_id"] for j in jobs],
        started,
    )
    assert errors == 0, await tsdb.fetch("SELECT * FROM timescaledb_information.job_errors")


async def test_timescale_series_past_raw_rows_reads_the_continuous_aggregate(
    tsdb: asyncpg.Connection, timescale_url: DatabaseUrl, city: str
) -> None:
    await plan_scenario.register(tsdb, city)
    await plan_scenario.store(tsdb, str(timescale_url), plan_scenario.messages(city))
    await RollupRefresher().refresh(tsdb)
    pole = plan_scenario.device(city, "p1")
    window = {"start": plan_scenario.DAY1, "end": plan_scenario.END, "bucket": timedelta(hours=6)}

    async def series() -> queries.BucketedSeries:
        return await queries.fetch_bucketed_series(
            tsdb, Kind.POLE, pole, ["pm25_ugm3", "lamp_on"], agg="avg", **window
        )

    from_raw = await series()
    await tsdb.execute("DELETE FROM pole_telemetry WHERE device_id = $1", pole)  # as retention
    from_rollup = await series()
    assert (from_raw.sources, from_rollup.sources) == (["pole_telemetry"], ["pole_rollup_1h"])
    assert len(from_raw.rows) == 7  # 36 hours of 10-minute samples from 16:00 UTC
    for got, want in zip(from_rollup.rows, from_raw.rows, strict=True):
        assert got["bucket"] == want["bucket"]
        assert dict(got) | {"bucket": 0} == pytest.approx(dict(want) | {"bucket": 0})
