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

from core.broker import MosquittoProcess
from core.urls import DatabaseUrl
from ingest.maintenance import maintain_partitions
from schemas.migrate import StorageMode, migrate, migration_status, timescale_available
from schemas.scratch import create_database, drop_database

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
        " WHERE hypertable_name LIKE '%_telemetry'"
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
