-- A message whose decoding raised an unexpected exception is a dead letter too
-- (reason 'internal', the exception in the detail), never a reason to stop ingest.
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_reason_check;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_reason_check CHECK (reason IN (
    'invalid_json', 'schema', 'bad_topic', 'too_large', 'future_ts', 'device_mismatch',
    'unknown_device', 'registry_mismatch', 'rate_limited', 'internal'));
