"""SQL of the API. Only whitelisted column names are ever put into SQL text.

Telemetry SQL runs on both storage modes (day-partitioned tables on plain
PostgreSQL, hypertables on TimescaleDB), so buckets use ``date_bin``.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from ingest import deadletters as dead_letters
from schemas.payloads import TELEMETRY_COLUMNS, TELEMETRY_MODELS, TELEMETRY_TABLES
from schemas.registry import DEVICE_COLUMNS
from schemas.rollups import (
    BUCKET_ORIGIN,
    LEVELS,
    ROLLUP_STEP,
    SERIES_STATISTICS,
    Level,
    find_stat,
    merge_inputs,
    merge_sql,
    rollup_name,
)
from schemas.topics import Kind

ColumnType = Literal["number", "bool", "text"]

_DEVICE_SELECT = """
SELECT d.device_id, d.kind, d.city, d.district, d.name, d.lat, d.lon, d.interval_s,
       d.installed_at, d.functions, d.intersection, d.arterial, d.site_type,
       d.pv_capacity_kw, d.storage_capacity_kwh, d.registered_by, d.updated_at,
       s.online, s.last_seen, s.fw
FROM devices d LEFT JOIN device_status s ON s.device_id = d.device_id
"""
_DEVICE_FILTER = """
WHERE ($1::text IS NULL OR d.city = $1)
  AND ($2::text IS NULL OR d.kind = $2)
  AND ($3::text IS NULL OR d.district = $3)
"""


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    city: str | None = None
    kind: str | None = None
    district: str | None = None


async def fetch_device(conn: asyncpg.Connection, device_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_DEVICE_SELECT + "WHERE d.device_id = $1", device_id)


async def list_devices(
    conn: asyncpg.Connection, where: DeviceFilter, *, after: str | None, limit: int
) -> list[asyncpg.Record]:
    """One page in device_id order: the devices after ``after`` (keyset pagination)."""
    return await conn.fetch(
        _DEVICE_SELECT
        + _DEVICE_FILTER
        + "AND ($4::text IS NULL OR d.device_id > $4) ORDER BY d.device_id LIMIT $5",
        where.city,
        where.kind,
        where.district,
        after,
        limit,
    )


async def lock_registry_row(conn: asyncpg.Connection, device_id: str) -> asyncpg.Record | None:
    """The device's registry columns, locked until the transaction ends."""
    return await conn.fetchrow(
        f"SELECT {', '.join(DEVICE_COLUMNS)} FROM devices WHERE device_id = $1 FOR UPDATE",
        device_id,
    )


async def delete_device(conn: asyncpg.Connection, device_id: str) -> bool:
    """Remove the registry row and its status; its telemetry and events stay."""
    async with conn.transaction():
        await conn.execute("DELETE FROM device_status WHERE device_id = $1", device_id)
        deleted = await conn.execute("DELETE FROM devices WHERE device_id = $1", device_id)
    return deleted != "DELETE 0"


def column_type(kind: Kind, column: str) -> ColumnType:
    """How a telemetry column aggregates, derived from the contract's model."""
    annotation = TELEMETRY_MODELS[kind].model_fields[column].annotation
    members = typing.get_args(annotation) or (annotation,)
    if bool in members:
        return "bool"
    if any(isinstance(m, type) and issubclass(m, str) for m in members):
        return "text"
    return "number"


def _column(column: str, alias: str = "t") -> str:
    return f'{alias}."{column}"'


def aggregate_expr(agg: str, kind: Kind, column: str) -> str:
    """SQL of one aggregate over a whitelisted column; ``last`` by time, NULLs skipped."""
    ref = _column(column)
    if agg == "last":
        return f"(array_agg({ref} ORDER BY t.ts DESC) FILTER (WHERE {ref} IS NOT NULL))[1]"
    value = f"{ref}::int" if column_type(kind, column) == "bool" else ref
    if agg in ("avg", "sum"):
        return f"{agg}({value})::double precision"
    return f"{agg}({value})"


def series_rollup(kind: Kind, columns: Sequence[str], bucket: timedelta, agg: str) -> Level | None:
    """The per-device rollup level that can answer a bucketed series where raw rows are gone.

    Hourly for whole hours, 15 minutes for other multiples of 15 minutes; None when the
    bucket does not fit or a field has no rollup statistic for ``agg``
    (``schemas.rollups.SERIES_STATISTICS``).
    """
    if bucket % ROLLUP_STEP:
        return None
    statistics = SERIES_STATISTICS[kind]
    if any((column, agg) not in statistics for column in columns):
        return None
    hourly = not bucket % timedelta(hours=1)
    return next(level for level in LEVELS if level.name == ("1h" if hourly else "15m"))


async def fetch_latest(
    conn: asyncpg.Connection, kind: Kind, device_id: str
) -> asyncpg.Record | None:
    """The device's newest telemetry row: ``ts`` and every contract column."""
    sql = _raw_select(kind, TELEMETRY_COLUMNS[kind]) + " ORDER BY t.ts DESC LIMIT 1"
    return await conn.fetchrow(sql, device_id)


