//! SQLite: the embedded default. Values are stored as the Python library
//! stores them (naive UTC text timestamps, 0/1 booleans, JSON text scopes).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use keygate::{is_valid_scope, ApiKey, AuditEvent, OrderBy, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::codec::{
    clamp_i64, limits_to_json, list_to_json, object_to_json, scopes_to_json, time_from_text,
    time_to_text,
};
use crate::error::store_error;
use crate::query::{self, Dialect, SqlBuilder, Value};
use crate::schema::Schema;
use crate::sqlite_fold;
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// A [`Repository`](keygate::Repository) on a SQLite pool.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use keygate::{ApiKeyFilter, KeySearch};
/// use keygate_sqlx::SqliteRepository;
/// let repo = SqliteRepository::connect("sqlite::memory:", Default::default()).await.unwrap();
/// repo.migrate().await.unwrap();
/// assert_eq!(repo.count(&ApiKeyFilter::default()).await.unwrap(), 0);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
    schema: Schema,
}

impl SqliteRepository {
    /// Wraps an existing pool. The caller is responsible for its settings;
    /// an in-memory database needs a single connection (or a shared cache)
    /// so every connection sees the same data, and every connection needs
    /// [`register_functions`](Self::register_functions) (e.g. in the pool's
    /// `after_connect`) for `name_contains` searches.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            schema: Schema::default(),
        }
    }

    /// Opens `sqlite://path` (the file is created if missing; WAL journal,
    /// busy timeout) or `sqlite::memory:` (one connection, kept open).
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidConfig(format!("SQLite URL: {e}")))?
            .create_if_missing(true)
            .busy_timeout(options.busy_timeout);
        if !memory {
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
        let pool = if memory {
            // One connection that never closes: an in-memory database lives
            // exactly as long as its connections.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            let default = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
            SqlitePoolOptions::new().max_connections(
                options
                    .max_connections
                    .unwrap_or(default.clamp(4, 16) as u32),
            )
        };
        let pool = pool
            .after_connect(|conn, _| Box::pin(sqlite_fold::register(conn)))
            .acquire_timeout(options.acquire_timeout)
            // A local file connection cannot go stale the way a network one
            // can; pinging it on every acquire doubled the cost of a read.
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(store_error)?;
        Ok(Self {
            pool,
            schema: Schema::default(),
        })
    }

    /// Registers the SQL functions keygate's queries use on one connection
    /// (`keygate_lower`, Unicode case folding for `name_contains`). Pools
    /// opened by [`connect`](Self::connect) do it for every connection.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate_sqlx::SqliteRepository;
    /// let pool = sqlx::sqlite::SqlitePoolOptions::new()
    ///     .max_connections(1)
    ///     .after_connect(|conn, _| Box::pin(SqliteRepository::register_functions(conn)))
    ///     .connect("sqlite::memory:")
    ///     .await
    ///     .unwrap();
    /// let repo = SqliteRepository::from_pool(pool);
    /// # repo.migrate().await.unwrap();
    /// # });
    /// ```
    pub async fn register_functions(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlite_fold::register(conn).await
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs the embedded SQLite migrations.
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

struct SqliteDialect;

impl Dialect for SqliteDialect {
    type DB = Sqlite;

    const COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, scopes, key_hash, key_secret_first, key_secret_last, \
        owner_id, meta, previous_key_hash, previous_secret_expires_at, rate_limits, \
        credits_remaining, credits_refill_amount, credits_refill_interval, credits_last_refill_at";
    const LEGACY_COLUMNS: &'static str = "id, key_id, name, description, is_active, created_at, \
        last_used_at, expires_at, scopes, key_hash, key_secret_first, key_secret_last, \
        NULL AS owner_id, NULL AS meta, NULL AS previous_key_hash, \
        NULL AS previous_secret_expires_at, NULL AS rate_limits, NULL AS credits_remaining, \
        NULL AS credits_refill_amount, NULL AS credits_refill_interval, \
        NULL AS credits_last_refill_at";
    const PRE_LIMITS_COLUMNS: &'static str = "id, key_id, name, description, is_active, \
        created_at, last_used_at, expires_at, scopes, key_hash, key_secret_first, \
        key_secret_last, owner_id, meta, previous_key_hash, previous_secret_expires_at, \
        NULL AS rate_limits, NULL AS credits_remaining, NULL AS credits_refill_amount, \
        NULL AS credits_refill_interval, NULL AS credits_last_refill_at";
    const SCHEMA_PROBE: &'static str =
        "SELECT COUNT(*), COUNT(CASE WHEN name IN ('owner_id', 'rate_limits') THEN 1 END) \
        FROM pragma_table_info('api_keys')";
    const EVENT_COLUMNS: &'static str = "id, at, action, key_id, entity_id, actor, changes";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const FOR_UPDATE: &'static str = "";
    // The bundled SQLite is 3.46 (RETURNING since 3.35).
    const UPDATE_RETURNING: bool = true;

    fn decode(row: &SqliteRow) -> Result<ApiKey, StoreError> {
        query::decode_row::<Self>(row)
    }
    fn decode_event(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
        crate::events::decode_event::<Self>(row)
    }
    fn time(row: &SqliteRow, index: usize) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        row.try_get::<Option<String>, _>(index)?
            .as_deref()
            .map(time_from_text)
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))
    }
    fn bind<'a>(qb: &mut SqlBuilder<'a, Sqlite>, value: Value<'a>) {
        match value {
            Value::Text(v) => qb.push_bind(v),
            Value::Bool(v) => qb.push_bind(v),
            Value::Time(v) => qb.push_bind(v.map(time_to_text)),
            Value::Scopes(v) => qb.push_bind(scopes_to_json(v)),
            Value::Object(v) => qb.push_bind(v.map(object_to_json)),
            Value::RateLimits(v) => qb.push_bind(v.map(limits_to_json)),
            Value::Count(v) => qb.push_count(v),
        };
    }
    fn scopes_all(qb: &mut SqlBuilder<'_, Sqlite>, scopes: &[String]) {
        // A substring test first skips the JSON parse for most rows (a valid
        // scope is never escaped in JSON, by keygate or by Python's
        // json.dumps); the json_each test after it is the exact one.
        if scopes.iter().all(|s| is_valid_scope(s)) {
            for scope in scopes {
                qb.push("instr(scopes, ");
                qb.push_bind(format!("\"{scope}\""));
                qb.push(") > 0 AND ");
            }
        }
        // Every wanted scope appears among the row's scopes.
        qb.push("NOT EXISTS (SELECT 1 FROM json_each(");
        qb.push_bind(list_to_json(scopes));
        qb.push(
            ") AS wanted WHERE wanted.value NOT IN \
             (SELECT held.value FROM json_each(api_keys.scopes) AS held))",
        );
    }
    fn scopes_any(qb: &mut SqlBuilder<'_, Sqlite>, scopes: &[String]) {
        if scopes.iter().all(|s| is_valid_scope(s)) {
            qb.push("(");
            for (i, scope) in scopes.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("instr(scopes, ");
                qb.push_bind(format!("\"{scope}\""));
                qb.push(") > 0");
            }
            qb.push(") AND ");
        }
        qb.push(
            "EXISTS (SELECT 1 FROM json_each(api_keys.scopes) AS held \
             WHERE held.value IN (SELECT value FROM json_each(",
        );
        qb.push_bind(list_to_json(scopes));
        qb.push(")))");
    }
    fn name_like(qb: &mut SqlBuilder<'_, Sqlite>, pattern: String) {
        qb.push(sqlite_fold::FOLD).push("(name) LIKE ");
        qb.push_bind(pattern);
        qb.push(" ESCAPE '!'");
    }
    fn text_eq(qb: &mut SqlBuilder<'_, Sqlite>, column: &'static str, value: String) {
        qb.push(column).push(" = ");
        qb.push_bind(value);
    }
    fn order_expr(column: OrderBy) -> &'static str {
        // BINARY collation: UTF-8 byte order, like Rust's `String` order.
        column.as_str()
    }
    fn page(qb: &mut SqlBuilder<'_, Sqlite>, limit: Option<u64>, offset: u64) {
        qb.push(" LIMIT ");
        qb.push_bind(limit.map_or(-1, clamp_i64));
        qb.push(" OFFSET ");
        qb.push_bind(clamp_i64(offset));
    }
}

crate::store_impls!(SqliteRepository, SqliteDialect);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{selected_names, COLUMN_NAMES};

    #[test]
    fn select_lists_follow_the_decoded_order() {
        assert_eq!(selected_names(SqliteDialect::COLUMNS), COLUMN_NAMES);
        assert_eq!(selected_names(SqliteDialect::LEGACY_COLUMNS), COLUMN_NAMES);
        assert_eq!(
            selected_names(SqliteDialect::PRE_LIMITS_COLUMNS),
            COLUMN_NAMES
        );
    }
}
