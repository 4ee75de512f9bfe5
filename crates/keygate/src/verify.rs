//! The verification path, top to bottom, and slow hashing off the executor.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;
use tracing::Instrument;
use zeroize::Zeroizing;

use crate::builder::DelayRange;
use crate::cache::{digest, Cached, KeyDigest, Proof, VerifyCache};
use crate::entity::{truncate_micros, ApiKey};
use crate::error::Error;
use crate::hash::HashAlgorithm;
use crate::hash_pool::Lane;
use crate::key::{ParsedKey, Secret};
use crate::limits::{check_cost, epoch_ms, CreditUse, RateDecision, Usage};
use crate::ratelimit::Admitted;
use crate::service::{ApiKeyService, Inner, Verified};
use crate::telemetry::Outcome;
use crate::touch::FLUSH_EVERY;

impl ApiKeyService {
    /// Verifies a presented key and checks that it holds **every** scope in
    /// `required`, at a cost of 1 (see [`verify_with`](Self::verify_with)).
    /// Returns the key's entity.
    pub async fn verify<S: AsRef<str>>(
        &self,
        raw_key: &str,
        required: &[S],
    ) -> Result<Arc<ApiKey>, Error> {
        self.verify_with(raw_key, required, 1).await.map(|v| v.key)
    }

    /// Verifies a presented key, checks that it holds **every** scope in
    /// `required`, and takes `cost` (0..=1000; 0 checks that one more
    /// request would pass without taking anything) from its limits.
    ///
    /// Order (hash before status, so a wrong secret learns nothing about the
    /// key's state): blank → [`Error::KeyNotProvided`]; malformed →
    /// [`Error::InvalidKey`]; unknown key id → [`Error::KeyNotFound`] (after
    /// the same hashing work); wrong secret → [`Error::InvalidKey`] (a
    /// secret replaced by [`rotate`](Self::rotate) counts as right only
    /// until its grace period ends, cache hits included); inactive
    /// → [`Error::KeyInactive`]; expired → [`Error::KeyExpired`]; missing
    /// scopes → [`Error::InvalidScopes`]; a rate-limit window without room
    /// → [`Error::RateLimited`]; too few credits → [`Error::UsageExceeded`];
    /// then the use is recorded. A refused request takes nothing from any
    /// window or from the credits.
    ///
    /// Every verification is counted and timed, and logged or handed to
    /// [`capture_verification`](crate::capture_verification) (see
    /// [`telemetry`](crate::telemetry)).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate::{ApiKeyService, Credits, Error, InMemoryRepository, NewApiKey};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let (_, key) = service.create(NewApiKey::named("metered").with_credits(Credits::new(5))).await.unwrap();
    /// let v = service.verify_with(key.expose(), &[""; 0], 3).await.unwrap();
    /// assert_eq!(v.usage.remaining, Some(2));
    /// assert!(matches!(
    ///     service.verify_with(key.expose(), &[""; 0], 3).await,
    ///     Err(Error::UsageExceeded { .. })
    /// ));
    /// # });
    /// ```
    pub async fn verify_with<S: AsRef<str>>(
        &self,
        raw_key: &str,
        required: &[S],
        cost: u64,
    ) -> Result<Verified, Error> {
        if let Some(done) = self.verify_now(raw_key, required, cost) {
            return done;
        }
        // Only when a recorder takes the time.
        let started = self.inner.metrics.timed().then(quanta::Instant::now);
        // 1–2. Blank or malformed: no store access, no hashing.
        let (key_id, result) = match self.inner.format.parse(raw_key) {
            Ok(parsed) => {
                let verified = self.verify_parsed(raw_key, parsed, required, cost);
                (Some(parsed.key_id), verified.await)
            }
            Err(e) => (None, Err(e)),
        };
        // Before the pacing delay: the histogram shows the work, not the wait.
        let outcome = Outcome::of_result(&result);
        self.inner.metrics.verified(key_id, outcome, started);
        let delay = match &result {
            Ok(_) => self.inner.success_delay,
            Err(e) if e.is_auth_failure() => self.inner.failure_delay,
            Err(_) => None,
        };
        if let Some(range) = delay {
            // Boxed: keeps the common (no delay) future small.
            Box::pin(sleep_between(range)).await;
        }
        result
    }

