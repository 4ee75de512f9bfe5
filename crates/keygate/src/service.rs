//! `ApiKeyService`: create, manage and verify keys over any `Repository`.
//! The verification path itself is in `verify.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Audit, AuditAction, AuditEvent, EventFilter};
use crate::builder::{DelayRange, ServiceBuilder};
use crate::cache::VerifyCache;
use crate::change::{KeyChange, NewSecret};
use crate::clock::Clock;
use crate::entity::{
    check_fields, check_limits, check_owner_and_meta, check_scopes, new_entity_id, truncate_micros,
    ApiKey, ApiKeyUpdate, NewApiKey,
};
use crate::error::{Error, FieldError};
use crate::filter::ApiKeyFilter;
use crate::hash::KeyHasher;
use crate::hash_pool::{HashPool, Lane};
use crate::invalidation::{ChangePublisher, Invalidator};
use crate::key::{KeyFormat, KeyId, PlainKey, Secret};
use crate::limits::{CreditChange, Usage, WindowUsage, MAX_CREDITS};
use crate::ratelimit::Limiters;
use crate::repository::Repository;
use crate::telemetry::Metrics;
use crate::touch::TouchQueue;

pub(crate) struct Inner {
    /// The store, each call observed (spans, error counter).
    pub(crate) repo: Arc<dyn Repository>,
    /// The store as given to the builder, for [`ApiKeyService::repository`].
    pub(crate) given_repo: Arc<dyn Repository>,
    pub(crate) metrics: Metrics,
    pub(crate) hasher: Arc<KeyHasher>,
    pub(crate) format: KeyFormat,
    pub(crate) cache: Option<VerifyCache>,
    pub(crate) touch: TouchQueue,
    pub(crate) dummy_hash: String,
    pub(crate) hash_pool: HashPool,
    pub(crate) failure_delay: Option<DelayRange>,
    pub(crate) success_delay: Option<DelayRange>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limiters: Limiters,
    pub(crate) credit_queues: Arc<crate::credit_queue::CreditQueues>,
    pub(crate) publisher: Option<Arc<dyn ChangePublisher>>,
}

/// A successful verification: the key, and what the request used of its
/// limits (SPEC §12).
#[derive(Debug, Clone)]
pub struct Verified {
    /// The verified key (with `credits.remaining` as left by this request).
    pub key: Arc<ApiKey>,
    /// Credits left and rate-limit windows; empty for a key without limits.
    pub usage: Usage,
}

/// Counters of the slow-hashing pool ([`ApiKeyService::hashing_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingStats {
    /// Hashing jobs waiting for a thread.
    pub queued: usize,
    /// Slow hashes (Argon2, bcrypt) run since the service started.
    pub completed: u64,
}

/// Longest grace period a rotation may give the replaced secret: 30 days.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Longest actor name kept in the audit log, in characters.
pub const ACTOR_MAX: usize = 256;

/// Who changes keys when no one else is named ([`ApiKeyService::with_actor`]).
pub const DEFAULT_ACTOR: &str = "system";

/// Issues, manages and verifies API keys. Cheap to clone (two `Arc`s).
///
/// Every change (create, update, delete, activate, deactivate, rotate) is
/// applied by the store atomically and recorded in the audit log under the
/// service's actor ([`with_actor`](Self::with_actor)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use keygate::{ApiKeyService, Error, InMemoryRepository, NewApiKey, Pepper};
/// let service = ApiKeyService::builder(InMemoryRepository::new())
///     .pepper(Pepper::new("pepper").unwrap())
///     .fast_hashing()
///     .build()
///     .unwrap();
/// let (_, key) = service.create(NewApiKey::named("reader").with_scopes(["read"])).await.unwrap();
/// assert!(service.verify(key.expose(), &["read"]).await.is_ok());
/// assert!(matches!(
///     service.verify(key.expose(), &["read", "write"]).await,
///     Err(Error::InvalidScopes { .. })
/// ));
/// # });
/// ```
#[derive(Clone)]
pub struct ApiKeyService {
    pub(crate) inner: Arc<Inner>,
    actor: Arc<str>,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("format", &self.inner.format)
            .field("algorithm", &self.inner.hasher.algorithm())
            .field("cache", &self.inner.cache.is_some())
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl ApiKeyService {
    /// Starts configuring a service over `repo`.
    pub fn builder(repo: impl Repository) -> ServiceBuilder {
        ServiceBuilder::new(Arc::new(repo))
    }

    /// Starts configuring a service over a shared repository.
    pub fn builder_shared(repo: Arc<dyn Repository>) -> ServiceBuilder {
        ServiceBuilder::new(repo)
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
            actor: Arc::from(DEFAULT_ACTOR),
        }
    }

