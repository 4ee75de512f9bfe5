//! PostgreSQL: `timestamptz` times and `json` scopes (the Python library's
//! types), queried through `jsonb` operators.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use keygate::{ApiKey, ApiKeyFilter, OrderBy, Repository, StoreError};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::codec::{clamp_i64, list_to_json, scopes_from_json, scopes_to_json, sorted_uses};
use crate::error::{store_error, write_error};
use crate::query::{push_order_and_page, push_where, Dialect};
use crate::SqlOptions;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const COLUMNS: &str = "id, key_id, name, description, is_active, created_at, last_used_at, \
                       expires_at, scopes::text AS scopes, key_hash, key_secret_first, \
                       key_secret_last";

/// A [`Repository`] on a PostgreSQL pool. Several instances may share one
/// database.
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
}

impl PostgresRepository {
    /// Wraps an existing pool (e.g. one whose `after_connect` sets a
    /// `search_path`).
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects to `postgres://…` or `postgresql://…`.
    pub async fn connect(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidConfig(format!("PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(10))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(options.ping_before_use)
            .connect_with(connect)
            .await
            .map_err(store_error)?;
        Ok(Self { pool })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs the embedded PostgreSQL migrations (in the first schema of the
    /// connection's `search_path`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(crate::migrate_error)
    }

    /// Closes the pool; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn fetch_one_by(&self, column: &str, value: &str) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode).transpose()
    }
}

struct PgDialect;

impl Dialect for PgDialect {
    type DB = Postgres;

    fn bind_bool(qb: &mut QueryBuilder<'_, Postgres>, v: bool) {
        qb.push_bind(v);
    }
    fn bind_time(qb: &mut QueryBuilder<'_, Postgres>, v: DateTime<Utc>) {
        qb.push_bind(v);
    }
    fn scopes_all(qb: &mut QueryBuilder<'_, Postgres>, scopes: &[String]) {
        qb.push("scopes::jsonb @> ");
        qb.push_bind(list_to_json(scopes));
        qb.push("::jsonb");
    }
    fn scopes_any(qb: &mut QueryBuilder<'_, Postgres>, scopes: &[String]) {
        qb.push("scopes::jsonb ?| ");
        qb.push_bind(scopes.to_vec());
        qb.push("::text[]");
    }
    fn name_like(qb: &mut QueryBuilder<'_, Postgres>, pattern: String) {
        qb.push("lower(name) LIKE ");
        qb.push_bind(pattern);
        qb.push(" ESCAPE '!'");
    }
    fn name_eq(qb: &mut QueryBuilder<'_, Postgres>, name: String) {
        qb.push("name = ");
        qb.push_bind(name);
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
    fn page(qb: &mut QueryBuilder<'_, Postgres>, limit: Option<u64>, offset: u64) {
        // LIMIT NULL is "no limit".
        qb.push(" LIMIT ");
        qb.push_bind(limit.map(clamp_i64));
        qb.push(" OFFSET ");
        qb.push_bind(clamp_i64(offset));
    }
}

/// A `timestamptz`, or a naive `timestamp` read as UTC (older tables).
fn time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    match row.try_get::<Option<DateTime<Utc>>, _>(column) {
        Ok(t) => Ok(t),
        Err(sqlx::Error::ColumnDecode { .. }) => row
            .try_get::<Option<NaiveDateTime>, _>(column)
            .map(|t| t.map(|n| n.and_utc()))
            .map_err(store_error),
        Err(e) => Err(store_error(e)),
    }
}

fn decode(row: &PgRow) -> Result<ApiKey, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(store_error);
    let opt_text = |c: &str| row.try_get::<Option<String>, _>(c).map_err(store_error);
    Ok(ApiKey {
        id: text("id")?,
        key_id: text("key_id")?,
        name: opt_text("name")?,
        description: opt_text("description")?,
        is_active: row.try_get::<bool, _>("is_active").map_err(store_error)?,
        created_at: time(row, "created_at")?
            .ok_or_else(|| StoreError::Corrupt("created_at is NULL".into()))?,
        last_used_at: time(row, "last_used_at")?,
        expires_at: time(row, "expires_at")?,
        scopes: scopes_from_json(&text("scopes")?)?,
        key_hash: text("key_hash")?,
        key_secret_first: text("key_secret_first")?,
        key_secret_last: text("key_secret_last")?,
    })
}

#[async_trait]
impl Repository for PostgresRepository {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, description, is_active, expires_at, created_at, \
             last_used_at, key_id, key_hash, key_secret_first, key_secret_last, scopes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::json)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.is_active)
        .bind(key.expires_at)
        .bind(key.created_at)
        .bind(key.last_used_at)
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
            "UPDATE api_keys SET name = $1, description = $2, is_active = $3, expires_at = $4, \
             created_at = $5, \
             last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $6 THEN $6 ELSE last_used_at END, \
             key_id = $7, key_hash = $8, \
             key_secret_first = $9, key_secret_last = $10, scopes = $11::json WHERE id = $12",
        )
        .bind(&key.name)
        .bind(&key.description)
        .bind(key.is_active)
        .bind(key.expires_at)
        .bind(key.created_at)
        .bind(key.last_used_at)
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
        let sql = format!("DELETE FROM api_keys WHERE id = $1 RETURNING {COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(decode).transpose()
    }

    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM api_keys"));
        push_where::<PgDialect>(&mut qb, filter);
        push_order_and_page::<PgDialect>(&mut qb, filter);
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(decode).collect()
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM api_keys");
        push_where::<PgDialect>(&mut qb, filter);
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
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(at)
            .bind(id)
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