    /// [`verify_with`](Self::verify_with) when it can be decided without
    /// waiting, else `None` (then nothing was counted or taken: call
    /// `verify_with`). It can when the key is malformed or the cost out of
    /// range, or when the cache holds a fresh copy of this exact key which
    /// has no credits, whose rate limits (if any) are counted in process at
    /// the moment, and whose `last_used_at` needs no write-through; and
    /// never when a pacing delay is configured. The result, counting and
    /// logging are those of `verify_with`.
    ///
    /// For callers that can skip a future on the common path, like
    /// `keygate-axum`'s layer; `verify_with` tries it first itself.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate::{ApiKeyService, InMemoryRepository, NewApiKey};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let (_, key) = service.create(NewApiKey::named("svc").with_scopes(["read"])).await.unwrap();
    /// // Not cached yet: the store must be read.
    /// assert!(service.verify_now(key.expose(), &["read"], 1).is_none());
    /// service.verify(key.expose(), &["read"]).await.unwrap();
    /// let now = service.verify_now(key.expose(), &["read"], 1).unwrap().unwrap();
    /// assert_eq!(now.key.name.as_deref(), Some("svc"));
    /// assert!(service.verify_now("not a key", &["read"], 1).unwrap().is_err());
    /// # });
    /// ```
    pub fn verify_now<S: AsRef<str>>(
        &self,
        raw_key: &str,
        required: &[S],
        cost: u64,
    ) -> Option<Result<Verified, Error>> {
        let inner = &*self.inner;
        if let Err(e) = check_cost(cost) {
            return Some(Err(Error::Validation(vec![e])));
        }
        if inner.success_delay.is_some() || inner.failure_delay.is_some() {
            return None;
        }
        let started = inner.metrics.timed().then(quanta::Instant::now);
        // A cache hit needs only the key id: the digest then matches a key
        // that was parsed (and proven) before, so its characters are not
        // checked again.
        let decided = match inner.format.key_id_of(raw_key) {
            Some(key_id) if inner.cache.is_some() => self
                .verify_cached(raw_key, key_id, required, cost)
                .map(|result| (key_id, result)),
            _ => None,
        };
        // 1–2. Blank or malformed: refused at once. Else the cache cannot
        // answer alone: `verify_with`'s path.
        let Some((key_id, result)) = decided else {
            let e = inner.format.parse(raw_key).err()?;
            inner.metrics.verified(None, Outcome::of(&e), started);
            return Some(Err(e));
        };
        inner
            .metrics
            .verified(Some(key_id), Outcome::of_result(&result), started);
        Some(result)
    }

    /// Steps 3–9 of [`verify_now`](Self::verify_now): `None` unless the
    /// cache and the in-process limiter can answer alone.
    fn verify_cached<S: AsRef<str>>(
        &self,
        raw_key: &str,
        key_id: &str,
        required: &[S],
        cost: u64,
    ) -> Option<Result<Verified, Error>> {
        let inner = &*self.inner;
        let cache = inner.cache.as_ref()?;
        let now = inner.clock.now();
        let presented = digest(raw_key);
        let Some(Cached::Fresh(key, proof)) = cache.get(key_id, &presented, now) else {
            return None;
        };
        let limited = key.rate_limits.as_deref().is_some_and(|l| !l.is_empty());
        let waits = key.credits.is_some()
            || (limited && !inner.limiters.in_process())
            || (inner.touch.writes_through() && inner.touch.is_due(&key, now));
        if waits {
            return None;
        }
        inner.metrics.cache(true);
        Some(self.finish_cached(key, proof, presented, required, cost, now))
    }

