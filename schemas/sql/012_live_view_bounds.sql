-- The live "now" views read raw telemetry, so each needs a bound PostgreSQL can use to
-- skip old partitions (or chunks) before it reads them. signal_current_mode's bound,
-- max(15 minutes, 3 reporting intervals), depends on each device's interval_s, so it
-- was checked row by row after joining the registry: every raw signal row of the
-- retention period was read, each minute, by the live coverage panel and its alert.
-- A constant outer bound of two days keeps the definition (a device reporting less
-- often than every 16 hours has no current mode) and lets the scan start two days ago.
CREATE OR REPLACE VIEW signal_current_mode AS
SELECT DISTINCT ON (t.device_id) t.device_id, t.ts, t.mode
FROM signal_telemetry t
JOIN devices d USING (device_id)
WHERE t.ts > now() - INTERVAL '2 days'
  AND t.ts > now() - greatest(INTERVAL '15 minutes', make_interval(secs => 3 * d.interval_s))
ORDER BY t.device_id, t.ts DESC;
