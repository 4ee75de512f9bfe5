//! # keygate-sqlx
//!
//! [`keygate::Repository`] implementations on [sqlx] for SQLite (the
//! embedded default), PostgreSQL and MySQL/MariaDB, chosen by URL, with
//! migrations embedded per backend.
//!
//! Features pick the databases compiled in: `sqlite` (default), `postgres`,
//! `mysql`. A URL of a database left out is refused by
//! [`SqlRepository::connect`] with a message naming the feature.
//!
//! Every criterion of an [`keygate::ApiKeyFilter`], scopes included, runs in
//! SQL before `LIMIT`/`OFFSET`, so pages are full and counts exact. Stored
//! values use the formats of the Python library (keyshield), so a database
//! it wrote opens, verifies, and survives [`SqlRepository::migrate`]
//! unchanged.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use keygate::{ApiKeyService, NewApiKey, Pepper};
//! use keygate_sqlx::{Backend, SqlRepository};
//!
//! let repo = SqlRepository::connect("sqlite::memory:").await.unwrap();
//! repo.migrate().await.unwrap();
//! assert_eq!(repo.backend(), Backend::Sqlite);
//! let service = ApiKeyService::builder(repo)
//!     .pepper(Pepper::new("load-me-from-a-secret-store").unwrap())
//!     .fast_hashing()
//!     .build()
//!     .unwrap();
//! let (_, key) = service.create(NewApiKey::named("ci").with_scopes(["read"])).await.unwrap();
//! assert!(service.verify(key.expose(), &["read"]).await.is_ok());
//! # });
//! ```

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("keygate-sqlx needs at least one of its features `sqlite`, `postgres`, `mysql`");

mod codec;
mod error;
mod events;
// Only servers (PostgreSQL, MySQL) are gated; SQLite-only builds keep the
// type for `SqlRepository`'s field.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
mod gate;
#[cfg(feature = "postgres")]
mod listen;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod repository;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
// The one FFI call of the workspace's libraries: SQLite's C API to register
// a function (sqlx has no safe wrapper for it).
#[cfg(feature = "sqlite")]
#[allow(unsafe_code)]
mod sqlite_fold;
mod write;

use std::fmt;
use std::time::Duration;

use keygate::StoreError;

#[cfg(feature = "postgres")]
pub use listen::{PgChangeListener, CHANGES_CHANNEL};
#[cfg(feature = "mysql")]
pub use mysql::MySqlRepository;
#[cfg(feature = "postgres")]
pub use postgres::PostgresRepository;
pub use repository::SqlRepository;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteRepository;

/// The database behind a [`SqlRepository`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `sqlite://path` or `sqlite::memory:`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `mysql://…` or `mariadb://…`.
    MySql,
}

impl Backend {
    /// The backend a URL selects, from its scheme.
    ///
    /// ```
    /// use keygate_sqlx::Backend;
    /// assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
    /// assert_eq!(Backend::from_url("postgresql://db/keys"), Some(Backend::Postgres));
    /// assert_eq!(Backend::from_url("mariadb://db/keys"), Some(Backend::MySql));
    /// assert_eq!(Backend::from_url("redis://cache"), None);
    /// ```
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::MySql),
            _ => None,
        }
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pool settings for [`SqlRepository::connect_with`].
///
/// ```
/// use std::time::Duration;
/// use keygate_sqlx::SqlOptions;
/// let options = SqlOptions { max_connections: Some(4), ..SqlOptions::default() };
/// assert_eq!(options.acquire_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// Pool size. Default: 10 for PostgreSQL and MySQL; for a SQLite file
    /// twice the cores (4 to 16); an in-memory SQLite database always uses
    /// exactly one connection.
    pub max_connections: Option<u32>,
    /// How long a call waits for a connection (also bounds connecting)
    /// before failing with [`StoreError::Unavailable`]. Default 5 s.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a write waits for the database lock. Default 5 s.
    pub busy_timeout: Duration,
    /// PostgreSQL and MySQL: ping a pooled connection before use when it
    /// has been idle for [`ping_idle_after`](Self::ping_idle_after) or
    /// longer (default true). Off, a connection broken while it sat idle
    /// (a server restart, a firewall's idle timeout) fails one call (503)
    /// before the pool replaces it. SQLite never pings: a local file
    /// connection does not go stale.
    pub ping_before_use: bool,
    /// How long a connection may sit idle and still be used without a
    /// ping first. Default 1 s: a busy pool's connections, each used
    /// within the last second, save the ping's network round trip on
    /// every store call (a third more credit-metered requests per second
    /// on PostgreSQL); `Duration::ZERO` pings before every use.
    pub ping_idle_after: Duration,
}

