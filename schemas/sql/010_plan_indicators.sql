-- Plan indicators over periods, each defined once here (docs/indicators.md): Grafana,
-- the API and the indicator engine call these functions, never a formula of their own.

-- Daily signal-timing coverage per city, district and local day (the city's time
-- zone): intersections that reported, and those covered (at least half of the day's
-- samples in one of the city's intelligent modes). From the hourly rollups.
CREATE TABLE signal_coverage_1d (
    city      text NOT NULL,
    district  text NOT NULL,
    bucket    timestamptz NOT NULL,  -- local midnight
    reporting bigint NOT NULL,
    covered   bigint NOT NULL,
    PRIMARY KEY (city, district, bucket)
);

-- x clamped to [0, 1]; NULL stays NULL (LEAST and GREATEST would skip it and answer 1).
CREATE FUNCTION citytel_clamp01(x double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN x IS NOT NULL THEN greatest(0, least(1, x)) END
$$;

-- Samples in the intelligent modes, from per-mode counts.
CREATE FUNCTION citytel_intelligent_samples(modes text[], off_n bigint, flash_n bigint,
                                            all_red_n bigint, manual_n bigint, fixed_time_n bigint,
                                            actuated_n bigint, coordinated_n bigint,
                                            adaptive_n bigint)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN 'off' = ANY (modes) THEN off_n ELSE 0 END)
         + (CASE WHEN 'flash' = ANY (modes) THEN flash_n ELSE 0 END)
         + (CASE WHEN 'all_red' = ANY (modes) THEN all_red_n ELSE 0 END)
         + (CASE WHEN 'manual' = ANY (modes) THEN manual_n ELSE 0 END)
         + (CASE WHEN 'fixed_time' = ANY (modes) THEN fixed_time_n ELSE 0 END)
         + (CASE WHEN 'actuated' = ANY (modes) THEN actuated_n ELSE 0 END)
         + (CASE WHEN 'coordinated' = ANY (modes) THEN coordinated_n ELSE 0 END)
         + (CASE WHEN 'adaptive' = ANY (modes) THEN adaptive_n ELSE 0 END)
$$;

-- Recompute the local days that overlap [lo, hi) (of ``only_city``, or every city).
CREATE FUNCTION citytel_refresh_signal_coverage_1d(lo timestamptz, hi timestamptz,
                                                   only_city text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM signal_coverage_1d
    WHERE bucket >= lo - INTERVAL '1 day' AND bucket + INTERVAL '1 day' <= hi + INTERVAL '1 day'
      AND (only_city IS NULL OR city = only_city);
    INSERT INTO signal_coverage_1d (city, district, bucket, reporting, covered)
    WITH cities AS (
        SELECT c.city, (citytel_city_settings(c.city)).time_zone AS time_zone,
               (citytel_city_settings(c.city)).intelligent_modes AS modes
        FROM (SELECT DISTINCT city FROM devices WHERE kind = 'signal'
              AND (only_city IS NULL OR city = only_city)) c
    ), device_days AS (
        SELECT d.city, coalesce(d.district, '') AS district, r.device_id,
               date_trunc('day', r.bucket AT TIME ZONE s.time_zone) AT TIME ZONE s.time_zone AS day,
               sum(r.samples) AS samples,
               sum(citytel_intelligent_samples(s.modes, r.off_samples, r.flash_samples,
                   r.all_red_samples, r.manual_samples, r.fixed_time_samples, r.actuated_samples,
                   r.coordinated_samples, r.adaptive_samples)) AS intelligent
        FROM signal_rollup_1h r
        JOIN devices d ON d.device_id = r.device_id
        JOIN cities s ON s.city = d.city
        WHERE r.bucket >= lo - INTERVAL '1 day' AND r.bucket < hi + INTERVAL '1 day'
        GROUP BY 1, 2, 3, 4
    )
    SELECT city, district, day, count(*) FILTER (WHERE samples > 0),
           count(*) FILTER (WHERE samples > 0 AND 2 * intelligent >= samples)
    FROM device_days
    WHERE day >= lo - INTERVAL '1 day' AND day + INTERVAL '1 day' <= hi + INTERVAL '1 day'
    GROUP BY 1, 2, 3;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;

-- The catalogue: every indicator, its unit and how it is computed.
-- total: how the whole range combines ('ratio': numerators and denominators summed;
-- 'sum': values summed; 'max': the largest value; 'peak_ratio': recomputed over the range).
CREATE TABLE indicators (
    name       text PRIMARY KEY,
    kind       text CHECK (kind IN ('pole', 'signal', 'energy')),
    unit       text NOT NULL,
    title      text NOT NULL,
    definition text NOT NULL
);

INSERT INTO indicators (name, kind, unit, title, definition) VALUES
('signal_timing_coverage', 'signal', 'ratio', 'Signal-timing coverage',
 'Covered intersection-days / registered intersection-days. An intersection is covered on a local day when at least 50 % of its samples that day were in one of the city''s intelligent modes (city_settings.intelligent_modes; actuated, coordinated and adaptive by default). A registered intersection that sent nothing that day counts as not covered; it is counted from the day of installed_at.'),
('signal_coordinated_rate', 'signal', 'ratio', 'Coordinated-control rate',
 'Samples in mode coordinated / all samples of the scope''s signal controllers.'),
('signal_mode_mix', 'signal', 'ratio', 'Signal mode mix',
 'Samples in the city''s intelligent modes / all samples; parts: the share of every run mode.'),
('pole_online_rate', 'pole', 'ratio', 'Smart-pole online rate',
 'Samples received / samples expected. Expected: the period''s seconds from installed_at divided by the pole''s interval_s, summed over registered poles; received: per pole and hour at most what its interval allows.'),
('pole_lamp_on_night_rate', 'pole', 'ratio', 'Lamp-on rate at night',
 'Lamp samples with lamp_on = true / lamp samples, in the city''s night hours (local time, city_settings.night_start_hour to night_end_hour; 20:00-05:00 by default).'),
('pole_lighting_energy', 'pole', 'kWh', 'Lighting energy',
 'Sum over samples of lamp_power_w times the pole''s interval_s.'),
('pole_pm25_exceedance_hours', 'pole', 'h', 'PM2.5 exceedance hours',
 'Hours in which the mean PM2.5 of the scope''s poles exceeded 75 µg/m³ (the GB 3095-2012 grade II 24-hour limit); denominator: hours with PM2.5 readings.'),
('energy_renewable_generation', 'energy', 'kWh', 'Renewable generation',
 'PV plus wind energy: sum over samples of (pv_kw + wind_kw) times interval_s.'),
('energy_self_consumption', 'energy', 'ratio', 'Renewable self-consumption',
 '(Renewable energy - exported energy) / renewable energy, clamped to 0-1; no value without generation.'),
('energy_self_sufficiency', 'energy', 'ratio', 'Energy self-sufficiency',
 '(Load energy - imported energy) / load energy, clamped to 0-1; no value without load.'),
('energy_peak_grid_import', 'energy', 'kW', 'Peak grid import',
 'The largest 15-minute mean of grid import summed over the scope''s nodes.'),
('energy_peak_shaving', 'energy', 'ratio', 'Peak shaving',
 '(Peak net load - peak grid import) / peak net load, over 15-minute means summed over the scope''s nodes; net load = load - PV - wind. How much of the peak storage and the grid exchange kept off the grid.'),
('energy_storage_throughput', 'energy', 'kWh', 'Storage throughput',
 'Energy charged plus energy discharged by the scope''s storage.'),
('energy_balance_failure_share', 'energy', 'ratio', 'Balance-check failures',
 'Samples failing the contract''s balance check (pv + wind + grid + storage = load within max(2 kW, 5 %)) / samples with a load reading.'),
('feed_completeness', NULL, 'ratio', 'Feed completeness',
 'Samples received / samples expected over every registered device of the scope (as pole_online_rate, all kinds).');

-- Plan targets as data: per indicator, for a city or a province, a value to reach by a date.
CREATE TABLE indicator_targets (
    id         bigserial PRIMARY KEY,
    indicator  text NOT NULL REFERENCES indicators (name),
    scope_type text NOT NULL CHECK (scope_type IN ('city', 'province')),
    scope      text NOT NULL,
    comparison text NOT NULL DEFAULT '>=' CHECK (comparison IN ('>=', '<=')),
    value      double precision NOT NULL,
    due        date NOT NULL,
    note       text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (indicator, scope_type, scope, due)
);

INSERT INTO indicator_targets (indicator, scope_type, scope, comparison, value, due, note) VALUES
('signal_timing_coverage', 'province', 'shandong', '>=', 0.40, '2023-12-31',
 'Shandong new-urbanization action plan 2021-2023: intelligent signal timing at 40 % of signalized intersections');

-- The target that applies to a city (its own, else its province's; the first due on or
-- after ``at``, else the latest); ``p_city`` NULL: the default province's.
CREATE FUNCTION citytel_indicator_target(p_indicator text, p_city text, at date DEFAULT current_date)
RETURNS indicator_targets
LANGUAGE sql STABLE AS $$
    SELECT t FROM indicator_targets t
    WHERE t.indicator = p_indicator
      AND ((t.scope_type = 'city' AND t.scope = p_city)
           OR (t.scope_type = 'province' AND t.scope = (citytel_city_settings(coalesce(p_city, '*'))).province))
    ORDER BY t.scope_type = 'city' DESC, t.due >= at DESC,
             CASE WHEN t.due >= at THEN t.due END ASC, t.due DESC
    LIMIT 1
$$;

-- Local periods (day, week from Monday, month) covering [p_from, p_to), cut to it; the
-- bounds are first moved out to local midnights.
CREATE FUNCTION citytel_periods(p_from timestamptz, p_to timestamptz, p_period text, tz text)
RETURNS TABLE (period_start timestamptz, period_end timestamptz)
LANGUAGE sql STABLE AS $$
    WITH bounds AS (
        SELECT date_trunc('day', p_from AT TIME ZONE tz) AS lo,
               CASE WHEN date_trunc('day', p_to AT TIME ZONE tz) = p_to AT TIME ZONE tz
                    THEN p_to AT TIME ZONE tz
                    ELSE date_trunc('day', p_to AT TIME ZONE tz) + INTERVAL '1 day' END AS hi
    )
    SELECT greatest(s, b.lo) AT TIME ZONE tz, least(s + ('1 ' || p_period)::interval, b.hi) AT TIME ZONE tz
    FROM bounds b,
         generate_series(date_trunc(p_period, b.lo), b.hi - INTERVAL '1 microsecond',
                         ('1 ' || p_period)::interval) AS s
    WHERE p_period IN ('day', 'week', 'month')
    ORDER BY 1
$$;

-- Registered devices of a scope in each period: how many, and the part of the period
-- after their installation in days (local dates) and in expected samples. The registry
-- is read once and grouped by installation day and interval, so the cost of many
-- periods does not grow with the number of devices.
CREATE FUNCTION citytel_registered(p_kind text, p_city text, p_district text,
                                   starts timestamptz[], ends timestamptz[], tz text)
RETURNS TABLE (period_start timestamptz, devices bigint, device_days bigint,
               expected_samples double precision)
LANGUAGE sql STABLE AS $$
    WITH groups AS MATERIALIZED (
        SELECT date_trunc('day', d.installed_at AT TIME ZONE tz) AT TIME ZONE tz AS installed,
               d.interval_s, count(*) AS n
        FROM devices d
        WHERE (p_kind IS NULL OR d.kind = p_kind)
          AND (p_city IS NULL OR d.city = p_city)
          AND (p_district IS NULL OR coalesce(d.district, '') = p_district)
        GROUP BY 1, 2
    )
    SELECT p.s,
           coalesce(sum(g.n) FILTER (WHERE g.since < p.e), 0)::bigint,
           coalesce(sum(g.n * greatest(0, (p.e AT TIME ZONE tz)::date - (g.since AT TIME ZONE tz)::date)), 0)::bigint,
           coalesce(sum(g.n * greatest(0, extract(epoch FROM p.e - g.since)) / g.interval_s), 0)::double precision
    FROM unnest(starts, ends) AS p(s, e)
    LEFT JOIN LATERAL (
        SELECT x.n, x.interval_s, greatest(p.s, coalesce(x.installed, p.s)) AS since FROM groups x
    ) g ON true
    GROUP BY p.s
$$;

CREATE TYPE citytel_point AS (
    period_start timestamptz, period_end timestamptz,
    value double precision, numerator double precision, denominator double precision
);

-- One indicator over given periods of a scope: the heart of the engine. Each branch
-- reads the area rollups (or signal_coverage_1d) and the registry, never raw rows.
CREATE FUNCTION citytel_indicator_points(p_name text, p_city text, p_district text,
                                         starts timestamptz[], ends timestamptz[], tz text)
RETURNS SETOF citytel_point
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    IF p_name = 'signal_timing_coverage' THEN
        RETURN QUERY
        SELECT p.s, p.e, c.covered::double precision / nullif(r.device_days, 0),
               c.covered::double precision, r.device_days::double precision
        FROM unnest(starts, ends) AS p(s, e)
        JOIN citytel_registered('signal', p_city, p_district, starts, ends, tz) r
          ON r.period_start = p.s
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(x.covered), 0) AS covered FROM signal_coverage_1d x
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)) c;
    ELSIF p_name IN ('signal_coordinated_rate', 'signal_mode_mix') THEN
        RETURN QUERY
        SELECT p.s, p.e, a.num / nullif(a.den, 0), a.num, a.den
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(CASE WHEN p_name = 'signal_coordinated_rate' THEN x.coordinated_samples
                                     ELSE citytel_intelligent_area_samples(x) END), 0)::double precision AS num,
                   coalesce(sum(x.samples), 0)::double precision AS den
            FROM signal_area_1h x
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)) a;
    ELSIF p_name IN ('pole_online_rate', 'feed_completeness') THEN
        RETURN QUERY
        SELECT p.s, p.e, citytel_clamp01(a.received / nullif(r.expected_samples, 0)),
               a.received, r.expected_samples
        FROM unnest(starts, ends) AS p(s, e)
        JOIN citytel_registered(CASE WHEN p_name = 'pole_online_rate' THEN 'pole' END,
                                p_city, p_district, starts, ends, tz) r
          ON r.period_start = p.s
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(x.samples_capped), 0)::double precision AS received
            FROM citytel_area_samples_1h(CASE WHEN p_name = 'pole_online_rate' THEN 'pole' END) x
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)) a;
    ELSIF p_name = 'pole_lamp_on_night_rate' THEN
        RETURN QUERY
        SELECT p.s, p.e, a.num / nullif(a.den, 0), a.num, a.den
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(x.lamp_on_samples), 0)::double precision AS num,
                   coalesce(sum(x.lamp_samples), 0)::double precision AS den
            FROM pole_area_1h x
            CROSS JOIN LATERAL citytel_city_settings(x.city) cs
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)
              AND citytel_is_night(extract(hour FROM x.bucket AT TIME ZONE cs.time_zone)::int,
                                   cs.night_start_hour, cs.night_end_hour)) a;
    ELSIF p_name = 'pole_lighting_energy' THEN
        RETURN QUERY
        SELECT p.s, p.e, a.v, NULL::double precision, NULL::double precision
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(x.lamp_energy_kwh), 0) AS v FROM pole_area_1h x
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)) a;
    ELSIF p_name = 'pole_pm25_exceedance_hours' THEN
        RETURN QUERY
        SELECT p.s, p.e, a.num, a.num, a.den
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE h.mean > 75)::double precision AS num,
                   count(*)::double precision AS den
            FROM (SELECT sum(x.pm25_avg_ugm3 * x.pm25_samples) / sum(x.pm25_samples) AS mean
                  FROM pole_area_1h x
                  WHERE x.bucket >= p.s AND x.bucket < p.e AND x.pm25_samples > 0
                    AND (p_city IS NULL OR x.city = p_city)
                    AND (p_district IS NULL OR x.district = p_district)
                  GROUP BY x.bucket) h) a;
    ELSIF p_name IN ('energy_peak_grid_import', 'energy_peak_shaving') THEN
        RETURN QUERY
        SELECT p.s, p.e,
               CASE WHEN p_name = 'energy_peak_grid_import' THEN a.peak_import
                    ELSE citytel_clamp01((a.peak_net - a.peak_import) / nullif(a.peak_net, 0)) END,
               CASE WHEN p_name = 'energy_peak_shaving' THEN a.peak_net - a.peak_import END,
               CASE WHEN p_name = 'energy_peak_shaving' THEN a.peak_net END
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT max(b.import_kw) AS peak_import, max(b.net_kw) AS peak_net
            FROM (SELECT sum(x.import_kw_total) AS import_kw, sum(x.net_load_kw_total) AS net_kw
                  FROM energy_area_15m x
                  WHERE x.bucket >= p.s AND x.bucket < p.e
                    AND (p_city IS NULL OR x.city = p_city)
                    AND (p_district IS NULL OR x.district = p_district)
                  GROUP BY x.bucket) b) a;
    ELSIF p_name LIKE 'energy\_%' THEN
        RETURN QUERY
        SELECT p.s, p.e,
               CASE p_name
                   WHEN 'energy_renewable_generation' THEN a.pv + a.wind
                   WHEN 'energy_storage_throughput' THEN a.charge + a.discharge
                   WHEN 'energy_self_consumption' THEN
                       citytel_clamp01((a.pv + a.wind - a.export) / nullif(a.pv + a.wind, 0))
                   WHEN 'energy_self_sufficiency' THEN
                       citytel_clamp01((a.load - a.import) / nullif(a.load, 0))
                   WHEN 'energy_balance_failure_share' THEN a.failed / nullif(a.checked, 0)
               END,
               CASE p_name
                   WHEN 'energy_self_consumption' THEN a.pv + a.wind - a.export
                   WHEN 'energy_self_sufficiency' THEN a.load - a.import
                   WHEN 'energy_balance_failure_share' THEN a.failed
               END,
               CASE p_name
                   WHEN 'energy_self_consumption' THEN a.pv + a.wind
                   WHEN 'energy_self_sufficiency' THEN a.load
                   WHEN 'energy_balance_failure_share' THEN a.checked
               END
        FROM unnest(starts, ends) AS p(s, e)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(x.pv_kwh), 0) AS pv, coalesce(sum(x.wind_kwh), 0) AS wind,
                   coalesce(sum(x.load_kwh), 0) AS load, coalesce(sum(x.import_kwh), 0) AS import,
                   coalesce(sum(x.export_kwh), 0) AS export, coalesce(sum(x.charge_kwh), 0) AS charge,
                   coalesce(sum(x.discharge_kwh), 0) AS discharge,
                   coalesce(sum(x.balance_checked), 0)::double precision AS checked,
                   coalesce(sum(x.balance_failed), 0)::double precision AS failed
            FROM energy_area_1h x
            WHERE x.bucket >= p.s AND x.bucket < p.e
              AND (p_city IS NULL OR x.city = p_city)
              AND (p_district IS NULL OR x.district = p_district)) a;
    ELSE
        RAISE EXCEPTION 'unknown indicator %', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$fn$;

