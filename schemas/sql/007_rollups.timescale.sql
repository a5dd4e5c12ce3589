-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Per-device rollups as TimescaleDB continuous aggregates: 15 minutes over the raw
-- hypertables, the hour over the 15 minutes, the day (in the rollup time zone) over
-- the hour. Real-time aggregation is off: a rollup holds what was refreshed.

-- pole_rollup_15m
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW pole_rollup_15m
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT t.device_id AS device_id, time_bucket('15 minutes', t.ts) AS bucket,
    count(*) AS samples,
    count(t.lamp_on) AS lamp_samples,
    count(*) FILTER (WHERE t.lamp_on) AS lamp_on_samples,
    (count(*) FILTER (WHERE t.lamp_on))::double precision / nullif(count(t.lamp_on), 0) AS lamp_on_share,
    count(t.dim_pct) AS dim_samples,
    avg(t.dim_pct)::double precision AS dim_avg_pct,
    sum(t.lamp_power_w * d.interval_s / 3600000.0)::double precision AS lamp_energy_kwh,
    count(t.pm25_ugm3) AS pm25_samples,
    avg(t.pm25_ugm3)::double precision AS pm25_avg_ugm3,
    max(t.pm25_ugm3) AS pm25_max_ugm3,
    count(t.pm10_ugm3) AS pm10_samples,
    avg(t.pm10_ugm3)::double precision AS pm10_avg_ugm3,
    max(t.pm10_ugm3) AS pm10_max_ugm3,
    count(t.noise_dba) AS noise_samples,
    avg(t.noise_dba)::double precision AS noise_avg_dba,
    max(t.noise_dba) AS noise_max_dba,
    count(t.cell_online) AS cell_samples,
    count(*) FILTER (WHERE t.cell_online) AS cell_online_samples,
    (count(*) FILTER (WHERE t.cell_online))::double precision / nullif(count(t.cell_online), 0) AS cell_online_share,
    count(t.camera_online) AS camera_samples,
    count(*) FILTER (WHERE t.camera_online) AS camera_online_samples,
    (count(*) FILTER (WHERE t.camera_online))::double precision / nullif(count(t.camera_online), 0) AS camera_online_share
FROM pole_telemetry t JOIN devices d ON d.device_id = t.device_id
GROUP BY t.device_id, time_bucket('15 minutes', t.ts)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON pole_rollup_15m (device_id, bucket);

-- pole_rollup_1h
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW pole_rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 hour', r.bucket) AS bucket,
    sum(r.samples)::bigint AS samples,
    sum(r.lamp_samples)::bigint AS lamp_samples,
    sum(r.lamp_on_samples)::bigint AS lamp_on_samples,
    sum(r.lamp_on_samples)::double precision / nullif(sum(r.lamp_samples), 0) AS lamp_on_share,
    sum(r.dim_samples)::bigint AS dim_samples,
    (sum(r.dim_avg_pct * r.dim_samples) / nullif(sum(r.dim_samples), 0))::double precision AS dim_avg_pct,
    sum(r.lamp_energy_kwh)::double precision AS lamp_energy_kwh,
    sum(r.pm25_samples)::bigint AS pm25_samples,
    (sum(r.pm25_avg_ugm3 * r.pm25_samples) / nullif(sum(r.pm25_samples), 0))::double precision AS pm25_avg_ugm3,
    max(r.pm25_max_ugm3) AS pm25_max_ugm3,
    sum(r.pm10_samples)::bigint AS pm10_samples,
    (sum(r.pm10_avg_ugm3 * r.pm10_samples) / nullif(sum(r.pm10_samples), 0))::double precision AS pm10_avg_ugm3,
    max(r.pm10_max_ugm3) AS pm10_max_ugm3,
    sum(r.noise_samples)::bigint AS noise_samples,
    (sum(r.noise_avg_dba * r.noise_samples) / nullif(sum(r.noise_samples), 0))::double precision AS noise_avg_dba,
    max(r.noise_max_dba) AS noise_max_dba,
    sum(r.cell_samples)::bigint AS cell_samples,
    sum(r.cell_online_samples)::bigint AS cell_online_samples,
    sum(r.cell_online_samples)::double precision / nullif(sum(r.cell_samples), 0) AS cell_online_share,
    sum(r.camera_samples)::bigint AS camera_samples,
    sum(r.camera_online_samples)::bigint AS camera_online_samples,
    sum(r.camera_online_samples)::double precision / nullif(sum(r.camera_samples), 0) AS camera_online_share
