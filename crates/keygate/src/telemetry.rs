//! What a service tells about itself (SPEC §14): metrics through the
//! [`metrics`](https://docs.rs/metrics) facade, the outcome of every
//! verification for the logs, and `tracing` spans on the verification path
//! and on store calls.
//!
//! # Metrics
//!
//! keygate records through the `metrics` facade, so the application picks
//! the exporter (Prometheus, StatsD, OpenTelemetry…). Until one installs a
//! recorder, recording costs a branch. A service takes its handles once,
//! when it is built: install the recorder **before**
//! [`ServiceBuilder::build`](crate::ServiceBuilder::build). Every increment
//! is then an atomic add on a handle, with no name or label look-up.
//!
//! | name | kind | what |
//! |---|---|---|
//! | [`VERIFICATIONS_TOTAL`] | counter, label `outcome` ([`Outcome::as_str`]) | verifications, by outcome |
//! | [`VERIFY_DURATION_SECONDS`] | histogram | time to verify a key, without the configured pacing delays (timed only when a recorder takes it) |
//! | [`CACHE_HITS_TOTAL`] | counter | verifications answered from the cache |
//! | [`CACHE_MISSES_TOTAL`] | counter | verifications that had to read the store (cache on) |
//! | [`STORE_ERRORS_TOTAL`] | counter | failed store calls of the service (conflicts are answers, not errors) |
//! | [`HASH_QUEUE_DEPTH`] | gauge | hashing jobs waiting for a thread |
//! | [`RATE_LIMIT_DEGRADED`] | gauge | 1 while rate limits are counted per instance because the shared limiter failed |
//!
//! The two gauges are read, not pushed: call
//! [`ApiKeyService::update_gauges`](crate::ApiKeyService::update_gauges)
//! right before rendering the metrics.
//!
//! With the `prometheus` feature, `prometheus::Prometheus` is the
//! recorder `keygate serve` uses: `metrics-exporter-prometheus`, with the
//! latency histogram in fixed buckets (the exporter's own histogram storage
//! costs several times more per verification).
//!
//! # Logs
//!
//! Every verification ends in one [`Verification`]: the public key id
//! (when the key could be parsed) and the [`Outcome`]. Never the secret.
//! A server that writes one log line per request runs the request inside
//! [`capture_verification`] and puts the last verification on that line;
//! everywhere else keygate logs it itself: a refusal at `info`
//! (`API key refused`, fields `key_id` and `outcome`), a success at `debug`.
//!
//! # Spans
//!
//! `keygate.verify` (level `debug`, field `key_id`) around the part of a
//! verification the cache cannot answer (the store read and the hashing; a
//! cache hit takes less time than a span), and `keygate.store` (level
//! `debug`, field `op`) around every store call the service makes.
//!
//! # Cost
//!
//! Without a recorder: a few nanoseconds per verification (the clock is
//! not even read). With `prometheus::Prometheus`: two counter increments
//! (~10 ns each), two clock reads (~19 ns together: `quanta`, the TSC where
//! it is reliable) and a histogram record (~10 ns), measured on a 2-core
//! VM. Compare `verify/cached_metrics` with `verify/cached` in
//! `benches/verify.rs`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metrics::{Counter, Gauge, Histogram, IntoF64, Unit};
use tracing::Instrument;

use crate::audit::{Audit, AuditEvent, EventFilter};
use crate::change::KeyChange;
use crate::entity::ApiKey;
use crate::error::{Error, StoreError};
use crate::filter::ApiKeyFilter;
use crate::key::KEY_ID_LEN;
use crate::limits::CreditUse;
use crate::repository::{AuditLog, KeySearch, KeyStore, Repository};

#[cfg(feature = "prometheus")]
pub mod prometheus;

