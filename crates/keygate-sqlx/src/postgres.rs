//! PostgreSQL: `timestamptz` times and `json` scopes (the Python library's
//! types), queried through `jsonb` operators.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use keygate::{ApiKey, AuditEvent, OrderBy, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use crate::codec::{clamp_i64, limits_to_json, list_to_json, object_to_json, scopes_to_json};
use crate::error::store_error;
use crate::query::{self, Dialect, SqlBuilder, Value};
use crate::schema::Schema;
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A [`Repository`](keygate::Repository) on a PostgreSQL pool. Several instances may share one
/// database.
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
    schema: Schema,
}

impl PostgresRepository {
    /// Wraps an existing pool (e.g. one whose `after_connect` sets a
    /// `search_path`).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            schema: Schema::default(),
        }
    }

    /// Connects to `postgres://…` or `postgresql://…`.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidConfig(format!("PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
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
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs the embedded PostgreSQL migrations (in the first schema of the
    /// connection's `search_path`).
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

struct PgDialect;

impl Dialect for PgDialect {
    type DB = Postgres;

    const COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, scopes::text AS scopes, key_hash, key_secret_first, \
        key_secret_last, owner_id, meta::text AS meta, previous_key_hash, \
        previous_secret_expires_at, rate_limits::text AS rate_limits, credits_remaining, \
        credits_refill_amount, credits_refill_interval, credits_last_refill_at";
    const LEGACY_COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, scopes::text AS scopes, key_hash, key_secret_first, \
        key_secret_last, NULL::text AS owner_id, NULL::text AS meta, \
        NULL::text AS previous_key_hash, NULL::timestamptz AS previous_secret_expires_at, \
        NULL::text AS rate_limits, NULL::bigint AS credits_remaining, \
        NULL::bigint AS credits_refill_amount, NULL::text AS credits_refill_interval, \
        NULL::timestamptz AS credits_last_refill_at";
    const PRE_LIMITS_COLUMNS: &'static str = "id, key_id, name, description, is_active, \
        created_at, last_used_at, expires_at, scopes::text AS scopes, key_hash, \
        key_secret_first, key_secret_last, owner_id, meta::text AS meta, previous_key_hash, \
        previous_secret_expires_at, NULL::text AS rate_limits, \
        NULL::bigint AS credits_remaining, NULL::bigint AS credits_refill_amount, \
        NULL::text AS credits_refill_interval, NULL::timestamptz AS credits_last_refill_at";
    const SCHEMA_PROBE: &'static str = "SELECT COUNT(*), \
        COUNT(*) FILTER (WHERE column_name IN ('owner_id', 'rate_limits')) \
        FROM information_schema.columns \
        WHERE table_schema = current_schema() AND table_name = 'api_keys'";
    const EVENT_COLUMNS: &'static str =
        "id, at, action, key_id, entity_id, actor, changes::text AS changes";
    const UPDATE_RETURNING: bool = true;
    const NOTIFY: Option<&'static str> = Some("SELECT pg_notify('keygate_key_changes', ");

    fn decode(row: &PgRow) -> Result<ApiKey, StoreError> {
        query::decode_row::<Self>(row)
    }
    fn decode_event(row: &PgRow) -> Result<AuditEvent, StoreError> {
        crate::events::decode_event::<Self>(row)
    }
    fn time(row: &PgRow, index: usize) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        time(row, index)
    }
    fn bind<'a>(qb: &mut SqlBuilder<'a, Postgres>, value: Value<'a>) {
        match value {
            Value::Text(v) => qb.push_bind(v),
            Value::Bool(v) => qb.push_bind(v),
            Value::Time(v) => qb.push_bind(v),
            // The column is `json`, which a text parameter does not convert to.
            Value::Scopes(v) => qb.push_bind(scopes_to_json(v)).push("::json"),
            Value::Object(v) => qb.push_bind(v.map(object_to_json)).push("::jsonb"),
            Value::RateLimits(v) => qb.push_bind(v.map(limits_to_json)).push("::jsonb"),
            Value::Count(v) => qb.push_count(v),
        };
    }
    fn scopes_all(qb: &mut SqlBuilder<'_, Postgres>, scopes: &[String]) {
        qb.push("scopes::jsonb @> ");
        qb.push_bind(list_to_json(scopes));
        qb.push("::jsonb");
    }
    fn scopes_any(qb: &mut SqlBuilder<'_, Postgres>, scopes: &[String]) {
        qb.push("scopes::jsonb ?| ");
        qb.push_bind(scopes.to_vec());
        qb.push("::text[]");
    }
    fn name_like(qb: &mut SqlBuilder<'_, Postgres>, pattern: String) {
        qb.push("lower(name) LIKE ");
        qb.push_bind(pattern);
        qb.push(" ESCAPE '!'");
    }
    fn text_eq(qb: &mut SqlBuilder<'_, Postgres>, column: &'static str, value: String) {
        qb.push(column).push(" = ");
        qb.push_bind(value);
    }
    fn order_expr(column: OrderBy) -> &'static str {
        match column {
            // Byte order whatever the database's collation.
            OrderBy::Name => "name COLLATE \"C\"",
            OrderBy::KeyId => "key_id COLLATE \"C\"",
            other => other.as_str(),
        }
    }
    fn nulls_smallest(desc: bool) -> &'static str {
        if desc {
            " NULLS LAST"
        } else {
            " NULLS FIRST"
        }
    }
    fn page(qb: &mut SqlBuilder<'_, Postgres>, limit: Option<u64>, offset: u64) {
        // LIMIT NULL is "no limit".
        qb.push(" LIMIT ");
        qb.push_bind(limit.map(clamp_i64));
        qb.push(" OFFSET ");
        qb.push_bind(clamp_i64(offset));
    }
}

/// A `timestamptz`, or a naive `timestamp` read as UTC (older tables).
fn time(row: &PgRow, index: usize) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    match row.try_get::<Option<DateTime<Utc>>, _>(index) {
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<NaiveDateTime>, _>(index)
            .map(|t| t.map(|n| n.and_utc())),
        other => other,
    }
}

crate::store_impls!(PostgresRepository, PgDialect);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{selected_names, COLUMN_NAMES};

    #[test]
    fn select_lists_follow_the_decoded_order() {
        assert_eq!(selected_names(PgDialect::COLUMNS), COLUMN_NAMES);
        assert_eq!(selected_names(PgDialect::LEGACY_COLUMNS), COLUMN_NAMES);
        assert_eq!(selected_names(PgDialect::PRE_LIMITS_COLUMNS), COLUMN_NAMES);
    }
}
