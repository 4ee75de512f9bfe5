//! `acquire_batch`: one script call decides a batch in order, exactly as
//! the same requests one by one (as keygate's in-process limiter decides
//! them); exact across instances; each counter written once; empty
//! batches never reach Redis; retried once after a broken connection.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::{LocalRateLimiter, RateDecision, RateLimit, SharedRateLimiter, WindowUsage};
use keygate_redis::RedisRateLimiter;
use support::{entity_id, free_port, OwnRedis};

fn minute(limit: u64) -> RateLimit {
    RateLimit::new("minute", limit, Duration::from_secs(60))
}

/// `(name, remaining)` of every window an answer shows: all of them when
/// allowed, the refusing one when limited.
fn shown(d: &RateDecision) -> (bool, Vec<(String, u64)>) {
    match d {
        RateDecision::Allowed(w) => (
            true,
            w.iter().map(|w| (w.name.clone(), w.remaining)).collect(),
        ),
        RateDecision::Limited { window } => (false, vec![(window.name.clone(), window.remaining)]),
    }
}

fn windows(d: &RateDecision) -> Vec<&WindowUsage> {
    match d {
        RateDecision::Allowed(w) => w.iter().collect(),
        RateDecision::Limited { window } => vec![window],
    }
}

/// Pseudo-random batches of mixed costs (0, within the limits, above each
/// limit), with releases and a closing window between them, on fresh and
/// used keys: each batch's answers are those of the same costs sent one by
/// one to a fresh `LocalRateLimiter` (reset times aside: checked apart).
#[tokio::test]
async fn a_batch_decides_like_the_same_requests_one_by_one() {
    let Some(s) = support::shared().await else {
        return;
    };
    let limits = [
        RateLimit::new("burst", 6, Duration::from_secs(20)),
        RateLimit::new("minute", 15, Duration::from_secs(120)),
    ];
    const COSTS: [u64; 10] = [0, 0, 1, 1, 1, 2, 3, 6, 7, 16];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let local = LocalRateLimiter::default();
    let (mut allowed, mut refused, mut refused_then_allowed) = (0, 0, 0);
    for key in 0..4 {
        let id = entity_id();
        let burst_key = s.limiter.window_key(&id, 0, 20_000);
        // Time of the in-process limiter: no time passes in Redis either,
        // except that its burst window is closed on purpose (< 120 s in all).
        let mut now_ms = 0;
        for round in 0..16 {
            let costs: Vec<u64> = (0..1 + next(24))
                .map(|_| COSTS[next(COSTS.len() as u64) as usize])
                .collect();
            let remote = s
                .limiter
                .acquire_batch(&id, &limits, &costs)
                .await
                .expect("acquire_batch");
            assert_eq!(remote.len(), costs.len());
            let mut seen_refusal = false;
            for (i, (&cost, r)) in costs.iter().zip(&remote).enumerate() {
                let expected = local.acquire(&id, &limits, cost, now_ms);
                assert_eq!(
                    shown(r),
                    shown(&expected),
                    "key {key}, round {round}, request {i} of {costs:?}: redis {r:?}, local {expected:?}"
                );
                for w in windows(r) {
                    let window_ms = if w.name == "burst" { 20_000 } else { 120_000 };
                    assert!((1..=window_ms).contains(&w.reset_ms), "{r:?}");
                }
                match r {
                    RateDecision::Allowed(_) => {
                        allowed += 1;
                        refused_then_allowed += usize::from(seen_refusal);
                    }
                    RateDecision::Limited { .. } => {
                        refused += 1;
                        seen_refusal = true;
                    }
                }
            }
            // Every decision of a batch is made at one instant.
            let allowed_resets: Vec<Vec<u64>> = remote
                .iter()
                .filter_map(|d| match d {
                    RateDecision::Allowed(w) => Some(w.iter().map(|w| w.reset_ms).collect()),
                    RateDecision::Limited { .. } => None,
                })
                .collect();
            assert!(
                allowed_resets.windows(2).all(|p| p[0] == p[1]),
                "{allowed_resets:?}"
            );

            match next(4) {
                0 => {
                    let cost = 1 + next(5);
                    s.limiter.release(&id, &limits, cost).await.unwrap();
                    local.release(&id, &limits, cost, now_ms);
                }
                1 if now_ms < 80_000 => {
                    s.expire_now(&burst_key).await;
                    now_ms += 20_000;
                }
                _ => {}
            }
        }
    }
    assert!(
        allowed > 100 && refused > 100 && refused_then_allowed > 10,
        "the batches reach the limits: {allowed} allowed, {refused} refused, \
         {refused_then_allowed} allowed after a refusal in their batch"
    );
}