/// Counter of verifications, label `outcome`.
pub const VERIFICATIONS_TOTAL: &str = "keygate_verifications_total";
/// Histogram of verification times, in seconds.
pub const VERIFY_DURATION_SECONDS: &str = "keygate_verify_duration_seconds";
/// Counter of verifications answered from the cache.
pub const CACHE_HITS_TOTAL: &str = "keygate_cache_hits_total";
/// Counter of verifications the cache could not answer alone.
pub const CACHE_MISSES_TOTAL: &str = "keygate_cache_misses_total";
/// Counter of failed store calls.
pub const STORE_ERRORS_TOTAL: &str = "keygate_store_errors_total";
/// Gauge of hashing jobs waiting for a thread.
pub const HASH_QUEUE_DEPTH: &str = "keygate_hash_queue_depth";
/// Gauge: 1 while the shared rate limiter is bypassed, else 0.
pub const RATE_LIMIT_DEGRADED: &str = "keygate_rate_limit_degraded";

/// Bucket bounds (seconds) suited to [`VERIFY_DURATION_SECONDS`]: a cached
/// verification takes about a microsecond, a store read a millisecond, an
/// Argon2 hash tens of milliseconds, a queue for the hashing pool more.
pub const VERIFY_DURATION_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How a verification ended: the `outcome` label of
/// [`VERIFICATIONS_TOTAL`] and the `outcome` field of the logs.
///
/// ```
/// use keygate::{Error, Outcome};
/// assert_eq!(Outcome::of(&Error::KeyExpired).as_str(), "expired");
/// assert_eq!(Outcome::of(&Error::Overloaded), Outcome::Overloaded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Verified: `ok`.
    Ok,
    /// No key presented: `missing`.
    Missing,
    /// Malformed, or a wrong secret: `invalid`.
    Invalid,
    /// Well formed, but no key has its key id: `not_found`.
    NotFound,
    /// Deactivated: `inactive`.
    Inactive,
    /// Past its expiry: `expired`.
    Expired,
    /// Lacks a required scope: `insufficient_scope`.
    InsufficientScope,
    /// A rate-limit window is full: `rate_limited`.
    RateLimited,
    /// Too few credits: `usage_exceeded`.
    UsageExceeded,
    /// The store did not answer: `store_unavailable`.
    StoreUnavailable,
    /// Too many keys waiting for the hashing pool: `overloaded`.
    Overloaded,
    /// Anything else (a store or hashing failure): `error`.
    Error,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 12] = [
        Self::Ok,
        Self::Missing,
        Self::Invalid,
        Self::NotFound,
        Self::Inactive,
        Self::Expired,
        Self::InsufficientScope,
        Self::RateLimited,
        Self::UsageExceeded,
        Self::StoreUnavailable,
        Self::Overloaded,
        Self::Error,
    ];

    /// The label: `ok`, `missing`, `invalid`, `not_found`, `inactive`,
    /// `expired`, `insufficient_scope`, `rate_limited`, `usage_exceeded`,
    /// `store_unavailable`, `overloaded` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::NotFound => "not_found",
            Self::Inactive => "inactive",
            Self::Expired => "expired",
            Self::InsufficientScope => "insufficient_scope",
            Self::RateLimited => "rate_limited",
            Self::UsageExceeded => "usage_exceeded",
            Self::StoreUnavailable => "store_unavailable",
            Self::Overloaded => "overloaded",
            Self::Error => "error",
        }
    }

    /// The outcome of a verification that failed with `error`.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::KeyNotProvided => Self::Missing,
            Error::InvalidKey => Self::Invalid,
            Error::KeyNotFound => Self::NotFound,
            Error::KeyInactive => Self::Inactive,
            Error::KeyExpired => Self::Expired,
            Error::InvalidScopes { .. } => Self::InsufficientScope,
            Error::RateLimited { .. } => Self::RateLimited,
            Error::UsageExceeded { .. } => Self::UsageExceeded,
            Error::StoreUnavailable(_) => Self::StoreUnavailable,
            Error::Overloaded => Self::Overloaded,
            Error::NotFound
            | Error::Validation(_)
            | Error::Conflict(_)
            | Error::Store(_)
            | Error::Hash(_) => Self::Error,
        }
    }

    /// The outcome of a verification's result.
    pub fn of_result<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(e) => Self::of(e),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verification, as the logs tell it: the public key id, when the
/// presented key could be parsed, and the outcome. Never the secret.
/// `Copy`, without allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    key_id: Option<[u8; KEY_ID_LEN]>,
    outcome: Outcome,
}

