"""Storage upkeep: partitions ahead and retention behind on plain PostgreSQL (on
TimescaleDB the extension's policies do that), and rollup retention in both modes."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg

from schemas.migrate import StorageMode, read_storage_mode
from schemas.payloads import TELEMETRY_TABLES
from schemas.rollups import area_name, rollup_name
from schemas.topics import Kind

logger = logging.getLogger(__name__)


async def maintain_partitions(
    conn: asyncpg.Connection, *, ahead_days: int, retention_days: int, today: date | None = None
) -> tuple[int, int]:
    """Create partitions from yesterday to ``ahead_days`` ahead; drop those past retention.

    Returns ``(created, dropped)``; ``(0, 0)`` on TimescaleDB.
    """
    if await read_storage_mode(conn) is not StorageMode.POSTGRES:
        return 0, 0
    today = today or datetime.now(UTC).date()
    days = [today + timedelta(days=offset) for offset in range(-1, ahead_days + 1)]
    cutoff = today - timedelta(days=retention_days)
    created = dropped = 0
    for table in TELEMETRY_TABLES.values():
        async with conn.transaction():
            created += await conn.fetchval(
                "SELECT citytel_ensure_partitions($1::regclass, $2::date[])", table, days
            )
            dropped += await conn.fetchval(
                "SELECT citytel_drop_partitions_before($1::regclass, $2::date)", table, cutoff
            )
    if created or dropped:
        logger.info(
            "partitions: %d created, %d dropped (retention %d days)",
            created,
            dropped,
            retention_days,
        )
    return created, dropped


async def prune_rollups(
    conn: asyncpg.Connection, *, retention_days: int, rollup_retention_days: int
) -> int:
    """Delete rollup rows past their retention; returns how many.

    15-minute rollups go with raw data (``retention_days``), hourly and daily ones after
    ``rollup_retention_days``. On TimescaleDB the per-device rollups have retention
    policies; the area rollups, the daily coverage, the duplicate log and the collectors'
    figures (``collector_stats``, kept as long as raw data) are plain tables in both modes
    and are pruned here.
    """
    now = datetime.now(UTC)
    raw_cutoff = now - timedelta(days=retention_days)
    kept_cutoff = now - timedelta(days=rollup_retention_days)
    plain = await read_storage_mode(conn) is StorageMode.POSTGRES
    targets: list[tuple[str, str, datetime]] = [
        ("ingest_duplicates", "hour", raw_cutoff),
        ("collector_stats", "ts", raw_cutoff),
    ]
    targets.append(("signal_coverage_1d", "bucket", kept_cutoff))
    for kind in Kind:
        targets.append((area_name(kind, "15m"), "bucket", raw_cutoff))
        targets.append((area_name(kind, "1h"), "bucket", kept_cutoff))
        if plain:
            targets.append((rollup_name(kind, "15m"), "bucket", raw_cutoff))
            targets += [(rollup_name(kind, lvl), "bucket", kept_cutoff) for lvl in ("1h", "1d")]
    deleted = 0
    for table, column, cutoff in targets:
        status = await conn.execute(f"DELETE FROM {table} WHERE {column} < $1", cutoff)
        deleted += int(status.rsplit(" ", 1)[-1])
    if deleted:
        logger.info("rollups: %d rows past retention deleted", deleted)
    return deleted
