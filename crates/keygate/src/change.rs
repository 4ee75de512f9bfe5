//! `KeyChange`: one change to a stored key, as a store applies it
//! atomically, and the field-by-field difference the audit log records.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::entity::{ApiKey, Meta};
use crate::limits::{CreditChange, Credits, RateLimit};
use crate::scope::ScopeSet;

/// The fields one change sets; `None` leaves a field as it is.
///
/// A store applies a change to the row *as it is in the store at that
/// moment* (never to a copy read earlier), so two changes to different
/// fields made at the same time both survive. [`KeyChange::apply_to`] is
/// the reference semantics every store reproduces.
///
/// ```
/// use keygate::KeyChange;
/// let change = KeyChange { is_active: Some(false), ..KeyChange::default() };
/// assert!(!change.is_empty());
/// assert!(KeyChange::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyChange {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Replace the scopes.
    pub scopes: Option<ScopeSet>,
    /// New expiry (`Some(None)` removes it).
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New owner (`Some(None)` clears it).
    pub owner_id: Option<Option<String>>,
    /// New application data (`Some(None)` clears it).
    pub meta: Option<Option<Meta>>,
    /// New rate-limit windows (`Some(None)` removes them).
    pub rate_limits: Option<Option<Vec<RateLimit>>>,
    /// New credits, replacing the stored ones (`Some(None)`: unlimited).
    pub credits: Option<Option<Credits>>,
    /// A change to the credits as stored (`set` or `add`), applied after
    /// `credits`. Adding to a key without credits changes nothing.
    pub credit_change: Option<CreditChange>,
    /// A new secret (rotation).
    pub secret: Option<NewSecret>,
}

/// The hash of a new secret, and how long the replaced one keeps working.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// Hash of the new secret.
    pub key_hash: String,
    /// First 4 characters of the new secret, for display.
    pub first: String,
    /// Last 4 characters of the new secret, for display.
    pub last: String,
    /// With a time, the secret being replaced still verifies until then (its
    /// hash moves to `previous_key_hash`); without, it stops at once. Either
    /// way an earlier previous secret stops at once.
    pub grace_until: Option<DateTime<Utc>>,
}

impl fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSecret")
            .field("key_hash", &"<redacted>")
            .field("grace_until", &self.grace_until)
            .finish_non_exhaustive()
    }
}

impl KeyChange {
    /// True when the change sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `old` with this change applied. `last_used_at`, `id`, `key_id` and
    /// `created_at` never change.
    pub fn apply_to(&self, old: &ApiKey) -> ApiKey {
        let mut new = old.clone();
        if let Some(name) = &self.name {
            new.name = Some(name.clone());
        }
        if let Some(description) = &self.description {
            new.description = description.clone();
        }
        if let Some(active) = self.is_active {
            new.is_active = active;
        }
        if let Some(scopes) = &self.scopes {
            new.scopes = scopes.clone();
        }
        if let Some(expires_at) = self.expires_at {
            new.expires_at = expires_at;
        }
        if let Some(owner_id) = &self.owner_id {
            new.owner_id = owner_id.clone();
        }
        if let Some(meta) = &self.meta {
            new.meta = meta.clone();
        }
        if let Some(rate_limits) = &self.rate_limits {
            new.rate_limits = rate_limits.clone();
        }
        if let Some(credits) = &self.credits {
            new.credits = credits.clone();
        }
        if let Some(change) = self.credit_change {
            new.credits = change.apply_to(new.credits.as_ref()).or(new.credits);
        }
        if let Some(secret) = &self.secret {
            new.previous_key_hash = secret.grace_until.map(|_| old.key_hash.clone());
            new.previous_secret_expires_at = secret.grace_until;
            new.key_hash = secret.key_hash.clone();
            new.key_secret_first = secret.first.clone();
            new.key_secret_last = secret.last.clone();
        }
        new
    }
}

/// The value the audit log shows for a secret: never the secret, its hash
/// or its first and last characters.
pub const HIDDEN: &str = "(hidden)";

