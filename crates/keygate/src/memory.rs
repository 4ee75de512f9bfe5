//! A thread-safe in-memory store: for tests, examples and single-process
//! deployments that load their keys at start.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::entity::ApiKey;
use crate::error::StoreError;
use crate::filter::ApiKeyFilter;
use crate::repository::Repository;

#[derive(Default)]
struct Tables {
    by_id: HashMap<String, ApiKey>,
    /// key_id → id, for O(1) verification look-ups.
    by_key_id: HashMap<String, String>,
    /// Every stored key_hash: unique, as in the SQL schemas.
    hashes: HashSet<String>,
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

impl InMemoryRepository {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // (every write is a single insert/remove pair), so poison is ignored.
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Repository for InMemoryRepository {
    async fn insert(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut t = self.write();
        if t.by_id.contains_key(&key.id) {
            return Err(StoreError::Conflict(format!(
                "an API key with id {} exists",
                key.id
            )));
        }
        if t.by_key_id.contains_key(&key.key_id) {
            return Err(StoreError::Conflict(format!(
                "an API key with key_id {} exists",
                key.key_id
            )));
        }
        if t.hashes.contains(&key.key_hash) {
            return Err(hash_conflict());
        }
        t.by_key_id.insert(key.key_id.clone(), key.id.clone());
        t.hashes.insert(key.key_hash.clone());
        t.by_id.insert(key.id.clone(), key.clone());
        Ok(())
    }

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

    async fn update(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let mut t = self.write();
        let Some((old_key_id, old_hash, old_used)) = t
            .by_id
            .get(&key.id)
            .map(|k| (k.key_id.clone(), k.key_hash.clone(), k.last_used_at))
        else {
            return Ok(false);
        };
        let hash_changed = old_hash != key.key_hash;
        if hash_changed && t.hashes.contains(&key.key_hash) {
            return Err(hash_conflict());
        }
        if old_key_id != key.key_id {
            if t.by_key_id.contains_key(&key.key_id) {
                return Err(StoreError::Conflict(format!(
                    "an API key with key_id {} exists",
                    key.key_id
                )));
            }
            t.by_key_id.remove(&old_key_id);
            t.by_key_id.insert(key.key_id.clone(), key.id.clone());
        }
        if hash_changed {
            t.hashes.remove(&old_hash);
            t.hashes.insert(key.key_hash.clone());
        }
        let mut stored = key.clone();
        stored.last_used_at = stored.last_used_at.max(old_used);
        t.by_id.insert(key.id.clone(), stored);
        Ok(true)
    }

    async fn delete(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut t = self.write();
        let removed = t.by_id.remove(id);
        if let Some(k) = &removed {
            t.by_key_id.remove(&k.key_id);
            t.hashes.remove(&k.key_hash);
        }
        Ok(removed)
    }

    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        let t = self.read();
        let mut hits: Vec<&ApiKey> = t.by_id.values().filter(|k| filter.matches(k)).collect();
        hits.sort_by(|a, b| filter.compare(a, b));
        let offset = usize::try_from(filter.offset).unwrap_or(usize::MAX);
        let limit = filter
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(hits.into_iter().skip(offset).take(limit).cloned().collect())
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        let t = self.read();
        Ok(t.by_id.values().filter(|k| filter.matches(k)).count() as u64)
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

fn hash_conflict() -> StoreError {
    // The hash itself stays out of the message.
    StoreError::Conflict("an API key with the same key hash exists".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, key_id: &str, hash: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            key_id: key_id.into(),
            name: None,
            description: None,
            is_active: true,
            created_at: Utc::now(),
            last_used_at: None,
            expires_at: None,
            scopes: Default::default(),
            key_hash: hash.into(),
            key_secret_first: "abcd".into(),
            key_secret_last: "wxyz".into(),
        }
    }

    #[tokio::test]
    async fn key_hash_is_unique_like_in_the_sql_schemas() {
        let repo = InMemoryRepository::new();
        repo.insert(&key("a", "000000000000000a", "h1"))
            .await
            .unwrap();
        let err = repo
            .insert(&key("b", "000000000000000b", "h1"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict(m) if m.contains("key hash") && !m.contains("h1"))
        );
        repo.insert(&key("b", "000000000000000b", "h2"))
            .await
            .unwrap();
        // Moving b onto a's hash is refused and leaves b as it was.
        assert!(matches!(
            repo.update(&key("b", "000000000000000b", "h1")).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(repo.get("b").await.unwrap().unwrap().key_hash, "h2");
        // A freed hash can be used again.
        repo.update(&key("b", "000000000000000b", "h3"))
            .await
            .unwrap();
        repo.delete("a").await.unwrap();
        repo.insert(&key("c", "000000000000000c", "h2"))
            .await
            .unwrap();
        repo.insert(&key("d", "000000000000000d", "h1"))
            .await
            .unwrap();
    }
}
