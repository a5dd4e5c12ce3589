"""Rollups: what is kept per device per 15 minutes, hour and day, defined once.

Every statistic is declared here with its expression over raw rows and how it merges
from a finer level to a coarser one. From these declarations come, for both storage
modes, the same relation names and columns:

- TimescaleDB: continuous aggregates ``<kind>_rollup_15m`` (over the hypertable),
  ``_1h`` (over the 15-minute one) and ``_1d`` (over the hourly one, days in the rollup
  time zone), with refresh policies;
- plain PostgreSQL: tables of the same names that :mod:`ingest.rollups` refreshes
  incrementally from an invalidation log the collector writes with every batch.

Above them, per city and district, the area rollups ``<kind>_area_15m`` and
``<kind>_area_1h`` (plain tables in both modes) sum the devices of an area, so a
question about a city costs the same whatever its number of devices.

The SQL files ``schemas/sql/007_rollups.*.sql`` and ``008_area_rollups.sql`` are
rendered from here (``python -m schemas.rollups``) and checked by a test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas.payloads import TELEMETRY_TABLES
from schemas.topics import Kind

# Bucket origin of date_bin on plain PostgreSQL; time_bucket's default gives the same
# 15-minute and hourly buckets.
BUCKET_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # suffix of the relation names
    interval: str  # SQL interval
    seconds: int


LEVELS = (Level("15m", "15 minutes", 900), Level("1h", "1 hour", 3600), Level("1d", "1 day", 86400))
AREA_LEVELS = LEVELS[:2]


@dataclass(frozen=True, slots=True)
class Stat:
    """One rollup column.

    ``raw`` aggregates raw rows ``t`` joined to their registry row ``d``. ``merge`` says
    how a coarser bucket combines finer ones: ``sum``, ``min``, ``max``,
    ``mean:<weight>`` (weighted by a count column), ``ratio:<numerator>:<denominator>``
    or ``last:<time column>`` (the newest non-null value).
    """

    name: str
    sql_type: str
    raw: str
    merge: str
    raw_timescale: str | None = None  # when TimescaleDB spells it differently

    @property
    def op(self) -> str:
        return self.merge.split(":", 1)[0]

    @property
    def args(self) -> list[str]:
        return self.merge.split(":")[1:]


_BIGINT = "bigint"
_DOUBLE = "double precision"


def _count(name: str, expression: str) -> Stat:
    return Stat(name, _BIGINT, f"count({expression})", "sum")


def _count_where(name: str, condition: str) -> Stat:
    return Stat(name, _BIGINT, f"count(*) FILTER (WHERE {condition})", "sum")


def _mean(name: str, expression: str, weight: str) -> Stat:
    return Stat(name, _DOUBLE, f"avg({expression})::double precision", f"mean:{weight}")


def _ratio(name: str, numerator: Stat, denominator: Stat) -> Stat:
    raw = f"({numerator.raw})::double precision / nullif({denominator.raw}, 0)"
    return Stat(name, _DOUBLE, raw, f"ratio:{numerator.name}:{denominator.name}")


def _energy_kwh(name: str, kw: str) -> Stat:
    """Each sample stands for one reporting interval of the device."""
    return Stat(name, _DOUBLE, f"sum(({kw}) * d.interval_s / 3600.0)::double precision", "sum")


SAMPLES = Stat("samples", _BIGINT, "count(*)", "sum")


def _pole_stats() -> tuple[Stat, ...]:
    lamp = _count("lamp_samples", "t.lamp_on")
    lamp_on = _count_where("lamp_on_samples", "t.lamp_on")
    cell = _count("cell_samples", "t.cell_online")
    cell_on = _count_where("cell_online_samples", "t.cell_online")
    camera = _count("camera_samples", "t.camera_online")
    camera_on = _count_where("camera_online_samples", "t.camera_online")
    stats = [lamp, lamp_on, _ratio("lamp_on_share", lamp_on, lamp)]
    stats += [_count("dim_samples", "t.dim_pct"), _mean("dim_avg_pct", "t.dim_pct", "dim_samples")]
    stats.append(
        Stat(
            "lamp_energy_kwh",
            _DOUBLE,
            "sum(t.lamp_power_w * d.interval_s / 3600000.0)::double precision",
            "sum",
        )
    )
    for source, unit in (("pm25", "ugm3"), ("pm10", "ugm3"), ("noise", "dba")):
        column = f"t.{source}_{unit}"
        stats += [
            _count(f"{source}_samples", column),
            _mean(f"{source}_avg_{unit}", column, f"{source}_samples"),
            Stat(f"{source}_max_{unit}", _DOUBLE, f"max({column})", "max"),
        ]
    stats += [cell, cell_on, _ratio("cell_online_share", cell_on, cell)]
    stats += [camera, camera_on, _ratio("camera_online_share", camera_on, camera)]
    return (SAMPLES, *stats)


SIGNAL_MODES = (
    "off",
    "flash",
    "all_red",
    "manual",
    "fixed_time",
    "actuated",
    "coordinated",
    "adaptive",
)


def _signal_stats() -> tuple[Stat, ...]:
    stats = [_count_where(f"{mode}_samples", f"t.mode = '{mode}'") for mode in SIGNAL_MODES]
    stats += [
        Stat("volume_sum", _BIGINT, "sum(t.volume)::bigint", "sum"),
        _count("volume_samples", "t.volume"),
        _count("occupancy_samples", "t.occupancy_pct"),
        _mean("occupancy_avg_pct", "t.occupancy_pct", "occupancy_samples"),
        _count("cycle_samples", "t.cycle_s"),
        _mean("cycle_avg_s", "t.cycle_s", "cycle_samples"),
    ]
    return (SAMPLES, *stats)


# Energy node flows in kW, missing terms as zero (the contract's balance rule).
ENERGY_FLOWS = {
    "pv": "coalesce(t.pv_kw, 0)",
    "wind": "coalesce(t.wind_kw, 0)",
    "load": "coalesce(t.load_kw, 0)",
    "import": "greatest(coalesce(t.grid_kw, 0), 0)",
    "export": "greatest(-coalesce(t.grid_kw, 0), 0)",
    "discharge": "greatest(coalesce(t.storage_kw, 0), 0)",
    "charge": "greatest(-coalesce(t.storage_kw, 0), 0)",
}


def _energy_stats() -> tuple[Stat, ...]:
    stats = [_mean(f"{flow}_avg_kw", kw, "samples") for flow, kw in ENERGY_FLOWS.items()]
    stats += [_energy_kwh(f"{flow}_kwh", kw) for flow, kw in ENERGY_FLOWS.items()]
    net_load = f"{ENERGY_FLOWS['load']} - {ENERGY_FLOWS['pv']} - {ENERGY_FLOWS['wind']}"
    stats += [
        Stat("import_max_kw", _DOUBLE, f"max({ENERGY_FLOWS['import']})", "max"),
        Stat("net_load_max_kw", _DOUBLE, f"max({net_load})", "max"),
        _count("soc_samples", "t.soc_pct"),
        Stat("soc_min_pct", _DOUBLE, "min(t.soc_pct)", "min"),
        Stat("soc_max_pct", _DOUBLE, "max(t.soc_pct)", "max"),
        Stat(
            "soc_last_pct",
            _DOUBLE,
            "(array_agg(t.soc_pct ORDER BY t.ts DESC) FILTER (WHERE t.soc_pct IS NOT NULL))[1]",
            "last:soc_last_at",
            raw_timescale="last(t.soc_pct, t.ts) FILTER (WHERE t.soc_pct IS NOT NULL)",
        ),
        Stat("soc_last_at", "timestamptz", "max(t.ts) FILTER (WHERE t.soc_pct IS NOT NULL)", "max"),
        _count("balance_checked", "t.balance_ok"),
        _count_where("balance_failed", "NOT t.balance_ok"),
    ]
    return (SAMPLES, *stats)


STATS: dict[Kind, tuple[Stat, ...]] = {
    Kind.POLE: _pole_stats(),
    Kind.SIGNAL: _signal_stats(),
    Kind.ENERGY: _energy_stats(),
}
# Sums of the devices' mean flow in a bucket: what the area draws or feeds at that time.
AREA_FLOW_TOTALS = ("import", "net_load")


def rollup_name(kind: Kind, level: Level | str) -> str:
    return f"{kind}_rollup_{level if isinstance(level, str) else level.name}"


def area_name(kind: Kind, level: Level | str) -> str:
    return f"{kind}_area_{level if isinstance(level, str) else level.name}"


def rollup_columns(kind: Kind) -> tuple[str, ...]:
    return ("device_id", "bucket", *(s.name for s in STATS[kind]))


def find_stat(kind: Kind, name: str) -> Stat:
    for stat in STATS[kind]:
        if stat.name == name:
            return stat
    raise KeyError(f"{kind} rollups have no column {name!r}")


def merge_sql(kind: Kind, name: str, source: str) -> str:
    """How rows of a rollup (alias ``source``) combine into one value of column ``name``.

    The rule the coarser rollups are made with (a weighted mean, a ratio of two sums, the
    newest value, ...), for readers that merge rollup rows themselves, such as the
    dashboards' coarser buckets. Plain PostgreSQL SQL.
    """
    return _merge_expr(find_stat(kind, name), source, timescale=False)


def merge_inputs(kind: Kind, name: str) -> tuple[str, ...]:
    """The columns :func:`merge_sql` reads for ``name``: itself and its weights or parts."""
    stat = find_stat(kind, name)
    return (name, *(a for a in stat.args if a != name))


# --- SQL rendering ---------------------------------------------------------------------------


def _merge_expr(stat: Stat, source: str, *, timescale: bool) -> str:
    """``stat`` over finer rows of relation alias ``source``."""
    column = f"{source}.{stat.name}"
    if stat.op == "sum":
        return f"sum({column})::{stat.sql_type}"
    if stat.op in ("min", "max"):
        return f"{stat.op}({column})"
    if stat.op == "mean":
        weight = f"{source}.{stat.args[0]}"
        return f"(sum({column} * {weight}) / nullif(sum({weight}), 0))::double precision"
    if stat.op == "ratio":
        numerator, denominator = (f"{source}.{a}" for a in stat.args)
        return f"sum({numerator})::double precision / nullif(sum({denominator}), 0)"
    if stat.op == "last":
        at = f"{source}.{stat.args[0]}"
        if timescale:
            return f"last({column}, {at}) FILTER (WHERE {column} IS NOT NULL)"
        return f"(array_agg({column} ORDER BY {at} DESC) FILTER (WHERE {column} IS NOT NULL))[1]"
    raise ValueError(f"unknown merge {stat.merge!r} of {stat.name}")


def _select_list(kind: Kind, level: Level, *, timescale: bool) -> str:
    lines = []
    for stat in STATS[kind]:
        if level is LEVELS[0]:
            expression = stat.raw_timescale if timescale and stat.raw_timescale else stat.raw
        else:
            expression = _merge_expr(stat, "r", timescale=timescale)
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
-- Rendered from schemas/rollups.py (python -m schemas.rollups): do not edit by hand.
-- Per-device rollups as TimescaleDB continuous aggregates: 15 minutes over the raw
-- hypertables, the hour over the 15 minutes, the day (in the rollup time zone) over
-- the hour. Real-time aggregation is off: a rollup holds what was refreshed.
"""