impl Verification {
    pub(crate) fn new(key_id: Option<&str>, outcome: Outcome) -> Self {
        let key_id = key_id.and_then(|id| <[u8; KEY_ID_LEN]>::try_from(id.as_bytes()).ok());
        Self { key_id, outcome }
    }

    /// The key id of the presented key, when it could be parsed.
    pub fn key_id(&self) -> Option<&str> {
        // Key ids are hexadecimal: always UTF-8.
        self.key_id
            .as_ref()
            .and_then(|id| std::str::from_utf8(id).ok())
    }

    /// How it ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("key_id", &self.key_id())
            .field("outcome", &self.outcome)
            .finish()
    }
}

tokio::task_local! {
    /// The last verification made inside [`capture_verification`].
    static LAST: Cell<Option<Verification>>;
}

/// Runs `fut` and returns its output with the last verification it made
/// (in this task), if any. Verifications made inside are not logged by
/// keygate: the caller logs them, e.g. on its one line per request.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use keygate::{capture_verification, ApiKeyService, InMemoryRepository, Outcome};
/// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let key = "ak_v1-0123456789abcdef-NoSuchSecret0123456789";
/// let (result, seen) = capture_verification(service.verify(key, &[""; 0])).await;
/// assert!(result.is_err());
/// let seen = seen.unwrap();
/// assert_eq!(seen.key_id(), Some("0123456789abcdef"));
/// assert_eq!(seen.outcome(), Outcome::NotFound);
/// # });
/// ```
pub async fn capture_verification<F: Future>(fut: F) -> (F::Output, Option<Verification>) {
    // Counted for as long as the future lives, however it ends.
    let _capturing = Capturing::enter();
    LAST.scope(Cell::new(None), async move {
        let output = fut.await;
        (output, LAST.with(Cell::get))
    })
    .await
}

/// How many [`capture_verification`] futures exist: while none does, a
/// verification does not look for one (a task-local look-up costs more
/// than the rest of the counting).
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

struct Capturing;

impl Capturing {
    fn enter() -> Self {
        CAPTURING.fetch_add(1, Ordering::Relaxed);
        Self
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hands `seen` to the enclosing [`capture_verification`], or logs it.
fn note(seen: Verification) {
    // A capture in this task was counted before it began: this thread
    // sees its own (or the earlier poll's, through the scheduler) count.
    let capturing = CAPTURING.load(Ordering::Relaxed) > 0;
    if capturing && LAST.try_with(|last| last.set(Some(seen))).is_ok() {
        return;
    }
    if seen.outcome == Outcome::Ok {
        tracing::debug!(key_id = seen.key_id(), outcome = "ok", "API key verified");
    } else {
        tracing::info!(
            key_id = seen.key_id(),
            outcome = seen.outcome.as_str(),
            "API key refused"
        );
    }
}

/// The handles a service records through, taken once when it is built.
pub(crate) struct Metrics {
    /// Indexed by `Outcome as usize`.
    verifications: [Counter; Outcome::ALL.len()],
    duration: Histogram,
    /// `duration` goes to a recorder (else the clock is not read).
    timed: bool,
    cache_hits: Counter,
    cache_misses: Counter,
    store_errors: Counter,
    hash_queue_depth: Gauge,
    rate_limit_degraded: Gauge,
}

impl Metrics {
    /// Takes the handles from the recorder installed now (no-op handles
    /// when there is none).
    pub(crate) fn register() -> Self {
        describe();
        let duration = metrics::histogram!(VERIFY_DURATION_SECONDS);
        let timed = records(&duration);
        if timed {
            // The first read calibrates the clock: not on a request.
            let _ = quanta::Instant::now();
        }
        Self {
            timed,
            duration,
            verifications: Outcome::ALL
                .map(|o| metrics::counter!(VERIFICATIONS_TOTAL, "outcome" => o.as_str())),
            cache_hits: metrics::counter!(CACHE_HITS_TOTAL),
            cache_misses: metrics::counter!(CACHE_MISSES_TOTAL),
            store_errors: metrics::counter!(STORE_ERRORS_TOTAL),
            hash_queue_depth: metrics::gauge!(HASH_QUEUE_DEPTH),
            rate_limit_degraded: metrics::gauge!(RATE_LIMIT_DEGRADED),
        }
    }

    /// Whether verifications are timed: only when a recorder takes the
    /// histogram.
    pub(crate) fn timed(&self) -> bool {
        self.timed
    }

    /// Counts and times a finished verification, and logs it or hands it
    /// to the enclosing [`capture_verification`].
    pub(crate) fn verified(
        &self,
        key_id: Option<&str>,
        outcome: Outcome,
        started: Option<quanta::Instant>,
    ) {
        self.verifications[outcome as usize].increment(1);
        if let Some(started) = started {
            self.duration.record(started.elapsed());
        }
        note(Verification::new(key_id, outcome));
    }

    /// Counts and logs a verification refused before it began (no key).
    pub(crate) fn refused(&self, outcome: Outcome) {
        self.verifications[outcome as usize].increment(1);
        note(Verification::new(None, outcome));
    }

    /// Whether the cache answered a verification alone.
    pub(crate) fn cache(&self, hit: bool) {
        if hit {
            self.cache_hits.increment(1);
        } else {
            self.cache_misses.increment(1);
        }
    }

    pub(crate) fn gauges(&self, hash_queue_depth: usize, rate_limit_degraded: bool) {
        self.hash_queue_depth.set(hash_queue_depth as f64);
        self.rate_limit_degraded
            .set(if rate_limit_degraded { 1.0 } else { 0.0 });
    }
}

/// True when `histogram` goes to a recorder: a no-op handle never asks
/// for the value, and zero samples record nothing either way.
fn records(histogram: &Histogram) -> bool {
    struct Probe<'a>(&'a Cell<bool>);
    impl IntoF64 for Probe<'_> {
        fn into_f64(self) -> f64 {
            self.0.set(true);
            0.0
        }
    }
    let asked = Cell::new(false);
    histogram.record_many(Probe(&asked), 0);
    asked.get()
}

