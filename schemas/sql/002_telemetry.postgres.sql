-- Plain PostgreSQL storage: native range partitioning by UTC day.
-- Partitions are created ahead and dropped for retention by the collector's
-- maintenance task; a row for a day without a partition makes the writer call
-- citytel_ensure_partitions() and retry.

CREATE TABLE pole_telemetry (LIKE citytel_shape.pole_telemetry INCLUDING ALL) PARTITION BY RANGE (ts);
CREATE TABLE signal_telemetry (LIKE citytel_shape.signal_telemetry INCLUDING ALL) PARTITION BY RANGE (ts);
CREATE TABLE energy_telemetry (LIKE citytel_shape.energy_telemetry INCLUDING ALL) PARTITION BY RANGE (ts);

CREATE FUNCTION citytel_partition_name(parent regclass, day date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT parent::text || '_p' || to_char(day, 'YYYYMMDD')
$$;

-- Create one partition per UTC day in `days` that does not exist yet; returns how many.
CREATE FUNCTION citytel_ensure_partitions(parent regclass, days date[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('citytel_partitions'), parent::oid::integer);
    FOREACH day IN ARRAY days LOOP
        IF to_regclass(citytel_partition_name(parent, day)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                citytel_partition_name(parent, day), parent,
                (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- Drop the partitions whose whole day lies before `cutoff`; returns how many.
CREATE FUNCTION citytel_drop_partitions_before(parent regclass, cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('citytel_partitions'), parent::oid::integer);
    FOR part IN
        SELECT c.oid::regclass AS name, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent AND c.relname ~ '_p[0-9]{8}$'
    LOOP
        IF part.day < cutoff THEN
            EXECUTE format('DROP TABLE %s', part.name);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;
