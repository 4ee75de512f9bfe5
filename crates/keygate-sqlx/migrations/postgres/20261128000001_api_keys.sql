-- The table exactly as the Python library (keyshield / fastapi-api-key) creates
-- it on PostgreSQL (timestamptz, json scopes), so a database it wrote is
-- already at this version and no row changes. Later migrations add columns.
CREATE TABLE IF NOT EXISTS api_keys (
    id VARCHAR(36) NOT NULL,
    name VARCHAR(128),
    description TEXT,
    is_active BOOLEAN NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_used_at TIMESTAMP WITH TIME ZONE,
    key_id VARCHAR(16) NOT NULL,
    key_hash VARCHAR(255) NOT NULL,
    key_secret_first VARCHAR(4) NOT NULL,
    key_secret_last VARCHAR(4) NOT NULL,
    scopes JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key_hash)
);

-- Same name as the Python library's index, so it is not created twice.
CREATE UNIQUE INDEX IF NOT EXISTS ix_api_keys_key_id ON api_keys (key_id);

-- The default listing order (newest first, ties by id).
CREATE INDEX IF NOT EXISTS ix_api_keys_created_at_id ON api_keys (created_at, id);

-- Scope filters (`@>` for all-of, `?|` for any-of) on the jsonb view of the
-- json column; the column itself stays json for the Python library.
CREATE INDEX IF NOT EXISTS ix_api_keys_scopes ON api_keys USING gin ((scopes::jsonb));
