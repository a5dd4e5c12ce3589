-- Fixes to 003's definitions.
-- 1. Self-consumption gets a function of its own, so views and dashboards share it,
--    and has no value (not 100 %) for a site that generated nothing: LEAST/GREATEST
--    skip NULLs, so the 003 expression turned "no generation" into 100 %.
-- 2. A controller's current mode is looked for within max(15 min, 3 reporting
--    intervals), the same freshness rule as everywhere else.

CREATE FUNCTION citytel_self_consumption_pct(renewable_kw double precision,
                                              export_kw double precision)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN renewable_kw > 0 THEN
        round((100.0 * greatest(0, least(1, 1 - coalesce(export_kw, 0) / renewable_kw)))::numeric, 2)
    END
$$;

CREATE OR REPLACE VIEW renewable_self_consumption AS
SELECT d.city, t.device_id,
       avg(coalesce(t.pv_kw, 0) + coalesce(t.wind_kw, 0)) AS renewable_kw,
       avg(greatest(-coalesce(t.grid_kw, 0), 0)) AS export_kw,
       citytel_self_consumption_pct(avg(coalesce(t.pv_kw, 0) + coalesce(t.wind_kw, 0)),
                                    avg(greatest(-coalesce(t.grid_kw, 0), 0)))
           AS self_consumption_pct
FROM energy_telemetry t
JOIN devices d USING (device_id)
WHERE t.ts > now() - INTERVAL '1 hour'
GROUP BY d.city, t.device_id;

CREATE OR REPLACE VIEW signal_current_mode AS
SELECT DISTINCT ON (t.device_id) t.device_id, t.ts, t.mode
FROM signal_telemetry t
JOIN devices d USING (device_id)
WHERE t.ts > now() - greatest(INTERVAL '15 minutes', make_interval(secs => 3 * d.interval_s))
ORDER BY t.device_id, t.ts DESC;
