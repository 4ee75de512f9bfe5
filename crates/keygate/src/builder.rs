//! `ServiceBuilder`: how an `ApiKeyService` is configured.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{CacheConfig, VerifyCache};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::hash::{HashAlgorithm, KeyHasher, Pepper};
use crate::hash_pool::HashPool;
use crate::invalidation::ChangePublisher;
use crate::key::{KeyFormat, Secret};
use crate::ratelimit::{Limiters, SharedRateLimiter};
use crate::repository::Repository;
use crate::service::{ApiKeyService, Inner};
use crate::telemetry::{Metrics, ObservedStore};
use crate::touch::TouchQueue;

/// Random delay bounds, used to blur timing (off by default on success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

/// Builds an [`ApiKeyService`]. The defaults are the fast, safe ones: Argon2id
/// for new keys, pepper from `API_KEY_PEPPER`, verification cache on,
/// `last_used_at` written at most once a minute per key, no artificial delay.
///
/// ```
/// use std::time::Duration;
/// use keygate::{ApiKeyService, InMemoryRepository, Pepper};
/// let service = ApiKeyService::builder(InMemoryRepository::new())
///     .pepper(Pepper::new("from-your-secret-store").unwrap())
///     .touch_interval(Duration::from_secs(30))
///     .build()
///     .unwrap();
/// # let _ = service;
/// ```
pub struct ServiceBuilder {
    repo: Arc<dyn Repository>,
    pepper: Option<Pepper>,
    algorithm: HashAlgorithm,
    format: KeyFormat,
    cache: Option<CacheConfig>,
    touch_interval: Duration,
    failure_delay: Option<DelayRange>,
    success_delay: Option<DelayRange>,
    hash_threads: Option<usize>,
    clock: Arc<dyn Clock>,
    shared_limiter: Option<Arc<dyn SharedRateLimiter>>,
    shared_limiter_timeout: Duration,
    shared_limiter_retry: Duration,
    publisher: Option<Arc<dyn ChangePublisher>>,
}

