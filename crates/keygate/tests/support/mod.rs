//! Shared set-up for the core's integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate::prelude::*;
use keygate::{
    ApiKey, ApiKeyFilter, ApiKeyService, Audit, AuditEvent, EventFilter, HashAlgorithm,
    InMemoryRepository, KeyChange, Pepper, ServiceBuilder, StoreError,
};

pub(crate) const PEPPER: &str = "test-pepper";

/// HMAC hashing, cache on, writes of last_used_at through (interval zero).
pub(crate) fn fast_service() -> ApiKeyService {
    service_with(InMemoryRepository::new(), |b| b)
}

/// A service over `repo` with the test pepper and fast hashing, adjusted by `configure`.
pub(crate) fn service_with(
    repo: impl Repository,
    configure: impl FnOnce(ServiceBuilder) -> ServiceBuilder,
) -> ApiKeyService {
    let builder = ApiKeyService::builder(repo)
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .touch_interval(std::time::Duration::ZERO);
    configure(builder).build().unwrap()
}

/// Argon2id, cheap enough for tests but still milliseconds.
pub(crate) fn argon2_cheap() -> HashAlgorithm {
    HashAlgorithm::Argon2 {
        m_cost: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    }
}

/// An in-memory store that counts reads by key id and touch calls.
pub(crate) struct Spy {
    inner: InMemoryRepository,
    reads: Arc<AtomicUsize>,
    touches: Arc<AtomicUsize>,
    /// How long each `touch` takes, to catch a write in flight.
    pub touch_delay: std::time::Duration,
    /// When set, each read by key id, once it has read the row, signals
    /// the first `Notify` and waits for the second before returning it (to
    /// hold a read in flight while something else happens).
    pub hold_reads: Option<Arc<(tokio::sync::Notify, tokio::sync::Notify)>>,
}

/// A spy store and a function returning how many key-id reads it served.
pub(crate) fn spy() -> (Spy, impl Fn() -> usize) {
    let (spy, reads, _) = spy_with_touches();
    (spy, move || reads())
}

/// A spy store, a read counter and a touch counter.
pub(crate) fn spy_with_touches() -> (Spy, impl Fn() -> usize, impl Fn() -> usize) {
    let reads = Arc::new(AtomicUsize::new(0));
    let touches = Arc::new(AtomicUsize::new(0));
    let spy = Spy {
        inner: InMemoryRepository::new(),
        reads: reads.clone(),
        touches: touches.clone(),
        touch_delay: std::time::Duration::ZERO,
        hold_reads: None,
    };
    (
        spy,
        move || reads.load(Ordering::SeqCst),
        move || touches.load(Ordering::SeqCst),
    )
}

#[async_trait]
impl KeyStore for Spy {
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.get(id).await
    }
    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let row = self.inner.get_by_key_id(key_id).await;
        if let Some(hold) = &self.hold_reads {
            hold.0.notify_one();
            hold.1.notified().await;
        }
        row
    }
    async fn insert(&self, key: &ApiKey, audit: &Audit) -> Result<(), StoreError> {
        self.inner.insert(key, audit).await
    }
    async fn update(
        &self,
        id: &str,
        change: &KeyChange,
        audit: &Audit,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.inner.update(id, change, audit).await
    }
    async fn delete(&self, id: &str, audit: &Audit) -> Result<Option<ApiKey>, StoreError> {
        self.inner.delete(id, audit).await
    }
    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<keygate::CreditUse, StoreError> {
        self.inner.consume_credits(id, cost, now).await
    }
    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.touches.fetch_add(uses.len(), Ordering::SeqCst);
        tokio::time::sleep(self.touch_delay).await;
        self.inner.touch(uses).await
    }
}

#[async_trait]
impl KeySearch for Spy {
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.find(filter).await
    }
    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        self.inner.count(filter).await
    }
}

#[async_trait]
impl AuditLog for Spy {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events(filter).await
    }
    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        self.inner.count_events(filter).await
    }
}

/// `key` with its last character changed to a different one: same key id, wrong secret.
pub(crate) fn with_wrong_secret(key: &str) -> String {
    let (head, last) = key.split_at(key.len() - 1);
    format!("{head}{}", if last == "a" { 'b' } else { 'a' })
}
