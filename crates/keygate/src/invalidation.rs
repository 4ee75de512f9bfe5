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

use std::sync::Weak;

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
}
