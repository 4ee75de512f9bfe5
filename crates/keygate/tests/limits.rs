//! Usage limits through the service: refills at interval boundaries on a
//! clock the test moves, credits taken on cache hits too, exact in-process
//! rate limits under concurrency, and the shared limiter's fallback: a
//! failing or slow shared limiter is replaced by the in-process one (never
//! bypassed) and used again once it answers.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keygate::{
    ApiKeyService, Credits, Error, InMemoryRepository, LimiterError, LocalRateLimiter, ManualClock,
    NewApiKey, RateDecision, RateLimit, RefillInterval, SharedRateLimiter, Verified,
};
use support::service_with;

const NONE: &[&str] = &[];

fn at(s: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::at(s.parse().unwrap()))
}

fn outcome(r: &Result<Verified, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::RateLimited { .. }) => "rate_limited",
        Err(Error::UsageExceeded { .. }) => "usage_exceeded",
        Err(_) => "other",
    }
}

/// Sends `n` concurrent verifications of cost 1 and counts the successes;
/// any outcome but success or a limit refusal fails the test.
async fn hammer(service: &ApiKeyService, key: &Arc<String>, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (service, key) = (service.clone(), key.clone());
            tokio::spawn(async move { outcome(&service.verify_with(&key, NONE, 1).await) })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            "ok" => ok += 1,
            "rate_limited" | "usage_exceeded" => {}
            other => panic!("unexpected outcome {other}"),
        }
    }
    ok
}

