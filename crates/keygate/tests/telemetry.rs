//! The metrics a service records (SPEC §14), read back from a Prometheus
//! recorder of the test's own (not installed globally).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate::prelude::*;
use keygate::telemetry::prometheus::Prometheus;
use keygate::{
    ApiKey, ApiKeyFilter, Audit, AuditEvent, CreditUse, Error, EventFilter, InMemoryRepository,
    KeyChange, NewApiKey, StoreError,
};
use support::{service_with, with_wrong_secret};

/// The value of `series` (name and labels as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
}

fn outcome(text: &str, outcome: &str) -> f64 {
    let series = format!("keygate_verifications_total{{outcome=\"{outcome}\"}}");
    sample(text, &series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn verifications_are_counted_by_outcome_and_cache_use() {
    let (recorder, handle) = Prometheus::build();
    let store = Flaky::default();
    let down = store.down.clone();
    // The service takes its handles from the recorder current at build.
    let service = metrics::with_local_recorder(&recorder, || service_with(store, |b| b));
    let (_, key) = service
        .create(NewApiKey::named("k").with_scopes(["read"]))
        .await
        .unwrap();
    let key = key.expose();

    service.verify(key, &["read"]).await.unwrap(); // cache miss: read, hash
    service.verify(key, &["read"]).await.unwrap(); // cache hit
    let refused = [
        (service.verify(key, &["write"]).await, "insufficient_scope"), // hit
        (
            service.verify(&with_wrong_secret(key), &["read"]).await,
            "invalid",
        ),
        (
            service
                .verify("ak_v1-0123456789abcdef-Unknown0123456789", &["read"])
                .await,
            "not_found",
        ),
        (service.verify("  ", &["read"]).await, "missing"),
        (service.verify("not-a-key", &["read"]).await, "invalid"),
    ];
    for (result, label) in &refused {
        assert_eq!(keygate::Outcome::of_result(result).as_str(), *label);
    }
    // The store fails: counted as an outcome and as a store error.
    down.store(true, Ordering::SeqCst);
    let failed = service
        .verify("ak_v1-fedcba9876543210-Unknown0123456789", &["read"])
        .await;
    assert!(
        matches!(failed, Err(Error::StoreUnavailable(_))),
        "{failed:?}"
    );
    // Before the key could be looked for: counted, not timed.
    service.record_refusal(&Error::KeyNotProvided);
    service.update_gauges();

    let text = handle.render();
    assert_eq!(outcome(&text, "ok"), 2.0, "{text}");
    assert_eq!(outcome(&text, "insufficient_scope"), 1.0);
    assert_eq!(outcome(&text, "invalid"), 2.0);
    assert_eq!(outcome(&text, "not_found"), 1.0);
    assert_eq!(outcome(&text, "missing"), 2.0);
    assert_eq!(outcome(&text, "store_unavailable"), 1.0);
    for unused in ["inactive", "expired", "rate_limited", "usage_exceeded"] {
        assert_eq!(outcome(&text, unused), 0.0, "{unused}");
    }
    // Hits: the second ok and the scope refusal. Misses: the first ok, the
    // wrong secret, the unknown key id and the failed read (malformed keys
    // never reach the cache).
    assert_eq!(sample(&text, "keygate_cache_hits_total"), Some(2.0));
    assert_eq!(sample(&text, "keygate_cache_misses_total"), Some(4.0));
    assert_eq!(sample(&text, "keygate_store_errors_total"), Some(1.0));
    // Every verification that reached `verify_with` is timed.
    assert_eq!(
        sample(&text, "keygate_verify_duration_seconds_count"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(sample(&text, "keygate_hash_queue_depth"), Some(0.0));
    assert_eq!(sample(&text, "keygate_rate_limit_degraded"), Some(0.0));
}

#[tokio::test]
async fn conflicts_are_answers_not_store_errors() {
    let (recorder, handle) = Prometheus::build();
    let service =
        metrics::with_local_recorder(&recorder, || service_with(InMemoryRepository::new(), |b| b));
    let explicit = || NewApiKey {
        key_id: Some("00112233445566aa".into()),
        ..NewApiKey::named("twice")
    };
    service.create(explicit()).await.unwrap();
    assert!(matches!(
        service.create(explicit()).await,
        Err(Error::Conflict(_))
    ));
    let text = handle.render();
    assert_eq!(sample(&text, "keygate_store_errors_total"), Some(0.0));
}

/// The in-memory store, except that key look-ups fail while `down`.
#[derive(Default)]
struct Flaky {
    inner: InMemoryRepository,
    down: Arc<AtomicBool>,
}

#[async_trait]
impl KeyStore for Flaky {
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.get(id).await
    }
    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.get_by_key_id(key_id).await
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
    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.inner.touch(uses).await
    }
    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<CreditUse, StoreError> {
        self.inner.consume_credits(id, cost, now).await
    }
}

#[async_trait]
impl KeySearch for Flaky {
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.find(filter).await
    }
    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        self.inner.count(filter).await
    }
}

#[async_trait]
impl AuditLog for Flaky {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events(filter).await
    }
    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        self.inner.count_events(filter).await
    }
}
