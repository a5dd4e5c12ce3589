-- citytel contract v1: registry, device state, events, dead letters, and the
-- column shape of the telemetry tables (created per storage mode in 002).

CREATE TABLE devices (
    device_id            text PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN ('pole', 'signal', 'energy')),
    city                 text NOT NULL,
    district             text,
    name                 text,
    lat                  double precision,
    lon                  double precision,
    interval_s           double precision NOT NULL DEFAULT 60 CHECK (interval_s > 0),
    installed_at         timestamptz,
    functions            text[],
    intersection         text,
    arterial             boolean,
    site_type            text,
    pv_capacity_kw       double precision,
    storage_capacity_kwh double precision,
    registered_by        text NOT NULL DEFAULT 'import' CHECK (registered_by IN ('import', 'api', 'auto')),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_city_kind ON devices (city, kind);

CREATE TABLE device_status (
    device_id  text PRIMARY KEY,
    online     boolean,
    last_seen  timestamptz,
    status_ts  timestamptz,
    fw         text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE device_events (
    device_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    type        text NOT NULL,
    code        text NOT NULL,
    severity    text NOT NULL,
    message     text,
    seq         bigint,
    extra       jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts, type, code)
);
CREATE INDEX device_events_ts ON device_events (ts);

CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    reason      text NOT NULL CHECK (reason IN (
        'invalid_json', 'schema', 'bad_topic', 'too_large', 'future_ts', 'device_mismatch',
        'unknown_device', 'registry_mismatch', 'rate_limited')),
    detail      text,
    device_id   text,
    digest      bytea NOT NULL UNIQUE,
    replayed_at timestamptz
);
CREATE INDEX dead_letters_reason_received ON dead_letters (reason, received_at);

-- Unknown payload fields, counted per kind and name, so operators see firmware drift.
CREATE TABLE unknown_fields (
    kind       text NOT NULL,
    field      text NOT NULL,
    messages   bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, field)
);

-- Column shapes; 002 creates the real tables LIKE these, partitioned or as hypertables.
CREATE SCHEMA citytel_shape;

CREATE TABLE citytel_shape.pole_telemetry (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    seq           bigint,
    lamp_on       boolean,
    dim_pct       double precision,
    lamp_power_w  double precision,
    energy_kwh    double precision,
    pm25_ugm3     double precision,
    pm10_ugm3     double precision,
    noise_dba     double precision,
    temp_c        double precision,
    humidity_pct  double precision,
    cell_online   boolean,
    cell_ues      bigint,
    camera_online boolean,
    tilt_deg      double precision,
    door_open     boolean,
    extra         jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE citytel_shape.signal_telemetry (
    device_id     text NOT NULL,
    ts            timestamptz NOT NULL,
    seq           bigint,
    mode          text NOT NULL CHECK (mode IN ('off', 'flash', 'all_red', 'manual', 'fixed_time',
                                                'actuated', 'coordinated', 'adaptive')),
    plan_no       bigint,
    cycle_s       double precision,
    stage         bigint,
    offset_s      double precision,
    volume        bigint,
    occupancy_pct double precision,
    queue_m       double precision,
    extra         jsonb,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE citytel_shape.energy_telemetry (
    device_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    seq         bigint,
    pv_kw       double precision,
    wind_kw     double precision,
    load_kw     double precision,
    grid_kw     double precision,
    storage_kw  double precision,
    soc_pct     double precision,
    balance_ok  boolean,
    extra       jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, ts)
);
