-- TimescaleDB storage: hypertables with 1-day chunks, compression after 7 days
-- segmented by device, retention by policy (days from the citytel.retention_days
-- setting the migrator passes).

CREATE TABLE pole_telemetry (LIKE citytel_shape.pole_telemetry INCLUDING ALL);
CREATE TABLE signal_telemetry (LIKE citytel_shape.signal_telemetry INCLUDING ALL);
CREATE TABLE energy_telemetry (LIKE citytel_shape.energy_telemetry INCLUDING ALL);

DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['pole_telemetry', 'signal_telemetry', 'energy_telemetry'] LOOP
        PERFORM create_hypertable(tbl::regclass, 'ts', chunk_time_interval => INTERVAL '1 day');
        EXECUTE format(
            'ALTER TABLE %I SET (timescaledb.compress, timescaledb.compress_segmentby = %L, '
            'timescaledb.compress_orderby = %L)', tbl, 'device_id', 'ts DESC');
        PERFORM add_compression_policy(tbl::regclass, INTERVAL '7 days');
        PERFORM add_retention_policy(
            tbl::regclass, make_interval(days => current_setting('citytel.retention_days')::int));
    END LOOP;
END
$$;
