//! The web dashboard at `/ui` (on unless `--no-dashboard`): its sessions
//! live in the keys' database, in the table `keygate_ui_sessions`, so any
//! instance serves any session.

use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use keygate::ApiKeyService;
use keygate_axum::dashboard::Dashboard;
use keygate_sqlx::SqlRepository;
use tower_sessions::{ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::sqlx::{self, query_scalar};
use tower_sessions_sqlx_store::{MySqlStore, PostgresStore, SqliteStore};

use crate::cli::ServeArgs;

/// The sessions' table, beside keygate's own.
pub(super) const SESSION_TABLE: &str = "keygate_ui_sessions";
/// How often expired sessions are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(5 * 60);

/// The dashboard's routes, with its session table created if missing and
/// the sweep of expired sessions started. `None` with `--no-dashboard`.
pub(super) async fn mount(
    args: &ServeArgs,
    repo: &SqlRepository,
    service: &ApiKeyService,
) -> Result<Option<Router>> {
    if args.no_dashboard {
        return Ok(None);
    }
    let dashboard = Dashboard::new(service.clone())
        .idle_timeout(Duration::from_secs(args.ui_idle_timeout.saturating_mul(60)))
        .secure_cookies(!args.ui_insecure_cookies);
    let router = if let Some(sqlite) = repo.sqlite() {
        let store = SqliteStore::new(sqlite.pool().clone())
            .with_table_name(SESSION_TABLE)
            .map_err(anyhow::Error::msg)?;
        start(dashboard, store).await?
    } else if let Some(pg) = repo.postgres() {
        // The schema keygate's tables are in (the connection's search path).
        let schema = query_scalar::<_, Option<String>>("select current_schema()")
            .fetch_one(pg.pool())
            .await
            .context(SCHEMA)?
            .unwrap_or_else(|| "public".to_owned());
        let store = PostgresStore::new(pg.pool().clone())
            .with_schema_name(&schema)
            .and_then(|s| s.with_table_name(SESSION_TABLE))
            .map_err(anyhow::Error::msg)?;
        start(dashboard, store).await?
    } else if let Some(my) = repo.mysql() {
        let schema = query_scalar::<_, Option<String>>("select database()")
            .fetch_one(my.pool())
            .await
            .context(SCHEMA)?
            .context("the MySQL URL names no database")?;
        let store = MySqlStore::new(my.pool().clone())
            .with_schema_name(&schema)
            .and_then(|s| s.with_table_name(SESSION_TABLE))
            .map_err(anyhow::Error::msg)?;
        start(dashboard, store).await?
    } else {
        anyhow::bail!("the dashboard needs a SQL store for its sessions (use --no-dashboard)");
    };
    if args.ui_insecure_cookies {
        tracing::warn!(
            "--ui-insecure-cookies: the dashboard's session cookie is sent without `Secure`; \
             use it only on a trusted network"
        );
    }
    Ok(Some(router))
}

const MIGRATE: &str = "cannot create the dashboard's session table";
const SCHEMA: &str = "cannot read the database's current schema";

/// A session store that can create its own table.
trait SessionTable: SessionStore + ExpiredDeletion + Clone {
    /// Creates the table (and schema) if missing.
    async fn create_table(&self) -> sqlx::Result<()>;
}

/// Each store's own `migrate`, which is not part of a trait.
macro_rules! session_table {
    ($($store:ty),*) => {$(
        impl SessionTable for $store {
            async fn create_table(&self) -> sqlx::Result<()> {
                self.migrate().await
            }
        }
    )*};
}
session_table!(SqliteStore, PostgresStore, MySqlStore);

/// Creates the session table if missing, starts the sweep of expired
/// sessions and returns the dashboard's routes on `store`.
async fn start<S: SessionTable>(dashboard: Dashboard, store: S) -> Result<Router> {
    store.create_table().await.context(MIGRATE)?;
    sweep(store.clone());
    Ok(dashboard.router(store))
}

/// Deletes expired sessions every [`SWEEP_EVERY`]; a failure is logged and
/// the next round tries again (the store's own loop would stop for good).
fn sweep<S: ExpiredDeletion + Clone>(store: S) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "cannot delete expired dashboard sessions");
            }
        }
    });
}
