"""The SQL of the rollups, rendered from their declarations in :mod:`schemas.rollups`.

``python -m schemas.rollup_sql`` writes ``schemas/sql/007_rollups.timescale.sql``,
``007_rollups.postgres.sql`` and ``008_area_rollups.sql``; a test fails when the files
and the declarations disagree. A migration that was applied must not change: a change
of definition goes into a new migration.
"""

from __future__ import annotations

import sys
from pathlib import Path

from schemas.payloads import TELEMETRY_TABLES
from schemas.rollups import (
    AREA_LEVELS,
    BUCKET_ORIGIN,
    LEVELS,
    STATS,
    Level,
    area_columns,
    area_name,
    area_stats,
    merge_expr,
    rollup_columns,
    rollup_name,
)
from schemas.topics import Kind


def _select_list(kind: Kind, level: Level, *, timescale: bool) -> str:
    lines = []
    for stat in STATS[kind]:
        if level is LEVELS[0]:
            expression = stat.raw_timescale if timescale and stat.raw_timescale else stat.raw
        else:
            expression = merge_expr(stat, "r", timescale=timescale)
        lines.append(f"    {expression} AS {stat.name}")
    return ",\n".join(lines)


def _day_bucket(column: str, *, timescale: bool, zone: str) -> str:
    if timescale:
        return f"time_bucket('1 day', {column}, {zone})"
    return f"(date_trunc('day', {column} AT TIME ZONE {zone}) AT TIME ZONE {zone})"


def _bucket_expr(level: Level, column: str, *, timescale: bool, zone: str) -> str:
    if level.name == "1d":
        return _day_bucket(column, timescale=timescale, zone=zone)
    if timescale:
        return f"time_bucket('{level.interval}', {column})"
    return f"date_bin('{level.interval}', {column}, {BUCKET_ORIGIN})"


def _source(kind: Kind, level: Level) -> str:
    """FROM clause of a level: raw rows for 15 minutes, the finer rollup above."""
    if level is LEVELS[0]:
        return f"{TELEMETRY_TABLES[kind]} t JOIN devices d ON d.device_id = t.device_id"
    finer = LEVELS[LEVELS.index(level) - 1]
    return f"{rollup_name(kind, finer)} r"


def _select(kind: Kind, level: Level, *, timescale: bool, zone: str, where: str = "") -> str:
    first = level is LEVELS[0]
    device = "t.device_id" if first else "r.device_id"
    bucket = _bucket_expr(level, "t.ts" if first else "r.bucket", timescale=timescale, zone=zone)
    return (
        f"SELECT {device} AS device_id, {bucket} AS bucket,\n"
        f"{_select_list(kind, level, timescale=timescale)}\n"
        f"FROM {_source(kind, level)}{where}\n"
        f"GROUP BY {device}, {bucket}"
    )


def render_timescale() -> str:
    """Continuous aggregates with refresh and retention policies (the time zone and the
    retention periods come from settings the migrator passes)."""
    parts = [_HEADER_TIMESCALE]
    for kind in Kind:
        for level in LEVELS:
            name = rollup_name(kind, level)
            zone = "%1$L"  # format()'s argument: the rollup time zone, quoted
            select = _select(kind, level, timescale=True, zone="ZONE").replace("%", "%%")
            select = select.replace("ZONE", zone)
            parts.append(
                f"-- {name}\n"
                "DO $do$ BEGIN EXECUTE format($sql$\n"
                f"CREATE MATERIALIZED VIEW {name}\n"
                "WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS\n"
                f"{select}\n"
                "WITH NO DATA\n"
                "$sql$, current_setting('citytel.rollup_timezone')); END $do$;\n"
                f"CREATE INDEX ON {name} (device_id, bucket);\n"
            )
    parts.append(_POLICIES_TIMESCALE)
    return "\n".join(parts)


def render_postgres() -> str:
    """Tables with the aggregates' columns, and the functions that refresh a time range."""
    parts = [_HEADER_POSTGRES]
    for kind in Kind:
        raw = TELEMETRY_TABLES[kind]
        parts.append(
            f"CREATE INDEX {raw}_ts_brin ON {raw} USING brin (ts) WITH (pages_per_range = 32);\n"
        )
        for level in LEVELS:
            name = rollup_name(kind, level)
            columns = ",\n".join(f"    {s.name} {s.sql_type}" for s in STATS[kind])
            parts.append(
                f"CREATE TABLE {name} (\n    device_id text NOT NULL,\n"
                f"    bucket timestamptz NOT NULL,\n{columns},\n"
                "    PRIMARY KEY (device_id, bucket)\n);\n"
                f"CREATE INDEX {name}_bucket ON {name} (bucket);\n"
            )
            parts.append(_refresh_function(kind, level))
    return "\n".join(parts)


def _refresh_function(kind: Kind, level: Level) -> str:
    name = rollup_name(kind, level)
    first = level is LEVELS[0]
    time_column = "t.ts" if first else "r.bucket"
    where = f"\nWHERE {time_column} >= lo AND {time_column} < hi"
    select = _select(kind, level, timescale=False, zone="zone", where=where)
    columns = ", ".join(rollup_columns(kind))
    return (
        f"-- Recompute {name} for the buckets in [lo, hi) (bounds on bucket edges).\n"
        f"CREATE FUNCTION citytel_refresh_{name}(lo timestamptz, hi timestamptz) RETURNS bigint\n"
        "LANGUAGE plpgsql AS $fn$\n"
        "DECLARE\n"
        "    zone text := citytel_rollup_timezone();\n"
        "    n bigint;\n"
        "BEGIN\n"
        f"    DELETE FROM {name} WHERE bucket >= lo AND bucket < hi;\n"
        f"    INSERT INTO {name} ({columns})\n"
        + "\n".join("    " + line for line in select.splitlines())
        + ";\n"
        "    GET DIAGNOSTICS n = ROW_COUNT;\n"
        "    RETURN n;\n"
        "END\n"
        "$fn$;\n"
    )


