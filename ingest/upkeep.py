"""The collector's periodic jobs: storage maintenance and the rollup refresh.

Each runs on a connection of its own, on a timer, and survives a database outage: a
failed round is logged and retried sooner, never fatal to ingest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from core.settings import IngestSettings
from ingest.maintenance import maintain_partitions, prune_rollups
from ingest.rollups import RollupRefresher

logger = logging.getLogger(__name__)

_RETRY_MAX_S = 60.0
Job = Callable[[asyncpg.Connection], Awaitable[object]]


async def every(settings: IngestSettings, interval_s: float, name: str, job: Job) -> None:
    """Run ``job`` on a fresh connection every ``interval_s`` until cancelled."""
    while True:
        try:
            conn = await asyncpg.connect(str(settings.require_database_url()), timeout=10)
            try:
                await job(conn)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.warning("%s failed (%s); will retry", name, exc)
            await asyncio.sleep(min(_RETRY_MAX_S, interval_s))
            continue
        await asyncio.sleep(interval_s)


def maintenance_job(settings: IngestSettings) -> Job:
    """Partitions ahead and behind (plain PostgreSQL), rollup retention (both modes)."""

    async def maintain(conn: asyncpg.Connection) -> None:
        await maintain_partitions(
            conn, ahead_days=settings.partitions_ahead_days, retention_days=settings.retention_days
        )
        await prune_rollups(
            conn,
            retention_days=settings.retention_days,
            rollup_retention_days=settings.rollup_retention_days,
        )

    return maintain


def rollup_job(settings: IngestSettings) -> Job:
    refresher = RollupRefresher(rebuild_days=settings.retention_days)

    async def refresh(conn: asyncpg.Connection) -> None:
        await refresher.refresh(conn)

    return refresh


def upkeep_tasks(settings: IngestSettings) -> list[asyncio.Task[None]]:
    """The collector's periodic jobs, started."""
    tasks = [
        asyncio.create_task(
            every(
                settings,
                settings.ingest_maintenance_interval_s,
                "storage maintenance",
                maintenance_job(settings),
            ),
            name="maintenance",
        )
    ]
    if settings.ingest_rollup_refresh_s:
        tasks.append(
            asyncio.create_task(
                every(
                    settings,
                    settings.ingest_rollup_refresh_s,
                    "rollup refresh",
                    rollup_job(settings),
                ),
                name="rollups",
            )
        )
    return tasks
