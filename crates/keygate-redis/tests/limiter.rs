//! The limiter's contract on a real Redis: exact across instances,
//! all-or-nothing, cost 0 and > 1, release, windows told apart by length,
//! expiry, counters it did not write; and the same answers as keygate's
//! in-process limiter.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::{LocalRateLimiter, RateDecision, RateLimit, SharedRateLimiter, WindowUsage};
use support::{entity_id, Shared};

fn minute(limit: u64) -> RateLimit {
    RateLimit::new("minute", limit, Duration::from_secs(60))
}

fn allowed(d: RateDecision) -> Vec<WindowUsage> {
    match d {
        RateDecision::Allowed(w) => w,
        RateDecision::Limited { window } => panic!("limited by {window:?}"),
    }
}

fn limited(d: RateDecision) -> WindowUsage {
    match d {
        RateDecision::Limited { window } => window,
        RateDecision::Allowed(w) => panic!("allowed: {w:?}"),
    }
}

async fn acquire(s: &Shared, id: &str, limits: &[RateLimit], cost: u64) -> RateDecision {
    s.limiter.acquire(id, limits, cost).await.expect("acquire")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_admit_exactly_the_limit() {
    let Some(s) = support::shared().await else {
        return;
    };
    let limiters = [Arc::new(s.limiter.clone()), Arc::new(s.another().await)];
    let id = entity_id();
    let limits = Arc::new(vec![minute(100)]);
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let limiter = limiters[i % 2].clone();
            let (id, limits) = (id.clone(), limits.clone());
            tokio::spawn(async move { limiter.acquire(&id, &limits, 1).await })
        })
        .collect();
    let mut remaining = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap().expect("redis answers") {
            RateDecision::Allowed(w) => {
                assert_eq!(w.len(), 1);
                assert!((1..=60_000).contains(&w[0].reset_ms), "{w:?}");
                remaining.push(w[0].remaining);
            }
            RateDecision::Limited { window } => {
                assert_eq!((window.name.as_str(), window.remaining), ("minute", 0));
                assert!(
                    window.reset_ms > 0 && window.reset_ms <= 60_000,
                    "{window:?}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!((remaining.len(), refused), (100, 400));
    // Each admission saw its own count: no two took the same unit.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..100).collect::<Vec<u64>>());
    let key = s.limiter.window_key(&id, 0, 60_000);
    assert_eq!(s.get(&key).await, Some(100));
}

#[tokio::test]
async fn a_refusal_by_one_window_takes_nothing_from_the_others() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [
        RateLimit::new("a", 3, Duration::from_secs(60)),
        RateLimit::new("b", 5, Duration::from_secs(120)),
    ];
    let key_a = s.limiter.window_key(&id, 0, 60_000);
    let key_b = s.limiter.window_key(&id, 1, 120_000);
    assert!(key_a.starts_with(s.limiter.prefix()));
    assert!(key_a.ends_with(&format!("{{{id}}}:0:60000")), "{key_a}");

    for left in [2, 1, 0] {
        let w = allowed(acquire(&s, &id, &limits, 1).await);
        assert_eq!((w[0].remaining, w[1].remaining), (left, left + 2));
        assert!(w[0].reset_ms <= 60_000 && w[1].reset_ms > 60_000 && w[1].reset_ms <= 120_000);
    }
    let w = limited(acquire(&s, &id, &limits, 1).await);
    assert_eq!((w.name.as_str(), w.limit, w.remaining), ("a", 3, 0));
    assert!(w.reset_ms > 0 && w.reset_ms <= 60_000);
    assert_eq!(s.get(&key_b).await, Some(3), "b kept its room");

    // Window a closes: 2 fit a again, which fills b.
    s.del(&key_a).await;
    let w = allowed(acquire(&s, &id, &limits, 2).await);
    assert_eq!((w[0].remaining, w[1].remaining), (1, 0));
    assert!(w[0].reset_ms > 59_000, "a reopened: {w:?}");
    let w = limited(acquire(&s, &id, &limits, 1).await);
    assert_eq!((w.name.as_str(), w.remaining), ("b", 0));
    assert_eq!(s.get(&key_a).await, Some(2), "a kept its room");

    // Both full for a cost of 2: the one that frees last is reported.
    let w = limited(acquire(&s, &id, &limits, 2).await);
    assert_eq!((w.name.as_str(), w.remaining), ("b", 0));
    assert!(w.reset_ms > 60_000, "{w:?}");
    assert_eq!(
        (s.get(&key_a).await, s.get(&key_b).await),
        (Some(2), Some(5))
    );
}

#[tokio::test]
async fn cost_zero_checks_and_larger_costs_need_room_for_all() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [minute(5)];
    let key = s.limiter.window_key(&id, 0, 60_000);

    // Cost 0 on no window: opens it, takes nothing.
    let w = allowed(acquire(&s, &id, &limits, 0).await);
    assert_eq!(w[0].remaining, 5);
    assert_eq!(s.get(&key).await, Some(0));
    assert!(s.pttl(&key).await > 0);

    let w = allowed(acquire(&s, &id, &limits, 4).await);
    assert_eq!(w[0].remaining, 1);
    let w = limited(acquire(&s, &id, &limits, 2).await);
    assert_eq!(w.remaining, 1, "a cost that does not fit takes nothing");
    let w = allowed(acquire(&s, &id, &limits, 0).await);
    assert_eq!(w[0].remaining, 1);
    let w = allowed(acquire(&s, &id, &limits, 1).await);
    assert_eq!(w[0].remaining, 0);
    let w = limited(acquire(&s, &id, &limits, 0).await);
    assert_eq!(w.remaining, 0, "cost 0 needs room for one");
    assert_eq!(s.get(&key).await, Some(5));

    // A cost above the limit never fits, even in an empty window.
    let other = entity_id();
    let w = limited(acquire(&s, &other, &limits, 6).await);
    assert_eq!((w.remaining, w.limit), (5, 5));
    assert_eq!(
        s.get(&s.limiter.window_key(&other, 0, 60_000)).await,
        Some(0)
    );
}

