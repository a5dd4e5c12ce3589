"""Storage upkeep on plain PostgreSQL: partitions ahead, retention behind.

On TimescaleDB the extension's own policies do this; the task then does nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import asyncpg

from schemas.migrate import StorageMode, read_storage_mode
from schemas.payloads import TELEMETRY_TABLES

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
