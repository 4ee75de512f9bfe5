//! The verification cache.
//!
//! Entries are found by key id but only *used* when the SHA-256 of the full
//! presented key equals the digest stored with them (compared in constant
//! time), so knowing a key id alone never hits the cache. Keying by key id
//! makes invalidation by update/delete O(1). Only successful hash checks are
//! inserted, so a flood of random or wrong keys cannot evict the working set.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::entity::ApiKey;

/// SHA-256 of a full presented key.
pub type KeyDigest = [u8; 32];

/// Digest of a full presented key.
pub fn digest(raw_key: &str) -> KeyDigest {
    Sha256::digest(raw_key.as_bytes()).into()
}

/// Size and lifetime of the verification cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a verified key is trusted without a store read. Status,
    /// expiry and scopes are still checked on every hit.
    pub ttl: Duration,
    /// Most keys held at once.
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

struct Entry {
    digest: KeyDigest,
    entity: Arc<ApiKey>,
}

/// Verified keys by key id.
pub(crate) struct VerifyCache {
    entries: Cache<String, Arc<Entry>>,
}

impl VerifyCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(config.max_entries)
                .time_to_live(config.ttl)
                .build(),
        }
    }

    /// The cached entity, when the presented key's digest matches.
    pub(crate) fn get(&self, key_id: &str, digest: &KeyDigest) -> Option<Arc<ApiKey>> {
        let entry = self.entries.get(key_id)?;
        bool::from(entry.digest.ct_eq(digest)).then(|| entry.entity.clone())
    }

    pub(crate) fn insert(&self, digest: KeyDigest, entity: Arc<ApiKey>) {
        self.entries
            .insert(entity.key_id.clone(), Arc::new(Entry { digest, entity }));
    }

    pub(crate) fn invalidate(&self, key_id: &str) {
        self.entries.invalidate(key_id);
    }
}