#[tokio::test]
async fn release_gives_back_to_open_windows_and_creates_nothing() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [
        minute(5),
        RateLimit::new("slow", 10, Duration::from_secs(90)),
    ];
    let key = s.limiter.window_key(&id, 0, 60_000);
    let slow = s.limiter.window_key(&id, 1, 90_000);

    allowed(acquire(&s, &id, &limits, 5).await);
    limited(acquire(&s, &id, &limits, 1).await);
    s.limiter.release(&id, &limits, 2).await.unwrap();
    assert_eq!((s.get(&key).await, s.get(&slow).await), (Some(3), Some(3)));
    assert!(s.pttl(&key).await > 0, "the window keeps its end");
    let w = allowed(acquire(&s, &id, &limits, 2).await);
    assert_eq!(w[0].remaining, 0);
    // Never below zero.
    s.limiter.release(&id, &limits, 1000).await.unwrap();
    assert_eq!((s.get(&key).await, s.get(&slow).await), (Some(0), Some(0)));
    // Cost 0 gives back nothing.
    allowed(acquire(&s, &id, &limits, 3).await);
    s.limiter.release(&id, &limits, 0).await.unwrap();
    assert_eq!(s.get(&key).await, Some(3));

    // A window closed since: nothing to give back to, nothing created.
    s.expire_now(&key).await;
    s.del(&slow).await;
    s.limiter.release(&id, &limits, 1).await.unwrap();
    assert!(!s.exists(&key).await && !s.exists(&slow).await);
    // Nor for a key never seen.
    let never = entity_id();
    s.limiter.release(&never, &limits, 1).await.unwrap();
    assert!(!s.exists(&s.limiter.window_key(&never, 0, 60_000)).await);
}

#[tokio::test]
async fn a_changed_window_length_starts_afresh() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    allowed(acquire(&s, &id, &[minute(2)], 2).await);
    limited(acquire(&s, &id, &[minute(2)], 1).await);
    let shorter = [RateLimit::new("minute", 2, Duration::from_secs(30))];
    let w = allowed(acquire(&s, &id, &shorter, 1).await);
    assert_eq!(w[0].remaining, 1);
    assert!(w[0].reset_ms > 29_000 && w[0].reset_ms <= 30_000, "{w:?}");
    assert_eq!(s.get(&s.limiter.window_key(&id, 0, 60_000)).await, Some(2));
    // Same length at another position: another window too.
    let w = allowed(acquire(&s, &id, &[minute(100), minute(2)], 1).await);
    assert_eq!((w[0].remaining, w[1].remaining), (97, 1));
}

#[tokio::test]
async fn a_closed_window_reopens() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [minute(2)];
    let key = s.limiter.window_key(&id, 0, 60_000);
    allowed(acquire(&s, &id, &limits, 1).await);
    let w = allowed(acquire(&s, &id, &limits, 1).await);
    assert_eq!(w[0].remaining, 0);
    limited(acquire(&s, &id, &limits, 1).await);

    // The window's time runs out (without waiting a minute).
    s.expire_now(&key).await;
    let w = allowed(acquire(&s, &id, &limits, 1).await);
    assert_eq!(w[0].remaining, 1);
    assert!(
        w[0].reset_ms > 59_000,
        "a new window of a full minute: {w:?}"
    );
    let ttl = s.pttl(&key).await;
    assert!(ttl > 59_000 && ttl <= 60_000, "{ttl}");

    // Or the counter is lost (evicted, deleted).
    allowed(acquire(&s, &id, &limits, 1).await);
    limited(acquire(&s, &id, &limits, 1).await);
    s.del(&key).await;
    assert_eq!(allowed(acquire(&s, &id, &limits, 1).await)[0].remaining, 1);
}

