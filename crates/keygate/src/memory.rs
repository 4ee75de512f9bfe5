//! A thread-safe in-memory store: for tests, examples and single-process
//! deployments that load their keys at start.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{Audit, AuditEvent, EventFilter};
use crate::change::KeyChange;
use crate::entity::ApiKey;
use crate::error::StoreError;
use crate::filter::ApiKeyFilter;
use crate::limits::CreditUse;
use crate::repository::{AuditLog, KeySearch, KeyStore};

#[derive(Default)]
struct Tables {
    by_id: HashMap<String, ApiKey>,
    /// key_id → id, for O(1) verification look-ups.
    by_key_id: HashMap<String, String>,
    /// Every stored key_hash: unique, as in the SQL schemas.
    hashes: HashSet<String>,
    /// The audit log, in append order.
    events: Vec<AuditEvent>,
}

/// Keys in a `HashMap` behind a read-write lock.
///
/// ```
/// # tokio_test_block(async {
/// use keygate::{ApiKeyService, InMemoryRepository, NewApiKey};
/// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let (entity, key) = service.create(NewApiKey::named("demo")).await.unwrap();
/// assert_eq!(service.verify(key.expose(), &["read"; 0]).await.unwrap().id, entity.id);
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Default)]
pub struct InMemoryRepository {
    tables: RwLock<Tables>,
}

/// How many keys and events it holds; never a key or a hash.
impl std::fmt::Debug for InMemoryRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables = self.read();
        f.debug_struct("InMemoryRepository")
            .field("keys", &tables.by_id.len())
            .field("events", &tables.events.len())
            .finish()
    }
}

impl InMemoryRepository {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // Every check that can fail runs before the first write under the
        // lock, so a panic cannot leave the maps half-changed: poison is
        // ignored.
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Tables {
    fn check_free(&self, key: &ApiKey) -> Result<(), StoreError> {
        if self.by_id.contains_key(&key.id) {
            return Err(StoreError::Conflict(format!(
                "an API key with id {} exists",
                key.id
            )));
        }
        if self.by_key_id.contains_key(&key.key_id) {
            return Err(StoreError::Conflict(format!(
                "an API key with key_id {} exists",
                key.key_id
            )));
        }
        if self.hashes.contains(&key.key_hash) {
            return Err(hash_conflict());
        }
        Ok(())
    }
}

#[async_trait]
impl KeyStore for InMemoryRepository {
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.read().by_id.get(id).cloned())
    }

    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let t = self.read();
        Ok(t.by_key_id
            .get(key_id)
            .and_then(|id| t.by_id.get(id))
            .cloned())
    }

    async fn insert(&self, key: &ApiKey, audit: &Audit) -> Result<(), StoreError> {
        let mut t = self.write();
        t.check_free(key)?;
        t.by_key_id.insert(key.key_id.clone(), key.id.clone());
        t.hashes.insert(key.key_hash.clone());
        t.by_id.insert(key.id.clone(), key.clone());
        t.events.extend(audit.event(None, Some(key)));
        Ok(())
    }

    async fn update(
        &self,
        id: &str,
        change: &KeyChange,
        audit: &Audit,
    ) -> Result<Option<ApiKey>, StoreError> {
        // One write lock from read to write: the change applies to the
        // stored row, never to a stale copy.
        let mut t = self.write();
        let Some(old) = t.by_id.get(id) else {
            return Ok(None);
        };
        let new = change.apply_to(old);
        let event = audit.event(Some(old), Some(&new));
        let old_hash = old.key_hash.clone();
        if new.key_hash != old_hash {
            if t.hashes.contains(&new.key_hash) {
                return Err(hash_conflict());
            }
            t.hashes.remove(&old_hash);
            t.hashes.insert(new.key_hash.clone());
        }
        t.by_id.insert(new.id.clone(), new.clone());
        t.events.extend(event);
        Ok(Some(new))
    }

    async fn delete(&self, id: &str, audit: &Audit) -> Result<Option<ApiKey>, StoreError> {
        let mut t = self.write();
        let removed = t.by_id.remove(id);
        if let Some(k) = &removed {
            t.by_key_id.remove(&k.key_id);
            t.hashes.remove(&k.key_hash);
            t.events.extend(audit.event(Some(k), None));
        }
        Ok(removed)
    }

    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<CreditUse, StoreError> {
        let mut t = self.write();
        let Some(key) = t.by_id.get_mut(id) else {
            return Ok(CreditUse::Refused);
        };
        let Some(credits) = &mut key.credits else {
            return Ok(CreditUse::Unmetered);
        };
        Ok(if credits.consume(cost, now) {
            CreditUse::Taken {
                remaining: credits.remaining,
            }
        } else {
            CreditUse::Refused
        })
    }

    async fn consume_credits_batch(
        &self,
        id: &str,
        costs: &[u64],
        now: DateTime<Utc>,
    ) -> Result<Vec<CreditUse>, StoreError> {
        let mut t = self.write();
        let Some(key) = t.by_id.get_mut(id) else {
            return Ok(vec![CreditUse::Refused; costs.len()]);
        };
        let Some(credits) = &mut key.credits else {
            return Ok(vec![CreditUse::Unmetered; costs.len()]);
        };
        Ok(costs
            .iter()
            .map(|&cost| {
                if credits.consume(cost, now) {
                    CreditUse::Taken {
                        remaining: credits.remaining,
                    }
                } else {
                    CreditUse::Refused
                }
            })
            .collect())
    }

    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        let mut t = self.write();
        for (id, at) in uses {
            if let Some(k) = t.by_id.get_mut(id) {
                if k.last_used_at.is_none_or(|prev| prev < *at) {
                    k.last_used_at = Some(*at);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl KeySearch for InMemoryRepository {
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        let t = self.read();
        let mut hits: Vec<&ApiKey> = t.by_id.values().filter(|k| filter.matches(k)).collect();
        hits.sort_by(|a, b| filter.compare(a, b));
        Ok(page(hits, filter.offset, filter.limit))
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        let t = self.read();
        Ok(t.by_id.values().filter(|k| filter.matches(k)).count() as u64)
    }
}

#[async_trait]
impl AuditLog for InMemoryRepository {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let t = self.read();
        let mut hits: Vec<&AuditEvent> = t.events.iter().filter(|e| filter.matches(e)).collect();
        hits.sort_by(|a, b| filter.compare(a, b));
        Ok(page(hits, filter.offset, filter.limit))
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        let t = self.read();
        Ok(t.events.iter().filter(|e| filter.matches(e)).count() as u64)
    }
}

fn page<T: Clone>(sorted: Vec<&T>, offset: u64, limit: Option<u64>) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    sorted
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect()
}