#[tokio::test]
async fn credits_refill_at_midnight_utc_with_the_cache_on() {
    let clock = at("2030-05-17T23:59:58Z");
    let service = service_with(InMemoryRepository::new(), |b| b.clock(clock.clone()));
    let (entity, key) = service
        .create(
            NewApiKey::named("daily")
                .with_credits(Credits::new(2).refilled(3, RefillInterval::Daily)),
        )
        .await
        .unwrap();
    assert_eq!(
        entity.credits.unwrap().last_refill_at,
        Some("2030-05-17T00:00:00Z".parse().unwrap()),
        "the current day counts as refilled"
    );
    for left in [1, 0] {
        let v = service.verify_with(key.expose(), NONE, 1).await.unwrap();
        assert_eq!(v.usage.remaining, Some(left));
    }
    let Err(Error::UsageExceeded { retry_after }) =
        service.verify_with(key.expose(), NONE, 1).await
    else {
        panic!("used up")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(2)), "until midnight");

    clock.advance(Duration::from_secs(2));
    for left in [2, 1, 0] {
        let v = service.verify_with(key.expose(), NONE, 1).await.unwrap();
        assert_eq!(v.usage.remaining, Some(left), "refilled to 3, not added");
    }
    let Err(Error::UsageExceeded { retry_after }) =
        service.verify_with(key.expose(), NONE, 1).await
    else {
        panic!("used up again")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(86_400)));
    // Without a refill there is nothing to wait for.
    let (_, once) = service
        .create(NewApiKey::named("once").with_credits(Credits::new(0)))
        .await
        .unwrap();
    assert!(matches!(
        service.verify_with(once.expose(), NONE, 1).await,
        Err(Error::UsageExceeded { retry_after: None })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credits_and_windows_are_exact_under_concurrency_with_cache_hits() {
    let service = service_with(InMemoryRepository::new(), |b| b);
    let (_, metered) = service
        .create(NewApiKey::named("metered").with_credits(Credits::new(50)))
        .await
        .unwrap();
    let (_, limited) = service
        .create(NewApiKey::named("limited").rate_limited(RateLimit::new(
            "minute",
            100,
            Duration::from_secs(60),
        )))
        .await
        .unwrap();
    // Warm the cache: every request below is a cache hit.
    service
        .verify_with(metered.expose(), NONE, 0)
        .await
        .unwrap();
    service
        .verify_with(limited.expose(), NONE, 0)
        .await
        .unwrap();
    for (key, expected) in [(metered, 50), (limited, 100)] {
        let key = Arc::new(key.expose().to_owned());
        assert_eq!(hammer(&service, &key, 500).await, expected);
    }
}

#[tokio::test]
async fn a_window_reopens_when_it_closes_on_the_service_clock() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = service_with(InMemoryRepository::new(), |b| b.clock(clock.clone()));
    let (_, key) = service
        .create(NewApiKey::named("w").rate_limited(RateLimit::new(
            "burst",
            2,
            Duration::from_secs(10),
        )))
        .await
        .unwrap();
    let v = service.verify_with(key.expose(), NONE, 1).await.unwrap();
    assert_eq!(v.usage.rate_limits[0].remaining, 1);
    assert_eq!(v.usage.rate_limits[0].reset_ms, 10_000);
    clock.advance(Duration::from_secs(4));
    service.verify_with(key.expose(), NONE, 1).await.unwrap();
    let Err(Error::RateLimited {
        retry_after,
        window,
    }) = service.verify_with(key.expose(), NONE, 1).await
    else {
        panic!("full")
    };
    assert_eq!(retry_after, Duration::from_secs(6));
    assert_eq!((window.limit, window.remaining), (2, 0));
    clock.advance(Duration::from_secs(6));
    assert!(service.verify_with(key.expose(), NONE, 2).await.is_ok());
}

/// A shared limiter the test can break or slow down: it counts calls and
/// otherwise limits like the in-process one.
#[derive(Default)]
struct Flaky {
    inner: LocalRateLimiter,
    failing: AtomicBool,
    slow: AtomicBool,
    calls: AtomicUsize,
}

#[async_trait]
impl SharedRateLimiter for Flaky {
    async fn acquire(
        &self,
        id: &str,
        limits: &[RateLimit],
        cost: u64,
    ) -> Result<RateDecision, LimiterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(LimiterError("connection refused".into()));
        }
        Ok(self.inner.acquire(id, limits, cost, 0))
    }

    async fn acquire_batch(
        &self,
        id: &str,
        limits: &[RateLimit],
        costs: &[u64],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // A round trip: the requests arriving meanwhile make the next batch.
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(costs
            .iter()
            .map(|&cost| self.inner.acquire(id, limits, cost, 0))
            .collect())
    }

    async fn release(&self, id: &str, limits: &[RateLimit], cost: u64) -> Result<(), LimiterError> {
        self.inner.release(id, limits, cost, 0);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_of_one_key_share_shared_limiter_round_trips() {
    let flaky = Arc::new(Flaky::default());
    let service = service_with(InMemoryRepository::new(), |b| {
        b.shared_rate_limiter(flaky.clone())
    });
    let key = Arc::new(limited_key(&service, 120).await);
    service.verify_with(&key, NONE, 0).await.unwrap();
    flaky.calls.store(0, Ordering::SeqCst);
    assert_eq!(hammer(&service, &key, 300).await, 120, "exactly the window");
    assert!(!service.rate_limiting_degraded());
    let calls = flaky.calls.load(Ordering::SeqCst);
    assert!(calls <= 3, "{calls} shared-limiter calls for 300 requests");
}

async fn limited_key(service: &ApiKeyService, limit: u64) -> String {
    let (_, key) = service
        .create(NewApiKey::named("shared").rate_limited(RateLimit::new(
            "minute",
            limit,
            Duration::from_secs(60),
        )))
        .await
        .unwrap();
    key.expose().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_failing_shared_limiter_is_replaced_in_process_never_bypassed() {
    let flaky = Arc::new(Flaky::default());
    let service = service_with(InMemoryRepository::new(), |b| {
        b.shared_rate_limiter(flaky.clone())
    });
    let key = limited_key(&service, 3).await;
    let verify = || service.verify_with(&key, NONE, 1);

    // Shared limiter up: it decides.
    assert!(verify().await.is_ok());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    assert!(!service.rate_limiting_degraded());

    // Down: the in-process limiter takes over with the full limit of this
    // instance; the fourth request is refused, not let through.
    flaky.failing.store(true, Ordering::SeqCst);
    let outcomes: Vec<_> = [(); 5].iter().map(|_| verify()).collect::<Vec<_>>();
    let mut seen = Vec::new();
    for o in outcomes {
        seen.push(outcome(&o.await));
    }
    assert_eq!(seen, ["ok", "ok", "ok", "rate_limited", "rate_limited"]);
    assert!(service.rate_limiting_degraded());
    assert_eq!(
        flaky.calls.load(Ordering::SeqCst),
        2,
        "after one failure the shared limiter is skipped, not retried per request"
    );

    // Back: after the retry period the shared limiter decides again.
    flaky.failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(1001)).await;
    assert!(!service.rate_limiting_degraded());
    assert!(verify().await.is_ok(), "shared window still has room");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_slow_shared_limiter_times_out_into_the_in_process_one() {
    let flaky = Arc::new(Flaky::default());
    flaky.slow.store(true, Ordering::SeqCst);
    let service = service_with(InMemoryRepository::new(), |b| {
        b.shared_rate_limiter(flaky.clone())
            .shared_rate_limiter_timing(Duration::from_millis(50), Duration::from_secs(2))
    });
    let key = limited_key(&service, 1).await;
    let started = tokio::time::Instant::now();
    assert!(service.verify_with(&key, NONE, 1).await.is_ok());
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(50),
        "waited the timeout only"
    );
    assert!(service.rate_limiting_degraded());
    assert!(matches!(
        service.verify_with(&key, NONE, 1).await,
        Err(Error::RateLimited { .. })
    ));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(50),
        "no second wait"
    );
}

