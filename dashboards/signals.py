"""Traffic signals: timing coverage against the plan target, run modes, faults, volume."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, Series, stat, table
from dashboards.sql import (
    CITY,
    DISTRICT,
    by_area,
    district_label,
    in_scope,
    indicator_series,
    rollup_rows,
    time_bucket,
)
from schemas.rollups import SIGNAL_MODES
from schemas.topics import Kind

# The seeded target of signal-timing coverage (indicator_targets: Shandong, >= 0.40), in
# percent: Grafana thresholds are static; a test checks it against the database.
TIMING_COVERAGE_TARGET_PCT = 40.0

COVERAGE_NOW = """\
SELECT city, coverage_pct AS "coverage %"
FROM signal_timing_coverage
WHERE city IN ($city)
ORDER BY city"""

COVERAGE_PER_DAY = indicator_series("'signal_timing_coverage'", targets=True)

_MODES = ",\n    ".join(f"('{mode}', r.{mode}_samples)" for mode in SIGNAL_MODES)
MODE_MIX = f"""\
WITH rollup AS (
{rollup_rows(Kind.SIGNAL, stats=tuple(f"{mode}_samples" for mode in SIGNAL_MODES))}
)
SELECT r.time, m.mode AS metric, sum(m.samples) AS value
FROM rollup r
CROSS JOIN LATERAL (VALUES
    {_MODES}
) AS m (mode, samples)
GROUP BY 1, 2
HAVING sum(m.samples) > 0
ORDER BY 1, 2"""

MODES_NOW = f"""\
SELECT m.mode, count(*) AS controllers
FROM signal_current_mode m
JOIN devices d USING (device_id)
WHERE {in_scope("d")}
GROUP BY 1
ORDER BY 2 DESC, 1"""

_FAULTS = f"""\
FROM device_events e
JOIN devices d USING (device_id)
WHERE d.kind = 'signal' AND $__timeFilter(e.ts) AND {in_scope("d")}"""

FAULTS_BY_CODE = f"""\
SELECT {time_bucket("e.ts", 60_000)} AS time, e.code AS metric, count(*) AS value
{_FAULTS} AND e.type = 'fault'
GROUP BY 1, 2
ORDER BY 1, 2"""

RECENT_FAULTS = f"""\
SELECT e.ts AS time, d.city, {district_label("d.district")} AS district, e.device_id,
       e.type, e.code, e.severity, e.message
{_FAULTS} AND e.type IN ('fault', 'fault_cleared')
ORDER BY e.ts DESC, e.device_id
LIMIT 100"""

# Hour of the local day (each city's time zone) by day: the hourly area rollup.
VOLUME_HEATMAP = f"""\
SELECT date_trunc('day', r.bucket AT TIME ZONE cs.time_zone) AT TIME ZONE cs.time_zone AS time,
       lpad(extract(hour FROM r.bucket AT TIME ZONE cs.time_zone)::int::text, 2, '0') AS metric,
       sum(r.volume_sum) AS value
FROM signal_area_1h r
CROSS JOIN LATERAL citytel_city_settings(r.city) AS cs
WHERE $__timeFilter(r.bucket) AND {in_scope("r")}
GROUP BY 1, 2
ORDER BY 1, 2"""

SIGNALS = Dashboard(
    uid="citytel-signals",
    title="citytel / Traffic signals",
    description="Signal-timing coverage against the plan target, controller modes, faults, "
    "traffic volume.",
    variables=(CITY, DISTRICT),
    panels=(
        stat(
            "Signal-timing coverage now",
            COVERAGE_NOW,
            unit="percent",
            description="Per city, view signal_timing_coverage: registered intersections whose "
            "controller's newest mode is one of the city's intelligent modes. Target 40 %.",
            width=8,
            max_value=100,
            thresholds=(("red", None), ("green", TIMING_COVERAGE_TARGET_PCT)),
        ),
        Panel(
            "Signal-timing coverage per day",
            COVERAGE_PER_DAY,
            unit="percentunit",
            description="citytel_indicator('signal_timing_coverage', city, ..., 'day'): covered "
            "intersection-days / registered intersection-days; dashed: the city's target.",
            width=16,
            min_value=0,
            max_value=1,
            series=(Series(".* target$", dashed=True),),
        ),
        Panel(
            "Controller mode mix",
            MODE_MIX,
            description="Samples in each run mode, stacked to 100 %, from the area rollups.",
            width=16,
            stacking="percent",
        ),
        Panel(
            "Modes now",
            MODES_NOW,
            kind="piechart",
            format="table",
            description="View signal_current_mode: each controller's newest mode (whatever the "
            "time range).",
            width=8,
        ),
        Panel(
            "Faults by code",
            FAULTS_BY_CODE,
            description="Fault events of signal controllers (device_events) per bucket.",
            stacking="normal",
            bars=True,
        ),
        table(
            "Recent faults",
            RECENT_FAULTS,
            description="The newest fault and fault_cleared events in the range.",
        ),
        Panel(
            "Traffic volume by hour of day",
            VOLUME_HEATMAP,
            kind="heatmap",
            description="Vehicles counted per local hour (rows) and day (columns), from the "
            "hourly area rollup.",
            width=24,
            height=9,
        ),
        Panel(
            "Traffic volume by district",
            by_area(Kind.SIGNAL, "volume_sum"),
            description="Vehicles counted per bucket, from the area rollups.",
            width=24,
            stacking="normal",
            bars=True,
        ),
    ),
)