    fn finish_cached<S: AsRef<str>>(
        &self,
        key: Arc<ApiKey>,
        proof: Proof,
        presented: KeyDigest,
        required: &[S],
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<Verified, Error> {
        admit(&key, proof, required, now)?;
        let mut usage = Usage::default();
        if let Some(limits) = key.rate_limits.as_deref().filter(|l| !l.is_empty()) {
            let local = &self.inner.limiters.local;
            match local.acquire(&key.id, limits, cost, epoch_ms(now)) {
                RateDecision::Allowed(windows) => usage.rate_limits = windows,
                RateDecision::Limited { window } => return Err(rate_limited(window)),
            }
        }
        let key = if self.inner.touch.is_due(&key, now) {
            self.queue_use(key, Some(presented), now)
        } else {
            key
        };
        Ok(Verified { key, usage })
    }

    /// Counts and logs a verification refused before any key reached
    /// [`verify_with`](Self::verify_with), e.g. a request without a key,
    /// as `verify_with` does its own (see [`telemetry`](crate::telemetry));
    /// nothing is timed. For code that looks for the key itself, like
    /// `keygate-axum`'s layer.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate::{capture_verification, ApiKeyService, Error, InMemoryRepository, Outcome};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let ((), seen) = capture_verification(async { service.record_refusal(&Error::KeyNotProvided) }).await;
    /// assert_eq!(seen.unwrap().outcome(), Outcome::Missing);
    /// # });
    /// ```
    pub fn record_refusal(&self, error: &Error) {
        self.inner.metrics.refused(Outcome::of(error));
    }

    /// Steps 3–9 for a well-formed key.
    async fn verify_parsed<S: AsRef<str>>(
        &self,
        raw_key: &str,
        parsed: ParsedKey<'_>,
        required: &[S],
        cost: u64,
    ) -> Result<Verified, Error> {
        let inner = &self.inner;
        // Cache hit only when the whole presented key matches the cached one.
        let now = inner.clock.now();
        let presented = inner.cache.as_ref().map(|_| digest(raw_key));
        let cached = inner
            .cache
            .as_ref()
            .zip(presented.as_ref())
            .and_then(|(cache, d)| cache.get(parsed.key_id, d, now));
        if inner.cache.is_some() {
            inner
                .metrics
                .cache(matches!(cached, Some(Cached::Fresh(..))));
        }

        let (key, proof) = match cached {
            Some(Cached::Fresh(key, proof)) => (key, proof),
            // 3–4. Boxed, so a cache hit never carries the slow path's state.
            cached => Box::pin(self.load_and_check_traced(parsed, presented, cached, now)).await?,
        };
        // 4 (continued) to 6.
        admit(&key, proof, required, now)?;
        // 7–8. Rate limits, then credits (boxed: only metered keys pay).
        let (key, usage) = if key.rate_limits.is_some() || key.credits.is_some() {
            Box::pin(self.meter(key, cost, now)).await?
        } else {
            (key, Usage::default())
        };

        // 9. Record the use: at most once per key per interval (boxed, as
        // it is rare).
        let key = if inner.touch.is_due(&key, now) {
            Box::pin(self.record_use(key, presented, now)).await?
        } else {
            key
        };
        Ok(Verified { key, usage })
    }

    /// Steps 7–8: takes `cost` from every rate-limit window, then from the
    /// credits; all or nothing (a refusal by the credits gives the windows
    /// back).
    async fn meter(
        &self,
        key: Arc<ApiKey>,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<(Arc<ApiKey>, Usage), Error> {
        let limiters = &self.inner.limiters;
        let now_ms = epoch_ms(now);
        let mut usage = Usage::default();
        let mut admitted = None;
        if let Some(limits) = key.rate_limits.as_deref().filter(|l| !l.is_empty()) {
            match limiters.acquire(&key.id, limits, cost, now_ms).await {
                (RateDecision::Allowed(windows), by) => {
                    usage.rate_limits = windows;
                    admitted = Some(by);
                }
                (RateDecision::Limited { window }, _) => return Err(rate_limited(window)),
            }
        }
        let Some(credits) = &key.credits else {
            return Ok((key, usage));
        };
        let refund = |by: Option<Admitted>| {
            let key = &key;
            async move {
                if let (Some(by), Some(limits)) = (by, key.rate_limits.as_deref()) {
                    limiters.release(&key.id, limits, cost, now_ms, by).await;
                }
            }
        };
        let inner = &self.inner;
        let used = crate::credit_queue::take_credits(
            &inner.credit_queues,
            &inner.repo,
            &key.id,
            cost,
            now,
        );
        match used.await {
            Ok(CreditUse::Taken { remaining }) => {
                usage.remaining = Some(remaining);
                let mut left = credits.at(now);
                left.remaining = remaining;
                let mut used = ApiKey::clone(&key);
                used.credits = Some(left);
                Ok((Arc::new(used), usage))
            }
            // Credits removed since this copy of the key was read.
            Ok(CreditUse::Unmetered) => Ok((key, usage)),
            Ok(CreditUse::Refused) => {
                refund(admitted).await;
                let retry_after = credits
                    .next_refill(now)
                    .and_then(|t| (t - now).to_std().ok());
                Err(Error::UsageExceeded { retry_after })
            }
            Err(e) => {
                refund(admitted).await;
                Err(e.into())
            }
        }
    }

    /// [`load_and_check`](Self::load_and_check) in a `keygate.verify` span
    /// (only this part: a cache hit takes less time than a span).
    fn load_and_check_traced<'a>(
        &'a self,
        parsed: ParsedKey<'a>,
        presented: Option<KeyDigest>,
        cached: Option<Cached>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(Arc<ApiKey>, Proof), Error>> + Send + 'a {
        let span = tracing::debug_span!("keygate.verify", key_id = parsed.key_id);
        self.load_and_check(parsed, presented, cached, now)
            .instrument(span)
    }

    /// Steps 3–4 when the cache cannot answer alone: read the stored key and
    /// check the secret (unless this exact key was already proven against
    /// one of the stored hashes), then cache it.
    async fn load_and_check(
        &self,
        parsed: ParsedKey<'_>,
        presented: Option<KeyDigest>,
        cached: Option<Cached>,
        now: DateTime<Utc>,
    ) -> Result<(Arc<ApiKey>, Proof), Error> {
        let inner = &self.inner;
        // Before the read: an invalidation after this point may concern a
        // change the read does not see yet.
        let read_at = inner.cache.as_ref().map_or(0, VerifyCache::generation);
        // 3. Unknown key id: spend the same hashing work anyway.
        let Some(stored) = inner.repo.get_by_key_id(parsed.key_id).await? else {
            self.forget(parsed.key_id);
            self.check_hash(parsed.secret, &inner.dummy_hash, Lane::Unknown)
                .await?;
            return Err(Error::KeyNotFound);
        };
        // 4. Wrong secret. No hashing when this exact key was already
        // proven against a hash the stored key still accepts, and only one
        // request at a time hashes a given presented key (the others then
        // find it proven).
        let proven = |c: Option<&Cached>| {
            let (entity, proof) = c?.parts();
            still_accepted(&stored, proof.hash_in(entity)?, now)
        };
        // Held until the proven key is in the cache.
        let mut _turn = None;
        let proof = match proven(cached.as_ref()) {
            Some(proof) => proof,
            None => {
                if let (Some(cache), Some(d)) = (&inner.cache, presented) {
                    _turn = Some(cache.hash_turn(d).await);
                }
                let again = inner
                    .cache
                    .as_ref()
                    .zip(presented.as_ref())
                    .and_then(|(cache, d)| cache.get(parsed.key_id, d, now));
                match proven(again.as_ref()) {
                    Some(proof) => proof,
                    None => self
                        .check_secret(parsed.secret, &stored, now)
                        .await?
                        .ok_or(Error::InvalidKey)?,
                }
            }
        };
        let key = Arc::new(stored);
        if let (Some(cache), Some(d)) = (&inner.cache, presented) {
            cache.insert(d, key.clone(), proof, now, read_at);
        }
        Ok((key, proof))
    }

    /// Hashes the secret against the current hash, then against the
    /// previous one while its grace period runs.
    async fn check_secret(
        &self,
        secret: &str,
        stored: &ApiKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Proof>, Error> {
        let lane = || Lane::Known(stored.key_id.clone());
        if self.check_hash(secret, &stored.key_hash, lane()).await? {
            return Ok(Some(Proof::Current));
        }
        match stored.previous_hash_at(now) {
            Some(previous) if self.check_hash(secret, previous, lane()).await? => {
                Ok(Some(Proof::Previous))
            }
            _ => Ok(None),
        }
    }

    /// Queues (or, with a zero interval, writes) `last_used_at`, which is due.
    async fn record_use(
        &self,
        key: Arc<ApiKey>,
        presented: Option<KeyDigest>,
        now: DateTime<Utc>,
    ) -> Result<Arc<ApiKey>, Error> {
        let inner = &self.inner;
        if !inner.touch.writes_through() {
            return Ok(self.queue_use(key, presented, now));
        }
        let now = truncate_micros(now);
        inner.repo.touch(&[(key.id.clone(), now)]).await?;
        Ok(self.note_use(&key, presented, now))
    }

    /// Queues `last_used_at`, which is due, for the flusher to write.
    fn queue_use(
        &self,
        key: Arc<ApiKey>,
        presented: Option<KeyDigest>,
        now: DateTime<Utc>,
    ) -> Arc<ApiKey> {
        let now = truncate_micros(now);
        self.inner.touch.enqueue(&key.id, now);
        self.start_flusher();
        self.note_use(&key, presented, now)
    }

    /// The key as used at `now`, in the cache too.
    fn note_use(
        &self,
        key: &ApiKey,
        presented: Option<KeyDigest>,
        now: DateTime<Utc>,
    ) -> Arc<ApiKey> {
        let mut used = key.clone();
        used.last_used_at = Some(now);
        let used = Arc::new(used);
        if let (Some(cache), Some(d)) = (&self.inner.cache, presented) {
            cache.record_use(&used.key_id, d, now, &used);
        }
        used
    }

    fn start_flusher(&self) {
        self.inner.touch.start_flusher_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let weak = Arc::downgrade(&self.inner);
            runtime.spawn(async move {
                // The first write waits a period too: uses arriving in a
                // burst at start-up go out together.
                let first = tokio::time::Instant::now() + FLUSH_EVERY;
                let mut tick = tokio::time::interval_at(first, FLUSH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    flush_quietly(&inner).await;
                }
            });
        });
    }