#[tokio::test]
async fn cost_is_bounded() {
    let service = service_with(InMemoryRepository::new(), |b| b);
    let (_, key) = service.create(NewApiKey::named("c")).await.unwrap();
    assert!(service.verify_with(key.expose(), NONE, 1000).await.is_ok());
    let Err(Error::Validation(errors)) = service.verify_with(key.expose(), NONE, 1001).await else {
        panic!("cost above 1000")
    };
    assert_eq!(errors[0].field, "cost");
}

/// A store whose credit operations take a millisecond and are counted.
struct SlowCredits {
    inner: InMemoryRepository,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl keygate::KeyStore for SlowCredits {
    async fn get(&self, id: &str) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
        self.inner.get(id).await
    }
    async fn get_by_key_id(
        &self,
        key_id: &str,
    ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
        self.inner.get_by_key_id(key_id).await
    }
    async fn insert(
        &self,
        key: &keygate::ApiKey,
        audit: &keygate::Audit,
    ) -> Result<(), keygate::StoreError> {
        self.inner.insert(key, audit).await
    }
    async fn update(
        &self,
        id: &str,
        change: &keygate::KeyChange,
        audit: &keygate::Audit,
    ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
        self.inner.update(id, change, audit).await
    }
    async fn delete(
        &self,
        id: &str,
        audit: &keygate::Audit,
    ) -> Result<Option<keygate::ApiKey>, keygate::StoreError> {
        self.inner.delete(id, audit).await
    }
    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<keygate::CreditUse, keygate::StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.inner.consume_credits(id, cost, now).await
    }
    async fn consume_credits_batch(
        &self,
        id: &str,
        costs: &[u64],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<keygate::CreditUse>, keygate::StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.inner.consume_credits_batch(id, costs, now).await
    }
    async fn touch(
        &self,
        uses: &[(String, chrono::DateTime<chrono::Utc>)],
    ) -> Result<(), keygate::StoreError> {
        self.inner.touch(uses).await
    }
}

#[async_trait]
impl keygate::KeySearch for SlowCredits {
    async fn find(
        &self,
        filter: &keygate::ApiKeyFilter,
    ) -> Result<Vec<keygate::ApiKey>, keygate::StoreError> {
        self.inner.find(filter).await
    }
    async fn count(&self, filter: &keygate::ApiKeyFilter) -> Result<u64, keygate::StoreError> {
        self.inner.count(filter).await
    }
}

#[async_trait]
impl keygate::AuditLog for SlowCredits {
    async fn events(
        &self,
        filter: &keygate::EventFilter,
    ) -> Result<Vec<keygate::AuditEvent>, keygate::StoreError> {
        self.inner.events(filter).await
    }
    async fn count_events(
        &self,
        filter: &keygate::EventFilter,
    ) -> Result<u64, keygate::StoreError> {
        self.inner.count_events(filter).await
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_of_one_key_share_store_round_trips() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = SlowCredits {
        inner: InMemoryRepository::new(),
        calls: calls.clone(),
    };
    let service = service_with(store, |b| b);
    let (_, key) = service
        .create(NewApiKey::named("hot").with_credits(Credits::new(150)))
        .await
        .unwrap();
    let key = Arc::new(key.expose().to_owned());
    service.verify_with(&key, NONE, 0).await.unwrap();
    calls.store(0, Ordering::SeqCst);
    assert_eq!(
        hammer(&service, &key, 200).await,
        150,
        "exactly the credits"
    );
    let calls = calls.load(Ordering::SeqCst);
    assert!(calls <= 3, "{calls} store calls for 200 requests");
}