def _raw_select(kind: Kind, columns: Sequence[str]) -> str:
    """``ts`` and ``columns`` of one device's raw rows (``$1`` is the device id)."""
    _check_columns(kind, columns)
    selected = ", ".join(f"{_column(c)} AS {c}" for c in columns)
    return f"SELECT t.ts, {selected} FROM {TELEMETRY_TABLES[kind]} t WHERE t.device_id = $1"


async def fetch_raw_series(
    conn: asyncpg.Connection,
    kind: Kind,
    device_id: str,
    columns: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Rows of one device in time order; at most ``limit``."""
    sql = _raw_select(kind, columns) + " AND t.ts >= $2 AND t.ts < $3 ORDER BY t.ts LIMIT $4"
    return await conn.fetch(sql, device_id, start, end, limit)


@dataclass(frozen=True, slots=True)
class BucketedSeries:
    """Rows ``bucket``, ``n`` and one column per field; ``sources`` are the relations
    read, oldest buckets first."""

    sources: list[str]
    rows: list[asyncpg.Record]


async def fetch_bucketed_series(
    conn: asyncpg.Connection,
    kind: Kind,
    device_id: str,
    columns: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    agg: str,
) -> BucketedSeries:
    """One row per non-empty bucket: ``bucket``, ``n`` (readings) and each column's aggregate.

    Where the window starts before the device's oldest raw reading (raw rows past
    retention, rollups kept for years) and its rollup answers these fields
    (:func:`series_rollup`), the rollup's buckets before that reading and the raw rows
    after it are merged as the rollups merge; otherwise the raw rows answer alone.
    """
    _check_columns(kind, columns)
    table = TELEMETRY_TABLES[kind]
    level = series_rollup(kind, columns, bucket, agg)
    if level is not None:
        oldest = await conn.fetchval(
            f"SELECT date_bin($2::interval, min(t.ts), {BUCKET_ORIGIN}) FROM {table} t"
            " WHERE t.device_id = $1",
            device_id,
            level.step,
        )
        raw_from = end if oldest is None else min(end, oldest)
        if raw_from > start:
            rows = await _rollup_then_raw(
                conn,
                kind,
                device_id,
                columns,
                agg=agg,
                level=level,
                start=start,
                raw_from=raw_from,
                end=end,
                bucket=bucket,
            )
            relation = rollup_name(kind, level)
            return BucketedSeries([relation, table] if raw_from < end else [relation], rows)
    selected = ", ".join(f"{aggregate_expr(agg, kind, c)} AS {c}" for c in columns)
    sql = (
        f"SELECT date_bin($4::interval, t.ts, {BUCKET_ORIGIN}) AS bucket, count(*) AS n,"
        f" {selected} FROM {table} t"
        " WHERE t.device_id = $1 AND t.ts >= $2 AND t.ts < $3 GROUP BY 1 ORDER BY 1"
    )
    return BucketedSeries([table], list(await conn.fetch(sql, device_id, start, end, bucket)))


async def _rollup_then_raw(
    conn: asyncpg.Connection,
    kind: Kind,
    device_id: str,
    columns: Sequence[str],
    *,
    agg: str,
    level: Level,
    start: datetime,
    raw_from: datetime,
    end: datetime,
    bucket: timedelta,
) -> list[asyncpg.Record]:
    """Rollup rows in [start, raw_from) and raw rows in [raw_from, end), the raw ones
    first computed as the rollup computes its rows, all merged into ``bucket``s."""
    statistics = [SERIES_STATISTICS[kind][(c, agg)] for c in columns]
    inputs = list(
        dict.fromkeys(["samples", *(i for s in statistics for i in merge_inputs(kind, s))])
    )
    from_rollup = ", ".join(f"r.{name}" for name in inputs)
    from_raw = ", ".join(f"{find_stat(kind, name).raw} AS {name}" for name in inputs)
    merged = ", ".join(
        f"{merge_sql(kind, s, 'p')} AS {c}" for c, s in zip(columns, statistics, strict=True)
    )
    sql = f"""
        WITH p AS (
            SELECT r.bucket, {from_rollup} FROM {rollup_name(kind, level)} r
            WHERE r.device_id = $1 AND r.bucket >= $2 AND r.bucket < $3
            UNION ALL
            SELECT date_bin($6::interval, t.ts, {BUCKET_ORIGIN}), {from_raw}
            FROM {TELEMETRY_TABLES[kind]} t
            WHERE t.device_id = $1 AND t.ts >= $3 AND t.ts < $4 GROUP BY 1
        )
        SELECT date_bin($5::interval, p.bucket, {BUCKET_ORIGIN}) AS bucket,
            {merge_sql(kind, "samples", "p")} AS n, {merged}
        FROM p GROUP BY 1 ORDER BY 1
    """
    return list(await conn.fetch(sql, device_id, start, raw_from, end, bucket, level.step))


def _check_columns(kind: Kind, columns: Sequence[str]) -> None:
    """Last line of defence: the caller validated these, SQL text never sees anything else."""
    unknown = set(columns) - set(TELEMETRY_COLUMNS[kind])
    if unknown:
        raise ValueError(f"not {kind} telemetry columns: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class EventFilter:
    device_id: str | None = None
    city: str | None = None
    type: str | None = None
    severity: str | None = None
    start: datetime | None = None
    end: datetime | None = None


async def list_events(
    conn: asyncpg.Connection, where: EventFilter, *, limit: int
) -> list[asyncpg.Record]:
    """Newest first; city and kind come from the registry (NULL for unknown devices)."""
    return await conn.fetch(
        """
        SELECT e.device_id, d.city, d.kind, e.ts, e.type, e.code, e.severity, e.message,
               e.seq, e.extra, e.received_at
        FROM device_events e LEFT JOIN devices d ON d.device_id = e.device_id
        WHERE ($1::text IS NULL OR e.device_id = $1)
          AND ($2::text IS NULL OR d.city = $2)
          AND ($3::text IS NULL OR e.type = $3)
          AND ($4::text IS NULL OR e.severity = $4)
          AND ($5::timestamptz IS NULL OR e.ts >= $5)
          AND ($6::timestamptz IS NULL OR e.ts < $6)
        ORDER BY e.ts DESC, e.device_id
        LIMIT $7
        """,
        where.device_id,
        where.city,
        where.type,
        where.severity,
        where.start,
        where.end,
        limit,
    )


async def list_dead_letters(
    conn: asyncpg.Connection,
    *,
    reason: str | None,
    since: datetime | None,
    limit: int,
    payload_max_bytes: int,
) -> list[asyncpg.Record]:
    """Newest first, replayed ones included; the collector's own listing query."""
    return await dead_letters.list_dead_letters(
        conn,
        reason=reason,
        since=since,
        include_replayed=True,
        limit=limit,
        payload_max_bytes=payload_max_bytes,
    )