    /// The same service, recording its changes in the audit log as made by
    /// `actor` (an admin key's key id, `cli`, a user name…), cut to its
    /// first 256 characters ([`ACTOR_MAX`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use keygate::{ApiKeyService, EventFilter, InMemoryRepository, NewApiKey};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let (key, _) = service.with_actor("alice").create(NewApiKey::named("ci")).await.unwrap();
    /// let events = service.events(&EventFilter::for_key(&key.id)).await.unwrap();
    /// assert_eq!(events[0].actor, "alice");
    /// # });
    /// ```
    pub fn with_actor(&self, actor: impl Into<String>) -> Self {
        let actor: String = actor.into();
        let actor = match actor.char_indices().nth(ACTOR_MAX) {
            Some((cut, _)) => &actor[..cut],
            None => &actor,
        };
        Self {
            inner: self.inner.clone(),
            actor: Arc::from(actor),
        }
    }

    /// Who this service's changes are recorded as made by.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    fn audit(&self, action: AuditAction) -> Audit {
        Audit {
            actor: self.actor.to_string(),
            at: self.inner.clock.now_micros(),
            action,
        }
    }

    /// The key format in use.
    pub fn key_format(&self) -> &KeyFormat {
        &self.inner.format
    }

    /// The hasher in use.
    pub fn hasher(&self) -> &KeyHasher {
        &self.inner.hasher
    }

    /// The underlying store, as given to the builder (calls made through
    /// it directly are not in the service's metrics).
    pub fn repository(&self) -> &Arc<dyn Repository> {
        &self.inner.given_repo
    }

    /// Creates a key. Returns the stored entity and the plaintext key, which
    /// is never available again.
    pub async fn create(&self, new: NewApiKey) -> Result<(ApiKey, PlainKey), Error> {
        let now = self.inner.clock.now_micros();
        let mut errors = check_fields(
            new.name.as_deref(),
            new.description.as_deref(),
            new.expires_at,
            now,
        );
        let scopes = check_scopes(&new.scopes, &mut errors);
        check_owner_and_meta(new.owner_id.as_deref(), new.meta.as_ref(), &mut errors);
        check_limits(
            new.rate_limits.as_deref(),
            new.credits.as_ref(),
            &mut errors,
        );
        let key_id = match new.key_id.as_deref().map(KeyId::parse).transpose() {
            Ok(id) => id.unwrap_or_else(KeyId::generate),
            Err(e) => {
                push_validation(&mut errors, e);
                KeyId::generate()
            }
        };
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let secret = new.secret.unwrap_or_else(Secret::generate);
        let key_hash = self.hash_secret(&secret).await?;
        let s = secret.expose();
        let entity = ApiKey {
            id: new_entity_id(),
            key_id: key_id.as_str().to_owned(),
            name: new.name,
            description: new.description,
            is_active: new.is_active,
            created_at: now,
            last_used_at: None,
            expires_at: new.expires_at.map(truncate_micros),
            scopes,
            owner_id: new.owner_id,
            meta: new.meta,
            rate_limits: new.rate_limits,
            credits: new.credits.map(|c| c.configured_at(now)),
            previous_secret_expires_at: None,
            previous_key_hash: None,
            key_hash,
            key_secret_first: first_chars(s),
            key_secret_last: last_chars(s),
        };
        let audit = Audit {
            at: now,
            ..self.audit(AuditAction::Create)
        };
        self.inner.repo.insert(&entity, &audit).await?;
        let plain = self.inner.format.format(&key_id, &secret);
        Ok((entity, plain))
    }

    /// The key with this entity id.
    pub async fn get(&self, id: &str) -> Result<ApiKey, Error> {
        self.inner.repo.get(id).await?.ok_or(Error::NotFound)
    }

    /// The key with this key id.
    pub async fn get_by_key_id(&self, key_id: &str) -> Result<ApiKey, Error> {
        self.inner
            .repo
            .get_by_key_id(key_id)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Applies a partial update, atomically in the store (two updates of
    /// different fields made at the same time both survive). The
    /// verification cache re-reads the key on its next use.
    pub async fn update(&self, id: &str, change: ApiKeyUpdate) -> Result<ApiKey, Error> {
        let now = self.inner.clock.now_micros();
        let description = change.description.as_ref().and_then(Option::as_deref);
        let mut errors = check_fields(change.name.as_deref(), description, change.expires_at, now);
        let scopes = change
            .scopes
            .as_deref()
            .map(|s| check_scopes(s, &mut errors));
        check_owner_and_meta(
            change.owner_id.as_ref().and_then(Option::as_deref),
            change.meta.as_ref().and_then(Option::as_ref),
            &mut errors,
        );
        check_limits(
            change.rate_limits.as_ref().and_then(Option::as_deref),
            change.credits.as_ref().and_then(Option::as_ref),
            &mut errors,
        );
        if change.clear_expires && change.expires_at.is_some() {
            errors.push(FieldError::new(
                "clear_expires",
                "cannot be combined with expires_at",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let expires_at = if change.clear_expires {
            Some(None)
        } else {
            change.expires_at.map(|t| Some(truncate_micros(t)))
        };
        let change = KeyChange {
            name: change.name,
            description: change.description,
            is_active: change.is_active,
            scopes,
            expires_at,
            owner_id: change.owner_id,
            meta: change.meta,
            rate_limits: change.rate_limits,
            credits: change.credits.map(|c| c.map(|c| c.configured_at(now))),
            credit_change: None,
            secret: None,
        };
        self.apply(id, &change, AuditAction::Update).await
    }

    /// Sets or adds to a key's credits, atomically in the store (an `add`
    /// racing with requests that use credits loses none of either), and
    /// records it in the audit log. `Set` gives a key without credits some
    /// (no refill); `Add` needs a key with credits ([`Error::Conflict`]
    /// otherwise) and never takes `remaining` below zero.
    pub async fn change_credits(&self, id: &str, change: CreditChange) -> Result<ApiKey, Error> {
        let out_of_range = match change {
            CreditChange::Set(n) => n > MAX_CREDITS,
            CreditChange::Add(n) => n.unsigned_abs() > MAX_CREDITS,
        };
        if out_of_range {
            let field = match change {
                CreditChange::Set(_) => "set",
                CreditChange::Add(_) => "add",
            };
            return Err(Error::validation(
                field,
                format!("must be within ±{MAX_CREDITS} (0 or more for set)"),
            ));
        }
        let key_change = KeyChange {
            credit_change: Some(change),
            ..KeyChange::default()
        };
        let key = self.apply(id, &key_change, AuditAction::Update).await?;
        if key.credits.is_none() {
            return Err(Error::Conflict(
                "the key has no credits (its usage is unlimited): set them first".into(),
            ));
        }
        Ok(key)
    }

    /// Applies one change in the store and makes the cache re-read the key.
    async fn apply(
        &self,
        id: &str,
        change: &KeyChange,
        action: AuditAction,
    ) -> Result<ApiKey, Error> {
        let audit = self.audit(action);
        let key = self
            .inner
            .repo
            .update(id, change, &audit)
            .await?
            .ok_or(Error::NotFound)?;
        // The next verify re-reads the entity; it hashes again only if the
        // secret it was proven with is no longer accepted.
        if let Some(cache) = &self.inner.cache {
            cache.expire(&key.key_id);
        }
        self.announce(&key.key_id).await;
        Ok(key)
    }

    /// Tells the other instances, if a publisher is set, that a key changed.
    /// Awaited (for at most a second), so that when a change returns, the
    /// others are being told; a failure only costs them their cache TTL.
    async fn announce(&self, key_id: &str) {
        let Some(publisher) = &self.inner.publisher else {
            return;
        };
        let sent = tokio::time::timeout(Duration::from_secs(1), publisher.publish(key_id)).await;
        let error = match sent {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 1 s".to_owned(),
        };
        tracing::warn!(
            key_id,
            publisher = publisher.name(),
            error,
            "could not announce a key change: other instances see it within their cache TTL"
        );
    }

    /// The handle a change listener (PostgreSQL `LISTEN`, Redis pub/sub)
    /// uses to drop this service's cached copies of changed keys. See
    /// [`Invalidator`].
    pub fn invalidator(&self) -> Invalidator {
        Invalidator {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Deletes a key and returns what was deleted. Its audit events stay.
    pub async fn delete(&self, id: &str) -> Result<ApiKey, Error> {
        let audit = self.audit(AuditAction::Delete);
        let deleted = self
            .inner
            .repo
            .delete(id, &audit)
            .await?
            .ok_or(Error::NotFound)?;
        self.forget(&deleted.key_id);
        self.announce(&deleted.key_id).await;
        Ok(deleted)
    }

    /// Activates a key (idempotent).
    pub async fn activate(&self, id: &str) -> Result<ApiKey, Error> {
        self.set_active(id, true).await
    }

    /// Deactivates a key (idempotent); it is refused from now on.
    pub async fn deactivate(&self, id: &str) -> Result<ApiKey, Error> {
        self.set_active(id, false).await
    }

    async fn set_active(&self, id: &str, active: bool) -> Result<ApiKey, Error> {
        let change = KeyChange {
            is_active: Some(active),
            ..KeyChange::default()
        };
        let action = if active {
            AuditAction::Activate
        } else {
            AuditAction::Deactivate
        };
        self.apply(id, &change, action).await
    }

    /// Gives the key `id` a new secret; same entity, scopes, owner, meta and
    /// history. The replaced secret keeps verifying for `grace` (at most
    /// [`MAX_GRACE`]; zero ends it at once), then is refused, cache hits
    /// included. A second rotation ends any earlier grace at once. Returns
    /// the key and its new plaintext, which is never available again.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use keygate::{ApiKeyService, InMemoryRepository, NewApiKey};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let (entity, old) = service.create(NewApiKey::named("leaked")).await.unwrap();
    /// let (_, new) = service.rotate(&entity.id, Duration::from_secs(3600)).await.unwrap();
    /// assert!(service.verify(new.expose(), &[""; 0]).await.is_ok());
    /// assert!(service.verify(old.expose(), &[""; 0]).await.is_ok()); // for an hour
    /// service.rotate(&entity.id, Duration::ZERO).await.unwrap();
    /// assert!(service.verify(old.expose(), &[""; 0]).await.is_err());
    /// # });
    /// ```
    pub async fn rotate(&self, id: &str, grace: Duration) -> Result<(ApiKey, PlainKey), Error> {
        if grace > MAX_GRACE {
            return Err(Error::validation(
                "grace_seconds",
                format!("must be at most {} (30 days)", MAX_GRACE.as_secs()),
            ));
        }
        let secret = Secret::generate();
        let key_hash = self.hash_secret(&secret).await?;
        let now = self.inner.clock.now_micros();
        let grace_until = (!grace.is_zero())
            .then(|| chrono::TimeDelta::from_std(grace).ok())
            .flatten()
            .map(|g| now + g);
        let s = secret.expose();
        let change = KeyChange {
            secret: Some(NewSecret {
                key_hash,
                first: first_chars(s),
                last: last_chars(s),
                grace_until,
            }),
            ..KeyChange::default()
        };
        let key = self.apply(id, &change, AuditAction::Rotate).await?;
        let plain = self
            .inner
            .format
            .format(&KeyId::from_stored(&key.key_id), &secret);
        Ok((key, plain))
    }

    /// Audit events matching `filter`, ordered and paged as it says.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<AuditEvent>, Error> {
        check_since(filter)?;
        Ok(self.inner.repo.events(filter).await?)
    }

    /// Number of audit events matching `filter`.
    pub async fn count_events(&self, filter: &EventFilter) -> Result<u64, Error> {
        check_since(filter)?;
        Ok(self.inner.repo.count_events(filter).await?)
    }

    /// One page of keys, newest first.
    pub async fn list(&self, offset: u64, limit: u64) -> Result<Vec<ApiKey>, Error> {
        self.find(&ApiKeyFilter::page(offset, limit)).await
    }

    /// Keys matching `filter`, ordered and paged as it says.
    pub async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, Error> {
        filter.validate()?;
        Ok(self.inner.repo.find(&filter.at_store_precision()).await?)
    }

    /// Number of keys matching `filter`.
    pub async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, Error> {
        filter.validate()?;
        Ok(self.inner.repo.count(&filter.at_store_precision()).await?)
    }

    /// Loads one key per environment variable whose name starts with
    /// `prefix` (e.g. `API_KEY_`): the value is a full key, the variable's
    /// name becomes the key's name. A key already stored with the same key
    /// id and secret is kept as it is. Errors when no variable matches.
    pub async fn load_from_env(&self, prefix: &str) -> Result<Vec<ApiKey>, Error> {
        let mut vars: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| name.starts_with(prefix) && name.len() > prefix.len())
            .collect();
        vars.sort();
        if vars.is_empty() {
            return Err(Error::validation(
                "env",
                format!("no environment variable starts with {prefix}"),
            ));
        }
        let mut loaded = Vec::with_capacity(vars.len());
        for (name, value) in vars {
            let value = zeroize::Zeroizing::new(value);
            let parsed = self.inner.format.parse(&value).map_err(|_| {
                Error::validation(name.clone(), "is not a key in this service's format")
            })?;
            if let Some(existing) = self.inner.repo.get_by_key_id(parsed.key_id).await? {
                let lane = Lane::Known(existing.key_id.clone());
                if self
                    .check_hash(parsed.secret, &existing.key_hash, lane)
                    .await?
                {
                    loaded.push(existing);
                    continue;
                }
                return Err(Error::Conflict(format!(
                    "{name}: key id {} is stored with another secret",
                    parsed.key_id
                )));
            }
            let new = NewApiKey {
                key_id: Some(parsed.key_id.to_owned()),
                secret: Some(Secret::parse(parsed.secret).map_err(|_| {
                    Error::validation(
                        name.clone(),
                        "secret must be 16 to 256 characters of [A-Za-z0-9]",
                    )
                })?),
                ..NewApiKey::named(name)
            };
            loaded.push(self.create(new).await?.0);
        }
        Ok(loaded)
    }

    /// Writes pending `last_used_at` values now, after any background write
    /// in progress has finished: when it returns, every use recorded before
    /// the call is in the store (or the error says why not). Call on
    /// shutdown. Returns how many keys this call wrote.
    pub async fn flush(&self) -> Result<usize, Error> {
        Ok(self.inner.touch.flush(self.inner.repo.as_ref()).await?)
    }

    /// Number of uses waiting to be written.
    pub fn pending_uses(&self) -> usize {
        self.inner.touch.pending_len()
    }

    /// The slow-hashing pool's counters: jobs waiting for a thread, and
    /// hashes run since start (HMAC checks run inline and are not counted).
    pub fn hashing_stats(&self) -> HashingStats {
        HashingStats {
            queued: self.inner.hash_pool.queued(),
            completed: self.inner.hash_pool.completed(),
        }
    }

    /// The state of `key`'s rate-limit windows, taking nothing and opening
    /// no window (for dashboards): from the shared rate limiter while it is
    /// used, else from this instance's counters. A window not open has all
    /// its room and `reset_ms` 0. Empty for a key without rate limits;
    /// `None` when the shared limiter cannot tell or does not answer.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use keygate::{ApiKeyService, InMemoryRepository, NewApiKey, RateLimit};
    /// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let minute = RateLimit::new("minute", 10, Duration::from_secs(60));
    /// let (entity, key) = service.create(NewApiKey::named("k").rate_limited(minute)).await.unwrap();
    /// assert_eq!(service.rate_limit_state(&entity).await.unwrap()[0].remaining, 10);
    /// service.verify_with(key.expose(), &[""; 0], 3).await.unwrap();
    /// let state = service.rate_limit_state(&entity).await.unwrap();
    /// assert_eq!(state[0].remaining, 7);
    /// assert!(state[0].reset_ms > 0);
    /// # });
    /// ```
    pub async fn rate_limit_state(&self, key: &ApiKey) -> Option<Vec<WindowUsage>> {
        let Some(limits) = key.rate_limits.as_deref().filter(|l| !l.is_empty()) else {
            return Some(Vec::new());
        };
        let now_ms = crate::limits::epoch_ms(self.inner.clock.now());
        self.inner.limiters.peek(&key.id, limits, now_ms).await
    }

    /// True while rate limits are applied per instance because the shared
    /// rate limiter failed (see [`ServiceBuilder::shared_rate_limiter`]).
    pub fn rate_limiting_degraded(&self) -> bool {
        self.inner.limiters.degraded()
    }

    /// Sets the gauges that are read rather than pushed,
    /// [`HASH_QUEUE_DEPTH`](crate::telemetry::HASH_QUEUE_DEPTH) (from
    /// [`hashing_stats`](Self::hashing_stats)) and
    /// [`RATE_LIMIT_DEGRADED`](crate::telemetry::RATE_LIMIT_DEGRADED) (from
    /// [`rate_limiting_degraded`](Self::rate_limiting_degraded)): call it
    /// right before rendering the metrics. See [`telemetry`](crate::telemetry).
    pub fn update_gauges(&self) {
        self.inner
            .metrics
            .gauges(self.hashing_stats().queued, self.rate_limiting_degraded());
    }

    /// Checks that the store answers.
    pub async fn ping(&self) -> Result<(), Error> {
        Ok(self.inner.repo.ping().await?)
    }

    pub(crate) fn forget(&self, key_id: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(key_id);
        }
    }
}

/// `since` must be a time every store can compare.
fn check_since(filter: &EventFilter) -> Result<(), Error> {
    match filter.since.and_then(crate::entity::storable_time_problem) {
        Some(problem) => Err(Error::validation("since", problem)),
        None => Ok(()),
    }
}

/// First 4 characters of a secret, for display.
fn first_chars(secret: &str) -> String {
    secret.chars().take(4).collect()
}

/// Last 4 characters of a secret, for display.
fn last_chars(secret: &str) -> String {
    secret
        .chars()
        .skip(secret.chars().count().saturating_sub(4))
        .collect()
}

fn push_validation(errors: &mut Vec<FieldError>, e: Error) {
    match e {
        Error::Validation(mut v) => errors.append(&mut v),
        other => errors.push(FieldError::new("input", other.to_string())),
    }
}