CREATE FUNCTION citytel_intelligent_area_samples(x signal_area_1h) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT citytel_intelligent_samples((citytel_city_settings(x.city)).intelligent_modes,
        x.off_samples, x.flash_samples, x.all_red_samples, x.manual_samples,
        x.fixed_time_samples, x.actuated_samples, x.coordinated_samples, x.adaptive_samples)
$$;

CREATE FUNCTION citytel_is_night(local_hour integer, night_start integer, night_end integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN night_start > night_end THEN local_hour >= night_start OR local_hour < night_end
                ELSE local_hour >= night_start AND local_hour < night_end END
$$;

-- samples_capped of every kind's hourly area rollup (or one kind's), for completeness.
CREATE FUNCTION citytel_area_samples_1h(p_kind text)
RETURNS TABLE (city text, district text, bucket timestamptz, samples_capped bigint)
LANGUAGE sql STABLE AS $$
    SELECT city, district, bucket, samples_capped FROM pole_area_1h WHERE p_kind IS NULL OR p_kind = 'pole'
    UNION ALL
    SELECT city, district, bucket, samples_capped FROM signal_area_1h WHERE p_kind IS NULL OR p_kind = 'signal'
    UNION ALL
    SELECT city, district, bucket, samples_capped FROM energy_area_1h WHERE p_kind IS NULL OR p_kind = 'energy'