fn describe() {
    metrics::describe_counter!(
        VERIFICATIONS_TOTAL,
        Unit::Count,
        "API key verifications, by outcome"
    );
    metrics::describe_histogram!(
        VERIFY_DURATION_SECONDS,
        Unit::Seconds,
        "Time to verify an API key (configured pacing delays excluded)"
    );
    metrics::describe_counter!(
        CACHE_HITS_TOTAL,
        Unit::Count,
        "Verifications answered from the verification cache"
    );
    metrics::describe_counter!(
        CACHE_MISSES_TOTAL,
        Unit::Count,
        "Verifications the cache could not answer alone (store read)"
    );
    metrics::describe_counter!(
        STORE_ERRORS_TOTAL,
        Unit::Count,
        "Failed calls to the key store"
    );
    metrics::describe_gauge!(
        HASH_QUEUE_DEPTH,
        Unit::Count,
        "Slow-hashing jobs waiting for a thread"
    );
    metrics::describe_gauge!(
        RATE_LIMIT_DEGRADED,
        "1 while rate limits are counted per instance because the shared rate limiter failed"
    );
}

/// The service's store: each call in a `keygate.store` span, each failure
/// counted in [`STORE_ERRORS_TOTAL`].
pub(crate) struct ObservedStore {
    inner: Arc<dyn Repository>,
    errors: Counter,
}

impl ObservedStore {
    pub(crate) fn new(inner: Arc<dyn Repository>, metrics: &Metrics) -> Self {
        Self {
            inner,
            errors: metrics.store_errors.clone(),
        }
    }

    async fn call<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!("keygate.store", op);
        // A disabled span (the usual case) costs no wrapper.
        let result = if span.is_disabled() {
            call.await
        } else {
            call.instrument(span).await
        };
        // A conflict is the store's answer to a write, not its failure.
        if matches!(&result, Err(e) if !matches!(e, StoreError::Conflict(_))) {
            self.errors.increment(1);
        }
        result
    }
}

#[async_trait]
impl KeyStore for ObservedStore {
    async fn get(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.call("get", self.inner.get(id)).await
    }

