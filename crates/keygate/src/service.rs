//! `ApiKeyService`: create, manage and verify keys over any `Repository`.
//! The verification path itself is in `verify.rs`.

use std::sync::Arc;

use crate::builder::{DelayRange, ServiceBuilder};
use crate::cache::VerifyCache;
use crate::entity::{
    check_fields, check_scopes, new_entity_id, now_micros, truncate_micros, ApiKey, ApiKeyUpdate,
    NewApiKey,
};
use crate::error::{Error, FieldError};
use crate::filter::ApiKeyFilter;
use crate::hash::KeyHasher;
use crate::hash_pool::HashPool;
use crate::key::{KeyFormat, KeyId, PlainKey, Secret};
use crate::repository::Repository;
use crate::touch::TouchQueue;

pub(crate) struct Inner {
    pub(crate) repo: Arc<dyn Repository>,
    pub(crate) hasher: Arc<KeyHasher>,
    pub(crate) format: KeyFormat,
    pub(crate) cache: Option<VerifyCache>,
    pub(crate) touch: TouchQueue,
    pub(crate) dummy_hash: String,
    pub(crate) hash_pool: HashPool,
    pub(crate) failure_delay: Option<DelayRange>,
    pub(crate) success_delay: Option<DelayRange>,
}

/// Issues, manages and verifies API keys. Cheap to clone (one `Arc`).
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
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("format", &self.inner.format)
            .field("algorithm", &self.inner.hasher.algorithm())
            .field("cache", &self.inner.cache.is_some())
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

    /// The underlying store.
    pub fn repository(&self) -> &Arc<dyn Repository> {
        &self.inner.repo
    }

    /// Creates a key. Returns the stored entity and the plaintext key, which
    /// is never available again.
    pub async fn create(&self, new: NewApiKey) -> Result<(ApiKey, PlainKey), Error> {
        let now = now_micros();
        let mut errors = check_fields(
            new.name.as_deref(),
            new.description.as_deref(),
            new.expires_at,
            now,
        );
        let scopes = check_scopes(&new.scopes, &mut errors);
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
            key_hash,
            key_secret_first: s.chars().take(4).collect(),
            key_secret_last: s.chars().skip(s.len().saturating_sub(4)).collect(),
        };
        self.inner.repo.insert(&entity).await?;
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

    /// Applies a partial update; the verification cache forgets the key at once.
    pub async fn update(&self, id: &str, change: ApiKeyUpdate) -> Result<ApiKey, Error> {
        let now = now_micros();
        let mut errors = check_fields(
            change.name.as_deref(),
            change.description.as_deref(),
            change.expires_at,
            now,
        );
        let scopes = change
            .scopes
            .as_deref()
            .map(|s| check_scopes(s, &mut errors));
        if change.clear_expires && change.expires_at.is_some() {
            errors.push(FieldError::new(
                "clear_expires",
                "cannot be combined with expires_at",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let mut key = self.get(id).await?;
        if let Some(name) = change.name {
            key.name = Some(name);
        }
        if let Some(description) = change.description {
            key.description = Some(description);
        }
        if let Some(active) = change.is_active {
            key.is_active = active;
        }
        if let Some(scopes) = scopes {
            key.scopes = scopes;
        }
        if change.clear_expires {
            key.expires_at = None;
        } else if let Some(at) = change.expires_at {
            key.expires_at = Some(truncate_micros(at));
        }
        let stored = self.inner.repo.update(&key).await;
        // The next verify re-reads the entity (no re-hash: the secret did not change).
        if let Some(cache) = &self.inner.cache {
            cache.expire(&key.key_id);
        }
        if !stored? {
            return Err(Error::NotFound);
        }
        Ok(key)
    }

    /// Deletes a key and returns what was deleted.
    pub async fn delete(&self, id: &str) -> Result<ApiKey, Error> {
        let deleted = self.inner.repo.delete(id).await?.ok_or(Error::NotFound)?;
        self.forget(&deleted.key_id);
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
        let change = ApiKeyUpdate {
            is_active: Some(active),
            ..ApiKeyUpdate::default()
        };
        self.update(id, change).await
    }

    /// One page of keys, newest first.
    pub async fn list(&self, offset: u64, limit: u64) -> Result<Vec<ApiKey>, Error> {
        self.find(&ApiKeyFilter::page(offset, limit)).await
    }

    /// Keys matching `filter`, ordered and paged as it says.
    pub async fn find(&self, filter: &ApiKeyFilter) -> Result<Vec<ApiKey>, Error> {
        filter.validate()?;
        Ok(self.inner.repo.find(filter).await?)
    }

    /// Number of keys matching `filter`.
    pub async fn count(&self, filter: &ApiKeyFilter) -> Result<u64, Error> {
        filter.validate()?;
        Ok(self.inner.repo.count(filter).await?)
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
                if self.check_hash(parsed.secret, &existing.key_hash).await? {
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

fn push_validation(errors: &mut Vec<FieldError>, e: Error) {
    match e {
        Error::Validation(mut v) => errors.append(&mut v),
        other => errors.push(FieldError::new("input", other.to_string())),
    }
}
