//! Rate limiting: the in-process limiter (exact within one process), the
//! contract of a shared limiter (exact across instances; `keygate-redis`),
//! and the policy between them: a shared limiter that fails or is slow is
//! replaced by the in-process one until it answers again, never bypassed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::{Batch, BoxFuture, Coalescer};
use crate::limits::{RateDecision, RateLimit, WindowUsage};

/// A shared limiter could not answer (unreachable, timed out, refused the
/// script). The service then limits in process; see [`SharedRateLimiter`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterError(pub String);

/// Rate-limit counters that several instances share, so a window's limit
/// holds across all of them (`keygate_redis::RedisRateLimiter`).
///
/// **Contract.** [`acquire`](Self::acquire) is atomic and all-or-nothing:
/// it takes `cost` from every window of `limits` only if each has room for
/// `max(cost, 1)`, else it takes nothing and reports the full window that
/// frees last. A window opens at the first request that finds none open
/// and lasts `window_ms`; windows are told apart by position and length,
/// so changing a window's length starts it afresh.
#[async_trait]
pub trait SharedRateLimiter: Send + Sync + 'static {
    /// Takes `cost` from every window of key `id`, or nothing.
    async fn acquire(
        &self,
        id: &str,
        limits: &[RateLimit],
        cost: u64,
    ) -> Result<RateDecision, LimiterError>;

    /// Decides several requests of key `id` as **one** atomic operation:
    /// request `i` costs `costs[i]` and is decided as by
    /// [`acquire`](Self::acquire), after the requests before it (so a
    /// refused one takes nothing and a later, cheaper one may still fit).
    /// Returns one decision per request, in order.
    ///
    /// The service batches the concurrent requests of a busy key through
    /// this, so a limiter should override the default (one `acquire` per
    /// request: exact, but one round trip each).
    async fn acquire_batch(
        &self,
        id: &str,
        limits: &[RateLimit],
        costs: &[u64],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        let mut decisions = Vec::with_capacity(costs.len());
        for &cost in costs {
            decisions.push(self.acquire(id, limits, cost).await?);
        }
        Ok(decisions)
    }

    /// Gives back what [`acquire`](Self::acquire) took, to windows still
    /// open (a later check refused the request). Never below zero.
    async fn release(&self, id: &str, limits: &[RateLimit], cost: u64) -> Result<(), LimiterError>;

    /// Each window of key `id` as it stands, taking nothing and opening
    /// nothing (for dashboards): a window that is not open has all its room
    /// and `reset_ms` 0. `Ok(None)` (the default) when this limiter cannot
    /// tell.
    async fn peek(
        &self,
        id: &str,
        limits: &[RateLimit],
    ) -> Result<Option<Vec<WindowUsage>>, LimiterError> {
        let _ = (id, limits);
        Ok(None)
    }

    /// What the logs call this limiter (`redis`).
    fn name(&self) -> &'static str {
        "shared"
    }
}

/// One window's counter.
#[derive(Debug, Clone, Copy)]
struct Counter {
    window_ms: u64,
    opened_ms: u64,
    used: u64,
}

impl Counter {
    fn open_at(&self, now_ms: u64) -> bool {
        now_ms < self.opened_ms.saturating_add(self.window_ms)
    }
}

const SHARDS: usize = 32;
/// A shard sweeps closed windows whenever it has grown by this many keys.
const SWEEP_EVERY: usize = 1024;

#[derive(Default)]
struct Shard {
    /// foldhash rather than SipHash: randomly seeded, and only keys that
    /// passed verification get counters, so clients cannot make collisions.
    keys: HashMap<String, Vec<Counter>, foldhash::fast::RandomState>,
    swept_at_len: usize,
}

/// Exact rate limiting within one process: counters in memory, one lock
/// per shard of keys, no allocation once a key has its counters.
///
/// Only keys that passed verification get counters, so memory grows with
/// the keys in use, not with what clients send; closed windows are swept.
pub struct LocalRateLimiter {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter").finish_non_exhaustive()
    }
}

