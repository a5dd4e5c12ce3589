"""SQL building blocks the panels share: time buckets, filters, and the rollup that fits.

Plain PostgreSQL 15-17 (``date_bin``, no TimescaleDB functions), so the dashboards work
whichever storage the database uses. Grafana fills in ``$__timeFilter(col)``,
``$__timeFrom()``, ``$__timeTo()``, ``$__interval_ms`` and the variables.

**Which rollup a panel reads.** A panel over history never reads raw telemetry: it
reads the 15-minute, hourly or daily rollup whose bucket is the widest not wider than
Grafana's ``$__interval`` (the time one point stands for: the range divided by the
panel's width in points). :func:`rollup_rows` writes one ``SELECT`` per rollup level,
joined by ``UNION ALL``, each guarded by a condition on ``$__interval_ms`` such as
``$__interval_ms >= 3600000 AND $__interval_ms < 86400000``. Grafana puts a number
there, so each guard is a constant: PostgreSQL folds it and reads only the one rollup
whose guard is true. The rows come out with ``time``, their bucket put into a bucket
of the panel's interval (at least 15 minutes); the panel merges them with the rule the
rollups themselves use (``schemas.rollups.merge_sql``: sums, weighted means, ratios of
sums, newest value).
"""

from __future__ import annotations

from collections.abc import Iterable

from dashboards.model import Variable
from schemas.rollups import (
    AREA_LEVELS,
    LEVELS,
    Level,
    area_name,
    merge_inputs,
    merge_sql,
    rollup_name,
)
from schemas.topics import Kind

# Buckets start at local midnight of the platform's default time zone (city_settings
# '*'): days line up with the cities' days; hours and minutes are the same as in UTC.
ORIGIN = "(SELECT timezone((citytel_city_settings('*')).time_zone, TIMESTAMP '2000-01-01'))"
FINEST_MS = LEVELS[0].seconds * 1000


def bucket_width(min_ms: int = FINEST_MS) -> str:
    """The panel's bucket: Grafana's interval, at least ``min_ms``."""
    return f"greatest($__interval_ms, {min_ms}) * INTERVAL '1 millisecond'"


def bucket_hours(min_ms: int = FINEST_MS) -> str:
    """The length of the panel's bucket in hours (energy in kWh / this = mean kW)."""
    return f"(greatest($__interval_ms, {min_ms}) / 3600000.0)"


def time_bucket(column: str, min_ms: int = FINEST_MS) -> str:
    return f"date_bin({bucket_width(min_ms)}, {column}, {ORIGIN})"


def district_label(column: str) -> str:
    """A district for display and for the ``$district`` variable: '(none)' when unset."""
    return f"coalesce(nullif({column}, ''), '(none)')"


def area_label(alias: str = "r") -> str:
    """A series per city and district: 'jinan · lixia'."""
    return f"{alias}.city || ' · ' || {district_label(f'{alias}.district')}"


def in_scope(alias: str) -> str:
    """Rows of ``alias`` (a registry row or an area rollup) in the selected cities and districts."""
    return f"{alias}.city IN ($city) AND {district_label(f'{alias}.district')} IN ($district)"


def _guard(levels: tuple[Level, ...], index: int) -> str:
    bounds = []
    if index:
        bounds.append(f"$__interval_ms >= {levels[index].seconds * 1000}")
    if index + 1 < len(levels):
        bounds.append(f"$__interval_ms < {levels[index + 1].seconds * 1000}")
    return " AND ".join(bounds)


