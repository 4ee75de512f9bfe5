//! Push invalidation (SPEC §9): how a change made by one instance reaches
//! the verification caches of the others in milliseconds instead of one
//! cache TTL.
//!
//! Two halves, both optional:
//!
//! - a [`ChangePublisher`] ([`ServiceBuilder::change_publisher`]) that the
//!   service calls after each change it stores, to tell the others (Redis
//!   pub/sub in `keygate-redis`). A store can also announce changes itself,
//!   inside the change's transaction (PostgreSQL `NOTIFY` in `keygate-sqlx`),
//!   which then covers changes made by any process, the CLI included;
//! - a listener, which receives those announcements and calls the
//!   service's [`Invalidator`] ([`ApiKeyService::invalidator`]).
//!
//! A listener that lost its connection cannot know what it missed: it calls
//! [`Invalidator::resync`] once it listens again, so every cached key is
//! re-read from the store on its next use (without hashing it again). The
//! cache TTL stays the safety net: a key is never used unread for longer.
//!
//! [`ServiceBuilder::change_publisher`]: crate::ServiceBuilder::change_publisher
//! [`ApiKeyService::invalidator`]: crate::ApiKeyService::invalidator

use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::service::Inner;

/// Tells other instances that a key changed (SPEC §9 push invalidation).
///
/// The other half is a listener that receives the announcements and calls
/// [`Invalidator`]. A listener that lost its connection calls
/// [`Invalidator::resync`] once it listens again. The cache TTL stays the
/// safety net. A store may announce changes itself instead, inside the
/// change's transaction (PostgreSQL `NOTIFY` in `keygate-sqlx`), which
/// also covers changes made by other processes such as the CLI.
#[async_trait]
pub trait ChangePublisher: Send + Sync + 'static {
    /// Announces that the key with this key id changed (or was deleted).
    /// Called after the change is stored; an error is logged and never
    /// fails the change (the others then see it within their cache TTL).
    async fn publish(&self, key_id: &str) -> Result<(), StoreError>;

    /// A short name for logs, e.g. `redis`.
    fn name(&self) -> &'static str;
}

/// Applies announced changes to one service's verification cache. Holds
/// the service weakly: once every clone of the service is dropped, its
/// methods return `false`, which tells a listener to stop.
#[derive(Clone)]
pub struct Invalidator {
    pub(crate) inner: Weak<Inner>,
}

impl std::fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidator")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Invalidator {
    /// The key with this key id changed elsewhere: its next use re-reads it
    /// from the store (and hashes again only if its secret changed).
    /// `false` when the service is gone.
    pub fn key_changed(&self, key_id: &str) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        if let Some(cache) = &inner.cache {
            cache.expire(key_id);
        }
        true
    }

    /// Announcements may have been missed (the listener's connection
    /// dropped): every cached key is re-read on its next use. `false` when
    /// the service is gone.
    pub fn resync(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        if let Some(cache) = &inner.cache {
            cache.expire_all();
        }
        true
    }

    /// True once every clone of the service is dropped.
    pub fn is_closed(&self) -> bool {
        self.inner.strong_count() == 0
    }

    /// The loop every listener runs, for as long as the service lives:
    /// `connect` (to the feed named `feed` in logs) until it works, retrying
    /// after 50 ms, doubling up to 1 s; then [`resync`](Self::resync),
    /// because whatever was announced meanwhile is lost; then `receive`,
    /// which passes announcements to the invalidator it is given and
    /// returns why it stopped (a lost connection); then all over again.
    /// Failures are logged once per outage, and the return once.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate::{ApiKeyService, InMemoryRepository};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let invalidator = service.invalidator();
    /// // A feed that announces one key id, then the service goes away.
    /// let mut service = Some(service);
    /// invalidator
    ///     .keep_listening(
    ///         "example",
    ///         || async { Ok::<_, String>("connection") },
    ///         |_connection, invalidator| {
    ///             invalidator.key_changed("0123456789abcdef");
    ///             service.take(); // dropped: the loop ends
    ///             async { "connection closed".to_owned() }
    ///         },
    ///     )
    ///     .await;
    /// # });
    /// ```
    pub async fn keep_listening<C, Connect, Connecting, Receive, Receiving>(
        self,
        feed: &str,
        mut connect: Connect,
        mut receive: Receive,
    ) where
        Connect: FnMut() -> Connecting,
        Connecting: Future<Output = Result<C, String>>,
        Receive: FnMut(C, Invalidator) -> Receiving,
        Receiving: Future<Output = String>,
    {
        let mut retry = FIRST_RETRY;
        let mut failing_since: Option<tokio::time::Instant> = None;
        while !self.is_closed() {
            let connection = match connect().await {
                Ok(connection) => connection,
                Err(error) => {
                    if failing_since.is_none() {
                        failing_since = Some(tokio::time::Instant::now());
                        tracing::warn!(
                            feed,
                            %error,
                            "cannot listen for key changes: other instances' changes are seen by polling until it works"
                        );
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(LAST_RETRY);
                    continue;
                }
            };
            retry = FIRST_RETRY;
            if !self.resync() {
                return;
            }
            match failing_since.take() {
                Some(since) => tracing::info!(
                    feed,
                    after_ms = since.elapsed().as_millis() as u64,
                    "listening for key changes again; cached keys will be re-read"
                ),
                None => tracing::debug!(feed, "listening for key changes"),
            }
            let why = receive(connection, self.clone()).await;
            if self.is_closed() {
                return;
            }
            failing_since = Some(tokio::time::Instant::now());
            tracing::warn!(
                feed,
                reason = %why,
                "lost the connection for key changes: reconnecting; cached keys are re-read once it is back"
            );
        }
    }
}

/// Retry delays of [`Invalidator::keep_listening`] while a feed cannot be
/// reached: doubling up to 1 s.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(1);