FROM pole_rollup_15m r
GROUP BY r.device_id, time_bucket('1 hour', r.bucket)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON pole_rollup_1h (device_id, bucket);

-- pole_rollup_1d
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW pole_rollup_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 day', r.bucket, %1$L) AS bucket,
    sum(r.samples)::bigint AS samples,
    sum(r.lamp_samples)::bigint AS lamp_samples,
    sum(r.lamp_on_samples)::bigint AS lamp_on_samples,
    sum(r.lamp_on_samples)::double precision / nullif(sum(r.lamp_samples), 0) AS lamp_on_share,
    sum(r.dim_samples)::bigint AS dim_samples,
    (sum(r.dim_avg_pct * r.dim_samples) / nullif(sum(r.dim_samples), 0))::double precision AS dim_avg_pct,
    sum(r.lamp_energy_kwh)::double precision AS lamp_energy_kwh,
    sum(r.pm25_samples)::bigint AS pm25_samples,
    (sum(r.pm25_avg_ugm3 * r.pm25_samples) / nullif(sum(r.pm25_samples), 0))::double precision AS pm25_avg_ugm3,
    max(r.pm25_max_ugm3) AS pm25_max_ugm3,
    sum(r.pm10_samples)::bigint AS pm10_samples,
    (sum(r.pm10_avg_ugm3 * r.pm10_samples) / nullif(sum(r.pm10_samples), 0))::double precision AS pm10_avg_ugm3,
    max(r.pm10_max_ugm3) AS pm10_max_ugm3,
    sum(r.noise_samples)::bigint AS noise_samples,
    (sum(r.noise_avg_dba * r.noise_samples) / nullif(sum(r.noise_samples), 0))::double precision AS noise_avg_dba,
    max(r.noise_max_dba) AS noise_max_dba,
    sum(r.cell_samples)::bigint AS cell_samples,
    sum(r.cell_online_samples)::bigint AS cell_online_samples,
    sum(r.cell_online_samples)::double precision / nullif(sum(r.cell_samples), 0) AS cell_online_share,
    sum(r.camera_samples)::bigint AS camera_samples,
    sum(r.camera_online_samples)::bigint AS camera_online_samples,
    sum(r.camera_online_samples)::double precision / nullif(sum(r.camera_samples), 0) AS camera_online_share
FROM pole_rollup_1h r
GROUP BY r.device_id, time_bucket('1 day', r.bucket, %1$L)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON pole_rollup_1d (device_id, bucket);

-- signal_rollup_15m
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW signal_rollup_15m
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT t.device_id AS device_id, time_bucket('15 minutes', t.ts) AS bucket,
    count(*) AS samples,
    count(*) FILTER (WHERE t.mode = 'off') AS off_samples,
    count(*) FILTER (WHERE t.mode = 'flash') AS flash_samples,
    count(*) FILTER (WHERE t.mode = 'all_red') AS all_red_samples,
    count(*) FILTER (WHERE t.mode = 'manual') AS manual_samples,
    count(*) FILTER (WHERE t.mode = 'fixed_time') AS fixed_time_samples,
    count(*) FILTER (WHERE t.mode = 'actuated') AS actuated_samples,
    count(*) FILTER (WHERE t.mode = 'coordinated') AS coordinated_samples,
    count(*) FILTER (WHERE t.mode = 'adaptive') AS adaptive_samples,
    sum(t.volume)::bigint AS volume_sum,
    count(t.volume) AS volume_samples,
    count(t.occupancy_pct) AS occupancy_samples,
    avg(t.occupancy_pct)::double precision AS occupancy_avg_pct,
    count(t.cycle_s) AS cycle_samples,
    avg(t.cycle_s)::double precision AS cycle_avg_s
FROM signal_telemetry t JOIN devices d ON d.device_id = t.device_id
GROUP BY t.device_id, time_bucket('15 minutes', t.ts)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON signal_rollup_15m (device_id, bucket);

