"""The rollup refresher: recomputes the buckets the collector invalidated, per level.

The collector logs, in each batch's transaction, the 15-minute buckets that got raw
rows (``rollup_invalidations``). A refresh reads that log, merges the buckets into time
ranges and recomputes, in order:

1. the per-device rollups ``<kind>_rollup_15m|1h|1d``: on plain PostgreSQL with the
   ``citytel_refresh_*`` functions, in the refresh's transaction; on TimescaleDB with
   ``refresh_continuous_aggregate`` (which cannot run in a transaction, so it comes
   first; the extension's own policies refresh them too);
2. the area rollups ``<kind>_area_15m|1h`` and the daily signal-timing coverage;

then deletes the log rows it read, in the same transaction as step 2. A crash leaves
the log in place and the next refresh redoes the work: every step recomputes whole
buckets, so doing it twice is harmless. Late data is only a log row like any other.

One refresher runs at a time per database (an advisory lock); others skip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from schemas.migrate import StorageMode, read_storage_mode
from schemas.rollups import AREA_LEVELS, LEVELS, Level, area_name, rollup_name
from schemas.topics import Kind

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x0C17_7E2
MAX_LOG_ROWS = 50_000  # log rows one refresh takes; the rest waits for the next
Range = tuple[datetime, datetime]
Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class RefreshReport:
    """What one refresh did."""

    skipped: bool = False  # another refresher held the lock
    log_rows: int = 0
    ranges: dict[str, list[Range]] = field(default_factory=dict)
    rebuilt_cities: list[str] = field(default_factory=list)
    seconds: float = 0.0


def merge_ranges(starts: Iterable[datetime], width: timedelta) -> list[Range]:
    """Bucket starts as sorted, disjoint ``[lo, hi)`` ranges (adjacent buckets joined)."""
    ranges: list[Range] = []
    for start in sorted(set(starts)):
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], start + width))
        else:
            ranges.append((start, start + width))
    return ranges


def align(ranges: list[Range], level: Level, zone: ZoneInfo) -> list[Range]:
    """``ranges`` widened to whole buckets of ``level`` (days in ``zone``), merged."""
    if level.name == "1d":
        widened = [(_local_midnight(lo, zone), _next_local_midnight(hi, zone)) for lo, hi in ranges]
    else:
        step = level.seconds
        widened = [
            (
                datetime.fromtimestamp(lo.timestamp() // step * step, UTC),
                datetime.fromtimestamp(-(-hi.timestamp() // step) * step, UTC),
            )
            for lo, hi in ranges
        ]
    merged: list[Range] = []
    for lo, hi in sorted(widened):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _local_midnight(ts: datetime, zone: ZoneInfo) -> datetime:
    local = ts.astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def _next_local_midnight(ts: datetime, zone: ZoneInfo) -> datetime:
    midnight = _local_midnight(ts, zone)
    if midnight == ts:
        return ts
    local = (midnight.astimezone(zone) + timedelta(days=1, hours=3)).date()  # past any DST step
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


class RollupRefresher:
    """Refreshes the rollups of one database; keep one per process."""

    def __init__(self, *, rebuild_days: int = 90) -> None:
        self.rebuild_days = rebuild_days  # how far back a city's coverage is rebuilt

    async def refresh(self, conn: asyncpg.Connection) -> RefreshReport:
        """Recompute what the log says changed; skip if another refresher is at it."""
        started = time.perf_counter()
        report = RefreshReport()
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            report.skipped = True
            return report
        try:
            rows = await conn.fetch(
                "SELECT id, kind, bucket FROM rollup_invalidations ORDER BY id LIMIT $1",
                MAX_LOG_ROWS,
            )
            cities = await conn.fetch(
                "SELECT city, max(requested_at) AS at FROM rollup_rebuilds GROUP BY city"
            )
            report.log_rows = len(rows)
            by_kind: dict[Kind, list[datetime]] = {}
            for row in rows:
                by_kind.setdefault(Kind(row["kind"]), []).append(row["bucket"])
            ranges = {kind: merge_ranges(b, timedelta(minutes=15)) for kind, b in by_kind.items()}
            report.ranges = {str(k): r for k, r in ranges.items()}
            report.rebuilt_cities = [r["city"] for r in cities]
            rebuild = {r["city"]: r["at"] for r in cities}
            await self._recompute(conn, ranges, rebuild, [r["id"] for r in rows])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        report.seconds = time.perf_counter() - started
        if report.log_rows or report.rebuilt_cities:
            logger.info(
                "rollups refreshed: %d log rows, %s, %d cities rebuilt in %.2fs",
                report.log_rows,
                {k: len(r) for k, r in report.ranges.items()},
                len(report.rebuilt_cities),
                report.seconds,
            )
        return report

    async def refresh_range(
        self,
        conn: asyncpg.Connection,
        lo: datetime,
        hi: datetime,
        *,
        kinds: Iterable[Kind] = tuple(Kind),
        step: timedelta = timedelta(days=1),
        on_progress: Progress | None = None,
    ) -> None:
        """Recompute every rollup over ``[lo, hi)``, a ``step`` at a time (rows written
        without the collector, a rebuild after a definition change)."""
        kinds = list(kinds)
        chunks = []
        cursor = lo
        while cursor < hi:
            chunks.append((cursor, min(hi, cursor + step)))
            cursor += step
        for done, chunk in enumerate(chunks, 1):
            await self._recompute(conn, {kind: [chunk] for kind in kinds}, {}, [])
            if on_progress is not None:
                on_progress("refresh", done, len(chunks))

    async def _recompute(
        self,
        conn: asyncpg.Connection,
        ranges: dict[Kind, list[Range]],
        rebuild: dict[str, datetime],
        log_ids: list[int],
    ) -> None:
        mode = await read_storage_mode(conn)
        zone = ZoneInfo(
            await conn.fetchval("SELECT value FROM citytel_meta WHERE key = 'rollup_timezone'")
        )
        if mode is StorageMode.TIMESCALE:
            for kind, kind_ranges in ranges.items():
                for level in LEVELS:
                    for lo, hi in align(kind_ranges, level, zone):
                        await conn.execute(
                            "CALL refresh_continuous_aggregate("
                            "$1::regclass, $2::timestamptz, $3::timestamptz)",
                            rollup_name(kind, level),
                            lo,
                            hi,
                        )
        async with conn.transaction():
            if mode is StorageMode.POSTGRES:
                for kind, kind_ranges in ranges.items():
                    for level in LEVELS:
                        await _call_each(conn, rollup_name(kind, level), kind_ranges, level, zone)
            for kind, kind_ranges in ranges.items():
                for level in AREA_LEVELS:
                    await _call_each(conn, area_name(kind, level), kind_ranges, level, zone)
            for lo, hi in align(ranges.get(Kind.SIGNAL, []), LEVELS[1], zone):
                await conn.fetchval("SELECT citytel_refresh_signal_coverage_1d($1, $2)", lo, hi)
            await self._rebuild(conn, rebuild)
            if log_ids:
                await conn.execute(
                    "DELETE FROM rollup_invalidations WHERE id = ANY($1::bigint[])", log_ids
                )

    async def _rebuild(self, conn: asyncpg.Connection, cities: dict[str, datetime]) -> None:
        """Recompute the daily coverage of cities whose settings changed (the requests
        made while this ran stay for the next refresh)."""
        hi = datetime.now(UTC) + timedelta(days=1)
        lo = hi - timedelta(days=self.rebuild_days + 1)
        for city, requested_at in cities.items():
            await conn.fetchval(
                "SELECT citytel_refresh_signal_coverage_1d($1, $2, $3)", lo, hi, city
            )
            await conn.execute(
                "DELETE FROM rollup_rebuilds WHERE city = $1 AND requested_at <= $2",
                city,
                requested_at,
            )


async def _call_each(
    conn: asyncpg.Connection, relation: str, ranges: list[Range], level: Level, zone: ZoneInfo
) -> None:
    for lo, hi in align(ranges, level, zone):
        await conn.fetchval(f"SELECT citytel_refresh_{relation}($1, $2)", lo, hi)
