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
rendered from these declarations by :mod:`schemas.rollup_sql` (``python -m
schemas.rollup_sql``) and checked by a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from schemas.topics import Kind

# Bucket origin of date_bin on plain PostgreSQL; time_bucket's default gives the same
# 15-minute and hourly buckets.
BUCKET_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


@dataclass(frozen=True, slots=True)
class Level:
    name: str  # suffix of the relation names
    interval: str  # SQL interval
    seconds: int

    @property
    def step(self) -> timedelta:
        return timedelta(seconds=self.seconds)


LEVELS = (Level("15m", "15 minutes", 900), Level("1h", "1 hour", 3600), Level("1d", "1 day", 86400))
AREA_LEVELS = LEVELS[:2]
# The finest rollup bucket: buckets of rollup readers are multiples of it.
ROLLUP_STEP = LEVELS[0].step


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
# What a device's bucketed series can read from its rollups once its raw rows are gone:
# (contract field, aggregate) -> the rollup statistic that gives the same answer as the
# aggregate over the raw rows (means weighted by their counts, shares of counted
# samples). Other pairs are answered from raw rows only; docs/api.md says so.
SERIES_STATISTICS: dict[Kind, dict[tuple[str, str], str]] = {
    Kind.POLE: {
        ("lamp_on", "avg"): "lamp_on_share",
        ("dim_pct", "avg"): "dim_avg_pct",
        ("pm25_ugm3", "avg"): "pm25_avg_ugm3",
        ("pm25_ugm3", "max"): "pm25_max_ugm3",
        ("pm10_ugm3", "avg"): "pm10_avg_ugm3",
        ("pm10_ugm3", "max"): "pm10_max_ugm3",
        ("noise_dba", "avg"): "noise_avg_dba",
        ("noise_dba", "max"): "noise_max_dba",
        ("cell_online", "avg"): "cell_online_share",
        ("camera_online", "avg"): "camera_online_share",
    },
    Kind.SIGNAL: {
        ("volume", "sum"): "volume_sum",
        ("occupancy_pct", "avg"): "occupancy_avg_pct",
        ("cycle_s", "avg"): "cycle_avg_s",
    },
    Kind.ENERGY: {
        ("soc_pct", "min"): "soc_min_pct",
        ("soc_pct", "max"): "soc_max_pct",
        ("soc_pct", "last"): "soc_last_pct",
    },
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
    return merge_expr(find_stat(kind, name), source, timescale=False)


def merge_inputs(kind: Kind, name: str) -> tuple[str, ...]:
    """The columns :func:`merge_sql` reads for ``name``: itself and its weights or parts."""
    stat = find_stat(kind, name)
    return (name, *(a for a in stat.args if a != name))


# --- SQL rendering ---------------------------------------------------------------------------


def merge_expr(stat: Stat, source: str, *, timescale: bool) -> str:
    """SQL of ``stat`` over finer rows of relation alias ``source``."""
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


def area_stats(kind: Kind) -> list[tuple[str, str, str]]:
    """``(name, type, expression over device rollups r joined to d)`` of an area rollup."""
    stats: list[tuple[str, str, str]] = [("devices", _BIGINT, "count(*)")]
    for stat in STATS[kind]:
        if stat.op == "last" or stat.name.endswith("_at"):
            continue  # the newest value of one device says nothing of an area
        stats.append((stat.name, stat.sql_type, merge_expr(stat, "r", timescale=False)))
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
            (stat.name, lambda a, across, stat=stat: merge_expr(stat, a, timescale=False))
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
