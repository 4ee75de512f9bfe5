//! `ApiKeyService` with a Redis limiter: Redis dies while verifications run
//! (the service limits in process, never fails a request for it), then
//! comes back (the same service uses it again).

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::{ApiKeyService, Error, InMemoryRepository, NewApiKey, RateLimit};
use keygate_redis::RedisRateLimiter;
use support::{free_port, unique_prefix, OwnRedis};

const LIMIT: u64 = 50;
const RETRY: Duration = Duration::from_millis(500);
const NO_SCOPES: [&str; 0] = [];

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    limited: AtomicUsize,
    other: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, result: Result<(), Error>) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(Error::RateLimited { .. }) => self.limited.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                self.other.lock().unwrap().push(e.to_string());
                0
            }
        };
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    fn total(&self) -> usize {
        self.ok() + self.limited.load(Ordering::SeqCst) + self.other.lock().unwrap().len()
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn service_limits_in_process_while_redis_is_down_and_uses_it_again() {
    let mut server = OwnRedis::new(free_port(), None);
    if server.start().await.is_none() {
        return;
    }
    let limiter = RedisRateLimiter::builder(&server.url())
        .prefix(unique_prefix())
        .connect()
        .await
        .unwrap();
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .fast_hashing()
        .shared_rate_limiter(Arc::new(limiter.clone()))
        .shared_rate_limiter_timing(Duration::from_millis(100), RETRY)
        .build()
        .unwrap();
    let (entity, key) = service
        .create(NewApiKey::named("outage").rate_limited(RateLimit::new(
            "minute",
            LIMIT,
            Duration::from_secs(60),
        )))
        .await
        .unwrap();
    let key = key.expose().to_owned();
    let counter = limiter.window_key(&entity.id, 0, 60_000);

    // Half the window taken in Redis.
    for _ in 0..LIMIT / 2 {
        service.verify(&key, &NO_SCOPES).await.unwrap();
    }
    assert!(!service.rate_limiting_degraded());
    let mut raw = support::connect_raw(&server.url()).await.unwrap();
    let used: u64 = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(used, LIMIT / 2, "counted in Redis");

    // Verifications run concurrently while Redis is killed.
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (service, key, tally, stop) =
                (service.clone(), key.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    tally.record(service.verify(&key, &NO_SCOPES).await.map(drop));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    wait_until("verifications run", Duration::from_secs(10), || {
        tally.total() >= 16
    })
    .await;
    server.kill();
    wait_until("the service notices", Duration::from_secs(10), || {
        service.rate_limiting_degraded()
    })
    .await;
    // Long enough for the in-process window to fill, shorter than RETRY.
    let before = tally.total();
    wait_until(
        "the in-process limit is reached",
        Duration::from_secs(10),
        || tally.total() >= before + 4 * LIMIT as usize,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let other = tally.other.lock().unwrap().clone();
    assert!(other.is_empty(), "only Ok or RateLimited: {other:?}");
    let ok = tally.ok() + (LIMIT / 2) as usize;
    assert!(
        ok <= 2 * LIMIT as usize,
        "{ok} admitted: at most {LIMIT} by Redis and {LIMIT} in process"
    );
    assert!(
        ok > LIMIT as usize,
        "{ok} admitted: the in-process limiter took over"
    );
    assert!(
        tally.total() > 2 * LIMIT as usize,
        "enough requests to hit both limits"
    );
    assert!(service.rate_limiting_degraded());

    // Redis back, empty; the same service uses it after the retry period.
    server.start().await.expect("restarted");
    tokio::time::sleep(RETRY + Duration::from_millis(100)).await;
    let verified = service
        .verify_with(&key, &NO_SCOPES, 1)
        .await
        .expect("Redis has an empty window");
    assert_eq!(verified.usage.rate_limits[0].remaining, LIMIT - 1);
    assert!(!service.rate_limiting_degraded());
    let mut raw = support::connect_raw(&server.url()).await.unwrap();
    let used: u64 = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(used, 1, "counted in the new Redis");
}
