-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Per-device rollups on plain PostgreSQL: tables with the columns the TimescaleDB
-- continuous aggregates have, refreshed for invalidated time ranges by the platform
-- (ingest/rollups.py) through the functions below. A BRIN index on ts lets a refresh
-- read only the raw rows of the buckets it recomputes.

-- The time zone of daily buckets, fixed when the rollups were created.
CREATE FUNCTION citytel_rollup_timezone() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT value FROM citytel_meta WHERE key = 'rollup_timezone'
$$;

CREATE INDEX pole_telemetry_ts_brin ON pole_telemetry USING brin (ts) WITH (pages_per_range = 32);

CREATE TABLE pole_rollup_15m (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    lamp_samples bigint,
    lamp_on_samples bigint,
    lamp_on_share double precision,
    dim_samples bigint,
    dim_avg_pct double precision,
    lamp_energy_kwh double precision,
    pm25_samples bigint,
    pm25_avg_ugm3 double precision,
    pm25_max_ugm3 double precision,
    pm10_samples bigint,
    pm10_avg_ugm3 double precision,
    pm10_max_ugm3 double precision,
    noise_samples bigint,
    noise_avg_dba double precision,
    noise_max_dba double precision,
    cell_samples bigint,
    cell_online_samples bigint,
    cell_online_share double precision,
    camera_samples bigint,
    camera_online_samples bigint,
    camera_online_share double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX pole_rollup_15m_bucket ON pole_rollup_15m (bucket);

-- Recompute pole_rollup_15m for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_pole_rollup_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM pole_rollup_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO pole_rollup_15m (device_id, bucket, samples, lamp_samples, lamp_on_samples, lamp_on_share, dim_samples, dim_avg_pct, lamp_energy_kwh, pm25_samples, pm25_avg_ugm3, pm25_max_ugm3, pm10_samples, pm10_avg_ugm3, pm10_max_ugm3, noise_samples, noise_avg_dba, noise_max_dba, cell_samples, cell_online_samples, cell_online_share, camera_samples, camera_online_samples, camera_online_share)
    SELECT t.device_id AS device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
    WHERE t.ts >= lo AND t.ts < hi
    GROUP BY t.device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE pole_rollup_1h (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    lamp_samples bigint,
    lamp_on_samples bigint,
    lamp_on_share double precision,
    dim_samples bigint,
    dim_avg_pct double precision,
    lamp_energy_kwh double precision,
    pm25_samples bigint,
    pm25_avg_ugm3 double precision,
    pm25_max_ugm3 double precision,
    pm10_samples bigint,
    pm10_avg_ugm3 double precision,
    pm10_max_ugm3 double precision,
    noise_samples bigint,
    noise_avg_dba double precision,
    noise_max_dba double precision,
    cell_samples bigint,
    cell_online_samples bigint,
    cell_online_share double precision,
    camera_samples bigint,
    camera_online_samples bigint,
    camera_online_share double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX pole_rollup_1h_bucket ON pole_rollup_1h (bucket);

-- Recompute pole_rollup_1h for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_pole_rollup_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM pole_rollup_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO pole_rollup_1h (device_id, bucket, samples, lamp_samples, lamp_on_samples, lamp_on_share, dim_samples, dim_avg_pct, lamp_energy_kwh, pm25_samples, pm25_avg_ugm3, pm25_max_ugm3, pm10_samples, pm10_avg_ugm3, pm10_max_ugm3, noise_samples, noise_avg_dba, noise_max_dba, cell_samples, cell_online_samples, cell_online_share, camera_samples, camera_online_samples, camera_online_share)
    SELECT r.device_id AS device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE pole_rollup_1d (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    lamp_samples bigint,
    lamp_on_samples bigint,
    lamp_on_share double precision,
    dim_samples bigint,
    dim_avg_pct double precision,
    lamp_energy_kwh double precision,
    pm25_samples bigint,
    pm25_avg_ugm3 double precision,
    pm25_max_ugm3 double precision,
    pm10_samples bigint,
    pm10_avg_ugm3 double precision,
    pm10_max_ugm3 double precision,
    noise_samples bigint,
    noise_avg_dba double precision,
    noise_max_dba double precision,
    cell_samples bigint,
    cell_online_samples bigint,
    cell_online_share double precision,
    camera_samples bigint,
    camera_online_samples bigint,
    camera_online_share double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX pole_rollup_1d_bucket ON pole_rollup_1d (bucket);

-- Recompute pole_rollup_1d for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_pole_rollup_1d(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM pole_rollup_1d WHERE bucket >= lo AND bucket < hi;
    INSERT INTO pole_rollup_1d (device_id, bucket, samples, lamp_samples, lamp_on_samples, lamp_on_share, dim_samples, dim_avg_pct, lamp_energy_kwh, pm25_samples, pm25_avg_ugm3, pm25_max_ugm3, pm10_samples, pm10_avg_ugm3, pm10_max_ugm3, noise_samples, noise_avg_dba, noise_max_dba, cell_samples, cell_online_samples, cell_online_share, camera_samples, camera_online_samples, camera_online_share)
    SELECT r.device_id AS device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone) AS bucket,
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
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE INDEX signal_telemetry_ts_brin ON signal_telemetry USING brin (ts) WITH (pages_per_range = 32);

CREATE TABLE signal_rollup_15m (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    off_samples bigint,
    flash_samples bigint,
    all_red_samples bigint,
    manual_samples bigint,
    fixed_time_samples bigint,
    actuated_samples bigint,
    coordinated_samples bigint,
    adaptive_samples bigint,
    volume_sum bigint,
    volume_samples bigint,
    occupancy_samples bigint,
    occupancy_avg_pct double precision,
    cycle_samples bigint,
    cycle_avg_s double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX signal_rollup_15m_bucket ON signal_rollup_15m (bucket);

-- Recompute signal_rollup_15m for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_signal_rollup_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM signal_rollup_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO signal_rollup_15m (device_id, bucket, samples, off_samples, flash_samples, all_red_samples, manual_samples, fixed_time_samples, actuated_samples, coordinated_samples, adaptive_samples, volume_sum, volume_samples, occupancy_samples, occupancy_avg_pct, cycle_samples, cycle_avg_s)
    SELECT t.device_id AS device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
    WHERE t.ts >= lo AND t.ts < hi
    GROUP BY t.device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE signal_rollup_1h (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    off_samples bigint,
    flash_samples bigint,
    all_red_samples bigint,
    manual_samples bigint,
    fixed_time_samples bigint,
    actuated_samples bigint,
    coordinated_samples bigint,
    adaptive_samples bigint,
    volume_sum bigint,
    volume_samples bigint,
    occupancy_samples bigint,
    occupancy_avg_pct double precision,
    cycle_samples bigint,
    cycle_avg_s double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX signal_rollup_1h_bucket ON signal_rollup_1h (bucket);

-- Recompute signal_rollup_1h for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_signal_rollup_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM signal_rollup_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO signal_rollup_1h (device_id, bucket, samples, off_samples, flash_samples, all_red_samples, manual_samples, fixed_time_samples, actuated_samples, coordinated_samples, adaptive_samples, volume_sum, volume_samples, occupancy_samples, occupancy_avg_pct, cycle_samples, cycle_avg_s)
    SELECT r.device_id AS device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE signal_rollup_1d (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    off_samples bigint,
    flash_samples bigint,
    all_red_samples bigint,
    manual_samples bigint,
    fixed_time_samples bigint,
    actuated_samples bigint,
    coordinated_samples bigint,
    adaptive_samples bigint,
    volume_sum bigint,
    volume_samples bigint,
    occupancy_samples bigint,
    occupancy_avg_pct double precision,
    cycle_samples bigint,
    cycle_avg_s double precision,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX signal_rollup_1d_bucket ON signal_rollup_1d (bucket);

-- Recompute signal_rollup_1d for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_signal_rollup_1d(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM signal_rollup_1d WHERE bucket >= lo AND bucket < hi;
    INSERT INTO signal_rollup_1d (device_id, bucket, samples, off_samples, flash_samples, all_red_samples, manual_samples, fixed_time_samples, actuated_samples, coordinated_samples, adaptive_samples, volume_sum, volume_samples, occupancy_samples, occupancy_avg_pct, cycle_samples, cycle_avg_s)
    SELECT r.device_id AS device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone) AS bucket,
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
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE INDEX energy_telemetry_ts_brin ON energy_telemetry USING brin (ts) WITH (pages_per_range = 32);

CREATE TABLE energy_rollup_15m (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    pv_avg_kw double precision,
    wind_avg_kw double precision,
    load_avg_kw double precision,
    import_avg_kw double precision,
    export_avg_kw double precision,
    discharge_avg_kw double precision,
    charge_avg_kw double precision,
    pv_kwh double precision,
    wind_kwh double precision,
    load_kwh double precision,
    import_kwh double precision,
    export_kwh double precision,
    discharge_kwh double precision,
    charge_kwh double precision,
    import_max_kw double precision,
    net_load_max_kw double precision,
    soc_samples bigint,
    soc_min_pct double precision,
    soc_max_pct double precision,
    soc_last_pct double precision,
    soc_last_at timestamptz,
    balance_checked bigint,
    balance_failed bigint,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX energy_rollup_15m_bucket ON energy_rollup_15m (bucket);

-- Recompute energy_rollup_15m for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_energy_rollup_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM energy_rollup_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO energy_rollup_15m (device_id, bucket, samples, pv_avg_kw, wind_avg_kw, load_avg_kw, import_avg_kw, export_avg_kw, discharge_avg_kw, charge_avg_kw, pv_kwh, wind_kwh, load_kwh, import_kwh, export_kwh, discharge_kwh, charge_kwh, import_max_kw, net_load_max_kw, soc_samples, soc_min_pct, soc_max_pct, soc_last_pct, soc_last_at, balance_checked, balance_failed)
    SELECT t.device_id AS device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
        (array_agg(t.soc_pct ORDER BY t.ts DESC) FILTER (WHERE t.soc_pct IS NOT NULL))[1] AS soc_last_pct,
        max(t.ts) FILTER (WHERE t.soc_pct IS NOT NULL) AS soc_last_at,
        count(t.balance_ok) AS balance_checked,
        count(*) FILTER (WHERE NOT t.balance_ok) AS balance_failed
    FROM energy_telemetry t JOIN devices d ON d.device_id = t.device_id
    WHERE t.ts >= lo AND t.ts < hi
    GROUP BY t.device_id, date_bin('15 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE energy_rollup_1h (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    pv_avg_kw double precision,
    wind_avg_kw double precision,
    load_avg_kw double precision,
    import_avg_kw double precision,
    export_avg_kw double precision,
    discharge_avg_kw double precision,
    charge_avg_kw double precision,
    pv_kwh double precision,
    wind_kwh double precision,
    load_kwh double precision,
    import_kwh double precision,
    export_kwh double precision,
    discharge_kwh double precision,
    charge_kwh double precision,
    import_max_kw double precision,
    net_load_max_kw double precision,
    soc_samples bigint,
    soc_min_pct double precision,
    soc_max_pct double precision,
    soc_last_pct double precision,
    soc_last_at timestamptz,
    balance_checked bigint,
    balance_failed bigint,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX energy_rollup_1h_bucket ON energy_rollup_1h (bucket);

-- Recompute energy_rollup_1h for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_energy_rollup_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM energy_rollup_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO energy_rollup_1h (device_id, bucket, samples, pv_avg_kw, wind_avg_kw, load_avg_kw, import_avg_kw, export_avg_kw, discharge_avg_kw, charge_avg_kw, pv_kwh, wind_kwh, load_kwh, import_kwh, export_kwh, discharge_kwh, charge_kwh, import_max_kw, net_load_max_kw, soc_samples, soc_min_pct, soc_max_pct, soc_last_pct, soc_last_at, balance_checked, balance_failed)
    SELECT r.device_id AS device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
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
        (array_agg(r.soc_last_pct ORDER BY r.soc_last_at DESC) FILTER (WHERE r.soc_last_pct IS NOT NULL))[1] AS soc_last_pct,
        max(r.soc_last_at) AS soc_last_at,
        sum(r.balance_checked)::bigint AS balance_checked,
        sum(r.balance_failed)::bigint AS balance_failed
    FROM energy_rollup_15m r
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, date_bin('1 hour', r.bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE energy_rollup_1d (
    device_id text NOT NULL,
    bucket timestamptz NOT NULL,
    samples bigint,
    pv_avg_kw double precision,
    wind_avg_kw double precision,
    load_avg_kw double precision,
    import_avg_kw double precision,
    export_avg_kw double precision,
    discharge_avg_kw double precision,
    charge_avg_kw double precision,
    pv_kwh double precision,
    wind_kwh double precision,
    load_kwh double precision,
    import_kwh double precision,
    export_kwh double precision,
    discharge_kwh double precision,
    charge_kwh double precision,
    import_max_kw double precision,
    net_load_max_kw double precision,
    soc_samples bigint,
    soc_min_pct double precision,
    soc_max_pct double precision,
    soc_last_pct double precision,
    soc_last_at timestamptz,
    balance_checked bigint,
    balance_failed bigint,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX energy_rollup_1d_bucket ON energy_rollup_1d (bucket);

-- Recompute energy_rollup_1d for the buckets in [lo, hi) (bounds on bucket edges).
CREATE FUNCTION citytel_refresh_energy_rollup_1d(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    zone text := citytel_rollup_timezone();
    n bigint;
BEGIN
    DELETE FROM energy_rollup_1d WHERE bucket >= lo AND bucket < hi;
    INSERT INTO energy_rollup_1d (device_id, bucket, samples, pv_avg_kw, wind_avg_kw, load_avg_kw, import_avg_kw, export_avg_kw, discharge_avg_kw, charge_avg_kw, pv_kwh, wind_kwh, load_kwh, import_kwh, export_kwh, discharge_kwh, charge_kwh, import_max_kw, net_load_max_kw, soc_samples, soc_min_pct, soc_max_pct, soc_last_pct, soc_last_at, balance_checked, balance_failed)
    SELECT r.device_id AS device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone) AS bucket,
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
        (array_agg(r.soc_last_pct ORDER BY r.soc_last_at DESC) FILTER (WHERE r.soc_last_pct IS NOT NULL))[1] AS soc_last_pct,
        max(r.soc_last_at) AS soc_last_at,
        sum(r.balance_checked)::bigint AS balance_checked,
        sum(r.balance_failed)::bigint AS balance_failed
    FROM energy_rollup_1h r
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY r.device_id, (date_trunc('day', r.bucket AT TIME ZONE zone) AT TIME ZONE zone);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