/// 20 batches of 25 requests from two instances on one window of 100:
/// exactly 100 admitted, each unit once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_from_two_instances_admit_exactly_the_limit() {
    let Some(s) = support::shared().await else {
        return;
    };
    let limiters = [Arc::new(s.limiter.clone()), Arc::new(s.another().await)];
    let id = entity_id();
    let limits = Arc::new(vec![minute(100)]);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let limiter = limiters[i % 2].clone();
            let (id, limits) = (id.clone(), limits.clone());
            tokio::spawn(async move { limiter.acquire_batch(&id, &limits, &[1; 25]).await })
        })
        .collect();
    let mut remaining = Vec::new();
    for t in tasks {
        let batch = t.await.unwrap().expect("redis answers");
        assert_eq!(batch.len(), 25);
        let admitted: Vec<u64> = batch
            .iter()
            .map_while(|d| match d {
                RateDecision::Allowed(w) => Some(w[0].remaining),
                RateDecision::Limited { .. } => None,
            })
            .collect();
        // All costs equal: once one is refused, so is the rest of the batch.
        for d in &batch[admitted.len()..] {
            let RateDecision::Limited { window } = d else {
                panic!("admitted after a refusal of the same cost: {batch:?}")
            };
            assert_eq!((window.name.as_str(), window.remaining), ("minute", 0));
            assert!((1..=60_000).contains(&window.reset_ms), "{window:?}");
        }
        assert!(
            admitted.windows(2).all(|p| p[0] > p[1]),
            "remaining strictly decreases within a batch: {admitted:?}"
        );
        remaining.extend(admitted);
    }
    assert_eq!(remaining.len(), 100);
    remaining.sort_unstable();
    assert_eq!(remaining, (0..100).collect::<Vec<u64>>());
    assert_eq!(
        s.get(&s.limiter.window_key(&id, 0, 60_000)).await,
        Some(100)
    );
}

#[tokio::test]
async fn remaining_strictly_decreases_over_the_admitted_requests_of_a_batch() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [
        RateLimit::new("second", 10, Duration::from_secs(1)),
        minute(12),
    ];
    let costs = [1, 2, 20, 1, 3, 11, 2, 1, 1, 1];
    let batch = s.limiter.acquire_batch(&id, &limits, &costs).await.unwrap();
    let admitted: Vec<(u64, u64)> = batch
        .iter()
        .filter_map(|d| match d {
            RateDecision::Allowed(w) => Some((w[0].remaining, w[1].remaining)),
            RateDecision::Limited { .. } => None,
        })
        .collect();
    // 1, 2, 1, 3, 2, 1 fit the second window of 10; 20, 11 and the last 1 do not.
    assert_eq!(admitted, [(9, 11), (7, 9), (6, 8), (3, 5), (1, 3), (0, 2)]);
    assert!(admitted
        .windows(2)
        .all(|p| p[0].0 > p[1].0 && p[0].1 > p[1].1));
    let RateDecision::Limited { window } = &batch[2] else {
        panic!("20 exceeds both: {batch:?}")
    };
    assert_eq!(
        (window.name.as_str(), window.remaining),
        ("minute", 9),
        "the window that frees last"
    );
    let RateDecision::Limited { window } = &batch[9] else {
        panic!("the second window is full: {batch:?}")
    };
    assert_eq!((window.name.as_str(), window.remaining), ("second", 0));
}

