//! SQLite: the embedded default. Values are stored as the Python library
//! stores them (naive UTC text timestamps, 0/1 booleans, JSON text scopes).

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate::{is_valid_scope, ApiKey, ApiKeyFilter, OrderBy, Repository, StoreError};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::codec::{
    clamp_i64, list_to_json, scopes_from_json, scopes_to_json, sorted_uses, time_from_text,
    time_to_text,
};
use crate::error::{store_error, write_error};
use crate::query::{push_order_and_page, push_where, Dialect};
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

const COLUMNS: &str = "id, key_id, name, description, is_active, created_at, last_used_at, \
                       expires_at, scopes, key_hash, key_secret_first, key_secret_last";

/// A [`Repository`] on a SQLite pool.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use keygate::{ApiKeyFilter, Repository};
/// use keygate_sqlx::SqliteRepository;
/// let repo = SqliteRepository::connect("sqlite::memory:", Default::default()).await.unwrap();
/// repo.migrate().await.unwrap();
/// assert_eq!(repo.count(&ApiKeyFilter::default()).await.unwrap(), 0);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
}

impl SqliteRepository {
    /// Wraps an existing pool. The caller is responsible for its settings;
    /// an in-memory database needs a single connection (or a shared cache)
    /// so every connection sees the same data.
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
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
            .acquire_timeout(options.acquire_timeout)
            // A local file connection cannot go stale the way a network one
            // can; pinging it on every acquire doubled the cost of a read.
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(store_error)?;
        Ok(Self { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs the embedded SQLite migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(crate::migrate_error)
    }

    /// Closes the pool; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn fetch_one_by(&self, column: &str, value: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {column} = ?");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode).transpose()
    }
}

struct SqliteDialect;

impl Dialect for SqliteDialect {
    type DB = Sqlite;

    fn bind_bool(qb: &mut QueryBuilder<'_, Sqlite>, v: bool) {
        qb.push_bind(v);
    }
    fn bind_time(qb: &mut QueryBuilder<'_, Sqlite>, v: DateTime<Utc>) {
        qb.push_bind(time_to_text(v));
    }
    fn scopes_all(qb: &mut QueryBuilder<'_, Sqlite>, scopes: &[String]) {
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
    fn scopes_any(qb: &mut QueryBuilder<'_, Sqlite>, scopes: &[String]) {
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
    fn name_like(qb: &mut QueryBuilder<'_, Sqlite>, pattern: String) {
        qb.push("lower(name) LIKE ");
        qb.push_bind(pattern);
        qb.push(" ESCAPE '!'");
    }
    fn name_eq(qb: &mut QueryBuilder<'_, Sqlite>, name: String) {
        qb.push("name = ");
        qb.push_bind(name);
    }
    fn order_expr(column: OrderBy) -> &'static str {
        // BINARY collation: UTF-8 byte order, like Rust's `String` order.
        column.as_str()
    }
    fn page(qb: &mut QueryBuilder<'_, Sqlite>, limit: Option<u64>, offset: u64) {
        qb.push(" LIMIT ");
        qb.push_bind(limit.map_or(-1, clamp_i64));
        qb.push(" OFFSET ");
        qb.push_bind(clamp_i64(offset));
    }
}

fn decode(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(store_error);
    let opt_text = |c: &str| row.try_get::<Option<String>, _>(c).map_err(store_error);
    let opt_time = |c: &str| opt_text(c)?.as_deref().map(time_from_text).transpose();
    Ok(ApiKey {
        id: text("id")?,
        key_id: text("key_id")?,
        name: opt_text("name")?,
        description: opt_text("description")?,
        is_active: row.try_get::<bool, _>("is_active").map_err(store_error)?,
        created_at: time_from_text(&text("created_at")?)?,
        last_used_at: opt_time("last_used_at")?,
        expires_at: opt_time("expires_at")?,
        scopes: scopes_from_json(&text("scopes")?)?,
        key_hash: text("key_hash")?,
        key_secret_first: text("key_secret_first")?,
        key_secret_last: text("key_secret_last")?,
    })
}

#[async_trait]
impl Repository for SqliteRepository {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, description, is_active, expires_at, created_at, \
             last_used_at, key_id, key_hash, key_secret_first, key_secret_last, scopes) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.is_active)
        .bind(key.expires_at.map(time_to_text))
        .bind(time_to_text(key.created_at))
        .bind(key.last_used_at.map(time_to_text))
        .bind(&key.key_id)
        .bind(&key.key_hash)
        .bind(&key.key_secret_first)
        .bind(&key.key_secret_last)
        .bind(scopes_to_json(&key.scopes))
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, &key.key_id))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.fetch_one_by("id", id).await
    }

    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.fetch_one_by("key_id", key_id).await
    }

    async fn update(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET name = ?, description = ?, is_active = ?, expires_at = ?, \
             created_at = ?, \
             last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END, \
             key_id = ?, key_hash = ?, key_secret_first = ?, \
             key_secret_last = ?, scopes = ? WHERE id = ?",
        )
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.is_active)
        .bind(key.expires_at.map(time_to_text))
        .bind(time_to_text(key.created_at))
        .bind(key.last_used_at.map(time_to_text))
        .bind(key.last_used_at.map(time_to_text))
        .bind(&key.key_id)
        .bind(&key.key_hash)
        .bind(&key.key_secret_first)
        .bind(&key.key_secret_last)
        .bind(scopes_to_json(&key.scopes))
        .bind(&key.id)
        .execute(&self.pool)
        .await
        .map_err(|e| write_error(e, &key.key_id))?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("DELETE FROM api_keys WHERE id = ? RETURNING {COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode).transpose()
    }

    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM api_keys"));
        push_where::<SqliteDialect>(&mut qb, filter);
        push_order_and_page::<SqliteDialect>(&mut qb, filter);
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(decode).collect()
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM api_keys");
        push_where::<SqliteDialect>(&mut qb, filter);
        let n: i64 = qb
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(n.max(0) as u64)
    }

    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for (id, at) in sorted_uses(uses) {
            let at = time_to_text(*at);
            sqlx::query(
                "UPDATE api_keys SET last_used_at = ? \
                 WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            )
            .bind(&at)
            .bind(id)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
