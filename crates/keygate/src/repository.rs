//! The storage contract. The service depends only on this trait, so any
//! store (SQL, Redis-backed, your own) plugs in without changing it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::entity::ApiKey;
use crate::error::StoreError;
use crate::filter::ApiKeyFilter;

/// Where API keys live.
///
/// Every implementation must apply *all* criteria of an [`ApiKeyFilter`]
/// (scopes included) before `offset`/`limit`, so a page is full whenever
/// enough rows match and [`count`](Repository::count) equals the number of
/// matches. The conformance suite in `keygate-sqlx`'s tests checks this for
/// every store.
#[async_trait]
pub trait Repository: Send + Sync + 'static {
    /// Stores a new key. A duplicate id, key id or hash is
    /// [`StoreError::Conflict`].
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// The key with this entity id.
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The key with this key id (the hot path of verification).
    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Replaces the stored row with the same `id`, except that
    /// `last_used_at` only moves forward (as in [`touch`](Repository::touch)),
    /// so an update built from a stale read cannot undo a recorded use.
    /// Returns false when there is no such row.
    async fn update(&self, key: &ApiKey) -> Result<bool, StoreError>;

    /// Removes and returns the key with this id.
    async fn delete(&self, id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Keys matching `filter`, ordered and paged as it says.
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError>;

    /// How many keys match `filter` (ordering and paging ignored).
    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError>;

    /// Records uses: sets `last_used_at` to the given time for each id,
    /// unless the stored value is already later. Unknown ids are ignored.
    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