#[tokio::test]
async fn counters_without_expiry_or_number_count_as_fresh_windows() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [minute(5)];
    let key = s.limiter.window_key(&id, 0, 60_000);
    let mut raw = s.raw.clone();

    // Left without expiry (not by this crate): it would never reset.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(7)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(s.pttl(&key).await, -1);
    let w = allowed(acquire(&s, &id, &limits, 1).await);
    assert_eq!(w[0].remaining, 4);
    let ttl = s.pttl(&key).await;
    assert!(ttl > 59_000 && ttl <= 60_000, "the expiry is set: {ttl}");
    assert_eq!(s.get(&key).await, Some(1));

    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("garbage")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut raw)
        .await
        .unwrap();
    let w = allowed(acquire(&s, &id, &limits, 2).await);
    assert_eq!(w[0].remaining, 3);
    assert_eq!(s.get(&key).await, Some(2));
}

/// A deterministic pseudo-random sequence of acquires and releases, with
/// no time passing, gets the same answers from Redis as from keygate's
/// in-process limiter (reset times aside).
#[tokio::test]
async fn answers_match_the_in_process_limiter() {
    let Some(s) = support::shared().await else {
        return;
    };
    let local = LocalRateLimiter::default();
    let id = entity_id();
    let limits = [
        RateLimit::new("burst", 4, Duration::from_secs(10)),
        RateLimit::new("minute", 9, Duration::from_secs(60)),
        RateLimit::new("slow", 15, Duration::from_secs(90)),
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut refusals = 0;
    for step in 0..120 {
        let cost = next(4);
        if next(4) == 0 {
            s.limiter.release(&id, &limits, cost).await.unwrap();
            local.release(&id, &limits, cost, 0);
            continue;
        }
        let remote = acquire(&s, &id, &limits, cost).await;
        let expected = local.acquire(&id, &limits, cost, 0);
        match (&remote, &expected) {
            (RateDecision::Allowed(r), RateDecision::Allowed(e)) => {
                let r: Vec<_> = r.iter().map(|w| (&w.name, w.remaining)).collect();
                let e: Vec<_> = e.iter().map(|w| (&w.name, w.remaining)).collect();
                assert_eq!(r, e, "step {step}, cost {cost}");
            }
            (RateDecision::Limited { window: r }, RateDecision::Limited { window: e }) => {
                assert_eq!(
                    (&r.name, r.remaining),
                    (&e.name, e.remaining),
                    "step {step}, cost {cost}"
                );
                refusals += 1;
            }
            _ => panic!("step {step}, cost {cost}: redis {remote:?}, local {expected:?}"),
        }
    }
    assert!(
        refusals > 10,
        "the sequence reaches the limits ({refusals})"
    );
}

/// `peek` (the dashboard's view) reads the windows as the script left them,
/// opens none, takes nothing, and agrees with the in-process limiter.
#[tokio::test]
async fn peek_reads_windows_without_opening_or_taking() {
    let Some(s) = support::shared().await else {
        return;
    };
    let id = entity_id();
    let limits = [
        minute(10),
        RateLimit::new("hour", 50, Duration::from_secs(3600)),
    ];
    let local = LocalRateLimiter::default();
    let full = |w: &[WindowUsage]| {
        w.iter()
            .map(|w| (w.remaining, w.reset_ms))
            .collect::<Vec<_>>()
    };

    // Nothing open: all the room, no reset; and peeking opened nothing.
    for _ in 0..2 {
        let peeked = s.limiter.peek(&id, &limits).await.unwrap().unwrap();
        assert_eq!(full(&peeked), [(10, 0), (50, 0)]);
        assert_eq!(full(&local.peek(&id, &limits, 1_000)), [(10, 0), (50, 0)]);
    }
    assert_eq!(
        local.tracked_keys(),
        0,
        "peeking opens no window in process"
    );

    allowed(acquire(&s, &id, &limits, 3).await);
    local.acquire(&id, &limits, 3, 1_000);
    for _ in 0..2 {
        let peeked = s.limiter.peek(&id, &limits).await.unwrap().unwrap();
        assert_eq!(
            peeked.iter().map(|w| w.remaining).collect::<Vec<_>>(),
            [7, 47]
        );
        assert!((1..=60_000).contains(&peeked[0].reset_ms), "{peeked:?}");
        assert!(
            (60_000..=3_600_000).contains(&peeked[1].reset_ms),
            "{peeked:?}"
        );
        let here = local.peek(&id, &limits, 2_000);
        assert_eq!(full(&here), [(7, 59_000), (47, 3_599_000)]);
    }
    // A closed window in process: all the room again.
    assert_eq!(
        full(&local.peek(&id, &limits, 61_000)),
        [(10, 0), (47, 3_540_000)]
    );
}
