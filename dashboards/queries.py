"""The SQL behind every panel, for Grafana's PostgreSQL data source.

Plain PostgreSQL 15-17 only (``date_bin``, no TimescaleDB functions), so the same
dashboards work whichever storage the database uses. Grafana fills in the macros
``$__timeFilter(col)``, ``$__interval_ms`` and the ``$city`` variable; nothing else.

Panels showing a current value read the metric views of ``003_indicators.sql``;
panels bucketing history call its functions (``citytel_is_intelligent_timing``), so
each metric has one definition, in the database.

Time series queries return ``time``, ``metric``, ``value`` (long format) or ``time``
plus one column per series (wide format), ordered by time.
"""

from __future__ import annotations

# Bucket width in minutes: Grafana's interval, at least one minute.
_BUCKET_MIN = "greatest(1, $__interval_ms / 60000)"
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def _bin(column: str, width: str = f"INTERVAL '1 minute' * {_BUCKET_MIN}") -> str:
    return f"date_bin({width}, {column}, {_ORIGIN})"


CITY_VARIABLE = "SELECT DISTINCT city FROM devices ORDER BY 1"


def _messages(kind: str) -> str:
    return f"""\
SELECT {_bin("ts")} AS time, '{kind}' AS metric, count(*)::float8 / {_BUCKET_MIN} AS value
FROM {kind}_telemetry
WHERE $__timeFilter(ts)
GROUP BY 1"""


MESSAGES_PER_MINUTE = (
    "\nUNION ALL\n".join(_messages(kind) for kind in ("pole", "signal", "energy"))
    + "\nORDER BY 1, 2"
)

DEAD_LETTERS_BY_REASON = f"""\
SELECT {_bin("received_at")} AS time, reason AS metric, count(*) AS value
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""

# Current values read the views of schemas/sql/003_indicators.sql, the one definition
# of each metric; the panels only filter by city and format.

POLE_ONLINE_SHARE = """\
SELECT city, online_pct AS "online %"
FROM pole_online_rate
WHERE city IN ($city)
ORDER BY city"""

POLE_ONLINE_BY_DISTRICT = """\
SELECT city, coalesce(nullif(district, ''), '(none)') AS district,
       poles, online, online_pct AS "online %"
FROM pole_online_rate_by_district
WHERE city IN ($city)
ORDER BY city, district"""

FEED_FRESHNESS = """\
SELECT city, kind, devices, fresh, stale, fresh_pct AS "fresh %",
       median_age_s AS "median age s", max_age_s AS "max age s"
FROM feed_freshness
WHERE city IN ($city)
ORDER BY city, kind"""

STALEST_DEVICES = """\
SELECT device_id, city, kind, coalesce(district, '(none)') AS district,
       last_seen, age_s AS "age s", interval_s AS "interval s"
FROM device_freshness
WHERE city IN ($city) AND NOT fresh
ORDER BY last_seen NULLS FIRST, device_id
LIMIT 50"""


def _per_district(expression: str, table: str, aggregate: str) -> str:
    """Average per device and bucket, then ``aggregate`` over the district's devices."""
    return f"""\
WITH per_device AS (
    SELECT {_bin("t.ts")} AS bucket, t.device_id, avg({expression}) AS value
    FROM {table} t
    WHERE $__timeFilter(t.ts)
    GROUP BY 1, 2
)
SELECT p.bucket AS time, coalesce(d.district, '(none)') AS metric, {aggregate} AS value
FROM per_device p
JOIN devices d USING (device_id)
WHERE d.city IN ($city) AND p.value IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""


LAMP_POWER_BY_DISTRICT = _per_district("t.lamp_power_w", "pole_telemetry", "sum(p.value) / 1000")
PM25_BY_DISTRICT = _per_district("t.pm25_ugm3", "pole_telemetry", "avg(p.value)")

# The mode each controller reported last in each bucket.
_LAST_MODE = f"""\
WITH last_mode AS (
    SELECT {_bin("t.ts")} AS bucket, t.device_id,
           (array_agg(t.mode ORDER BY t.ts DESC))[1] AS mode
    FROM signal_telemetry t
    JOIN devices d USING (device_id)
    WHERE $__timeFilter(t.ts) AND d.city IN ($city)
    GROUP BY 1, 2
)"""

# Coverage over time: intelligent controllers (citytel_is_intelligent_timing on each
# controller's last mode in the bucket) over the city's registered signals, the
# denominator of the signal_timing_coverage view.
SIGNAL_TIMING_COVERAGE = f"""\
{_LAST_MODE},
registered AS (
    SELECT count(*) AS intersections
    FROM devices
    WHERE kind = 'signal' AND city IN ($city)
)
SELECT l.bucket AS time,
       round(100.0 * count(*) FILTER (WHERE citytel_is_intelligent_timing(l.mode, '*'))
             / nullif(r.intersections, 0), 2) AS "coverage %"
