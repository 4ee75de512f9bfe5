//! One rate-limit check: Redis (one Lua script round trip) against the
//! in-process limiter, and 64 concurrent checks on Redis (throughput over
//! one multiplexed connection). Then 32 requests of one key: one
//! `acquire_batch` (one script call) against 32 single acquires, concurrent
//! (pipelined on the connection) and one after another.
//!
//! `cargo bench -p keygate-redis` against `REDIS_URL` (default
//! `redis://127.0.0.1:6379`); without Redis only the in-process case runs.
// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keygate::{LocalRateLimiter, RateDecision, RateLimit, SharedRateLimiter};
use keygate_redis::RedisRateLimiter;

const CONCURRENT: usize = 64;
const BATCH: usize = 32;

fn limits() -> Vec<RateLimit> {
    // Never full within a bench run: every check takes the whole path.
    vec![
        RateLimit::new("second", 1_000_000_000, Duration::from_secs(1)),
        RateLimit::new("minute", 1_000_000_000, Duration::from_secs(60)),
    ]
}

/// Entity ids (32 hex characters, like keygate's).
fn ids() -> Vec<String> {
    (0..8u64)
        .map(|i| format!("{:032x}", 0xfeed_0000 + i))
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let limits = limits();
    let ids = ids();
    let mut group = c.benchmark_group("acquire");

    let local = LocalRateLimiter::default();
    let start = std::time::Instant::now();
    group.bench_function("local", |b| {
        b.iter(|| {
            let now_ms = start.elapsed().as_millis() as u64;
            let d = local.acquire(&ids[0], &limits, 1, now_ms);
            assert!(matches!(d, RateDecision::Allowed(_)));
        })
    });

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("keygate:bench:{}:", std::process::id());
    let redis = rt.block_on(async {
        let limiter = RedisRateLimiter::builder(&url)
            .prefix(prefix)
            .connect()
            .await
            .ok()?;
        limiter.ping().await.ok().map(|()| limiter)
    });
    let Some(redis) = redis else {
        eprintln!("SKIPPED Redis benches: no Redis answers at {url}");
        group.finish();
        return;
    };

    group.bench_function("redis", |b| {
        b.to_async(&rt).iter(|| async {
            let d = redis.acquire(&ids[0], &limits, 1).await.expect("redis");
            assert!(matches!(d, RateDecision::Allowed(_)));
        })
    });

    group.throughput(Throughput::Elements(CONCURRENT as u64));
    group.bench_function(format!("redis_{CONCURRENT}_concurrent"), |b| {
        b.to_async(&rt).iter(|| async {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..CONCURRENT {
                let redis = redis.clone();
                let (limits, id) = (limits.clone(), ids[i % ids.len()].clone());
                tasks.spawn(async move { redis.acquire(&id, &limits, 1).await });
            }
            while let Some(done) = tasks.join_next().await {
                let d = done.expect("task").expect("redis");
                assert!(matches!(d, RateDecision::Allowed(_)));
            }
        })
    });
    group.finish();

    // 32 requests of one (hot) key, per iteration: throughput in requests.
    let mut group = c.benchmark_group("acquire_32");
    group.throughput(Throughput::Elements(BATCH as u64));
    let costs = [1u64; BATCH];
    group.bench_function(format!("redis_batch_{BATCH}"), |b| {
        b.to_async(&rt).iter(|| async {
            let decisions = redis
                .acquire_batch(&ids[1], &limits, &costs)
                .await
                .expect("redis");
            assert_eq!(decisions.len(), BATCH);
            assert!(decisions
                .iter()
                .all(|d| matches!(d, RateDecision::Allowed(_))));
        })
    });
    group.bench_function(format!("redis_{BATCH}_single_concurrent"), |b| {
        b.to_async(&rt).iter(|| async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..BATCH {
                let redis = redis.clone();
                let (limits, id) = (limits.clone(), ids[1].clone());
                tasks.spawn(async move { redis.acquire(&id, &limits, 1).await });
            }
            while let Some(done) = tasks.join_next().await {
                let d = done.expect("task").expect("redis");
                assert!(matches!(d, RateDecision::Allowed(_)));
            }
        })
    });
    group.bench_function(format!("redis_{BATCH}_single_sequential"), |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..BATCH {
                let d = redis.acquire(&ids[1], &limits, 1).await.expect("redis");
                assert!(matches!(d, RateDecision::Allowed(_)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
