//! The `ApiKey` entity and the inputs that create and change it.

use std::fmt;

use chrono::{DateTime, Datelike, DurationRound, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError};
use crate::key::Secret;
use crate::limits::{check_credits, check_rate_limits, Credits, RateLimit};
use crate::scope::ScopeSet;

/// Longest accepted name, in characters.
pub const NAME_MAX: usize = 128;
/// Longest accepted description, in characters.
pub const DESCRIPTION_MAX: usize = 1024;
/// Longest accepted owner id, in characters.
pub const OWNER_ID_MAX: usize = 256;
/// Largest accepted `meta`, in bytes of compact JSON.
pub const META_MAX_BYTES: usize = 8 * 1024;
/// Most entries accepted in one list of scopes: a key's `scopes`, a
/// filter's `scopes_contain_all` / `scopes_contain_any` (and, over HTTP,
/// `required_scopes` of a verification). Counted as given, duplicates
/// included. Keeps every store's query within its limits (SQLite refuses
/// an expression tree of about a thousand scopes).
pub const MAX_SCOPES_PER_LIST: usize = 100;

/// The application's own data on a key: a JSON object (plan, tenant, region…).
pub type Meta = serde_json::Map<String, serde_json::Value>;

/// A stored API key. Holds only a hash of the secret.
///
/// Serializes to the public JSON shape of the SPEC (`id, key_id, name,
/// description, is_active, created_at, last_used_at, expires_at, scopes,
/// owner_id, meta, previous_secret_expires_at, rate_limits, credits`): the
/// hashes and the
/// secret's first/last characters are never serialized.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// UUIDv4 as 32 lowercase hex characters, no dashes.
    pub id: String,
    /// The public key id (middle part of the key).
    pub key_id: String,
    /// Human name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Deactivated keys are refused.
    pub is_active: bool,
    /// Creation time (UTC).
    pub created_at: DateTime<Utc>,
    /// Last successful verification (UTC), coalesced.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Expiry (UTC); expired keys are refused.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The application's user, team or customer the key belongs to.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// The application's own data (a JSON object of at most 8 KiB).
    #[serde(default)]
    pub meta: Option<Meta>,
    /// Until when the secret replaced by the last rotation still verifies.
    /// Serialized as `null` once that time has passed.
    #[serde(default, serialize_with = "grace_if_running")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Rate-limit windows (SPEC §12); `None`: no rate limit.
    #[serde(default)]
    pub rate_limits: Option<Vec<RateLimit>>,
    /// Usage credits (SPEC §12); `None`: unlimited. Serialized as they
    /// stand now, a due refill applied.
    #[serde(default, serialize_with = "credits_now")]
    pub credits: Option<Credits>,
    /// Hash of the secret replaced by the last rotation with a grace period.
    #[serde(skip)]
    pub previous_key_hash: Option<String>,
    /// Hash of the secret in a self-describing format.
    #[serde(skip)]
    pub key_hash: String,
    /// First 4 characters of the secret, for display.
    #[serde(skip)]
    pub key_secret_first: String,
    /// Last 4 characters of the secret, for display.
    #[serde(skip)]
    pub key_secret_last: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("description", &self.description)
            .field("is_active", &self.is_active)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes.as_slice())
            .field("owner_id", &self.owner_id)
            .field("meta", &self.meta)
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .field("rate_limits", &self.rate_limits)
            .field("credits", &self.credits)
            .field("key_hash", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// True when `expires_at` is set and not after `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// The hash of the previous secret while its grace period runs at `now`.
    pub fn previous_hash_at(&self, now: DateTime<Utc>) -> Option<&str> {
        match (&self.previous_key_hash, self.previous_secret_expires_at) {
            (Some(hash), Some(until)) if now < until => Some(hash),
            _ => None,
        }
    }
}

fn grace_if_running<S: serde::Serializer>(
    until: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    until.filter(|t| *t > Utc::now()).serialize(s)
}

fn credits_now<S: serde::Serializer>(credits: &Option<Credits>, s: S) -> Result<S::Ok, S::Error> {
    credits.as_ref().map(|c| c.at(Utc::now())).serialize(s)
}

/// A fresh 32-hex-character UUIDv4 id.
pub fn new_entity_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Current time truncated to microseconds, the precision every store keeps.
pub fn now_micros() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// Truncates to microseconds so values survive a round trip through any store.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// What `ApiKeyService::create` takes.
///
/// ```
/// use keygate::NewApiKey;
/// let new = NewApiKey::named("ci-bot").with_scopes(["read", "write"]);
/// assert_eq!(new.name.as_deref(), Some("ci-bot"));
/// ```
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Human name (1..=128 characters).
    pub name: Option<String>,
    /// Free text (at most 1024 characters).
    pub description: Option<String>,
    /// Defaults to true.
    pub is_active: bool,
    /// Must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
    /// Each must match `^[a-z][a-z0-9:_\-]*$`.
    pub scopes: Vec<String>,
    /// Owner (1..=256 characters).
    pub owner_id: Option<String>,
    /// The application's data (a JSON object, at most 8 KiB).
    pub meta: Option<Meta>,
    /// Rate-limit windows (1 to 8).
    pub rate_limits: Option<Vec<RateLimit>>,
    /// Usage credits.
    pub credits: Option<Credits>,
    /// Explicit key id (16 lowercase hex); random when absent.
    pub key_id: Option<String>,
    /// Explicit secret; random when absent.
    pub secret: Option<Secret>,
}

