"""The benchmark's own database: created fresh, migrated, filled with the registry, dropped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

from bench.baselines import bare_table
from bench.errors import BenchError
from bench.payloads import CITY, MessageSet
from core.urls import DatabaseUrl
from schemas.payloads import TELEMETRY_TABLES
from schemas.scratch import scratch_database
from schemas.topics import Kind

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
STALL_S = 60.0  # a run whose row count stands still this long has failed
_EMPTIED = (
    *TELEMETRY_TABLES.values(),
    "device_events",
    "device_status",
    "dead_letters",
    "unknown_fields",
    *(bare_table(kind) for kind in Kind),
)


@asynccontextmanager
async def bench_database(admin: DatabaseUrl) -> AsyncIterator[DatabaseUrl]:
    """A fresh ``citytel_bench_<random>`` database on ``admin``'s server, migrated, then dropped."""
    async with scratch_database(admin, "citytel_bench") as url:
        yield url


@asynccontextmanager
async def prepared_database(
    admin: DatabaseUrl, message_set: MessageSet
) -> AsyncIterator[tuple[DatabaseUrl, asyncpg.Connection]]:
    """:func:`bench_database` with a connection to it, prepared for ``message_set``."""
    async with bench_database(admin) as url:
        conn = await asyncpg.connect(str(url), timeout=10)
        try:
            await prepare(conn, message_set)
            yield url, conn
        finally:
            await conn.close()


async def prepare(conn: asyncpg.Connection, message_set: MessageSet) -> None:
    """Registry rows, the day partitions the messages need, and the bare pipeline's tables."""
    await conn.copy_records_to_table(
        "devices",
        records=[(d, str(k), CITY) for d, k in message_set.devices],
        columns=["device_id", "kind", "city"],
    )
    days = message_set.days()
    for table in TELEMETRY_TABLES.values():
        await conn.fetchval(
            "SELECT citytel_ensure_partitions($1::regclass, $2::date[])", table, days
        )
    for kind in Kind:
        await conn.execute(
            f"CREATE TABLE {bare_table(kind)}"
            f" (LIKE citytel_shape.{TELEMETRY_TABLES[kind]} INCLUDING DEFAULTS);"
            f" CREATE INDEX ON {bare_table(kind)} (device_id, ts)"
        )


async def reset(conn: asyncpg.Connection) -> None:
    """Empty every table a run writes; the registry stays."""
    await conn.execute(f"TRUNCATE {', '.join(_EMPTIED)}")


async def count_rows(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows in the telemetry tables and the dead letters."""
    counts = {}
    for table in (*TELEMETRY_TABLES.values(), "dead_letters"):
        counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    return counts


async def wait_for_rows(
    conn: asyncpg.Connection,
    expected: int,
    label: str,
    *,
    poll_s: float = 0.1,
    on_poll: Callable[[], None] = lambda: None,
) -> tuple[float, dict[str, int]]:
    """Poll until the telemetry tables hold ``expected`` rows.

    Returns when the query that saw the last one was issued, and the counts it saw.
    ``on_poll`` runs before each query (and may raise to give up).
    """
    last, last_change = -1, time.monotonic()
    while True:
        on_poll()
        issued = time.monotonic()
        rows = await count_rows(conn)
        stored = sum(n for table, n in rows.items() if table != "dead_letters")
        if stored >= expected:
            return issued, rows
        if stored != last:
            last, last_change = stored, issued
        elif issued - last_change > STALL_S:
            raise BenchError(f"{label}: {stored} of {expected} rows stored, no progress")
        await asyncio.sleep(poll_s)
