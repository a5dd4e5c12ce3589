-- API keys. A key is `ctk_<id>_<secret>`; only the id, a per-key salt and
-- HMAC-SHA256(salt, secret) are stored, so a copy of this table opens nothing.
-- A key is never deleted, only revoked, so its use stays traceable.
CREATE TABLE api_keys (
    id           text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}$'),
    name         text CHECK (length(name) <= 200),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    salt         bytea NOT NULL CHECK (octet_length(salt) = 16),
    secret_hash  bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Updated at most about once a minute per key, not per request.
    last_used_at timestamptz,
    revoked_at   timestamptz
);