impl Default for NewApiKey {
    fn default() -> Self {
        Self {
            name: None,
            description: None,
            is_active: true,
            expires_at: None,
            scopes: Vec::new(),
            owner_id: None,
            meta: None,
            rate_limits: None,
            credits: None,
            key_id: None,
            secret: None,
        }
    }
}

impl NewApiKey {
    /// An active key with a name and no scopes.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Sets the scopes.
    pub fn with_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the owner.
    pub fn owned_by(mut self, owner_id: impl Into<String>) -> Self {
        self.owner_id = Some(owner_id.into());
        self
    }

    /// Sets the application's data.
    pub fn with_meta(mut self, meta: Meta) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Adds a rate-limit window.
    pub fn rate_limited(mut self, limit: RateLimit) -> Self {
        self.rate_limits.get_or_insert_with(Vec::new).push(limit);
        self
    }

    /// Sets the usage credits.
    pub fn with_credits(mut self, credits: Credits) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Sets the expiry.
    pub fn expiring_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A partial update; `None` leaves a field as it is. For `description`,
/// `owner_id` and `meta`, `Some(None)` (JSON `null`) clears the field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description; `Some(None)` clears it.
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Replace the scopes.
    pub scopes: Option<Vec<String>>,
    /// New expiry (must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
    /// Remove the expiry.
    #[serde(default)]
    pub clear_expires: bool,
    /// New owner; `Some(None)` clears it.
    #[serde(default, deserialize_with = "present")]
    pub owner_id: Option<Option<String>>,
    /// New application data (replaces the whole object); `Some(None)` clears it.
    #[serde(default, deserialize_with = "present")]
    pub meta: Option<Option<Meta>>,
    /// New rate-limit windows (replacing all); `Some(None)` removes them.
    #[serde(default, deserialize_with = "present")]
    pub rate_limits: Option<Option<Vec<RateLimit>>>,
    /// New credits (replacing all); `Some(None)` makes usage unlimited.
    #[serde(default, deserialize_with = "present")]
    pub credits: Option<Option<Credits>>,
}

/// A field that is present deserializes to `Some`, even when `null`; an
/// absent one stays `None` (through `#[serde(default)]`).
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Collects field errors for name, description and expiry.
pub(crate) fn check_fields(
    name: Option<&str>,
    description: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(name) = name {
        let n = name.chars().count();
        if n == 0 || n > NAME_MAX {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
    }
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if expires_at.is_some_and(|e| e <= now) {
        errors.push(FieldError::new("expires_at", "must be in the future"));
    }
    if let Some(problem) = expires_at.and_then(storable_time_problem) {
        errors.push(FieldError::new("expires_at", problem));
    }
    errors
}

/// Why a time cannot be stored the same way by every store, if it cannot:
/// every store keeps years 1000 to 9999 (UTC) and no leap second (MySQL
/// turns `:60` into a zero date, SQLite compares times as text).
pub(crate) fn storable_time_problem(t: DateTime<Utc>) -> Option<&'static str> {
    if !(1000..=9999).contains(&t.year()) {
        Some("must be between the years 1000 and 9999 (UTC)")
    } else if t.nanosecond() >= 1_000_000_000 {
        Some("must not be a leap second")
    } else {
        None
    }
}

/// Appends problems with `owner_id` and `meta` to `errors`.
pub(crate) fn check_owner_and_meta(
    owner_id: Option<&str>,
    meta: Option<&Meta>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(owner) = owner_id {
        let n = owner.chars().count();
        if n == 0 || n > OWNER_ID_MAX {
            errors.push(FieldError::new(
                "owner_id",
                format!("must be 1 to {OWNER_ID_MAX} characters"),
            ));
        }
    }
    if let Some(meta) = meta {
        // Serializing a map of JSON values cannot fail.
        let size = serde_json::to_string(meta).map_or(usize::MAX, |s| s.len());
        if size > META_MAX_BYTES {
            errors.push(FieldError::new(
                "meta",
                format!("must be at most {META_MAX_BYTES} bytes of JSON (got {size})"),
            ));
        }
    }
}

/// Appends problems with rate limits and credits to `errors`.
pub(crate) fn check_limits(
    rate_limits: Option<&[RateLimit]>,
    credits: Option<&Credits>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(limits) = rate_limits {
        check_rate_limits(limits, "rate_limits", errors);
    }
    if let Some(credits) = credits {
        check_credits(credits, "credits", errors);
    }
}

