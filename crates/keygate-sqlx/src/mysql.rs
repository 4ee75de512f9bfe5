//! MySQL / MariaDB: `DATETIME(6)` naive UTC times and `JSON` scopes.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use keygate::{ApiKey, AuditEvent, OrderBy, StoreError};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{MySql, Row};

use crate::codec::{clamp_i64, limits_to_json, list_to_json, object_to_json, scopes_to_json};
use crate::error::store_error;
use crate::query::{self, Dialect, SqlBuilder, Value};
use crate::schema::Schema;
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// A [`Repository`](keygate::Repository) on a MySQL or MariaDB pool.
#[derive(Debug, Clone)]
pub struct MySqlRepository {
    pool: MySqlPool,
    schema: Schema,
}

impl MySqlRepository {
    /// Wraps an existing pool.
    pub fn from_pool(pool: MySqlPool) -> Self {
        Self {
            pool,
            schema: Schema::default(),
        }
    }

    /// Connects to `mysql://…` or `mariadb://…`.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_owned(),
        };
        // sqlx sets the session time zone to UTC, so DATETIME values are
        // naive UTC as the Python library writes them.
        let connect = MySqlConnectOptions::from_str(&url)
            .map_err(|e| StoreError::InvalidConfig(format!("MySQL URL: {e}")))?
            .charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(10))
            .acquire_timeout(options.acquire_timeout);
        let pool = crate::ping_when_idle(pool, &options)
            .connect_with(connect)
            .await
            .map_err(store_error)?;
        Ok(Self {
            pool,
            schema: Schema::default(),
        })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Runs the embedded MySQL migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(crate::migrate_error)?;
        self.schema.migrated();
        Ok(())
    }

    /// Closes the pool; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

struct MySqlDialect;

impl Dialect for MySqlDialect {
    type DB = MySql;

    const COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, CAST(scopes AS CHAR) AS scopes, key_hash, key_secret_first, \
        key_secret_last, owner_id, CAST(meta AS CHAR) AS meta, previous_key_hash, \
        previous_secret_expires_at, CAST(rate_limits AS CHAR) AS rate_limits, \
        credits_remaining, credits_refill_amount, credits_refill_interval, \
        credits_last_refill_at";
    const LEGACY_COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, CAST(scopes AS CHAR) AS scopes, key_hash, key_secret_first, \
        key_secret_last, NULL AS owner_id, NULL AS meta, NULL AS previous_key_hash, \
        NULL AS previous_secret_expires_at, NULL AS rate_limits, NULL AS credits_remaining, \
        NULL AS credits_refill_amount, NULL AS credits_refill_interval, \
        NULL AS credits_last_refill_at";
    const PRE_LIMITS_COLUMNS: &'static str = "id, key_id, name, description, is_active, \
        created_at, last_used_at, expires_at, CAST(scopes AS CHAR) AS scopes, key_hash, \
        key_secret_first, key_secret_last, owner_id, CAST(meta AS CHAR) AS meta, \
        previous_key_hash, previous_secret_expires_at, NULL AS rate_limits, \
        NULL AS credits_remaining, NULL AS credits_refill_amount, \
        NULL AS credits_refill_interval, NULL AS credits_last_refill_at";
    const SCHEMA_PROBE: &'static str = "SELECT COUNT(*), \
        CAST(COALESCE(SUM(column_name IN ('owner_id', 'rate_limits')), 0) AS SIGNED) \
        FROM information_schema.columns \
        WHERE table_schema = DATABASE() AND table_name = 'api_keys'";
    const EVENT_COLUMNS: &'static str =
        "id, at, action, key_id, entity_id, actor, CAST(changes AS CHAR) AS changes";

    fn decode(row: &MySqlRow) -> Result<ApiKey, StoreError> {
        query::decode_row::<Self>(row)
    }
    fn decode_event(row: &MySqlRow) -> Result<AuditEvent, StoreError> {
        crate::events::decode_event::<Self>(row)
    }
    fn time(row: &MySqlRow, index: usize) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        row.try_get::<Option<NaiveDateTime>, _>(index)
            .map(|t| t.map(|n| n.and_utc()))
    }
    fn bind<'a>(qb: &mut SqlBuilder<'a, MySql>, value: Value<'a>) {
        match value {
            Value::Text(v) => qb.push_bind(v),
            Value::Bool(v) => qb.push_bind(v),
            Value::Time(v) => qb.push_bind(v.map(|t| t.naive_utc())),
            Value::Scopes(v) => qb.push_bind(scopes_to_json(v)),
            Value::Object(v) => qb.push_bind(v.map(object_to_json)),
            Value::RateLimits(v) => qb.push_bind(v.map(limits_to_json)),
            Value::Count(v) => qb.push_count(v),
        };
    }
    fn scopes_all(qb: &mut SqlBuilder<'_, MySql>, scopes: &[String]) {
        qb.push("JSON_CONTAINS(scopes, ");
        qb.push_bind(list_to_json(scopes));
        qb.push(")");
    }
    fn scopes_any(qb: &mut SqlBuilder<'_, MySql>, scopes: &[String]) {
        // One JSON_CONTAINS per scope: works on MySQL 5.7+ and every
        // MariaDB, unlike JSON_OVERLAPS.
        qb.push("(");
        for (i, scope) in scopes.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            qb.push("JSON_CONTAINS(scopes, ");
            qb.push_bind(list_to_json(std::slice::from_ref(scope)));
            qb.push(")");
        }
        qb.push(")");
    }
    fn name_like(qb: &mut SqlBuilder<'_, MySql>, pattern: String) {
        // Binary LIKE: exact characters (no accent folding from a _ci
        // collation) after lowercasing both sides.
        qb.push("CAST(LOWER(name) AS BINARY) LIKE CAST(");
        qb.push_bind(pattern);
        qb.push(" AS BINARY) ESCAPE '!'");
    }
    fn text_eq(qb: &mut SqlBuilder<'_, MySql>, column: &'static str, value: String) {
        // The collation's comparison first (it can use the column's index,
        // and finds a superset: case and trailing spaces ignored), then the
        // binary one: case- and trailing-space-sensitive.
        qb.push("(").push(column).push(" = ");
        qb.push_bind(value.clone());
        qb.push(" AND CAST(")
            .push(column)
            .push(" AS BINARY) = CAST(");
        qb.push_bind(value);
        qb.push(" AS BINARY))");
    }
    fn order_expr(column: OrderBy) -> &'static str {
        match column {
            OrderBy::Name => "CAST(name AS BINARY)",
            OrderBy::KeyId => "CAST(key_id AS BINARY)",
            other => other.as_str(),
        }
    }
    fn page(qb: &mut SqlBuilder<'_, MySql>, limit: Option<u64>, offset: u64) {
        // MySQL has no "no limit"; the largest value is its documented idiom.
        qb.push(" LIMIT ");
        qb.push_bind(limit.map_or(i64::MAX, clamp_i64));
        qb.push(" OFFSET ");
        qb.push_bind(clamp_i64(offset));
    }
}

crate::store_impls!(MySqlRepository, MySqlDialect);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{selected_names, COLUMN_NAMES};

    #[test]
    fn select_lists_follow_the_decoded_order() {
        assert_eq!(selected_names(MySqlDialect::COLUMNS), COLUMN_NAMES);
        assert_eq!(selected_names(MySqlDialect::LEGACY_COLUMNS), COLUMN_NAMES);
        assert_eq!(
            selected_names(MySqlDialect::PRE_LIMITS_COLUMNS),
            COLUMN_NAMES
        );
    }
}