def rollup_rows(
    kind: Kind,
    *,
    stats: Iterable[str] = (),
    columns: Iterable[str] = (),
    area: bool = True,
) -> str:
    """``SELECT``s of the rollup that fits ``$__interval`` (see the module's doc).

    Area rollups (``<kind>_area_15m|1h``, alias ``r``, filtered to ``$city`` and
    ``$district``) or per-device ones (``<kind>_rollup_15m|1h|1d``, alias ``r``, joined
    to the registry as ``d``). Each row has ``time`` (the panel's bucket), the extra
    ``columns`` (expressions), and the rollup columns that merging ``stats`` needs.
    """
    needed = dict.fromkeys(c for s in stats for c in merge_inputs(kind, s))
    select = [f"{time_bucket('r.bucket')} AS time", *columns, *(f"r.{c}" for c in needed)]
    levels = AREA_LEVELS if area else LEVELS
    branches = []
    for index, level in enumerate(levels):
        if area:
            source, scope = f"{area_name(kind, level)} r", in_scope("r")
        else:
            source = f"{rollup_name(kind, level)} r JOIN devices d USING (device_id)"
            scope = in_scope("d")
        branches.append(
            f"SELECT {', '.join(select)}\nFROM {source}\n"
            f"WHERE {_guard(levels, index)} AND $__timeFilter(r.bucket) AND {scope}"
        )
    return "\nUNION ALL\n".join(branches)


def by_area(kind: Kind, stat: str) -> str:
    """Rollup column ``stat`` per city and district over time, merged as the rollups merge it
    (sums, weighted means, ratios of sums); areas without a value in a bucket are left out."""
    merged = merge_sql(kind, stat, "r")
    return f"""\
WITH rollup AS (
{rollup_rows(kind, stats=(stat,), columns=(f"{area_label()} AS area",))}
)
SELECT r.time, r.area AS metric, {merged} AS value
FROM rollup r
GROUP BY 1, 2
HAVING {merged} IS NOT NULL
ORDER BY 1, 2"""


def indicator_series(names: str, period: str = "'day'", *, targets: bool = False) -> str:
    """Plan indicators per period and selected city, from ``citytel_indicator`` itself.

    ``names``: the indicators, an SQL list (``'energy_self_consumption', ...`` or a
    variable); ``period``: an SQL string. A series per city (and indicator, when
    several), named after them; with ``targets``, the target that applies to each city
    (``citytel_indicator_target``) as a series '<name> target' where one is set.
    """
    label = "c.city" if targets else "c.city || ' · ' || i.title"
    target = (
        f"\n    UNION ALL\n    SELECT {label} || ' target', t.value\n"
        "    FROM citytel_indicator_target(i.name, c.city) t WHERE t.value IS NOT NULL"
        if targets
        else ""
    )
    return f"""\
SELECT v.period_start AS time, s.metric, s.value
FROM indicators i
CROSS JOIN unnest(ARRAY[$city]::text[]) AS c (city)
CROSS JOIN LATERAL citytel_indicator(i.name, c.city, NULL, $__timeFrom(), $__timeTo(), {period}) v
CROSS JOIN LATERAL (
    SELECT {label} AS metric, v.value{target}
) AS s
WHERE i.name IN ({names}) AND NOT v.is_total
ORDER BY 1, 2"""


# --- template variables -------------------------------------------------------------------------

# The pilot cities (those with settings of their own) and every registered city.
CITY = Variable(
    "city",
    "City",
    query="SELECT city FROM devices\nUNION\nSELECT city FROM city_settings WHERE city <> '*'\n"
    "ORDER BY 1",
)
DISTRICT = Variable(
    "district",
    "District",
    query=f"SELECT DISTINCT {district_label('district')} FROM devices WHERE city IN ($city)"
    " ORDER BY 1",
)
KIND = Variable("kind", "Device kind", options=tuple(str(k) for k in Kind))
PERIOD = Variable(
    "period", "Period", options=("day", "week", "month"), multi=False, include_all=False,
    default="day",
)  # fmt: skip
# Every indicator of the catalogue (table indicators): a plan indicator added there shows up.
INDICATOR = Variable(
    "indicator",
    "Indicator",
    query="SELECT name AS __value, title || ' (' || unit || ')' AS __text FROM indicators\n"
    "ORDER BY kind NULLS LAST, name",
)
