-- Rendered from schemas/rollups.py (python -m schemas.rollup_sql): do not edit by hand.
-- Area rollups: the devices of a city and district summed per 15 minutes and per hour,
-- from the per-device rollups (continuous aggregates or tables). Plain tables in both
-- storage modes, refreshed by the platform for invalidated ranges, so a question
-- about a city reads a few rows per bucket whatever its number of devices. A device
-- counts in the area the registry gives it when its bucket is rolled up.
-- samples_capped: samples, at most the count the device's interval_s allows per
-- bucket (a device reporting too often does not lift an online rate above 100 %).

CREATE TABLE pole_area_15m (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX pole_area_15m_bucket ON pole_area_15m (bucket);

-- Recompute pole_area_15m for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_pole_area_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM pole_area_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO pole_area_15m (city, district, bucket, devices, samples, lamp_samples, lamp_on_samples, lamp_on_share, dim_samples, dim_avg_pct, lamp_energy_kwh, pm25_samples, pm25_avg_ugm3, pm25_max_ugm3, pm10_samples, pm10_avg_ugm3, pm10_max_ugm3, noise_samples, noise_avg_dba, noise_max_dba, cell_samples, cell_online_samples, cell_online_share, camera_samples, camera_online_samples, camera_online_share, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        sum(r.camera_online_samples)::double precision / nullif(sum(r.camera_samples), 0) AS camera_online_share,
        sum(least(r.samples, ceil(900 / d.interval_s)))::bigint AS samples_capped
    FROM pole_rollup_15m r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE pole_area_1h (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX pole_area_1h_bucket ON pole_area_1h (bucket);

-- Recompute pole_area_1h for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_pole_area_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM pole_area_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO pole_area_1h (city, district, bucket, devices, samples, lamp_samples, lamp_on_samples, lamp_on_share, dim_samples, dim_avg_pct, lamp_energy_kwh, pm25_samples, pm25_avg_ugm3, pm25_max_ugm3, pm10_samples, pm10_avg_ugm3, pm10_max_ugm3, noise_samples, noise_avg_dba, noise_max_dba, cell_samples, cell_online_samples, cell_online_share, camera_samples, camera_online_samples, camera_online_share, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        sum(r.camera_online_samples)::double precision / nullif(sum(r.camera_samples), 0) AS camera_online_share,
        sum(least(r.samples, ceil(3600 / d.interval_s)))::bigint AS samples_capped
    FROM pole_rollup_1h r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE signal_area_15m (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX signal_area_15m_bucket ON signal_area_15m (bucket);

-- Recompute signal_area_15m for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_signal_area_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM signal_area_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO signal_area_15m (city, district, bucket, devices, samples, off_samples, flash_samples, all_red_samples, manual_samples, fixed_time_samples, actuated_samples, coordinated_samples, adaptive_samples, volume_sum, volume_samples, occupancy_samples, occupancy_avg_pct, cycle_samples, cycle_avg_s, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        (sum(r.cycle_avg_s * r.cycle_samples) / nullif(sum(r.cycle_samples), 0))::double precision AS cycle_avg_s,
        sum(least(r.samples, ceil(900 / d.interval_s)))::bigint AS samples_capped
    FROM signal_rollup_15m r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE signal_area_1h (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX signal_area_1h_bucket ON signal_area_1h (bucket);

-- Recompute signal_area_1h for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_signal_area_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM signal_area_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO signal_area_1h (city, district, bucket, devices, samples, off_samples, flash_samples, all_red_samples, manual_samples, fixed_time_samples, actuated_samples, coordinated_samples, adaptive_samples, volume_sum, volume_samples, occupancy_samples, occupancy_avg_pct, cycle_samples, cycle_avg_s, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        (sum(r.cycle_avg_s * r.cycle_samples) / nullif(sum(r.cycle_samples), 0))::double precision AS cycle_avg_s,
        sum(least(r.samples, ceil(3600 / d.interval_s)))::bigint AS samples_capped
    FROM signal_rollup_1h r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE energy_area_15m (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    balance_checked bigint,
    balance_failed bigint,
    import_kw_total double precision,
    net_load_kw_total double precision,
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX energy_area_15m_bucket ON energy_area_15m (bucket);

-- Recompute energy_area_15m for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_energy_area_15m(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM energy_area_15m WHERE bucket >= lo AND bucket < hi;
    INSERT INTO energy_area_15m (city, district, bucket, devices, samples, pv_avg_kw, wind_avg_kw, load_avg_kw, import_avg_kw, export_avg_kw, discharge_avg_kw, charge_avg_kw, pv_kwh, wind_kwh, load_kwh, import_kwh, export_kwh, discharge_kwh, charge_kwh, import_max_kw, net_load_max_kw, soc_samples, soc_min_pct, soc_max_pct, balance_checked, balance_failed, import_kw_total, net_load_kw_total, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        sum(r.balance_checked)::bigint AS balance_checked,
        sum(r.balance_failed)::bigint AS balance_failed,
        sum(r.import_avg_kw) AS import_kw_total,
        sum(r.load_avg_kw - r.pv_avg_kw - r.wind_avg_kw) AS net_load_kw_total,
        sum(least(r.samples, ceil(900 / d.interval_s)))::bigint AS samples_capped
    FROM energy_rollup_15m r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

CREATE TABLE energy_area_1h (
    city text NOT NULL,
    district text NOT NULL,
    bucket timestamptz NOT NULL,
    devices bigint,
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
    balance_checked bigint,
    balance_failed bigint,
    import_kw_total double precision,
    net_load_kw_total double precision,
    samples_capped bigint,
    PRIMARY KEY (city, district, bucket)
);
CREATE INDEX energy_area_1h_bucket ON energy_area_1h (bucket);

-- Recompute energy_area_1h for the buckets in [lo, hi).
CREATE FUNCTION citytel_refresh_energy_area_1h(lo timestamptz, hi timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM energy_area_1h WHERE bucket >= lo AND bucket < hi;
    INSERT INTO energy_area_1h (city, district, bucket, devices, samples, pv_avg_kw, wind_avg_kw, load_avg_kw, import_avg_kw, export_avg_kw, discharge_avg_kw, charge_avg_kw, pv_kwh, wind_kwh, load_kwh, import_kwh, export_kwh, discharge_kwh, charge_kwh, import_max_kw, net_load_max_kw, soc_samples, soc_min_pct, soc_max_pct, balance_checked, balance_failed, import_kw_total, net_load_kw_total, samples_capped)
    SELECT d.city, coalesce(d.district, ''), r.bucket,
        count(*) AS devices,
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
        sum(r.balance_checked)::bigint AS balance_checked,
        sum(r.balance_failed)::bigint AS balance_failed,
        sum(r.import_avg_kw) AS import_kw_total,
        sum(r.load_avg_kw - r.pv_avg_kw - r.wind_avg_kw) AS net_load_kw_total,
        sum(least(r.samples, ceil(3600 / d.interval_s)))::bigint AS samples_capped
    FROM energy_rollup_1h r
    JOIN devices d ON d.device_id = r.device_id
    WHERE r.bucket >= lo AND r.bucket < hi
    GROUP BY d.city, coalesce(d.district, ''), r.bucket;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