impl LocalRateLimiter {
    fn shard(&self, id: &str) -> std::sync::MutexGuard<'_, Shard> {
        // Entity ids are random hex; their last bytes spread well.
        let h = id
            .bytes()
            .rev()
            .take(4)
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        self.shards[h % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `cost` from every window of key `id` at `now_ms`, or nothing.
    pub fn acquire(&self, id: &str, limits: &[RateLimit], cost: u64, now_ms: u64) -> RateDecision {
        let mut shard = self.shard(id);
        // One look-up when the key has counters (the common case).
        if let Some(counters) = shard.keys.get_mut(id) {
            return take(counters, limits, cost, now_ms);
        }
        shard.sweep(now_ms);
        let counters = shard.keys.entry(id.to_owned()).or_default();
        take(counters, limits, cost, now_ms)
    }

    /// Gives back `cost` to the windows of key `id` still open at `now_ms`.
    pub fn release(&self, id: &str, limits: &[RateLimit], cost: u64, now_ms: u64) {
        let mut shard = self.shard(id);
        if let Some(counters) = shard.keys.get_mut(id) {
            for (l, c) in limits.iter().zip(counters.iter_mut()) {
                if c.window_ms == l.window_ms && c.open_at(now_ms) {
                    c.used = c.used.saturating_sub(cost);
                }
            }
        }
    }

    /// Each window of key `id` at `now_ms`, taking nothing and opening
    /// nothing: a window that is not open has all its room and `reset_ms` 0.
    pub fn peek(&self, id: &str, limits: &[RateLimit], now_ms: u64) -> Vec<WindowUsage> {
        let shard = self.shard(id);
        let counters = shard.keys.get(id).map_or(&[][..], Vec::as_slice);
        limits
            .iter()
            .enumerate()
            .map(|(i, l)| match counters.get(i) {
                Some(c) if c.window_ms == l.window_ms && c.open_at(now_ms) => usage(l, c, now_ms),
                _ => WindowUsage {
                    name: l.name.clone(),
                    limit: l.limit,
                    remaining: l.limit,
                    reset_ms: 0,
                },
            })
            .collect()
    }

    /// Keys with counters (open or not yet swept).
    pub fn tracked_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).keys.len())
            .sum()
    }
}

impl Shard {
    fn sweep(&mut self, now_ms: u64) {
        if self.keys.len() < self.swept_at_len + SWEEP_EVERY {
            return;
        }
        self.keys
            .retain(|_, counters| counters.iter().any(|c| c.open_at(now_ms)));
        self.swept_at_len = self.keys.len();
    }
}

/// Takes `cost` from every window in `counters` (aligned with `limits` at
/// `now_ms` first), or nothing.
fn take(counters: &mut Vec<Counter>, limits: &[RateLimit], cost: u64, now_ms: u64) -> RateDecision {
    align(counters, limits, now_ms);
    let need = cost.max(1);
    let full = limits
        .iter()
        .zip(counters.iter())
        .filter(|(l, c)| c.used.saturating_add(need) > l.limit)
        .map(|(l, c)| usage(l, c, now_ms))
        .max_by_key(|w| w.reset_ms);
    if let Some(window) = full {
        return RateDecision::Limited { window };
    }
    RateDecision::Allowed(
        limits
            .iter()
            .zip(counters.iter_mut())
            .map(|(l, c)| {
                c.used += cost;
                usage(l, c, now_ms)
            })
            .collect(),
    )
}

/// Makes `counters` match `limits` at `now_ms`: one per window, a changed
/// window length starts afresh, a closed window reopens empty.
fn align(counters: &mut Vec<Counter>, limits: &[RateLimit], now_ms: u64) {
    counters.truncate(limits.len());
    for (i, l) in limits.iter().enumerate() {
        let fresh = Counter {
            window_ms: l.window_ms,
            opened_ms: now_ms,
            used: 0,
        };
        match counters.get_mut(i) {
            Some(c) if c.window_ms == l.window_ms && c.open_at(now_ms) => {}
            Some(c) => *c = fresh,
            None => counters.push(fresh),
        }
    }
}

fn usage(l: &RateLimit, c: &Counter, now_ms: u64) -> WindowUsage {
    WindowUsage {
        name: l.name.clone(),
        limit: l.limit,
        remaining: l.limit.saturating_sub(c.used),
        reset_ms: c
            .opened_ms
            .saturating_add(c.window_ms)
            .saturating_sub(now_ms)
            .max(1),
    }
}

/// One batch of requests of one key for the shared limiter, with the
/// windows of the request that started it.
pub(crate) struct SharedAcquire {
    shared: Arc<dyn SharedRateLimiter>,
    limits: Vec<RateLimit>,
}

impl Batch for SharedAcquire {
    type Input = u64;
    type Output = RateDecision;
    type Error = LimiterError;

    fn run<'a>(
        &'a self,
        id: &'a str,
        costs: Vec<u64>,
    ) -> BoxFuture<'a, Result<Vec<RateDecision>, LimiterError>> {
        Box::pin(async move {
            if let [cost] = costs.as_slice() {
                return Ok(vec![self.shared.acquire(id, &self.limits, *cost).await?]);
            }
            self.shared.acquire_batch(id, &self.limits, &costs).await
        })
    }

    fn copy_error(e: &LimiterError) -> LimiterError {
        e.clone()
    }

    fn internal_error(message: String) -> LimiterError {
        LimiterError(message)
    }
}