_HEADER_TIMESCALE = """\
-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Per-device rollups as TimescaleDB continuous aggregates: 15 minutes over the raw
-- hypertables, the hour over the 15 minutes, the day (in the rollup time zone) over
-- the hour. Real-time aggregation is off: a rollup holds what was refreshed.
"""

_HEADER_POSTGRES = """\
-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Per-device rollups on plain PostgreSQL: tables with the columns the TimescaleDB
-- continuous aggregates have, refreshed for invalidated time ranges by the platform
-- (ingest/rollups.py) through the functions below. A BRIN index on ts lets a refresh
-- read only the raw rows of the buckets it recomputes.

-- The time zone of daily buckets, fixed when the rollups were created.
CREATE FUNCTION citytel_rollup_timezone() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT value FROM citytel_meta WHERE key = 'rollup_timezone'
$$;
"""

_POLICIES_TIMESCALE = """\
-- Refresh policies: every invalidated bucket within the raw retention is recomputed;
-- the platform's refresher also refreshes the ranges the collector invalidates, so
-- the area rollups above never read an unrefreshed bucket. Retention: the 15-minute
-- rollups live as long as raw data, the hourly and daily ones for years.
DO $$
DECLARE
    kind text;
    raw interval := make_interval(days => current_setting('citytel.retention_days')::int);
    kept interval := make_interval(days => current_setting('citytel.rollup_retention_days')::int);
BEGIN
    FOREACH kind IN ARRAY ARRAY['pole', 'signal', 'energy'] LOOP
        PERFORM add_continuous_aggregate_policy(format('%s_rollup_15m', kind)::regclass,
            start_offset => raw, end_offset => NULL, schedule_interval => INTERVAL '1 minute');
        PERFORM add_continuous_aggregate_policy(format('%s_rollup_1h', kind)::regclass,
            start_offset => raw, end_offset => NULL, schedule_interval => INTERVAL '5 minutes');
        PERFORM add_continuous_aggregate_policy(format('%s_rollup_1d', kind)::regclass,
            start_offset => raw, end_offset => NULL, schedule_interval => INTERVAL '15 minutes');
        PERFORM add_retention_policy(format('%s_rollup_15m', kind)::regclass, drop_after => raw);
        PERFORM add_retention_policy(format('%s_rollup_1h', kind)::regclass, drop_after => kept);
        PERFORM add_retention_policy(format('%s_rollup_1d', kind)::regclass, drop_after => kept);
    END LOOP;
END
$$;
"""


def render_area() -> str:
    """Area rollups (plain tables in both modes) and their refresh functions."""
    parts = [_HEADER_AREA]
    for kind in Kind:
        for level in AREA_LEVELS:
            name = area_name(kind, level)
            stats = area_stats(kind)
            columns = ",\n".join(f"    {n} {t}" for n, t, _ in stats)
            parts.append(
                f"CREATE TABLE {name} (\n    city text NOT NULL,\n    district text NOT NULL,\n"
                f"    bucket timestamptz NOT NULL,\n{columns},\n    samples_capped bigint,\n"
                "    PRIMARY KEY (city, district, bucket)\n);\n"
                f"CREATE INDEX {name}_bucket ON {name} (bucket);\n"
            )
            select = ",\n".join(f"        {e} AS {n}" for n, _, e in stats)
            capped = (
                f"        sum(least(r.samples, ceil({level.seconds} / d.interval_s)))::bigint"
                " AS samples_capped"
            )
            parts.append(
                f"-- Recompute {name} for the buckets in [lo, hi).\n"
                f"CREATE FUNCTION citytel_refresh_{name}(lo timestamptz, hi timestamptz)"
                " RETURNS bigint\nLANGUAGE plpgsql AS $fn$\n"
                "DECLARE\n    n bigint;\nBEGIN\n"
                f"    DELETE FROM {name} WHERE bucket >= lo AND bucket < hi;\n"
                f"    INSERT INTO {name} ({', '.join(area_columns(kind))})\n"
                "    SELECT d.city, coalesce(d.district, ''), r.bucket,\n"
                f"{select},\n{capped}\n"
                f"    FROM {rollup_name(kind, level)} r\n"
                "    JOIN devices d ON d.device_id = r.device_id\n"
                "    WHERE r.bucket >= lo AND r.bucket < hi\n"
                "    GROUP BY d.city, coalesce(d.district, ''), r.bucket;\n"
                "    GET DIAGNOSTICS n = ROW_COUNT;\n    RETURN n;\nEND\n$fn$;\n"
            )
    return "\n".join(parts)


_HEADER_AREA = """\
-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Area rollups: the devices of a city and district summed per 15 minutes and per hour,
-- from the per-device rollups (continuous aggregates or tables). Plain tables in both
-- storage modes, refreshed by the platform for invalidated ranges, so a question
-- about a city reads a few rows per bucket whatever its number of devices. A device
-- counts in the area the registry gives it when its bucket is rolled up.
-- samples_capped: samples, at most the count the device's interval_s allows per
-- bucket (a device reporting too often does not lift an online rate above 100 %).
"""


def render_files() -> dict[str, str]:
    """File name -> content of every SQL file rendered from this module."""
    return {
        "007_rollups.timescale.sql": render_timescale(),
        "007_rollups.postgres.sql": render_postgres(),
        "008_area_rollups.sql": render_area(),
    }


def main() -> None:
    folder = Path(__file__).parent / "sql"
    for name, text in render_files().items():
        (folder / name).write_text(text, encoding="utf-8")
        print(f"wrote {folder / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