    async fn get_by_key_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.call("get_by_key_id", self.inner.get_by_key_id(key_id))
            .await
    }

    async fn insert(&self, key: &ApiKey, audit: &Audit) -> Result<(), StoreError> {
        self.call("insert", self.inner.insert(key, audit)).await
    }

    async fn update(
        &self,
        id: &str,
        change: &KeyChange,
        audit: &Audit,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.call("update", self.inner.update(id, change, audit))
            .await
    }

    async fn delete(&self, id: &str, audit: &Audit) -> Result<Option<ApiKey>, StoreError> {
        self.call("delete", self.inner.delete(id, audit)).await
    }

    async fn touch(&self, uses: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        self.call("touch", self.inner.touch(uses)).await
    }

    async fn consume_credits(
        &self,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<CreditUse, StoreError> {
        self.call("consume_credits", self.inner.consume_credits(id, cost, now))
            .await
    }

    async fn consume_credits_batch(
        &self,
        id: &str,
        costs: &[u64],
        now: DateTime<Utc>,
    ) -> Result<Vec<CreditUse>, StoreError> {
        let call = self.inner.consume_credits_batch(id, costs, now);
        self.call("consume_credits_batch", call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.call("ping", self.inner.ping()).await
    }
}

#[async_trait]
impl KeySearch for ObservedStore {
    async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, StoreError> {
        self.call("find", self.inner.find(filter)).await
    }

    async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, StoreError> {
        self.call("count", self.inner.count(filter)).await
    }
}

#[async_trait]
impl AuditLog for ObservedStore {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.call("events", self.inner.events(filter)).await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64, StoreError> {
        self.call("count_events", self.inner.count_events(filter))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limits::WindowUsage;

    #[test]
    fn outcomes_are_indexed_in_declaration_order() {
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i, "{outcome}");
        }
    }

    #[test]
    fn every_error_has_its_outcome() {
        let window = WindowUsage {
            name: "w".into(),
            limit: 1,
            remaining: 0,
            reset_ms: 1,
        };
        let cases = [
            (Error::KeyNotProvided, "missing"),
            (Error::InvalidKey, "invalid"),
            (Error::KeyNotFound, "not_found"),
            (Error::KeyInactive, "inactive"),
            (Error::KeyExpired, "expired"),
            (
                Error::InvalidScopes {
                    required: vec!["a".into()],
                    missing: vec!["a".into()],
                },
                "insufficient_scope",
            ),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(1),
                    window,
                },
                "rate_limited",
            ),
            (Error::UsageExceeded { retry_after: None }, "usage_exceeded"),
            (Error::StoreUnavailable("down".into()), "store_unavailable"),
            (Error::Overloaded, "overloaded"),
            (Error::Store("corrupt".into()), "error"),
            (Error::Hash("bad".into()), "error"),
            (Error::validation("cost", "too high"), "error"),
        ];
        for (error, label) in cases {
            assert_eq!(Outcome::of(&error).as_str(), label, "{error}");
        }
        assert_eq!(Outcome::of_result(&Ok::<(), Error>(())), Outcome::Ok);
        // Every label is distinct.
        let labels: std::collections::HashSet<_> = Outcome::ALL.map(Outcome::as_str).into();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }

    #[test]
    fn a_verification_keeps_the_key_id_only() {
        let seen = Verification::new(Some("0123456789abcdef"), Outcome::Invalid);
        assert_eq!(seen.key_id(), Some("0123456789abcdef"));
        assert_eq!(seen.outcome(), Outcome::Invalid);
        assert_eq!(Verification::new(None, Outcome::Missing).key_id(), None);
        // Not a key id: dropped rather than cut.
        assert_eq!(
            Verification::new(Some("short"), Outcome::Invalid).key_id(),
            None
        );
    }

    #[tokio::test]
    async fn captured_verifications_reach_the_caller_only_inside() {
        let (out, seen) = capture_verification(async {
            note(Verification::new(None, Outcome::Missing));
            note(Verification::new(Some("0123456789abcdef"), Outcome::Ok));
            7
        })
        .await;
        assert_eq!(out, 7);
        let seen = seen.unwrap();
        assert_eq!(seen.outcome(), Outcome::Ok, "the last one");
        assert_eq!(seen.key_id(), Some("0123456789abcdef"));
        let (_, none) = capture_verification(async {}).await;
        assert!(none.is_none());
    }
}