/// Which limiter admitted a request, so a refund goes to the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    Local,
    Shared,
}

/// The service's rate limiting: the shared limiter when there is one and
/// it answers, else the in-process one.
pub(crate) struct Limiters {
    pub(crate) local: LocalRateLimiter,
    shared: Option<Arc<dyn SharedRateLimiter>>,
    timeout: Duration,
    /// While `tokio` time (ms since `epoch`) is below this, the shared
    /// limiter is skipped: it failed recently.
    skip_until_ms: AtomicU64,
    epoch: tokio::time::Instant,
    retry_after_failure: Duration,
    /// Concurrent requests of one key go to the shared limiter together.
    batches: Arc<Coalescer<SharedAcquire>>,
}

impl Limiters {
    pub(crate) fn new(
        shared: Option<Arc<dyn SharedRateLimiter>>,
        timeout: Duration,
        retry_after_failure: Duration,
    ) -> Self {
        Self {
            local: LocalRateLimiter::default(),
            shared,
            timeout,
            skip_until_ms: AtomicU64::new(0),
            epoch: tokio::time::Instant::now(),
            retry_after_failure,
            batches: Arc::default(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The shared limiter, unless it failed within the last
    /// `retry_after_failure`.
    fn usable_shared(&self) -> Option<&Arc<dyn SharedRateLimiter>> {
        let shared = self.shared.as_ref()?;
        (self.elapsed_ms() >= self.skip_until_ms.load(Ordering::Relaxed)).then_some(shared)
    }

    /// True when requests are counted in process right now (no shared
    /// limiter, or it failed recently): [`acquire`](Self::acquire) would
    /// then be `local.acquire`, decided without waiting.
    pub(crate) fn in_process(&self) -> bool {
        self.usable_shared().is_none()
    }

    fn shared_failed(&self, shared: &dyn SharedRateLimiter, e: &LimiterError) {
        let until = self
            .elapsed_ms()
            .saturating_add(u64::try_from(self.retry_after_failure.as_millis()).unwrap_or(0));
        let before = self.skip_until_ms.swap(until, Ordering::Relaxed);
        if before <= self.elapsed_ms() {
            tracing::warn!(
                limiter = shared.name(),
                error = %e,
                retry_in_ms = self.retry_after_failure.as_millis() as u64,
                "shared rate limiter unavailable: limiting per instance until it answers"
            );
        }
    }

    /// True while requests are limited per instance because the shared
    /// limiter failed.
    pub(crate) fn degraded(&self) -> bool {
        self.shared.is_some() && self.usable_shared().is_none()
    }

    pub(crate) async fn acquire(
        &self,
        id: &str,
        limits: &[RateLimit],
        cost: u64,
        now_ms: u64,
    ) -> (RateDecision, Admitted) {
        if let Some(shared) = self.usable_shared() {
            let batched = async {
                let operation = || SharedAcquire {
                    shared: shared.clone(),
                    limits: limits.to_vec(),
                };
                match self.batches.submit(id, cost, operation).await {
                    Ok(result) => result,
                    Err(cost) => shared.acquire(id, limits, cost).await,
                }
            };
            let result = tokio::time::timeout(self.timeout, batched)
                .await
                .unwrap_or_else(|_| Err(LimiterError("timed out".into())));
            match result {
                Ok(decision) => return (decision, Admitted::Shared),
                Err(e) => self.shared_failed(shared.as_ref(), &e),
            }
        }
        (
            self.local.acquire(id, limits, cost, now_ms),
            Admitted::Local,
        )
    }

    /// The windows as requests would find them now: in the shared limiter
    /// while it is used (`None` when it cannot tell or does not answer),
    /// else in process.
    pub(crate) async fn peek(
        &self,
        id: &str,
        limits: &[RateLimit],
        now_ms: u64,
    ) -> Option<Vec<WindowUsage>> {
        if let Some(shared) = self.usable_shared() {
            let peeked = tokio::time::timeout(self.timeout, shared.peek(id, limits)).await;
            return peeked.ok().and_then(Result::ok).flatten();
        }
        Some(self.local.peek(id, limits, now_ms))
    }

    pub(crate) async fn release(
        &self,
        id: &str,
        limits: &[RateLimit],
        cost: u64,
        now_ms: u64,
        admitted: Admitted,
    ) {
        match (admitted, &self.shared) {
            (Admitted::Shared, Some(shared)) => {
                // A refund that does not arrive only refuses more, never less.
                let refund = shared.release(id, limits, cost);
                if let Ok(Err(e)) = tokio::time::timeout(self.timeout, refund).await {
                    tracing::debug!(error = %e, "rate-limit refund lost");
                }
            }
            _ => self.local.release(id, limits, cost, now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Vec<RateLimit> {
        vec![
            RateLimit::new("second", 3, Duration::from_secs(1)),
            RateLimit::new("minute", 5, Duration::from_secs(60)),
        ]
    }

    fn allowed(d: &RateDecision) -> bool {
        matches!(d, RateDecision::Allowed(_))
    }

    #[test]
    fn every_window_must_have_room_and_refusals_take_nothing() {
        let l = LocalRateLimiter::default();
        let limits = limits();
        for _ in 0..3 {
            assert!(allowed(&l.acquire("k", &limits, 1, 0)));
        }
        let RateDecision::Limited { window } = l.acquire("k", &limits, 1, 10) else {
            panic!("the second window is full")
        };
        assert_eq!((window.name.as_str(), window.reset_ms), ("second", 990));
        // One second later the short window reopens: 2 more fit the minute.
        assert!(allowed(&l.acquire("k", &limits, 2, 1000)));
        let RateDecision::Limited { window } = l.acquire("k", &limits, 1, 1001) else {
            panic!("the minute window is full")
        };
        assert_eq!((window.name.as_str(), window.remaining), ("minute", 0));
        // A cost that does not fit takes nothing: a cost of 1 still fits later.
        assert!(!allowed(&l.acquire("other", &limits, 4, 0)));
        let RateDecision::Allowed(usage) = l.acquire("other", &limits, 3, 0) else {
            panic!("nothing was taken by the refused request")
        };
        assert_eq!(usage[0].remaining, 0);
        assert_eq!(usage[1].remaining, 2);
    }

    #[test]
    fn release_gives_back_to_open_windows_only() {
        let l = LocalRateLimiter::default();
        let limits = limits();
        assert!(allowed(&l.acquire("k", &limits, 3, 0)));
        l.release("k", &limits, 3, 5);
        assert!(allowed(&l.acquire("k", &limits, 3, 6)));
        // Cost 0 needs room for one but takes nothing.
        assert!(!allowed(&l.acquire("k", &limits, 0, 7)));
        assert!(allowed(&l.acquire("k", &limits, 0, 1000)));
    }

    #[test]
    fn every_window_is_reported_even_beyond_the_maximum() {
        // More windows than a key may have (a row edited around the
        // validation): all are counted and reported.
        let l = LocalRateLimiter::default();
        let limits: Vec<RateLimit> = (1..=crate::limits::MAX_RATE_LIMITS as u64 + 1)
            .map(|i| RateLimit::new(format!("w{i}"), 10 * i, Duration::from_secs(i)))
            .collect();
        let RateDecision::Allowed(usage) = l.acquire("k", &limits, 2, 0) else {
            panic!("every window has room")
        };
        let seen: Vec<(&str, u64, u64)> = usage
            .iter()
            .map(|w| (w.name.as_str(), w.remaining, w.reset_ms))
            .collect();
        let expected: Vec<(String, u64, u64)> = (1..=crate::limits::MAX_RATE_LIMITS as u64 + 1)
            .map(|i| (format!("w{i}"), 10 * i - 2, 1000 * i))
            .collect();
        let expected: Vec<(&str, u64, u64)> = expected
            .iter()
            .map(|(n, r, t)| (n.as_str(), *r, *t))
            .collect();
        assert_eq!(seen, expected);
        // Of the windows without room, the one that reopens last is named.
        let limits = vec![
            RateLimit::new("long", 1, Duration::from_secs(60)),
            RateLimit::new("short", 1, Duration::from_secs(1)),
            RateLimit::new("roomy", 100, Duration::from_secs(3600)),
        ];
        assert!(allowed(&l.acquire("j", &limits, 1, 0)));
        let RateDecision::Limited { window } = l.acquire("j", &limits, 1, 500) else {
            panic!("two windows are full")
        };
        assert_eq!(
            (window.name.as_str(), window.remaining, window.reset_ms),
            ("long", 0, 59_500)
        );
    }

    #[test]
    fn closed_windows_are_swept() {
        let l = LocalRateLimiter::default();
        let limits = vec![RateLimit::new("s", 1, Duration::from_secs(1))];
        for i in 0..(SHARDS * SWEEP_EVERY * 2) {
            l.acquire(&format!("{i:032x}"), &limits, 1, (i as u64) * 10);
        }
        assert!(
            l.tracked_keys() < SHARDS * SWEEP_EVERY * 2,
            "{} keys kept",
            l.tracked_keys()
        );
    }
}