async def summarize_dead_letters(
    conn: asyncpg.Connection, *, since: datetime | None
) -> list[asyncpg.Record]:
    """Counts per reason, most frequent first."""
    return await conn.fetch(
        """
        SELECT reason, count(*) AS count,
               count(*) FILTER (WHERE replayed_at IS NULL) AS not_replayed,
               min(received_at) AS first_received_at, max(received_at) AS last_received_at
        FROM dead_letters
        WHERE ($1::timestamptz IS NULL OR received_at >= $1)
        GROUP BY reason
        ORDER BY count DESC, reason
        """,
        since,
    )


# --- indicators: read from the metric views of 003_indicators.sql, never recomputed ---


async def city_registered(conn: asyncpg.Connection, city: str) -> bool:
    """Whether any registered device belongs to ``city``."""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM device_freshness WHERE city = $1)", city)
    )


@dataclass(frozen=True, slots=True)
class IndicatorRows:
    """The view rows of the selected cities, each list ordered by city."""

    cities: list[str]
    timing: list[asyncpg.Record]
    poles: list[asyncpg.Record]
    freshness: list[asyncpg.Record]
    self_consumption: list[asyncpg.Record]


async def fetch_indicators(conn: asyncpg.Connection, city: str | None) -> IndicatorRows:
    """Every indicator of ``city`` (all cities when None), straight from the views.

    One read-only snapshot, so every view sees the same rows and the same ``now()``.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _fetch_indicators(conn, city)


async def _fetch_indicators(conn: asyncpg.Connection, city: str | None) -> IndicatorRows:
    where = "WHERE ($1::text IS NULL OR city = $1)"
    cities = await conn.fetch(
        f"SELECT DISTINCT city FROM device_freshness {where} ORDER BY 1", city
    )
    timing = await conn.fetch(
        "SELECT city, intersections, reporting, intelligent, coverage_pct, target_pct"
        f" FROM signal_timing_coverage {where} ORDER BY city",
        city,
    )
    poles = await conn.fetch(
        f"SELECT city, poles, online, online_pct FROM pole_online_rate {where} ORDER BY city",
        city,
    )
    freshness = await conn.fetch(
        "SELECT city, kind, devices, fresh, stale, fresh_pct, median_age_s, max_age_s"
        f" FROM feed_freshness {where} ORDER BY city, kind",
        city,
    )
    # The mean over the sites that generated; the view gives a site without generation
    # 100 % (LEAST skips its NULL ratio), so those are left out here.
    self_consumption = await conn.fetch(
        "SELECT city, count(*) AS sites,"
        " count(*) FILTER (WHERE renewable_kw > 0) AS generating_sites,"
        " round(avg(self_consumption_pct) FILTER (WHERE renewable_kw > 0), 2)"
        " AS self_consumption_pct"
        f" FROM renewable_self_consumption {where} GROUP BY city ORDER BY city",
        city,
    )
    return IndicatorRows([r["city"] for r in cities], timing, poles, freshness, self_consumption)