$$;

-- An indicator over [p_from, p_to) in periods of the scope's local time, then the whole
-- range as one more row (is_total). p_city NULL: every city (the default time zone).
CREATE FUNCTION citytel_indicator(p_name text, p_city text, p_district text,
                                  p_from timestamptz, p_to timestamptz, p_period text DEFAULT 'day')
RETURNS TABLE (period_start timestamptz, period_end timestamptz, value double precision,
               numerator double precision, denominator double precision, is_total boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    tz text := (citytel_city_settings(coalesce(p_city, '*'))).time_zone;
    starts timestamptz[];
    ends timestamptz[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM indicators WHERE name = p_name) THEN
        RAISE EXCEPTION 'unknown indicator %', p_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(p.period_start ORDER BY p.period_start), array_agg(p.period_end ORDER BY p.period_start)
    INTO starts, ends
    FROM citytel_periods(p_from, p_to, p_period, tz) p;
    IF starts IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT x.period_start, x.period_end, x.value, x.numerator, x.denominator, false
    FROM citytel_indicator_points(p_name, p_city, p_district, starts, ends, tz) x;
    RETURN QUERY
    SELECT x.period_start, x.period_end, x.value, x.numerator, x.denominator, true
    FROM citytel_indicator_points(p_name, p_city, p_district, ARRAY[starts[1]],
                                  ARRAY[ends[array_length(ends, 1)]], tz) x;
END
$fn$;

-- The mode mix per period: the share of every run mode (signal_mode_mix's parts).
CREATE FUNCTION citytel_signal_mode_mix(p_city text, p_district text, p_from timestamptz,
                                        p_to timestamptz, p_period text DEFAULT 'day')
RETURNS TABLE (period_start timestamptz, period_end timestamptz, mode text, samples bigint,
               share double precision)
LANGUAGE sql STABLE AS $$
    WITH periods AS (
        SELECT * FROM citytel_periods(p_from, p_to, p_period,
                                      (citytel_city_settings(coalesce(p_city, '*'))).time_zone)
    ), sums AS (
        SELECT p.period_start, p.period_end,
               sum(x.samples) AS samples,
               ARRAY[sum(x.off_samples), sum(x.flash_samples), sum(x.all_red_samples),
                     sum(x.manual_samples), sum(x.fixed_time_samples), sum(x.actuated_samples),
                     sum(x.coordinated_samples), sum(x.adaptive_samples)] AS by_mode
        FROM periods p
        LEFT JOIN signal_area_1h x ON x.bucket >= p.period_start AND x.bucket < p.period_end
             AND (p_city IS NULL OR x.city = p_city)
             AND (p_district IS NULL OR x.district = p_district)
        GROUP BY 1, 2
    )
    SELECT s.period_start, s.period_end, m.mode, coalesce(s.by_mode[m.i], 0)::bigint,
           s.by_mode[m.i]::double precision / nullif(s.samples, 0)
    FROM sums s
    CROSS JOIN unnest(ARRAY['off', 'flash', 'all_red', 'manual', 'fixed_time', 'actuated',
                            'coordinated', 'adaptive']) WITH ORDINALITY AS m(mode, i)
    ORDER BY 1, m.i
$$;

-- Feed health per device over [p_from, p_to): last seen, freshness, completeness
-- (samples, at most what interval_s allows per hour, / samples expected since
-- installed_at), dead letters and duplicates per hour. Whole hours, from the hourly rollups.
CREATE FUNCTION citytel_feed_health(p_from timestamptz, p_to timestamptz,
                                    p_city text DEFAULT NULL, p_kind text DEFAULT NULL)
RETURNS TABLE (device_id text, kind text, city text, district text, interval_s double precision,
               last_seen timestamptz, age_s double precision, fresh boolean,
               samples bigint, expected double precision, completeness double precision,
               dead_letters bigint, duplicates bigint,
               dead_letters_per_hour double precision, duplicates_per_hour double precision)
LANGUAGE sql STABLE AS $$
    WITH window_ AS (
        SELECT date_trunc('hour', p_from) AS lo,
               date_trunc('hour', p_to + INTERVAL '1 hour' - INTERVAL '1 microsecond') AS hi
    ), scope AS (
        SELECT d.device_id, d.kind, d.city, d.district, d.interval_s,
               greatest(w.lo, coalesce(d.installed_at, w.lo)) AS since, w.lo, w.hi
        FROM devices d, window_ w
        WHERE (p_city IS NULL OR d.city = p_city) AND (p_kind IS NULL OR d.kind = p_kind)
    ), received AS (
        SELECT r.device_id, sum(least(r.samples, ceil(3600 / s.interval_s)))::bigint AS samples
        FROM (SELECT device_id, bucket, samples FROM pole_rollup_1h
              UNION ALL SELECT device_id, bucket, samples FROM signal_rollup_1h
              UNION ALL SELECT device_id, bucket, samples FROM energy_rollup_1h) r
        JOIN scope s ON s.device_id = r.device_id
        WHERE r.bucket >= s.lo AND r.bucket < s.hi
        GROUP BY r.device_id
    ), dead AS (
        SELECT l.device_id, count(*) AS n FROM dead_letters l, window_ w
        WHERE l.received_at >= w.lo AND l.received_at < w.hi AND l.device_id IS NOT NULL
        GROUP BY l.device_id
    ), dup AS (
        SELECT u.device_id, sum(u.duplicates)::bigint AS n FROM ingest_duplicates u, window_ w
        WHERE u.hour >= w.lo AND u.hour < w.hi
        GROUP BY u.device_id
    )
    SELECT s.device_id, s.kind, s.city, s.district, s.interval_s,
           f.last_seen, f.age_s, coalesce(f.fresh, false),
           coalesce(r.samples, 0),
           greatest(0, extract(epoch FROM s.hi - s.since)) / s.interval_s,
           citytel_clamp01(coalesce(r.samples, 0)
                           / nullif(greatest(0, extract(epoch FROM s.hi - s.since)) / s.interval_s, 0)),
           coalesce(dl.n, 0), coalesce(du.n, 0),
           coalesce(dl.n, 0) / (extract(epoch FROM s.hi - s.lo) / 3600),
           coalesce(du.n, 0) / (extract(epoch FROM s.hi - s.lo) / 3600)
    FROM scope s
    LEFT JOIN device_freshness f ON f.device_id = s.device_id
    LEFT JOIN received r ON r.device_id = s.device_id
    LEFT JOIN dead dl ON dl.device_id = s.device_id
    LEFT JOIN dup du ON du.device_id = s.device_id
    ORDER BY s.city, s.kind, s.device_id
$$;

-- The "now" view of the live panel follows the city's intelligent modes and its target.
DROP VIEW signal_timing_coverage;
DROP FUNCTION citytel_is_intelligent_timing(text);

CREATE FUNCTION citytel_is_intelligent_timing(mode text, p_city text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT mode = ANY ((citytel_city_settings(p_city)).intelligent_modes)
$$;

-- Signal-timing coverage now, per city: the share of registered signalized
-- intersections whose controller's newest mode (within max(15 min, 3 intervals)) is
-- one of the city's intelligent modes; target_pct from indicator_targets.
CREATE VIEW signal_timing_coverage AS
SELECT d.city,
       count(*) AS intersections,
       count(m.device_id) AS reporting,
       count(*) FILTER (WHERE citytel_is_intelligent_timing(m.mode, d.city)) AS intelligent,
       round((100.0 * count(*) FILTER (WHERE citytel_is_intelligent_timing(m.mode, d.city))
              / count(*))::numeric, 2) AS coverage_pct,
       round((100 * (citytel_indicator_target('signal_timing_coverage', d.city)).value)::numeric, 2)
           AS target_pct
FROM devices d
LEFT JOIN signal_current_mode m USING (device_id)
WHERE d.kind = 'signal'
GROUP BY d.city;
