-- Owners and metadata (SPEC §10), rotation (§11), audit log (§13).
-- Additive only: existing rows keep every value; the new columns are NULL.
ALTER TABLE api_keys ADD COLUMN owner_id VARCHAR(256);
ALTER TABLE api_keys ADD COLUMN meta TEXT;
ALTER TABLE api_keys ADD COLUMN previous_key_hash VARCHAR(255);
ALTER TABLE api_keys ADD COLUMN previous_secret_expires_at DATETIME;

CREATE INDEX IF NOT EXISTS ix_api_keys_owner_id ON api_keys (owner_id);

-- Append-only: no foreign key to api_keys, so a key's events outlive it.
CREATE TABLE IF NOT EXISTS api_key_events (
    id VARCHAR(32) NOT NULL PRIMARY KEY,
    at DATETIME NOT NULL,
    action VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    entity_id VARCHAR(36) NOT NULL,
    actor VARCHAR(256) NOT NULL,
    changes TEXT NOT NULL
);

-- One key's events in order; the whole log in order.
CREATE INDEX IF NOT EXISTS ix_api_key_events_entity ON api_key_events (entity_id, at, id);
CREATE INDEX IF NOT EXISTS ix_api_key_events_at ON api_key_events (at, id);
