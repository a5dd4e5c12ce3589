"""The collector's periodic jobs: storage maintenance, the rollup refresh, its own figures.

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
from ingest.metrics import CollectorMetrics
from ingest.rollups import RollupRefresher
from ingest.stats import StatsRecorder

logger = logging.getLogger(__name__)

_RETRY_MAX_S = 60.0
Job = Callable[[asyncpg.Connection], Awaitable[object]]


async def every(
    settings: IngestSettings, interval_s: float, name: str, job: Job, *, start_after_s: float = 0.0
) -> None:
    """Run ``job`` on a fresh connection every ``interval_s`` until cancelled."""
    await asyncio.sleep(start_after_s)
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


def stats_job(settings: IngestSettings, metrics: CollectorMetrics) -> Job:
    return StatsRecorder(settings.ingest_client_id, metrics).record


def upkeep_tasks(settings: IngestSettings, metrics: CollectorMetrics) -> list[asyncio.Task[None]]:
    """The collector's periodic jobs, started (those whose interval is not 0)."""
    s = settings
    jobs = [  # task name, what the logs call it, interval, job, first run after
        ("maintenance", "storage maintenance", s.ingest_maintenance_interval_s,
         maintenance_job(s), 0.0),
        ("rollups", "rollup refresh", s.ingest_rollup_refresh_s, rollup_job(s), 0.0),
        # One interval before the first row: a row for the start's first millisecond says nothing.
        ("stats", "collector stats", s.ingest_stats_interval_s, stats_job(s, metrics),
         s.ingest_stats_interval_s),
    ]  # fmt: skip
    return [
        asyncio.create_task(every(s, interval_s, title, job, start_after_s=delay), name=name)
        for name, title, interval_s, job, delay in jobs
        if interval_s
    ]
