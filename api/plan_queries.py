"""SQL of the plan indicators, their targets, feed health and area aggregates.

Every number comes from the database's own definitions (``citytel_indicator``,
``citytel_feed_health``, the area rollups); this module only calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from schemas.rollups import BUCKET_ORIGIN, area_merge, area_name
from schemas.topics import Kind

# --- the catalogue and targets --------------------------------------------------------------

TARGET_COLUMNS = "id, indicator, scope_type, scope, comparison, value, due, note, updated_at"


async def list_catalogue(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch("SELECT name, kind, unit, title, definition FROM indicators ORDER BY name")
    )


async def catalogue_entry(conn: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT name, kind, unit, title, definition FROM indicators WHERE name = $1", name
    )


async def list_targets(
    conn: asyncpg.Connection, indicator: str | None = None
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {TARGET_COLUMNS} FROM indicator_targets"
            " WHERE $1::text IS NULL OR indicator = $1 ORDER BY indicator, scope_type, scope, due",
            indicator,
        )
    )


async def applicable_target(
    conn: asyncpg.Connection, indicator: str, city: str | None, at: datetime
) -> asyncpg.Record | None:
    """The target for ``city`` (its own, else its province's) as of ``at``."""
    row = await conn.fetchrow(
        f"SELECT {TARGET_COLUMNS} FROM citytel_indicator_target($1, $2, $3::date)",
        indicator,
        city,
        at,
    )
    return row if row is not None and row["id"] is not None else None


@dataclass(frozen=True, slots=True)
class TargetValues:
    indicator: str
    scope_type: str
    scope: str
    comparison: str
    value: float
    due: object
    note: str | None


async def upsert_target(conn: asyncpg.Connection, target: TargetValues) -> asyncpg.Record:
    """Insert or update the target of (indicator, scope, due)."""
    return await conn.fetchrow(
        "INSERT INTO indicator_targets (indicator, scope_type, scope, comparison, value, due, note)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (indicator, scope_type, scope, due) DO UPDATE SET"
        " comparison = excluded.comparison, value = excluded.value, note = excluded.note,"
        f" updated_at = now() RETURNING {TARGET_COLUMNS}",
        target.indicator,
        target.scope_type,
        target.scope,
        target.comparison,
        target.value,
        target.due,
        target.note,
    )


async def delete_target(conn: asyncpg.Connection, target_id: int) -> bool:
    status = await conn.execute("DELETE FROM indicator_targets WHERE id = $1", target_id)
    return status.endswith(" 1")


# --- an indicator over periods --------------------------------------------------------------


async def indicator_points(
    conn: asyncpg.Connection,
    name: str,
    *,
    city: str | None,
    district: str | None,
    start: datetime,
    end: datetime,
    period: str,
) -> list[asyncpg.Record]:
    """Rows of ``citytel_indicator``: the periods, then the total (``is_total``)."""
    return list(
        await conn.fetch(
            "SELECT period_start, period_end, value, numerator, denominator, is_total"
            " FROM citytel_indicator($1, $2::text, $3::text, $4, $5, $6)",
            name,
            city,
            district,
            start,
            end,
            period,
        )
    )


async def mode_mix(
    conn: asyncpg.Connection,
    *,
    city: str | None,
    district: str | None,
    start: datetime,
    end: datetime,
    period: str,
) -> dict[datetime, dict[str, float | None]]:
    """Per period start: the share of every signal mode."""
    rows = await conn.fetch(
        "SELECT period_start, mode, share"
        " FROM citytel_signal_mode_mix($1::text, $2::text, $3, $4, $5)",
        city,
        district,
        start,
        end,
        period,
    )
    parts: dict[datetime, dict[str, float | None]] = {}
    for row in rows:
        parts.setdefault(row["period_start"], {})[row["mode"]] = row["share"]
    return parts


async def default_province(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SELECT (citytel_city_settings('*')).province"))


# --- feed health ----------------------------------------------------------------------------


async def feed_health(
    conn: asyncpg.Connection,
    *,
    start: datetime,
    end: datetime,
    city: str | None,
    kind: str | None,
    below: float | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Per device, least complete first (``below``: only those under that completeness)."""
    return list(
        await conn.fetch(
            "SELECT * FROM citytel_feed_health($1, $2, $3::text, $4::text)"
            " WHERE $5::float8 IS NULL OR coalesce(completeness, 0) < $5"
            " ORDER BY coalesce(completeness, 0), device_id LIMIT $6",
            start,
            end,
            city,
            kind,
            below,
            limit,
        )
    )


async def feed_health_summary(
    conn: asyncpg.Connection, *, start: datetime, end: datetime, city: str | None, kind: str | None
) -> list[asyncpg.Record]:
    """Per city and kind: devices, fresh devices, completeness, dead letters, duplicates."""
    return list(
        await conn.fetch(
            """
            SELECT city, kind, count(*) AS devices, count(*) FILTER (WHERE fresh) AS fresh,
                   sum(samples)::bigint AS samples, sum(expected) AS expected,
                   citytel_clamp01(sum(samples) / nullif(sum(expected), 0)) AS completeness,
                   sum(dead_letters)::bigint AS dead_letters, sum(duplicates)::bigint AS duplicates,
                   sum(dead_letters_per_hour) AS dead_letters_per_hour,
                   sum(duplicates_per_hour) AS duplicates_per_hour
            FROM citytel_feed_health($1, $2, $3::text, $4::text)
            GROUP BY city, kind ORDER BY city, kind
            """,
            start,
            end,
            city,
            kind,
        )
    )


# --- aggregates over an area ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaSource:
    """The area rollup a bucket reads, and whether buckets are local days."""

    relation: str
    local_days: bool


def area_source(kind: Kind, bucket: timedelta) -> AreaSource:
    """The coarsest area rollup whose buckets divide ``bucket`` (a multiple of 15 min)."""
    if bucket % timedelta(hours=1):
        return AreaSource(area_name(kind, "15m"), local_days=False)
    return AreaSource(area_name(kind, "1h"), local_days=bucket == timedelta(days=1))


async def area_aggregate(
    conn: asyncpg.Connection,
    kind: Kind,
    *,
    city: str | None,
    district: str | None,
    start: datetime,
    end: datetime,
    bucket: timedelta,
) -> tuple[str, list[asyncpg.Record]]:
    """Per bucket, the kind's statistics over the devices of the scope.

    Two steps: the districts of the scope are added up per rollup bucket (devices and
    coincident kW totals are sums), then the rollup buckets are merged into the
    requested ones (devices: the most that reported at once; kW totals: the mean).
    Days are the scope's local days.
    """
    source = area_source(kind, bucket)
    merges = area_merge(kind)
    across = ", ".join(f"{expr('x', True)} AS {n}" for n, expr in merges)
    over_time = ", ".join(f"{expr('a', False)} AS {n}" for n, expr in merges)
    if source.local_days:
        target = "date_trunc('day', a.bucket AT TIME ZONE $5) AT TIME ZONE $5"
    else:
        target = f"date_bin($5::interval, a.bucket, {BUCKET_ORIGIN})"
    sql = f"""
        WITH a AS (
            SELECT x.bucket, {across}
            FROM {source.relation} x
            WHERE x.bucket >= $1 AND x.bucket < $2
              AND ($3::text IS NULL OR x.city = $3) AND ($4::text IS NULL OR x.district = $4)
            GROUP BY x.bucket
        )
        SELECT {target} AS bucket, {over_time}
        FROM a GROUP BY 1 ORDER BY 1
    """
    zone_or_interval: object = bucket
    if source.local_days:
        zone_or_interval = await conn.fetchval(
            "SELECT (citytel_city_settings(coalesce($1::text, '*'))).time_zone", city
        )
    rows = await conn.fetch(sql, start, end, city, district, zone_or_interval)
    return source.relation, list(rows)