/// The settings, never the pepper: whether one is set, and the pieces
/// (store, clock, limiter, publisher) only as present or not.
impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("pepper_set", &self.pepper.is_some())
            .field("algorithm", &self.algorithm)
            .field("format", &self.format)
            .field("cache", &self.cache)
            .field("touch_interval", &self.touch_interval)
            .field("failure_delay", &self.failure_delay)
            .field("success_delay", &self.success_delay)
            .field("hash_threads", &self.hash_threads)
            .field("shared_limiter", &self.shared_limiter.is_some())
            .field("shared_limiter_timeout", &self.shared_limiter_timeout)
            .field("shared_limiter_retry", &self.shared_limiter_retry)
            .field("publisher", &self.publisher.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    pub(crate) fn new(repo: Arc<dyn Repository>) -> Self {
        Self {
            repo,
            pepper: None,
            algorithm: HashAlgorithm::default(),
            format: KeyFormat::default(),
            cache: Some(CacheConfig::default()),
            touch_interval: Duration::from_secs(60),
            failure_delay: None,
            success_delay: None,
            hash_threads: None,
            clock: Arc::new(SystemClock),
            shared_limiter: None,
            shared_limiter_timeout: Duration::from_millis(100),
            shared_limiter_retry: Duration::from_secs(1),
            publisher: None,
        }
    }

    /// The pepper (default: `API_KEY_PEPPER`, else the placeholder with a warning).
    pub fn pepper(mut self, pepper: Pepper) -> Self {
        self.pepper = Some(pepper);
        self
    }

    /// The algorithm for new hashes (default Argon2id). Existing hashes of
    /// any supported format keep verifying.
    pub fn algorithm(mut self, algorithm: HashAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Shorthand for [`HashAlgorithm::HmacSha256`]: sound for keygate's
    /// generated 64-character secrets, and microseconds instead of
    /// milliseconds.
    pub fn fast_hashing(self) -> Self {
        self.algorithm(HashAlgorithm::HmacSha256)
    }

    /// Prefix and separator of keys (default `ak_v1` and `-`).
    pub fn key_format(mut self, format: KeyFormat) -> Self {
        self.format = format;
        self
    }

    /// Verification cache settings (on by default).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Turns the verification cache off: every verify reads the store.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Least time between two `last_used_at` writes of one key (default
    /// 60 s). Zero writes every use before `verify` returns.
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = interval;
        self
    }

    /// Sleeps a random time in `min..=max` before returning a failed
    /// verification (off by default).
    pub fn failure_delay(mut self, min: Duration, max: Duration) -> Self {
        self.failure_delay = Some(DelayRange { min, max });
        self
    }

    /// Sleeps a random time in `min..=max` before returning a successful
    /// verification. Off by default, and there is rarely a reason to turn it
    /// on: unknown key ids already cost the same hashing work as known ones.
    pub fn success_delay(mut self, min: Duration, max: Duration) -> Self {
        self.success_delay = Some(DelayRange { min, max });
        self
    }

    /// Threads for slow hashes (Argon2, bcrypt), which never run on the
    /// async executor (default: cores − 1, at least 1), so a flood of wrong
    /// secrets cannot take every core from valid requests.
    pub fn hash_threads(mut self, n: usize) -> Self {
        self.hash_threads = Some(n.max(1));
        self
    }

    /// Where the service reads the time (default [`SystemClock`]): expiry,
    /// grace periods, audit times and `last_used_at`. A [`ManualClock`](crate::ManualClock)
    ///  lets tests move time without sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Rate-limit counters shared by every instance (e.g.
    /// `keygate_redis::RedisRateLimiter`), so a window's limit holds across
    /// all of them. Without one, limits are exact per process.
    ///
    /// When the shared limiter fails or takes longer than `timeout`
    /// (default 100 ms), the service limits in process (each instance then
    /// admits up to the limit; nothing is let through unchecked), logs a
    /// warning, and tries the shared limiter again after `retry` (default
    /// 1 s).
    pub fn shared_rate_limiter(mut self, limiter: Arc<dyn SharedRateLimiter>) -> Self {
        self.shared_limiter = Some(limiter);
        self
    }

    /// How long to wait for the shared rate limiter before limiting in
    /// process, and how long to skip it after a failure.
    pub fn shared_rate_limiter_timing(mut self, timeout: Duration, retry: Duration) -> Self {
        self.shared_limiter_timeout = timeout;
        self.shared_limiter_retry = retry;
        self
    }

    /// Announces every change this service stores to the other instances
    /// (e.g. `keygate_redis::RedisChangeFeed`), so that their caches drop
    /// the key at once. See [`ChangePublisher`].
    pub fn change_publisher(mut self, publisher: Arc<dyn ChangePublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Checks the configuration and builds the service. Its metrics go to
    /// the `metrics` recorder installed at this moment, if any (see
    /// [`telemetry`](crate::telemetry)).
    pub fn build(self) -> Result<ApiKeyService, Error> {
        for (field, range) in [
            ("failure_delay", self.failure_delay),
            ("success_delay", self.success_delay),
        ] {
            if range.is_some_and(|r| r.min > r.max) {
                return Err(Error::validation(field, "min must not exceed max"));
            }
        }
        let hasher = KeyHasher::new(self.pepper.unwrap_or_else(Pepper::from_env), self.algorithm)?;
        // Unknown key ids are checked against this, so they cost the same
        // hashing work as known ones.
        let dummy_hash = hasher.hash(Secret::generate().expose())?;
        let hash_threads = self.hash_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
        });
        // The handles of the recorder installed now (see `telemetry`).
        let metrics = Metrics::register();
        Ok(ApiKeyService::from_inner(Inner {
            repo: Arc::new(ObservedStore::new(self.repo.clone(), &metrics)),
            given_repo: self.repo,
            metrics,
            hasher: Arc::new(hasher),
            format: self.format,
            cache: self.cache.map(VerifyCache::new),
            touch: TouchQueue::new(self.touch_interval),
            dummy_hash,
            hash_pool: HashPool::new(hash_threads)?,
            failure_delay: self.failure_delay,
            success_delay: self.success_delay,
            clock: self.clock,
            limiters: Limiters::new(
                self.shared_limiter,
                self.shared_limiter_timeout,
                self.shared_limiter_retry,
            ),
            credit_queues: Arc::default(),
            publisher: self.publisher,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryRepository;

    #[test]
    fn debug_shows_the_settings_but_never_the_pepper() {
        let builder = crate::ApiKeyService::builder(InMemoryRepository::new())
            .pepper(Pepper::new("pepper-that-must-not-be-printed").unwrap())
            .touch_interval(Duration::from_secs(30));
        let shown = format!("{builder:?}");
        assert!(shown.contains("pepper_set: true"), "{shown}");
        assert!(shown.contains("touch_interval: 30s"), "{shown}");
        assert!(
            !shown.contains("pepper-that-must-not-be-printed"),
            "{shown}"
        );
    }
}
