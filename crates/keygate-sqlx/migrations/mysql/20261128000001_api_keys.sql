-- The table as the Python library (keyshield / fastapi-api-key) creates it on
-- MySQL/MariaDB (DATETIME(6) naive UTC, JSON scopes), so a database it wrote
-- is already at this version and no row changes. Later migrations add columns.
CREATE TABLE IF NOT EXISTS api_keys (
    id VARCHAR(36) NOT NULL,
    name VARCHAR(128) NULL,
    description TEXT NULL,
    is_active BOOLEAN NOT NULL,
    expires_at DATETIME(6) NULL,
    created_at DATETIME(6) NOT NULL,
    last_used_at DATETIME(6) NULL,
    key_id VARCHAR(16) NOT NULL,
    key_hash VARCHAR(255) NOT NULL,
    key_secret_first VARCHAR(4) NOT NULL,
    key_secret_last VARCHAR(4) NOT NULL,
    scopes JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key_hash),
    UNIQUE INDEX ix_api_keys_key_id (key_id)
) DEFAULT CHARACTER SET utf8mb4;

-- MySQL has no CREATE INDEX IF NOT EXISTS: add the listing-order index only
-- when a table written by the Python library lacks it.
SET @keygate_ddl = (
    SELECT IF(COUNT(*) = 0,
              'CREATE INDEX ix_api_keys_created_at_id ON api_keys (created_at, id)',
              'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE()
      AND table_name = 'api_keys'
      AND index_name = 'ix_api_keys_created_at_id'
);
PREPARE keygate_stmt FROM @keygate_ddl;
EXECUTE keygate_stmt;
DEALLOCATE PREPARE keygate_stmt;
