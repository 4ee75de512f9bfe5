//! The storage contract, in three small traits split by purpose. The
//! service depends only on them, so any store (SQL, Redis-backed, your own)
//! plugs in without changing it.
//!
//! - [`KeyStore`]: the look-ups of the verification path and every change,
//!   each atomic and audited (7 methods, one with a default).
//! - [`KeySearch`]: filtered, ordered, paged listing (2 methods).
//! - [`AuditLog`]: reading the events the changes wrote (2 methods).
//!
//! [`Repository`] is all three; it is implemented for every type that
//! implements them. The conformance suite (`keygate::testing`, feature
//! `testing`) checks a store against this contract, races included.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{Audit, AuditEvent, EventFilter};
use crate::change::KeyChange;
use crate::entity::ApiKey;
use crate::error::StoreError;
use crate::filter::ApiKeyFilter;
use crate::limits::CreditUse;

/// Where keys live: the verification path's look-ups and the changes.
///
/// **Atomicity.** Each change method is one atomic operation in the store:
/// it applies to the row as stored at that moment (never to a copy the
/// caller read earlier), writes only the fields it changes, and appends its
/// audit event ([`Audit::event`]) in the same transaction, so a change
/// without its event, or an event without its change, cannot exist. A
/// failed change writes nothing.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The key with this entity id.
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The key with this key id (the hot path of verification).
    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Stores a new key and its `create` event. A duplicate id, key id or
    /// hash is [`StoreError::Conflict`] and stores nothing.
    async fn insert(&self, key: &ApiKey, audit: &Audit) -> Result<(), StoreError>;

    /// Applies `change` to the stored key `id` (see [`KeyChange::apply_to`])
    /// and appends the event for it, unless nothing changed. Returns the
    /// key as stored after the change, or `None` when there is no such key.
    /// A new hash taken by another key is [`StoreError::Conflict`].
    async fn update(
        &self,
        id: &str,
        change: &KeyChange,
        audit: &Audit,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Removes the key `id`, appends its `delete` event (kept after the key
    /// is gone), and returns what was removed.
    async fn delete(&self, id: &str, audit: &Audit) -> Result<Option<ApiKey>, StoreError>;

    /// Records uses: sets `last_used_at` to the given time for each id,
    /// unless the stored value is already later (it only moves forward).
    /// Unknown ids are ignored. Not audited.
    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;

    /// Takes `cost` credits from key `id` as one atomic operation on the
    /// stored row, with [`Credits::consume`](crate::Credits::consume)'s
    /// semantics: a refill due at `now` is applied first; the request needs
    /// `max(cost, 1)` credits; a refusal changes nothing. However many
    /// instances share the store, a key never gets more successes than it
    /// has credits. Not audited (it happens on every metered request).
    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<CreditUse, StoreError>;

    /// Takes credits for several requests of key `id` as **one** atomic
    /// operation: request `i` costs `costs[i]` and is decided as by
    /// [`consume_credits`](Self::consume_credits), after the requests before
    /// it (granted in order while credits last; a refused one takes
    /// nothing). Returns one [`CreditUse`] per request, in order.
    ///
    /// The service batches the requests of a busy metered key through this,
    /// so a store should override the default (one `consume_credits` per
    /// request: exact, but one round trip each) with a single transaction.
    async fn consume_credits_batch(
        &self,
        id: &str,
        costs: &[u64],
        now: DateTime<Utc>,
    ) -> Result<Vec<CreditUse>, StoreError> {
        let mut uses = Vec::with_capacity(costs.len());
        for &cost in costs {
            uses.push(self.consume_credits(id, cost, now).await?);
        }
        Ok(uses)
    }

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Search.
///
/// Every criterion of an [`ApiKeyFilter`] (scopes included) is applied
/// before `offset`/`limit`, so a page is full whenever enough rows match and
/// [`count`](KeySearch::count) equals the number of matches. The reference
/// semantics are [`ApiKeyFilter::matches`] and [`ApiKeyFilter::compare`].
#[async_trait]
pub trait KeySearch: Send + Sync + 'static {
    /// Keys matching `filter`, ordered and paged as it says.
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError>;

    /// How many keys match `filter` (ordering and paging ignored).
    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError>;
}

/// Reading the audit log. Events are append-only: nothing deletes them.
/// The reference semantics are [`EventFilter::matches`] and
/// [`EventFilter::compare`].
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Events matching `filter`, ordered and paged as it says.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError>;

    /// How many events match `filter` (ordering and paging ignored).
    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError>;
}

/// A complete store: [`KeyStore`] + [`KeySearch`] + [`AuditLog`].
/// Implemented for every type that implements the three.
pub trait Repository: KeyStore + KeySearch + AuditLog {}

impl<T: KeyStore + KeySearch + AuditLog> Repository for T {}