_HEADER_POSTGRES = """\
-- Rendered from schemas/rollups.py (python -m schemas.rollups): do not edit by hand.
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


def area_stats(kind: Kind) -> list[tuple[str, str, str]]:
    """``(name, type, expression over device rollups r joined to d)`` of an area rollup."""
    stats: list[tuple[str, str, str]] = [("devices", _BIGINT, "count(*)")]
    for stat in STATS[kind]:
        if stat.op == "last" or stat.name.endswith("_at"):
            continue  # the newest value of one device says nothing of an area
        stats.append((stat.name, stat.sql_type, _merge_expr(stat, "r", timescale=False)))
    if kind is Kind.ENERGY:
        stats += [
            ("import_kw_total", _DOUBLE, "sum(r.import_avg_kw)"),
            ("net_load_kw_total", _DOUBLE, "sum(r.load_avg_kw - r.pv_avg_kw - r.wind_avg_kw)"),
        ]
    return stats


AreaMerge = Callable[[str, bool], str]


def area_merge(kind: Kind) -> list[tuple[str, AreaMerge]]:
    """How each area column combines rows of alias ``a``: across the districts of one
    bucket (``across_districts``), or across buckets into a coarser one.

    Devices and coincident kW totals add up across districts; over time the devices are
    the most that reported at once and a kW total is the mean. Every other column merges
    as its per-device statistic does.
    """

    def summed(name: str) -> AreaMerge:
        return lambda a, across: f"sum({a}.{name})::bigint"

    def peak_then(name: str, over_time: str) -> AreaMerge:
        return lambda a, across: (
            (f"sum({a}.{name})" if across else f"{over_time}({a}.{name})")
            + ("::bigint" if name == "devices" else "::double precision")
        )

    merges: list[tuple[str, AreaMerge]] = [("devices", peak_then("devices", "max"))]
    for stat in STATS[kind]:
        if stat.op == "last" or stat.name.endswith("_at"):
            continue
        merges.append(
            (stat.name, lambda a, across, stat=stat: _merge_expr(stat, a, timescale=False))
        )
    merges.append(("samples_capped", summed("samples_capped")))
    if kind is Kind.ENERGY:
        merges += [
            (f"{flow}_kw_total", peak_then(f"{flow}_kw_total", "avg")) for flow in AREA_FLOW_TOTALS
        ]
    return merges


def area_columns(kind: Kind) -> tuple[str, ...]:
    return (
        "city",
        "district",
        "bucket",
        *(name for name, _, _ in area_stats(kind)),
        "samples_capped",
    )


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
-- Rendered from schemas/rollups.py (python -m schemas.rollups): do not edit by hand.
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
