-- Derived metrics, defined once here: Grafana, the API and the indicator engine read
-- these views, never a formula of their own.

-- Intelligent signal timing: a controller whose run mode adapts to traffic or is
-- coordinated along an arterial (GB/T 20999-2017: adaptive, coordinated control).
CREATE FUNCTION citytel_is_intelligent_timing(mode text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT mode IN ('adaptive', 'coordinated')
$$;

-- A device is fresh when its last message is no older than three reporting intervals.
CREATE FUNCTION citytel_is_fresh(last_seen timestamptz, interval_s double precision)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT last_seen IS NOT NULL AND last_seen > now() - make_interval(secs => 3 * interval_s)
$$;

-- Every registered device with its state and feed age.
CREATE VIEW device_freshness AS
SELECT d.device_id, d.kind, d.city, d.district, d.interval_s,
       s.online, s.last_seen, s.fw,
       extract(epoch FROM now() - s.last_seen)::double precision AS age_s,
       citytel_is_fresh(s.last_seen, d.interval_s) AS fresh,
       coalesce(s.online, false) AND citytel_is_fresh(s.last_seen, d.interval_s) AS online_now
FROM devices d
LEFT JOIN device_status s USING (device_id);

-- Feed freshness per city and kind.
CREATE VIEW feed_freshness AS
SELECT city, kind,
       count(*) AS devices,
       count(*) FILTER (WHERE fresh) AS fresh,
       count(*) FILTER (WHERE NOT fresh) AS stale,
       round((100.0 * count(*) FILTER (WHERE fresh) / count(*))::numeric, 2) AS fresh_pct,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY age_s) AS median_age_s,
       max(age_s) AS max_age_s
FROM device_freshness
GROUP BY city, kind;

-- Smart-pole online rate per city, and per district (registered poles are the denominator).
CREATE VIEW pole_online_rate_by_district AS
SELECT city, coalesce(district, '') AS district,
       count(*) AS poles,
       count(*) FILTER (WHERE online_now) AS online,
       round((100.0 * count(*) FILTER (WHERE online_now) / count(*))::numeric, 2) AS online_pct
FROM device_freshness
WHERE kind = 'pole'
GROUP BY city, coalesce(district, '');

CREATE VIEW pole_online_rate AS
SELECT city,
       sum(poles)::bigint AS poles,
       sum(online)::bigint AS online,
       round((100.0 * sum(online) / sum(poles))::numeric, 2) AS online_pct
FROM pole_online_rate_by_district
GROUP BY city;

-- The newest run mode each signal controller reported in the last 15 minutes.
CREATE VIEW signal_current_mode AS
SELECT DISTINCT ON (t.device_id) t.device_id, t.ts, t.mode
FROM signal_telemetry t
WHERE t.ts > now() - INTERVAL '15 minutes'
ORDER BY t.device_id, t.ts DESC;

-- Signal-timing coverage per city: the share of registered signalized intersections
-- whose controller currently runs intelligent timing (target: 40 %).
CREATE VIEW signal_timing_coverage AS
SELECT d.city,
       count(*) AS intersections,
       count(m.device_id) AS reporting,
       count(*) FILTER (WHERE citytel_is_intelligent_timing(m.mode)) AS intelligent,
       round((100.0 * count(*) FILTER (WHERE citytel_is_intelligent_timing(m.mode))
              / count(*))::numeric, 2) AS coverage_pct,
       40.0 AS target_pct
FROM devices d
LEFT JOIN signal_current_mode m USING (device_id)
WHERE d.kind = 'signal'
GROUP BY d.city;

-- Renewable self-consumption per site: the share of PV and wind generation used on
-- site rather than exported, over the last hour of readings.
CREATE VIEW renewable_self_consumption AS
SELECT d.city, t.device_id,
       avg(coalesce(t.pv_kw, 0) + coalesce(t.wind_kw, 0)) AS renewable_kw,
       avg(greatest(-coalesce(t.grid_kw, 0), 0)) AS export_kw,
       round((100.0 * greatest(0, least(1,
           1 - avg(greatest(-coalesce(t.grid_kw, 0), 0))
               / nullif(avg(coalesce(t.pv_kw, 0) + coalesce(t.wind_kw, 0)), 0))))::numeric, 2)
           AS self_consumption_pct
FROM energy_telemetry t
JOIN devices d USING (device_id)
WHERE t.ts > now() - INTERVAL '1 hour'
GROUP BY d.city, t.device_id;
