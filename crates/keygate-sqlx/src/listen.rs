//! PostgreSQL push invalidation: every change a [`PostgresRepository`]
//! stores sends `NOTIFY keygate_key_changes, '<key id>'` inside its
//! transaction (so changes made by any process, the CLI included, are
//! announced, and only once committed); [`PgChangeListener`] receives them
//! and drops the key from one service's cache.
//!
//! [`PostgresRepository`]: crate::PostgresRepository

use std::time::Duration;

use keygate::Invalidator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Executor;
use tokio::task::JoinHandle;

/// The channel keygate's PostgreSQL changes are announced on; the payload
/// is the changed key's key id.
pub const CHANGES_CHANNEL: &str = "keygate_key_changes";

/// Quiet this long → the listener checks its connection with a query.
const IDLE_CHECK: Duration = Duration::from_secs(15);
/// Longest wait for a connection, a `LISTEN` or a check.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Listens on [`CHANGES_CHANNEL`] and passes each announced key id to an
/// [`Invalidator`].
///
/// It uses a connection of its own (not one of the repository's pool).
/// Whenever it (re)starts listening, announcements may have been missed
/// (its connection dropped, the database restarted), so it first calls
/// [`Invalidator::resync`]: every cached key is re-read on its next use.
/// A connection that went quiet is checked with a query every 15 s, so a
/// silently dead one is replaced too. It stops when the service is dropped.
#[derive(Debug, Clone)]
pub struct PgChangeListener {
    options: PgConnectOptions,
}

impl PgChangeListener {
    /// A listener connecting like `pool` (same server, user and options).
    pub fn new(pool: &PgPool) -> Self {
        Self {
            options: (*pool.connect_options()).clone(),
        }
    }

    /// Runs [`run`](Self::run) on a task of its own.
    pub fn spawn(self, invalidator: Invalidator) -> JoinHandle<()> {
        tokio::spawn(self.run(invalidator))
    }

    /// Listens until the invalidator's service is gone. Never fails: lost
    /// connections are retried (50 ms, doubling up to 1 s) and logged (see
    /// [`Invalidator::keep_listening`]).
    pub async fn run(self, invalidator: Invalidator) {
        let connect = || async { self.listen().await.map_err(|e| e.to_string()) };
        let receive = |mut listener: PgListener, invalidator: Invalidator| async move {
            receive(&mut listener, &invalidator).await
        };
        invalidator
            .keep_listening("PostgreSQL LISTEN", connect, receive)
            .await;
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        // A pool of one per attempt: dropping a listener then closes its
        // connection, whatever state a failure left it in.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ATTEMPT_TIMEOUT)
            .connect_lazy_with(self.options.clone());
        let attempt = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(CHANGES_CHANNEL).await?;
            Ok(listener)
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }
}

/// Passes notifications on until the connection is lost (or the service
/// is gone); says why it stopped.
async fn receive(listener: &mut PgListener, invalidator: &Invalidator) -> String {
    loop {
        let next = tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await;
        match next {
            Ok(Ok(Some(notification))) => {
                if !invalidator.key_changed(notification.payload()) {
                    return "service dropped".into();
                }
            }
            Ok(Ok(None)) => return "connection closed".into(),
            Ok(Err(e)) => return e.to_string(),
            // Quiet for a while: is the connection still there? (Should
            // the interrupted wait have lost anything, the check fails or
            // the reconnect that follows resyncs.)
            Err(_) => {
                let check = tokio::time::timeout(ATTEMPT_TIMEOUT, listener.execute("SELECT 1"));
                match check.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("connection check failed: {e}"),
                    Err(_) => return "connection check timed out".into(),
                }
            }
        }
    }
}