    /// Checks a secret against a stored hash. Argon2 and bcrypt run on the
    /// hashing pool in `lane`; HMAC runs inline (it takes about a
    /// microsecond).
    pub(crate) async fn check_hash(
        &self,
        secret: &str,
        stored: &str,
        lane: Lane,
    ) -> Result<bool, Error> {
        let hasher = &self.inner.hasher;
        let slow = HashAlgorithm::of_stored(stored).is_some_and(|k| k.is_slow());
        let outcome = if slow {
            let (hasher, stored) = (hasher.clone(), stored.to_owned());
            let secret = Zeroizing::new(secret.to_owned());
            self.inner
                .hash_pool
                .run(lane, move || hasher.verify(&secret, &stored))
                .await?
        } else {
            hasher.verify(secret, stored)
        };
        outcome.or_else(|e| {
            // A stored hash we cannot read never authenticates.
            tracing::error!(error = %e, "stored key hash is unreadable");
            Ok(false)
        })
    }

    /// Hashes a new secret (on the hashing pool when slow).
    pub(crate) async fn hash_secret(&self, secret: &Secret) -> Result<String, Error> {
        let hasher = self.inner.hasher.clone();
        if matches!(hasher.algorithm(), HashAlgorithm::HmacSha256) {
            return hasher.hash(secret.expose());
        }
        let secret = secret.clone();
        self.inner
            .hash_pool
            .run(Lane::Trusted, move || hasher.hash(secret.expose()))
            .await?
    }
}