fn hash_conflict() -> StoreError {
    // The hash itself stays out of the message.
    StoreError::Conflict("an API key with the same key hash exists".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditAction;
    use crate::change::NewSecret;

    fn key(id: &str, key_id: &str, hash: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            key_id: key_id.into(),
            ..crate::entity::sample_key(hash)
        }
    }

    fn audit(action: AuditAction) -> Audit {
        Audit {
            actor: "test".into(),
            at: Utc::now(),
            action,
        }
    }

    fn rehash(hash: &str) -> KeyChange {
        KeyChange {
            secret: Some(NewSecret {
                key_hash: hash.into(),
                first: "abcd".into(),
                last: "wxyz".into(),
                grace_until: None,
            }),
            ..KeyChange::default()
        }
    }

    #[tokio::test]
    async fn key_hash_is_unique_like_in_the_sql_schemas() {
        let repo = InMemoryRepository::new();
        let create = audit(AuditAction::Create);
        repo.insert(&key("a", "000000000000000a", "h1"), &create)
            .await
            .unwrap();
        let err = repo
            .insert(&key("b", "000000000000000b", "h1"), &create)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("key hash") && !m.contains("h1"))
        );
        repo.insert(&key("b", "000000000000000b", "h2"), &create)
            .await
            .unwrap();
        // Moving b onto a's hash is refused and leaves b as it was.
        let rotate = audit(AuditAction::Rotate);
        assert!(matches!(
            repo.update("b", &rehash("h1"), &rotate).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(repo.get("b").await.unwrap().unwrap().key_hash, "h2");
        // A freed hash can be used again.
        repo.update("b", &rehash("h3"), &rotate).await.unwrap();
        repo.delete("a", &audit(AuditAction::Delete)).await.unwrap();
        repo.insert(&key("c", "000000000000000c", "h2"), &create)
            .await
            .unwrap();
        repo.insert(&key("d", "000000000000000d", "h1"), &create)
            .await
            .unwrap();
        // Two failed inserts and a failed rotation wrote no event.
        let actions: Vec<_> = repo
            .events(&EventFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions.len(), 6, "{actions:?}");
    }

    #[tokio::test]
    async fn debug_counts_keys_and_events_and_shows_no_hash() {
        let repo = InMemoryRepository::new();
        let secret_hash = "hash-that-must-not-be-printed";
        repo.insert(
            &key("id1", "kid1", secret_hash),
            &audit(AuditAction::Create),
        )
        .await
        .unwrap();
        let shown = format!("{repo:?}");
        assert_eq!(shown, "InMemoryRepository { keys: 1, events: 1 }");
        assert!(!shown.contains(secret_hash));
    }
}