/// The error for a list of `count` scopes in `field`, when above
/// [`MAX_SCOPES_PER_LIST`].
pub(crate) fn too_many_scopes(field: &str, count: usize) -> Option<FieldError> {
    (count > MAX_SCOPES_PER_LIST).then(|| {
        FieldError::new(
            field,
            format!("must hold at most {MAX_SCOPES_PER_LIST} scopes (got {count})"),
        )
    })
}

/// Validates scopes into a [`ScopeSet`], appending problems to `errors`.
/// A list above [`MAX_SCOPES_PER_LIST`] is one error, its entries unchecked.
pub(crate) fn check_scopes(scopes: &[String], errors: &mut Vec<FieldError>) -> ScopeSet {
    if let Some(e) = too_many_scopes("scopes", scopes.len()) {
        errors.push(e);
        return ScopeSet::default();
    }
    match ScopeSet::new(scopes.iter().cloned()) {
        Ok(set) => set,
        Err(Error::Validation(mut e)) => {
            errors.append(&mut e);
            ScopeSet::default()
        }
        Err(other) => {
            errors.push(FieldError::new("scopes", other.to_string()));
            ScopeSet::default()
        }
    }
}

/// A valid key for unit tests: named `n`, scope `read`, hash `hash`.
#[cfg(test)]
pub(crate) fn sample_key(hash: &str) -> ApiKey {
    ApiKey {
        id: new_entity_id(),
        key_id: "0123456789abcdef".into(),
        name: Some("n".into()),
        description: None,
        is_active: true,
        created_at: now_micros(),
        last_used_at: None,
        expires_at: None,
        scopes: ScopeSet::new(["read"]).unwrap(),
        owner_id: None,
        meta: None,
        previous_secret_expires_at: None,
        rate_limits: None,
        credits: None,
        previous_key_hash: None,
        key_hash: hash.into(),
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_never_carries_the_hash() {
        let key = ApiKey {
            previous_key_hash: Some("$keygate-hmac-sha256$v=1$OLDHASH".into()),
            previous_secret_expires_at: Some(Utc::now() + TimeDelta::hours(1)),
            ..sample_key("$keygate-hmac-sha256$v=1$SECRETHASH")
        };
        let json = serde_json::to_value(&key).unwrap();
        let fields: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(fields.len(), 14, "{fields:?}");
        for hidden in ["SECRETHASH", "OLDHASH"] {
            assert!(!json.to_string().contains(hidden));
            assert!(!format!("{key:?}").contains(hidden));
        }
        assert_eq!(key.id.len(), 32);
        assert!(json["previous_secret_expires_at"].is_string());
        // Once the grace has passed, the field reads null.
        let ended = ApiKey {
            previous_secret_expires_at: Some(Utc::now() - TimeDelta::seconds(1)),
            ..key
        };
        assert!(serde_json::to_value(&ended).unwrap()["previous_secret_expires_at"].is_null());
    }

    #[test]
    fn update_tells_null_from_absent() {
        let u: ApiKeyUpdate =
            serde_json::from_str(r#"{"owner_id": null, "meta": {"plan": "pro"}}"#).unwrap();
        assert_eq!(u.owner_id, Some(None));
        assert_eq!(u.meta.unwrap().unwrap()["plan"], "pro");
        assert_eq!(u.description, None);
        assert!(serde_json::from_str::<ApiKeyUpdate>(r#"{"meta": [1]}"#).is_err());
    }

    #[test]
    fn field_checks() {
        let now = Utc::now();
        assert!(check_fields(Some("ok"), Some("d"), None, now).is_empty());
        let errors = check_fields(
            Some(""),
            Some(&"x".repeat(DESCRIPTION_MAX + 1)),
            Some(now - TimeDelta::seconds(1)),
            now,
        );
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "description", "expires_at"]);
        assert_eq!(
            check_fields(Some(&"é".repeat(NAME_MAX)), None, None, now),
            vec![]
        );
        for bad in [
            "+10000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "2030-06-30T23:59:60Z",
        ] {
            let t = bad.parse::<DateTime<Utc>>().unwrap();
            let errors = check_fields(None, None, Some(t), now);
            assert_eq!(errors.len(), 1, "{bad}");
            assert_eq!(errors[0].field, "expires_at");
        }
    }

    #[test]
    fn scope_lists_are_bounded() {
        let list = |n: usize| -> Vec<String> { (0..n).map(|i| format!("s{i}")).collect() };
        let mut errors = Vec::new();
        let set = check_scopes(&list(MAX_SCOPES_PER_LIST), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(set.as_slice().len(), MAX_SCOPES_PER_LIST);
        // Duplicates count: the limit is on what is sent.
        let dupes = vec!["read".to_owned(); MAX_SCOPES_PER_LIST + 1];
        for too_many in [list(MAX_SCOPES_PER_LIST + 1), list(1000), dupes] {
            let mut errors = Vec::new();
            check_scopes(&too_many, &mut errors);
            assert_eq!(errors.len(), 1, "one error, not one per scope");
            assert_eq!(errors[0].field, "scopes");
            assert!(errors[0].message.contains("at most 100"), "{errors:?}");
        }
    }
}