/// Each field that differs between `old` and `new` (either may be absent:
/// creation, deletion) mapped to `[old, new]`. A new secret shows as
/// `"secret": ["(hidden)", "(hidden)"]`.
pub(crate) fn diff(old: Option<&ApiKey>, new: Option<&ApiKey>) -> serde_json::Map<String, Value> {
    let view = |k: Option<&ApiKey>| -> [(&'static str, Value); 10] {
        [
            ("name", json!(k.and_then(|k| k.name.as_ref()))),
            ("description", json!(k.and_then(|k| k.description.as_ref()))),
            ("is_active", json!(k.map(|k| k.is_active))),
            ("scopes", json!(k.map(|k| k.scopes.as_slice()))),
            ("expires_at", json!(k.and_then(|k| k.expires_at))),
            ("owner_id", json!(k.and_then(|k| k.owner_id.as_ref()))),
            ("meta", json!(k.and_then(|k| k.meta.as_ref()))),
            (
                "previous_secret_expires_at",
                json!(k.and_then(|k| k.previous_secret_expires_at)),
            ),
            ("rate_limits", json!(k.and_then(|k| k.rate_limits.as_ref()))),
            ("credits", json!(k.and_then(|k| k.credits.as_ref()))),
        ]
    };
    let mut changes = serde_json::Map::new();
    for ((field, before), (_, after)) in view(old).into_iter().zip(view(new)) {
        if before != after {
            changes.insert(field.to_owned(), json!([before, after]));
        }
    }
    if let (Some(o), Some(n)) = (old, new) {
        if o.key_hash != n.key_hash {
            changes.insert("secret".to_owned(), json!([HIDDEN, HIDDEN]));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{now_micros, sample_key};

    fn key() -> ApiKey {
        ApiKey {
            description: Some("d".into()),
            ..sample_key("HASH-ONE")
        }
    }

    #[test]
    fn apply_touches_only_what_it_sets() {
        let old = key();
        let change = KeyChange {
            description: Some(None),
            owner_id: Some(Some("team-1".into())),
            ..KeyChange::default()
        };
        let new = change.apply_to(&old);
        assert_eq!(new.description, None);
        assert_eq!(new.owner_id.as_deref(), Some("team-1"));
        assert_eq!((new.name, new.is_active), (old.name.clone(), true));
        let d = diff(Some(&old), Some(&change.apply_to(&old)));
        assert_eq!(
            serde_json::Value::Object(d),
            json!({"description": ["d", null], "owner_id": [null, "team-1"]})
        );
    }

    #[test]
    fn rotation_keeps_one_previous_hash_and_hides_it() {
        let old = key();
        let until = now_micros() + chrono::TimeDelta::hours(1);
        let rotate = |hash: &str, grace| KeyChange {
            secret: Some(NewSecret {
                key_hash: hash.into(),
                first: "AAAA".into(),
                last: "ZZZZ".into(),
                grace_until: grace,
            }),
            ..KeyChange::default()
        };
        let once = rotate("HASH-TWO", Some(until)).apply_to(&old);
        assert_eq!(once.previous_key_hash.as_deref(), Some("HASH-ONE"));
        assert_eq!(once.key_hash, "HASH-TWO");
        let twice = rotate("HASH-THREE", None).apply_to(&once);
        assert_eq!(twice.previous_key_hash, None);
        assert_eq!(twice.previous_secret_expires_at, None);
        let d = serde_json::Value::Object(diff(Some(&old), Some(&once))).to_string();
        assert!(d.contains(HIDDEN), "{d}");
        for secret in ["HASH", "abcd", "wxyz", "AAAA", "ZZZZ"] {
            assert!(!d.contains(secret), "{d}");
        }
    }

    #[test]
    fn creation_and_deletion_list_the_set_fields() {
        let k = key();
        let created = diff(None, Some(&k));
        assert_eq!(created["name"], json!([null, "n"]));
        assert_eq!(created["scopes"], json!([null, ["read"]]));
        assert!(!created.contains_key("owner_id"));
        let deleted = diff(Some(&k), None);
        assert_eq!(deleted["is_active"], json!([true, null]));
    }
}
