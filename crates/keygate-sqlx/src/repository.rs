//! `SqlRepository`: one type for the three backends, chosen by URL.

#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate::{
    ApiKey, ApiKeyFilter, Audit, AuditEvent, AuditLog, EventFilter, KeyChange, KeySearch, KeyStore,
    StoreError,
};

use crate::gate::Gate;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::gate::{GateTiming, Probe, ProbeError};
#[cfg(feature = "mysql")]
use crate::MySqlRepository;
#[cfg(feature = "postgres")]
use crate::PostgresRepository;
#[cfg(feature = "sqlite")]
use crate::SqliteRepository;
use crate::{Backend, SqlOptions};

/// A [`Repository`](keygate::Repository) on SQLite, PostgreSQL or MySQL/MariaDB, chosen by the
/// URL's scheme. Cheap to clone (the pool is shared).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use keygate::{KeyStore, StoreError};
/// use keygate_sqlx::SqlRepository;
/// let repo = SqlRepository::connect("sqlite::memory:").await.unwrap();
/// repo.migrate().await.unwrap();
/// repo.ping().await.unwrap();
/// repo.close().await;
/// assert!(matches!(repo.ping().await, Err(StoreError::Unavailable(_))));
/// # });
/// ```
///
/// On PostgreSQL and MySQL, a server that is down is noticed within about
/// 200 ms (see `gate.rs`): from then on every call fails at once with
/// [`StoreError::Unavailable`] instead of waiting for the pool's acquire
/// timeout, until the server accepts connections again (checked every
/// 100 ms).
#[derive(Debug, Clone)]
pub struct SqlRepository {
    inner: Inner,
    gate: Option<Gate>,
}

#[derive(Debug, Clone)]
enum Inner {
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteRepository),
    #[cfg(feature = "postgres")]
    Postgres(PostgresRepository),
    #[cfg(feature = "mysql")]
    MySql(MySqlRepository),
}

/// Calls the same method on whichever backend is inside.
macro_rules! dispatch {
    ($self:expr, $repo:ident => $call:expr) => {
        match &$self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite($repo) => $call,
            #[cfg(feature = "postgres")]
            Inner::Postgres($repo) => $call,
            #[cfg(feature = "mysql")]
            Inner::MySql($repo) => $call,
        }
    };
}

/// [`dispatch!`] through the gate, where there is one.
macro_rules! gated {
    ($self:expr, $repo:ident => $call:expr) => {
        match &$self.gate {
            Some(gate) => gate.run(async { dispatch!($self, $repo => $call) }).await,
            None => dispatch!($self, $repo => $call),
        }
    };
}

impl SqlRepository {
    /// Connects with default [`SqlOptions`]. URLs: `sqlite://path` (file
    /// created if missing), `sqlite::memory:`, `postgres://…`,
    /// `postgresql://…`, `mysql://…`, `mariadb://…`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, SqlOptions::default()).await
    }

    /// Connects with explicit pool settings. An unreachable server is
    /// [`StoreError::Unavailable`] after at most `acquire_timeout`.
    pub async fn connect_with(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        let inner = match Backend::from_url(url) {
            #[cfg(feature = "sqlite")]
            Some(Backend::Sqlite) => Inner::Sqlite(SqliteRepository::connect(url, options).await?),
            #[cfg(feature = "postgres")]
            Some(Backend::Postgres) => {
                Inner::Postgres(PostgresRepository::connect(url, options).await?)
            }
            #[cfg(feature = "mysql")]
            Some(Backend::MySql) => Inner::MySql(MySqlRepository::connect(url, options).await?),
            #[allow(unreachable_patterns)] // when every backend is compiled in
            Some(backend) => {
                let _ = options;
                return Err(StoreError::InvalidConfig(format!(
                    "keygate-sqlx was built without {backend} support: enable its feature `{backend}`"
                )));
            }
            None => {
                let scheme = url.split(':').next().unwrap_or_default();
                return Err(StoreError::InvalidConfig(format!(
                    "unsupported database URL scheme {scheme:?}: use sqlite://, postgres:// or mysql://"
                )));
            }
        };
        let gate: Option<Gate> = match &inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Inner::Postgres(r) => Some(Gate::new(
                probe::<sqlx::PgConnection>(&r.pool().connect_options()),
                GateTiming::default(),
            )),
            #[cfg(feature = "mysql")]
            Inner::MySql(r) => Some(Gate::new(
                probe::<sqlx::MySqlConnection>(&r.pool().connect_options()),
                GateTiming::default(),
            )),
        };
        Ok(Self { inner, gate })
    }

    /// Why the database is considered down, if it is (see the type's
    /// documentation).
    pub fn down(&self) -> Option<String> {
        self.gate.as_ref().and_then(Gate::down)
    }

    /// Runs the backend's embedded migrations. Safe on a database written
    /// by the Python library: existing rows are left exactly as they are.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, r => r.migrate().await)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            #[cfg(feature = "sqlite")]
            Inner::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Inner::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "mysql")]
            Inner::MySql(_) => Backend::MySql,
        }
    }

    /// The SQLite repository inside, if this is one (e.g. for its pool).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&self) -> Option<&SqliteRepository> {
        match &self.inner {
            Inner::Sqlite(r) => Some(r),
            #[allow(unreachable_patterns)] // when only sqlite is compiled in
            _ => None,
        }
    }

    /// The PostgreSQL repository inside, if this is one.
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&PostgresRepository> {
        match &self.inner {
            Inner::Postgres(r) => Some(r),
            #[allow(unreachable_patterns)] // when only postgres is compiled in
            _ => None,
        }
    }

    /// The MySQL repository inside, if this is one.
    #[cfg(feature = "mysql")]
    pub fn mysql(&self) -> Option<&MySqlRepository> {
        match &self.inner {
            Inner::MySql(r) => Some(r),
            #[allow(unreachable_patterns)] // when only mysql is compiled in
            _ => None,
        }
    }

    /// Closes the pool and waits for its connections to finish. Every later
    /// call fails with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        dispatch!(self, r => r.close().await)
    }
}

