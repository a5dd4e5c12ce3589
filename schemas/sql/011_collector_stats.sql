-- The collectors' own figures, readable from SQL (no Prometheus runs in the stack):
-- every CITYTEL_INGEST_STATS_INTERVAL_S seconds each collector adds one row with what
-- it did since its previous row (ingest/stats.py). Append-only; pruned with raw data
-- (CITYTEL_RETENTION_DAYS) by the collector's maintenance task.
CREATE TABLE collector_stats (
    collector_id   text NOT NULL,              -- CITYTEL_INGEST_CLIENT_ID
    ts             timestamptz NOT NULL,       -- end of the interval
    interval_s     double precision NOT NULL CHECK (interval_s > 0),
    received       bigint NOT NULL,            -- MQTT messages in committed batches
    committed_rows bigint NOT NULL,            -- rows inserted (telemetry, events, status)
    duplicates     bigint NOT NULL,            -- rows already stored
    dead_letters   bigint NOT NULL,            -- messages refused (stored in dead_letters)
    batches        bigint NOT NULL,            -- committed batches
    commit_avg_s   double precision,           -- batch write latency: the mean, exact;
    commit_p50_s   double precision,           -- median and 99th percentile interpolated in the
    commit_p99_s   double precision,           -- collector's histogram buckets (as Prometheus'
                                               -- histogram_quantile); all NULL without batches
    queue_depth    bigint NOT NULL,            -- messages received, not yet committed, at ts
    PRIMARY KEY (collector_id, ts)
);
CREATE INDEX collector_stats_ts ON collector_stats (ts);
