-- What the rollups need from ingest and from the registry.

-- The 15-minute buckets that got raw rows: the collector adds one row per bucket and
-- kind with every batch, in the batch's transaction; the refresher (ingest/rollups.py)
-- recomputes those buckets and deletes the rows it read. Append-only, no unique key:
-- two collectors never wait on each other here.
CREATE TABLE rollup_invalidations (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('pole', 'signal', 'energy')),
    bucket      timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Cities whose settings changed: their daily signal-timing coverage is recomputed
-- (within the raw retention) at the next refresh.
CREATE TABLE rollup_rebuilds (
    city         text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- Rows the collector found stored already, per device and hour of receipt (written on
-- the staged path only, where duplicates are possible). Append-only.
CREATE TABLE ingest_duplicates (
    device_id  text NOT NULL,
    hour       timestamptz NOT NULL,
    duplicates bigint NOT NULL
);
CREATE INDEX ingest_duplicates_hour ON ingest_duplicates (hour);

CREATE INDEX dead_letters_received ON dead_letters (received_at);

-- Per-city settings. The row '*' holds the defaults of a city without a row of its own.
-- intelligent_modes: the run modes that count as intelligent signal timing (GB/T 20999
-- vehicle-actuated, coordinated and adaptive control by default); night hours: local
-- hours in which street lamps are expected on ([night_start_hour, 24) and [0, night_end_hour)).
CREATE TABLE city_settings (
    city              text PRIMARY KEY,
    time_zone         text NOT NULL DEFAULT 'Asia/Shanghai',
    province          text NOT NULL DEFAULT 'shandong',
    intelligent_modes text[] NOT NULL DEFAULT ARRAY['actuated', 'coordinated', 'adaptive'],
    night_start_hour  integer NOT NULL DEFAULT 20 CHECK (night_start_hour BETWEEN 0 AND 23),
    night_end_hour    integer NOT NULL DEFAULT 5 CHECK (night_end_hour BETWEEN 0 AND 23),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (intelligent_modes <@ ARRAY['off', 'flash', 'all_red', 'manual', 'fixed_time',
                                      'actuated', 'coordinated', 'adaptive'])
);

CREATE FUNCTION citytel_check_city_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM now() AT TIME ZONE NEW.time_zone;  -- raises for an unknown time zone
    IF TG_OP = 'INSERT' OR NEW.time_zone IS DISTINCT FROM OLD.time_zone
       OR NEW.intelligent_modes IS DISTINCT FROM OLD.intelligent_modes THEN
        INSERT INTO rollup_rebuilds (city) VALUES (NEW.city);
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER city_settings_check BEFORE INSERT OR UPDATE ON city_settings
FOR EACH ROW EXECUTE FUNCTION citytel_check_city_settings();

INSERT INTO city_settings (city) VALUES ('*'), ('jinan'), ('qingdao'), ('jining'), ('yantai');
DELETE FROM rollup_rebuilds;

-- The settings of every city: its own row, or the defaults.
CREATE FUNCTION citytel_city_settings(p_city text) RETURNS city_settings
LANGUAGE sql STABLE AS $$
    SELECT s FROM city_settings s WHERE s.city IN (p_city, '*')
    ORDER BY s.city = '*' LIMIT 1
$$;
