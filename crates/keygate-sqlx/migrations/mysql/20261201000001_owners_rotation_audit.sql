-- Owners and metadata (SPEC §10), rotation (§11), audit log (§13).
-- Additive only: existing rows keep every value; the new columns are NULL.
ALTER TABLE api_keys
    ADD COLUMN owner_id VARCHAR(256) NULL,
    ADD COLUMN meta JSON NULL,
    ADD COLUMN previous_key_hash VARCHAR(255) NULL,
    ADD COLUMN previous_secret_expires_at DATETIME(6) NULL,
    ADD INDEX ix_api_keys_owner_id (owner_id);

-- Append-only: no foreign key to api_keys, so a key's events outlive it.
CREATE TABLE IF NOT EXISTS api_key_events (
    id VARCHAR(32) NOT NULL,
    at DATETIME(6) NOT NULL,
    action VARCHAR(32) NOT NULL,
    key_id VARCHAR(64) NOT NULL,
    entity_id VARCHAR(36) NOT NULL,
    actor VARCHAR(256) NOT NULL,
    changes JSON NOT NULL,
    PRIMARY KEY (id),
    INDEX ix_api_key_events_entity (entity_id, at, id),
    INDEX ix_api_key_events_at (at, id)
) DEFAULT CHARACTER SET utf8mb4;