#[cfg(feature = "sqlite")]
impl From<SqliteRepository> for SqlRepository {
    fn from(repo: SqliteRepository) -> Self {
        Self {
            inner: Inner::Sqlite(repo),
            gate: None,
        }
    }
}

#[cfg(feature = "postgres")]
impl From<PostgresRepository> for SqlRepository {
    fn from(repo: PostgresRepository) -> Self {
        Self {
            inner: Inner::Postgres(repo),
            gate: None,
        }
    }
}

#[cfg(feature = "mysql")]
impl From<MySqlRepository> for SqlRepository {
    fn from(repo: MySqlRepository) -> Self {
        Self {
            inner: Inner::MySql(repo),
            gate: None,
        }
    }
}

#[async_trait]
impl KeyStore for SqlRepository {
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        gated!(self, r => r.get(id).await)
    }

    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        gated!(self, r => r.get_by_key_id(key_id).await)
    }

    async fn insert(&self, key: &ApiKey, audit: &Audit) -> Result<(), StoreError> {
        gated!(self, r => r.insert(key, audit).await)
    }

    async fn update(
        &self,
        id: &str,
        change: &KeyChange,
        audit: &Audit,
    ) -> Result<Option<ApiKey>, StoreError> {
        gated!(self, r => r.update(id, change, audit).await)
    }

    async fn delete(&self, id: &str, audit: &Audit) -> Result<Option<ApiKey>, StoreError> {
        gated!(self, r => r.delete(id, audit).await)
    }

    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<keygate::CreditUse, StoreError> {
        gated!(self, r => r.consume_credits(id, cost, now).await)
    }

    async fn consume_credits_batch(
        &self,
        id: &str,
        costs: &[u64],
        now: DateTime<Utc>,
    ) -> Result<Vec<keygate::CreditUse>, StoreError> {
        gated!(self, r => r.consume_credits_batch(id, costs, now).await)
    }

    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        gated!(self, r => r.touch(uses).await)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        gated!(self, r => r.ping().await)
    }
}

#[async_trait]
impl KeySearch for SqlRepository {
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        gated!(self, r => r.find(filter).await)
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        gated!(self, r => r.count(filter).await)
    }
}

#[async_trait]
impl AuditLog for SqlRepository {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        gated!(self, r => r.events(filter).await)
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        gated!(self, r => r.count_events(filter).await)
    }
}

/// A probe that opens a connection with `options` and closes it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn probe<C: sqlx::Connection>(options: &C::Options) -> Probe {
    let options = options.clone();
    Arc::new(move || {
        let options = options.clone();
        Box::pin(async move {
            let connection = C::connect_with(&options)
                .await
                .map_err(|e| ProbeError::from_sqlx(&e))?;
            let _ = connection.close().await;
            Ok(())
        })
    })
}
