"""Operations overview: where the devices are, whether they are heard, how ingest runs."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, stat, table
from dashboards.sql import (
    CITY,
    DISTRICT,
    KIND,
    bucket_hours,
    district_label,
    in_scope,
    rollup_rows,
    time_bucket,
)
from schemas.topics import Kind

# 2: heard within three reporting intervals; 1: heard before that; 0: never heard.
FRESHNESS = "CASE WHEN f.fresh THEN 2 WHEN f.last_seen IS NOT NULL THEN 1 ELSE 0 END"
_IN_SCOPE = f"{in_scope('f')} AND f.kind IN ($kind)"

DEVICE_MAP = f"""\
SELECT f.device_id, f.kind, f.city, {district_label("f.district")} AS district,
       d.lat, d.lon, {FRESHNESS} AS freshness, f.last_seen, f.age_s
FROM device_freshness f
JOIN devices d USING (device_id)
WHERE d.lat IS NOT NULL AND d.lon IS NOT NULL AND {_IN_SCOPE}
ORDER BY f.device_id"""

FRESH_BY_KIND = f"""\
SELECT f.kind, 100.0 * count(*) FILTER (WHERE f.fresh) / count(*) AS "fresh %"
FROM device_freshness f
WHERE {_IN_SCOPE}
GROUP BY f.kind
ORDER BY f.kind"""

POLE_ONLINE_SHARE = """\
SELECT city, online_pct AS "online %"
FROM pole_online_rate
WHERE city IN ($city)
ORDER BY city"""

POLES_ONLINE = stat(
    "Poles online",
    POLE_ONLINE_SHARE,
    unit="percent",
    description="Per city, view pole_online_rate: registered poles that report online and were "
    "heard within 3 reporting intervals.",
    width=8,
    height=7,
    max_value=100,
)

_ROWS = "\nUNION ALL\n".join(
    rollup_rows(kind, stats=("samples",), columns=(f"'{kind}' AS kind",)) for kind in Kind
)
ROWS_BY_KIND = f"""\
WITH rollup AS (
{_ROWS}
)
SELECT r.time, r.kind AS metric, sum(r.samples) / (3600 * {bucket_hours()}) AS value
FROM rollup r
WHERE r.kind IN ($kind)
GROUP BY 1, 2
ORDER BY 1, 2"""

_STATS_MIN_MS = 60_000  # collectors write a row every 10 s: a point per minute at least

MESSAGES_PER_SECOND = f"""\
SELECT {time_bucket("s.ts", _STATS_MIN_MS)} AS time, s.collector_id || ' ' || v.what AS metric,
       sum(v.n) / sum(s.interval_s) AS value
FROM collector_stats s
CROSS JOIN LATERAL (VALUES ('received', s.received), ('rows committed', s.committed_rows))
    AS v (what, n)
WHERE $__timeFilter(s.ts)
GROUP BY 1, 2
ORDER BY 1, 2"""

COMMIT_LATENCY = f"""\
WITH binned AS (
    SELECT {time_bucket("s.ts", _STATS_MIN_MS)} AS time, s.collector_id,
           sum(s.commit_p50_s * s.batches) / nullif(sum(s.batches), 0) AS p50,
           max(s.commit_p99_s) AS p99
    FROM collector_stats s
    WHERE $__timeFilter(s.ts) AND s.batches > 0
    GROUP BY 1, 2
)
SELECT b.time, b.collector_id || ' ' || v.what AS metric, v.seconds AS value
FROM binned b
CROSS JOIN LATERAL (VALUES ('p50', b.p50), ('p99', b.p99)) AS v (what, seconds)
ORDER BY 1, 2"""

DEAD_LETTERS_BY_REASON = f"""\
SELECT {time_bucket("received_at", 60_000)} AS time, reason AS metric, count(*) AS value
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""

FEED_FRESHNESS = """\
SELECT city, kind, devices, fresh, stale, fresh_pct AS "fresh %",
       median_age_s AS "median age s", max_age_s AS "max age s"
FROM feed_freshness
WHERE city IN ($city) AND kind IN ($kind)
ORDER BY city, kind"""

STALEST_DEVICES = f"""\
SELECT f.device_id, f.city, f.kind, {district_label("f.district")} AS district,
       f.last_seen, f.age_s AS "age s", f.interval_s AS "interval s"
FROM device_freshness f
WHERE {_IN_SCOPE} AND NOT f.fresh
ORDER BY f.last_seen NULLS FIRST, f.device_id
LIMIT 50"""

_MARKERS = {
    "type": "markers",
    "name": "Devices",
    "tooltip": True,
    "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
    "config": {
        "showLegend": True,
        "style": {
            "color": {"field": "freshness", "fixed": "green"},
            "opacity": 0.8,
            "size": {"fixed": 6},
            "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
        },
    },
}

OVERVIEW = Dashboard(
    uid="citytel-overview",
    title="citytel / Operations overview",
    description="Every registered device on the map by freshness; ingest rate, dead letters, "
    "collector commit latency.",
    variables=(CITY, KIND, DISTRICT),
    time_from="now-6h",
    panels=(
        Panel(
            "Devices by freshness",
            DEVICE_MAP,
            kind="geomap",
            format="table",
            description="Registered devices at their registry lat/lon. Green: heard within 3 "
            "reporting intervals (view device_freshness); red: silent longer; grey: never heard.",
            width=16,
            height=14,
            thresholds=(("text", None), ("red", 1), ("green", 2)),
            mappings=(("0", "never heard", "text"), ("1", "stale", "red"), ("2", "fresh", "green")),
            options={"view": {"id": "fit", "allLayers": True}, "layers": [_MARKERS]},
        ),
        stat(
            "Fresh devices",
            FRESH_BY_KIND,
            unit="percent",
            description="Per kind: devices heard within 3 reporting intervals (device_freshness).",
            width=8,
            height=7,
            max_value=100,
            thresholds=(("red", None), ("orange", 80), ("green", 95)),
        ),
        POLES_ONLINE,
        Panel(
            "Messages per second by collector",
            MESSAGES_PER_SECOND,
            description="Table collector_stats: MQTT messages received and rows committed per "
            "second, per collector (CITYTEL_INGEST_CLIENT_ID).",
        ),
        Panel(
            "Telemetry rows per second by kind",
            ROWS_BY_KIND,
            description="Samples stored per second by device time, from the area rollups "
            "(15-minute or hourly, whichever fits the interval).",
            stacking="normal",
        ),
        Panel(
            "Dead letters by reason",
            DEAD_LETTERS_BY_REASON,
            description="Refused messages per bucket, platform-wide; see `citytel deadletters`.",
            stacking="normal",
            bars=True,
        ),
        Panel(
            "Collector commit latency",
            COMMIT_LATENCY,
            unit="s",
            description="Batch write latency per collector (collector_stats): p50 weighted by "
            "batches; p99 is the worst 10-second interval in the bucket.",
        ),
        table(
            "Feed freshness",
            FEED_FRESHNESS,
            description="View feed_freshness: age of the last message per city and kind; stale "
            "= silent for 3 reporting intervals or more.",
        ),
        table(
            "Stalest devices",
            STALEST_DEVICES,
            description="View device_freshness: devices not fresh, never heard first.",
        ),
    ),
)