/// Steps 4 (continued) to 6 for a key proven against `proof`: a secret
/// replaced by a rotation only during its grace, then status (re-checked on
/// every cache hit too), expiry and every required scope.
fn admit<S: AsRef<str>>(
    key: &ApiKey,
    proof: Proof,
    required: &[S],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if proof == Proof::Previous && key.previous_hash_at(now).is_none() {
        return Err(Error::InvalidKey);
    }
    if !key.is_active {
        return Err(Error::KeyInactive);
    }
    if key.is_expired_at(now) {
        return Err(Error::KeyExpired);
    }
    if !key.scopes.contains_all(required) {
        return Err(Error::InvalidScopes {
            required: required.iter().map(|s| s.as_ref().to_owned()).collect(),
            missing: required
                .iter()
                .map(AsRef::as_ref)
                .filter(|s| !key.scopes.contains(s))
                .map(str::to_owned)
                .collect(),
        });
    }
    Ok(())
}

fn rate_limited(window: crate::limits::WindowUsage) -> Error {
    Error::RateLimited {
        retry_after: std::time::Duration::from_millis(window.reset_ms),
        window,
    }
}

/// Which of `stored`'s hashes still accepts a key proven against `hash`.
fn still_accepted(stored: &ApiKey, hash: &str, now: DateTime<Utc>) -> Option<Proof> {
    if stored.key_hash == hash {
        Some(Proof::Current)
    } else if stored.previous_hash_at(now) == Some(hash) {
        Some(Proof::Previous)
    } else {
        None
    }
}

async fn flush_quietly(inner: &Inner) {
    if let Err(e) = inner.touch.flush(inner.repo.as_ref()).await {
        tracing::warn!(error = %e, "could not write last_used_at; will retry");
    }
}

async fn sleep_between(range: DelayRange) {
    let wait = if range.max > range.min {
        rand::thread_rng().gen_range(range.min..=range.max)
    } else {
        range.min
    };
    tokio::time::sleep(wait).await;
}
