//! MySQL / MariaDB: `DATETIME(6)` naive UTC times and `JSON` scopes.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use keygate::{ApiKey, ApiKeyFilter, OrderBy, Repository, StoreError};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{MySql, Row};

use crate::codec::{clamp_i64, list_to_json, scopes_to_json};
use crate::error::store_error;
use crate::query::{self, Dialect, SqlBuilder, Value};
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// A [`Repository`] on a MySQL or MariaDB pool.
#[derive(Debug, Clone)]
pub struct MySqlRepository {
    pool: MySqlPool,
}

impl MySqlRepository {
    /// Wraps an existing pool.
    pub fn from_pool(pool: MySqlPool) -> Self {
        Self { pool }
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
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(options.ping_before_use)
            .connect_with(connect)
            .await
            .map_err(store_error)?;
        Ok(Self { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Runs the embedded MySQL migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(crate::migrate_error)
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
        key_secret_last";

    fn decode(row: &MySqlRow) -> Result<ApiKey, StoreError> {
        query::decode_row(row, |row, c| {
            row.try_get::<Option<NaiveDateTime>, _>(c)
                .map(|t| t.map(|n| n.and_utc()))
                .map_err(store_error)
        })
    }
    fn bind<'a>(qb: &mut SqlBuilder<'a, MySql>, value: Value<'a>) {
        match value {
            Value::Text(v) => qb.push_bind(v),
            Value::Bool(v) => qb.push_bind(v),
            Value::Time(v) => qb.push_bind(v.map(|t| t.naive_utc())),
            Value::Scopes(v) => qb.push_bind(scopes_to_json(v)),
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
    fn name_eq(qb: &mut SqlBuilder<'_, MySql>, name: String) {
        // Binary comparison: case- and trailing-space-sensitive.
        qb.push("CAST(name AS BINARY) = CAST(");
        qb.push_bind(name);
        qb.push(" AS BINARY)");
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

#[async_trait]
impl Repository for MySqlRepository {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        query::insert::<MySqlDialect>(&self.pool, key).await
    }

    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        query::select_by::<MySqlDialect>(&self.pool, "id", id).await
    }

    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        query::select_by::<MySqlDialect>(&self.pool, "key_id", key_id).await
    }

    async fn update(&self, key: &ApiKey) -> Result<bool, StoreError> {
        // sqlx connects with CLIENT_FOUND_ROWS: rows_affected counts matched
        // rows, so an update that changes nothing still reports the row.
        let done = query::update::<MySqlDialect>(&self.pool, key).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        // MySQL has no DELETE … RETURNING: lock, read, delete, commit.
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let sql = format!(
            "SELECT {} FROM api_keys WHERE id = ? FOR UPDATE",
            MySqlDialect::COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let key = MySqlDialect::decode(&row)?;
        sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(key))
    }

    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        query::find::<MySqlDialect>(&self.pool, filter).await
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        query::count::<MySqlDialect>(&self.pool, filter).await
    }

    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        query::touch::<MySqlDialect>(&self.pool, uses).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        query::ping::<MySqlDialect>(&self.pool).await
    }
}