-- signal_rollup_1h
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW signal_rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 hour', r.bucket) AS bucket,
    sum(r.samples)::bigint AS samples,
    sum(r.off_samples)::bigint AS off_samples,
    sum(r.flash_samples)::bigint AS flash_samples,
    sum(r.all_red_samples)::bigint AS all_red_samples,
    sum(r.manual_samples)::bigint AS manual_samples,
    sum(r.fixed_time_samples)::bigint AS fixed_time_samples,
    sum(r.actuated_samples)::bigint AS actuated_samples,
    sum(r.coordinated_samples)::bigint AS coordinated_samples,
    sum(r.adaptive_samples)::bigint AS adaptive_samples,
    sum(r.volume_sum)::bigint AS volume_sum,
    sum(r.volume_samples)::bigint AS volume_samples,
    sum(r.occupancy_samples)::bigint AS occupancy_samples,
    (sum(r.occupancy_avg_pct * r.occupancy_samples) / nullif(sum(r.occupancy_samples), 0))::double precision AS occupancy_avg_pct,
    sum(r.cycle_samples)::bigint AS cycle_samples,
    (sum(r.cycle_avg_s * r.cycle_samples) / nullif(sum(r.cycle_samples), 0))::double precision AS cycle_avg_s
FROM signal_rollup_15m r
GROUP BY r.device_id, time_bucket('1 hour', r.bucket)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON signal_rollup_1h (device_id, bucket);

-- signal_rollup_1d
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW signal_rollup_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 day', r.bucket, %1$L) AS bucket,
    sum(r.samples)::bigint AS samples,
    sum(r.off_samples)::bigint AS off_samples,
    sum(r.flash_samples)::bigint AS flash_samples,
    sum(r.all_red_samples)::bigint AS all_red_samples,
    sum(r.manual_samples)::bigint AS manual_samples,
    sum(r.fixed_time_samples)::bigint AS fixed_time_samples,
    sum(r.actuated_samples)::bigint AS actuated_samples,
    sum(r.coordinated_samples)::bigint AS coordinated_samples,
    sum(r.adaptive_samples)::bigint AS adaptive_samples,
    sum(r.volume_sum)::bigint AS volume_sum,
    sum(r.volume_samples)::bigint AS volume_samples,
    sum(r.occupancy_samples)::bigint AS occupancy_samples,
    (sum(r.occupancy_avg_pct * r.occupancy_samples) / nullif(sum(r.occupancy_samples), 0))::double precision AS occupancy_avg_pct,
    sum(r.cycle_samples)::bigint AS cycle_samples,
    (sum(r.cycle_avg_s * r.cycle_samples) / nullif(sum(r.cycle_samples), 0))::double precision AS cycle_avg_s
FROM signal_rollup_1h r
GROUP BY r.device_id, time_bucket('1 day', r.bucket, %1$L)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON signal_rollup_1d (device_id, bucket);

-- energy_rollup_15m
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW energy_rollup_15m
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT t.device_id AS device_id, time_bucket('15 minutes', t.ts) AS bucket,
    count(*) AS samples,
    avg(coalesce(t.pv_kw, 0))::double precision AS pv_avg_kw,
    avg(coalesce(t.wind_kw, 0))::double precision AS wind_avg_kw,
    avg(coalesce(t.load_kw, 0))::double precision AS load_avg_kw,
    avg(greatest(coalesce(t.grid_kw, 0), 0))::double precision AS import_avg_kw,
    avg(greatest(-coalesce(t.grid_kw, 0), 0))::double precision AS export_avg_kw,
    avg(greatest(coalesce(t.storage_kw, 0), 0))::double precision AS discharge_avg_kw,
    avg(greatest(-coalesce(t.storage_kw, 0), 0))::double precision AS charge_avg_kw,
    sum((coalesce(t.pv_kw, 0)) * d.interval_s / 3600.0)::double precision AS pv_kwh,
    sum((coalesce(t.wind_kw, 0)) * d.interval_s / 3600.0)::double precision AS wind_kwh,
    sum((coalesce(t.load_kw, 0)) * d.interval_s / 3600.0)::double precision AS load_kwh,
    sum((greatest(coalesce(t.grid_kw, 0), 0)) * d.interval_s / 3600.0)::double precision AS import_kwh,
    sum((greatest(-coalesce(t.grid_kw, 0), 0)) * d.interval_s / 3600.0)::double precision AS export_kwh,
    sum((greatest(coalesce(t.storage_kw, 0), 0)) * d.interval_s / 3600.0)::double precision AS discharge_kwh,
    sum((greatest(-coalesce(t.storage_kw, 0), 0)) * d.interval_s / 3600.0)::double precision AS charge_kwh,
    max(greatest(coalesce(t.grid_kw, 0), 0)) AS import_max_kw,
    max(coalesce(t.load_kw, 0) - coalesce(t.pv_kw, 0) - coalesce(t.wind_kw, 0)) AS net_load_max_kw,
    count(t.soc_pct) AS soc_samples,
    min(t.soc_pct) AS soc_min_pct,
    max(t.soc_pct) AS soc_max_pct,
    last(t.soc_pct, t.ts) FILTER (WHERE t.soc_pct IS NOT NULL) AS soc_last_pct,
    max(t.ts) FILTER (WHERE t.soc_pct IS NOT NULL) AS soc_last_at,
    count(t.balance_ok) AS balance_checked,
    count(*) FILTER (WHERE NOT t.balance_ok) AS balance_failed
