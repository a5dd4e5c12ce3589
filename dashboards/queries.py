"""The SQL behind every panel, for Grafana's PostgreSQL data source.

Plain PostgreSQL 15-17 only (``date_bin``, no TimescaleDB functions), so the same
dashboards work whichever storage the database uses. Grafana fills in the macros
``$__timeFilter(col)``, ``$__interval_ms`` and the ``$city`` variable; nothing else.

Time series queries return ``time``, ``metric``, ``value`` (long format) or ``time``
plus one column per series (wide format), ordered by time.
"""

from __future__ import annotations

# Bucket width in minutes: Grafana's interval, at least one minute.
_BUCKET_MIN = "greatest(1, $__interval_ms / 60000)"
_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def _bin(column: str, width: str = f"INTERVAL '1 minute' * {_BUCKET_MIN}") -> str:
    return f"date_bin({width}, {column}, {_ORIGIN})"


# A device counts as online when it says so and was heard within three intervals.
_FRESH = "s.last_seen > now() - make_interval(secs => 3 * d.interval_s)"

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

POLE_ONLINE_SHARE = f"""\
SELECT 100.0 * count(*) FILTER (WHERE s.online AND {_FRESH})
       / nullif(count(*), 0) AS "online %"
FROM devices d
LEFT JOIN device_status s USING (device_id)
WHERE d.kind = 'pole' AND d.city IN ($city)"""

POLE_ONLINE_BY_DISTRICT = f"""\
SELECT coalesce(d.district, '(none)') AS district,
       count(*) AS poles,
       count(*) FILTER (WHERE s.online AND {_FRESH}) AS online,
       round(100.0 * count(*) FILTER (WHERE s.online AND {_FRESH})
             / nullif(count(*), 0), 1) AS "online %"
FROM devices d
LEFT JOIN device_status s USING (device_id)
WHERE d.kind = 'pole' AND d.city IN ($city)
GROUP BY 1
ORDER BY 1"""

FEED_FRESHNESS = f"""\
SELECT d.city, d.kind,
       count(*) AS devices,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM now() - s.last_seen)) AS "median age s",
       max(extract(epoch FROM now() - s.last_seen)) AS "max age s",
       count(*) FILTER (WHERE s.last_seen IS NULL OR NOT ({_FRESH})) AS stale
FROM devices d
LEFT JOIN device_status s USING (device_id)
WHERE d.city IN ($city)
GROUP BY 1, 2
ORDER BY 1, 2"""

STALEST_DEVICES = f"""\
SELECT d.device_id, d.city, d.kind, coalesce(d.district, '(none)') AS district,
       s.last_seen,
       extract(epoch FROM now() - s.last_seen) AS "age s",
       d.interval_s AS "interval s"
FROM devices d
LEFT JOIN device_status s USING (device_id)
WHERE d.city IN ($city) AND (s.last_seen IS NULL OR NOT ({_FRESH}))
ORDER BY s.last_seen NULLS FIRST, d.device_id
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

SIGNAL_TIMING_COVERAGE = f"""\
{_LAST_MODE}
SELECT bucket AS time,
       100.0 * count(*) FILTER (WHERE mode IN ('adaptive', 'coordinated'))
       / count(*) AS "adaptive or coordinated %"
FROM last_mode
GROUP BY 1
ORDER BY 1"""

SIGNAL_MODES = f"""\
{_LAST_MODE}
SELECT bucket AS time, mode AS metric, count(*) AS value
FROM last_mode
GROUP BY 1, 2
ORDER BY 1, 2"""

SIGNAL_MODES_NOW = """\
SELECT mode, count(*) AS controllers
FROM (
    SELECT DISTINCT ON (t.device_id) t.device_id, t.mode
    FROM signal_telemetry t
    JOIN devices d USING (device_id)
    WHERE $__timeFilter(t.ts) AND d.city IN ($city)
    ORDER BY t.device_id, t.ts DESC
) latest
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

# Share of renewable generation used on site: (generation - export) / generation.
SELF_CONSUMPTION = f"""\
{_ENERGY_PER_SITE},
per_bucket AS (
    SELECT bucket,
           sum(coalesce(pv_kw, 0) + coalesce(wind_kw, 0)) AS renewable_kw,
           sum(greatest(-coalesce(grid_kw, 0), 0)) AS export_kw
    FROM per_site
    GROUP BY 1
)
SELECT bucket AS time,
       least(100, greatest(0, 100 * (renewable_kw - export_kw) / nullif(renewable_kw, 0)))
           AS "self-consumption %"
FROM per_bucket
ORDER BY 1"""