/// Counters are written once per batch: opened with what it took (0 if it
/// took nothing), or incremented; counters this crate did not write (no
/// expiry, not a number) count as no open window.
#[tokio::test]
async fn a_batch_writes_each_counter_once_with_what_it_took() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [minute(5)];
    let key = s.limiter.window_key(&id, 0, 60_000);

    // Nothing fits: the window opens anyway, at 0.
    let batch = s
        .limiter
        .acquire_batch(&id, &limits, &[6, 9])
        .await
        .unwrap();
    assert!(batch
        .iter()
        .all(|d| matches!(d, RateDecision::Limited { window } if window.remaining == 5)));
    assert_eq!(s.get(&key).await, Some(0));
    let ttl = s.pttl(&key).await;
    assert!(ttl > 59_000 && ttl <= 60_000, "{ttl}");

    // An open window gets the batch's total.
    s.limiter
        .acquire_batch(&id, &limits, &[1, 0, 2])
        .await
        .unwrap();
    assert_eq!(s.get(&key).await, Some(3));
    s.limiter.acquire_batch(&id, &limits, &[1]).await.unwrap();
    assert_eq!(s.get(&key).await, Some(4));
    // Refused entirely: unchanged.
    s.limiter
        .acquire_batch(&id, &limits, &[2, 3])
        .await
        .unwrap();
    assert_eq!(s.get(&key).await, Some(4));

    // Left without expiry, or garbage: a fresh window with the batch's total.
    let mut raw = s.raw.clone();
    for (value, px) in [("7", None), ("garbage", Some(60_000))] {
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(value);
        if let Some(px) = px {
            set.arg("PX").arg(px);
        }
        let _: () = set.query_async(&mut raw).await.unwrap();
        let batch = s
            .limiter
            .acquire_batch(&id, &limits, &[2, 4, 1])
            .await
            .unwrap();
        let shown: Vec<_> = batch.iter().map(shown).collect();
        assert_eq!(
            shown,
            [
                (true, vec![("minute".to_owned(), 3)]),
                (false, vec![("minute".to_owned(), 3)]),
                (true, vec![("minute".to_owned(), 2)]),
            ],
            "{value}"
        );
        assert_eq!(s.get(&key).await, Some(3), "{value}");
        let ttl = s.pttl(&key).await;
        assert!(ttl > 59_000 && ttl <= 60_000, "{value}: {ttl}");
    }
}

/// An empty batch, or no windows, is answered without Redis (here there is
/// none at all); anything else is an error at once.
#[tokio::test]
async fn empty_batches_and_no_windows_never_reach_redis() {
    let limiter = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{}", free_port()))
        .await
        .expect("created without Redis");
    let id = entity_id();
    assert!(limiter
        .acquire_batch(&id, &[minute(5)], &[])
        .await
        .expect("no request, no call")
        .is_empty());
    assert_eq!(
        limiter
            .acquire_batch(&id, &[], &[1, 0, 1_000])
            .await
            .expect("no window, no call"),
        vec![RateDecision::Allowed(Vec::new()); 3]
    );
    let start = Instant::now();
    assert!(limiter
        .acquire_batch(&id, &[minute(5)], &[1])
        .await
        .is_err());
    assert!(start.elapsed() < Duration::from_millis(100));
}

/// After Redis restarts, the first batch goes through: it is sent once
/// more on the reconnected connection, like a single acquire.
#[tokio::test]
async fn a_batch_reconnects_at_the_first_call_after_a_restart() {
    let mut server = OwnRedis::new(free_port(), None);
    if server.start().await.is_none() {
        return;
    }
    let limiter = RedisRateLimiter::connect(&server.url()).await.unwrap();
    let id = entity_id();
    let limits = [minute(5)];
    let batch = limiter
        .acquire_batch(&id, &limits, &[2, 2, 2])
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(shown).map(|s| s.0).collect::<Vec<_>>(),
        [true, true, false]
    );

    server.kill();
    assert!(limiter.acquire_batch(&id, &limits, &[1]).await.is_err());
    server.start().await.expect("restarted");
    let batch = limiter
        .acquire_batch(&id, &limits, &[1, 1])
        .await
        .expect("reconnected at the first call");
    assert_eq!(
        batch.iter().map(shown).collect::<Vec<_>>(),
        [
            (true, vec![("minute".to_owned(), 4)]),
            (true, vec![("minute".to_owned(), 3)]),
        ],
        "a fresh Redis has no counters"
    );
}