FROM energy_telemetry t JOIN devices d ON d.device_id = t.device_id
GROUP BY t.device_id, time_bucket('15 minutes', t.ts)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON energy_rollup_15m (device_id, bucket);

-- energy_rollup_1h
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW energy_rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 hour', r.bucket) AS bucket,
    sum(r.samples)::bigint AS samples,
    (sum(r.pv_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS pv_avg_kw,
    (sum(r.wind_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS wind_avg_kw,
    (sum(r.load_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS load_avg_kw,
    (sum(r.import_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS import_avg_kw,
    (sum(r.export_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS export_avg_kw,
    (sum(r.discharge_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS discharge_avg_kw,
    (sum(r.charge_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS charge_avg_kw,
    sum(r.pv_kwh)::double precision AS pv_kwh,
    sum(r.wind_kwh)::double precision AS wind_kwh,
    sum(r.load_kwh)::double precision AS load_kwh,
    sum(r.import_kwh)::double precision AS import_kwh,
    sum(r.export_kwh)::double precision AS export_kwh,
    sum(r.discharge_kwh)::double precision AS discharge_kwh,
    sum(r.charge_kwh)::double precision AS charge_kwh,
    max(r.import_max_kw) AS import_max_kw,
    max(r.net_load_max_kw) AS net_load_max_kw,
    sum(r.soc_samples)::bigint AS soc_samples,
    min(r.soc_min_pct) AS soc_min_pct,
    max(r.soc_max_pct) AS soc_max_pct,
    last(r.soc_last_pct, r.soc_last_at) FILTER (WHERE r.soc_last_pct IS NOT NULL) AS soc_last_pct,
    max(r.soc_last_at) AS soc_last_at,
    sum(r.balance_checked)::bigint AS balance_checked,
    sum(r.balance_failed)::bigint AS balance_failed
FROM energy_rollup_15m r
GROUP BY r.device_id, time_bucket('1 hour', r.bucket)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON energy_rollup_1h (device_id, bucket);

-- energy_rollup_1d
DO $do$ BEGIN EXECUTE format($sql$
CREATE MATERIALIZED VIEW energy_rollup_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT r.device_id AS device_id, time_bucket('1 day', r.bucket, %1$L) AS bucket,
    sum(r.samples)::bigint AS samples,
    (sum(r.pv_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS pv_avg_kw,
    (sum(r.wind_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS wind_avg_kw,
    (sum(r.load_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS load_avg_kw,
    (sum(r.import_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS import_avg_kw,
    (sum(r.export_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS export_avg_kw,
    (sum(r.discharge_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS discharge_avg_kw,
    (sum(r.charge_avg_kw * r.samples) / nullif(sum(r.samples), 0))::double precision AS charge_avg_kw,
    sum(r.pv_kwh)::double precision AS pv_kwh,
    sum(r.wind_kwh)::double precision AS wind_kwh,
    sum(r.load_kwh)::double precision AS load_kwh,
    sum(r.import_kwh)::double precision AS import_kwh,
    sum(r.export_kwh)::double precision AS export_kwh,
    sum(r.discharge_kwh)::double precision AS discharge_kwh,
    sum(r.charge_kwh)::double precision AS charge_kwh,
    max(r.import_max_kw) AS import_max_kw,
    max(r.net_load_max_kw) AS net_load_max_kw,
    sum(r.soc_samples)::bigint AS soc_samples,
    min(r.soc_min_pct) AS soc_min_pct,
    max(r.soc_max_pct) AS soc_max_pct,
    last(r.soc_last_pct, r.soc_last_at) FILTER (WHERE r.soc_last_pct IS NOT NULL) AS soc_last_pct,
    max(r.soc_last_at) AS soc_last_at,
    sum(r.balance_checked)::bigint AS balance_checked,
    sum(r.balance_failed)::bigint AS balance_failed
FROM energy_rollup_1h r
GROUP BY r.device_id, time_bucket('1 day', r.bucket, %1$L)
WITH NO DATA
$sql$, current_setting('citytel.rollup_timezone')); END $do$;
CREATE INDEX ON energy_rollup_1d (device_id, bucket);

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