/// Default [`SqlOptions::ping_idle_after`].
pub const DEFAULT_PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// `pool` checking its connections as [`SqlOptions::ping_before_use`] and
/// [`SqlOptions::ping_idle_after`] say: sqlx's own test pings before every
/// use; this one only before the use of a connection that sat idle. A
/// failed ping makes the pool drop the connection and use (or open)
/// another, as its own test does.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn ping_when_idle<DB: sqlx::Database>(
    pool: sqlx::pool::PoolOptions<DB>,
    options: &SqlOptions,
) -> sqlx::pool::PoolOptions<DB> {
    let (enabled, idle_after) = (options.ping_before_use, options.ping_idle_after);
    pool.test_before_acquire(false)
        .before_acquire(move |connection, meta| {
            let ping = enabled && meta.idle_for >= idle_after;
            Box::pin(async move {
                if !ping {
                    return Ok(true);
                }
                match sqlx::Connection::ping(connection).await {
                    Ok(()) => Ok(true),
                    Err(error) => {
                        tracing::info!(%error, "a pooled connection did not answer its ping: replaced");
                        Ok(false)
                    }
                }
            })
        })
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            ping_before_use: true,
            ping_idle_after: DEFAULT_PING_IDLE_AFTER,
        }
    }
}

/// The storage traits for one backend's repository type, on its pool,
/// through the statements of `query` in its dialect.
macro_rules! store_impls {
    ($repo:ty, $dialect:ty) => {
        #[async_trait::async_trait]
        impl keygate::KeyStore for $repo {
            async fn get(&self, id: &str) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
                let columns = self.schema.columns::<$dialect>(&self.pool).await?;
                crate::query::select_by::<$dialect>(&self.pool, columns, "id", id).await
            }
            async fn get_by_key_id(
                &self,
                key_id: &str,
            ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
                let columns = self.schema.columns::<$dialect>(&self.pool).await?;
                crate::query::select_by::<$dialect>(&self.pool, columns, "key_id", key_id).await
            }
            async fn insert(
                &self,
                key: &keygate::ApiKey,
                audit: &keygate::Audit,
            ) -> Result<(), keygate::StoreError> {
                self.schema.writable::<$dialect>(&self.pool).await?;
                crate::write::insert::<$dialect>(&self.pool, key, audit).await
            }
            async fn update(
                &self,
                id: &str,
                change: &keygate::KeyChange,
                audit: &keygate::Audit,
            ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
                self.schema.writable::<$dialect>(&self.pool).await?;
                crate::write::update::<$dialect>(&self.pool, id, change, audit).await
            }
            async fn delete(
                &self,
                id: &str,
                audit: &keygate::Audit,
            ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
                self.schema.writable::<$dialect>(&self.pool).await?;
                crate::write::delete::<$dialect>(&self.pool, id, audit).await
            }
            async fn consume_credits(
                &self,
                id: &str,
                cost: u64,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<keygate::CreditUse, keygate::StoreError> {
                self.schema.writable::<$dialect>(&self.pool).await?;
                crate::write::consume_credits::<$dialect>(&self.pool, id, cost, now).await
            }
            async fn consume_credits_batch(
                &self,
                id: &str,
                costs: &[u64],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<keygate::CreditUse>, keygate::StoreError> {
                self.schema.writable::<$dialect>(&self.pool).await?;
                crate::write::consume_batch::<$dialect>(&self.pool, id, costs, now).await
            }
            async fn touch(
                &self,
                uses: &[(String, chrono::DateTime<chrono::Utc>)],
            ) -> Result<(), keygate::StoreError> {
                crate::query::touch::<$dialect>(&self.pool, uses).await
            }
            async fn ping(&self) -> Result<(), keygate::StoreError> {
                crate::query::ping::<$dialect>(&self.pool).await
            }
        }

        #[async_trait::async_trait]
        impl keygate::KeySearch for $repo {
            async fn find(
                &self,
                filter: &keygate::ApiKeyFilter,
            ) -> Result<Vec<keygate::ApiKey>, keygate::StoreError> {
                let columns = self.schema.columns::<$dialect>(&self.pool).await?;
                crate::query::find::<$dialect>(&self.pool, columns, filter).await
            }
            async fn count(
                &self,
                filter: &keygate::ApiKeyFilter,
            ) -> Result<u64, keygate::StoreError> {
                crate::query::count::<$dialect>(&self.pool, filter).await
            }
        }

        #[async_trait::async_trait]
        impl keygate::AuditLog for $repo {
            async fn events(
                &self,
                filter: &keygate::EventFilter,
            ) -> Result<Vec<keygate::AuditEvent>, keygate::StoreError> {
                crate::events::events::<$dialect>(&self.pool, filter).await
            }
            async fn count_events(
                &self,
                filter: &keygate::EventFilter,
            ) -> Result<u64, keygate::StoreError> {
                crate::events::count_events::<$dialect>(&self.pool, filter).await
            }
        }
    };
}
pub(crate) use store_impls;

pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => error::store_error(e),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}