FROM last_mode l
CROSS JOIN registered r
GROUP BY l.bucket, r.intersections
ORDER BY 1"""

SIGNAL_TIMING_COVERAGE_NOW = """\
SELECT city, coverage_pct AS "coverage %"
FROM signal_timing_coverage
WHERE city IN ($city)
ORDER BY city"""

SIGNAL_MODES = f"""\
{_LAST_MODE}
SELECT bucket AS time, mode AS metric, count(*) AS value
FROM last_mode
GROUP BY 1, 2
ORDER BY 1, 2"""

SIGNAL_MODES_NOW = """\
SELECT m.mode, count(*) AS controllers
FROM signal_current_mode m
JOIN devices d USING (device_id)
WHERE d.city IN ($city)
GROUP BY 1
ORDER BY 2 DESC, 1"""

VOLUME_BY_HOUR = f"""\
SELECT {_bin("t.ts", "INTERVAL '1 hour'")} AS time,
       coalesce(d.district, '(none)') AS metric,
       sum(t.volume) AS value
FROM signal_telemetry t
JOIN devices d USING (device_id)
WHERE $__timeFilter(t.ts) AND d.city IN ($city) AND t.volume IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2"""

# Per site and bucket: average power of each flow (grid: + import, - export;
# storage: + discharging, - charging).
_ENERGY_PER_SITE = f"""\
WITH per_site AS (
    SELECT {_bin("t.ts")} AS bucket, t.device_id,
           avg(t.pv_kw) AS pv_kw, avg(t.wind_kw) AS wind_kw, avg(t.load_kw) AS load_kw,
           avg(t.grid_kw) AS grid_kw, avg(t.storage_kw) AS storage_kw
    FROM energy_telemetry t
    JOIN devices d USING (device_id)
    WHERE $__timeFilter(t.ts) AND d.city IN ($city)
    GROUP BY 1, 2
)"""

ENERGY_FLOWS = f"""\
{_ENERGY_PER_SITE}
SELECT bucket AS time,
       sum(pv_kw) AS "PV", sum(wind_kw) AS "wind", sum(load_kw) AS "load",
       sum(grid_kw) AS "grid (+import)", sum(storage_kw) AS "storage (+discharge)"
FROM per_site
GROUP BY 1
ORDER BY 1"""

# Self-consumption over time: the renewable_self_consumption view's per-site formula
# (1 - mean export / mean generation, clamped to 0-100 %) per site and bucket, then the
# mean over the sites that generated, as GET /indicators reports it. No database
# function holds this formula yet (see docs/indicators.md), so it is repeated here;
# sites without generation are left out rather than counted as 100 %.
SELF_CONSUMPTION = f"""\
WITH per_site AS (
    SELECT {_bin("t.ts")} AS bucket, t.device_id,
           avg(coalesce(t.pv_kw, 0) + coalesce(t.wind_kw, 0)) AS renewable_kw,
           avg(greatest(-coalesce(t.grid_kw, 0), 0)) AS export_kw
    FROM energy_telemetry t
    JOIN devices d USING (device_id)
    WHERE $__timeFilter(t.ts) AND d.city IN ($city)
    GROUP BY 1, 2
)
SELECT bucket AS time,
       round(avg(citytel_self_consumption_pct(renewable_kw, export_kw)), 2)
           AS "self-consumption %"
FROM per_site
WHERE renewable_kw > 0
GROUP BY 1
ORDER BY 1"""
