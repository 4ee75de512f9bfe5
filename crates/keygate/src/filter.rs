//! `ApiKeyFilter`: the search criteria every store applies before paging.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::{storable_time_problem, too_many_scopes, truncate_micros, ApiKey};
use crate::error::{Error, FieldError};
use crate::limits::MAX_CREDITS;
use crate::scope::is_valid_scope;

/// Sort column of a search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// Entity id.
    Id,
    /// Name (byte order; keys without a name first in ascending order).
    Name,
    /// Creation time (the default).
    #[default]
    CreatedAt,
    /// Expiry (keys without one first in ascending order).
    ExpiresAt,
    /// Last use (never-used keys first in ascending order).
    LastUsedAt,
    /// Active flag (false < true).
    IsActive,
    /// Key id.
    KeyId,
}

impl OrderBy {
    /// Every column, for help texts and validation.
    pub const ALL: [OrderBy; 7] = [
        Self::Id,
        Self::Name,
        Self::CreatedAt,
        Self::ExpiresAt,
        Self::LastUsedAt,
        Self::IsActive,
        Self::KeyId,
    ];

    /// The column name as in the SPEC and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Name => "name",
            Self::CreatedAt => "created_at",
            Self::ExpiresAt => "expires_at",
            Self::LastUsedAt => "last_used_at",
            Self::IsActive => "is_active",
            Self::KeyId => "key_id",
        }
    }
}

impl std::str::FromStr for OrderBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                "order_by",
                "must be one of id, name, created_at, expires_at, last_used_at, is_active, key_id",
            )
            })
    }
}

fn default_true() -> bool {
    true
}

/// Case folding for `name_contains`: every character replaced by the first
/// character of its Unicode lowercase mapping (`É` → `é`, `Σ` → `σ`,
/// `İ` → `i`; `ß` stays `ß`). Character by character, as the databases'
/// `lower()` works, so every store folds alike.
///
/// ```
/// assert_eq!(keygate::fold_case("ÉCOLE İstanbul ΟΔΟΣ"), "école istanbul οδοσ");
/// ```
pub fn fold_case(text: &str) -> String {
    text.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Search criteria, all optional and combined with AND.
///
/// Nulls sort as the smallest value (first ascending, last descending) in
/// every store; ties are broken by `id` in the same direction.
///
/// ```
/// use keygate::ApiKeyFilter;
/// let filter: ApiKeyFilter =
///     serde_json::from_str(r#"{"scopes_contain_all": ["read"], "limit": 5}"#).unwrap();
/// assert!(filter.order_desc);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFilter {
    /// Only active (true) or inactive (false) keys.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// `expires_at < t` (keys without expiry never match).
    #[serde(default)]
    pub expires_before: Option<DateTime<Utc>>,
    /// `expires_at > t`.
    #[serde(default)]
    pub expires_after: Option<DateTime<Utc>>,
    /// Not expired at `t`: no expiry, or `expires_at > t` (the keys
    /// [`ApiKey::is_expired_at`] says are not expired).
    #[serde(default)]
    pub unexpired_at: Option<DateTime<Utc>>,
    /// `created_at < t`.
    #[serde(default)]
    pub created_before: Option<DateTime<Utc>>,
    /// `created_at > t`.
    #[serde(default)]
    pub created_after: Option<DateTime<Utc>>,
    /// `last_used_at < t` (never-used keys never match).
    #[serde(default)]
    pub last_used_before: Option<DateTime<Utc>>,
    /// `last_used_at > t`.
    #[serde(default)]
    pub last_used_after: Option<DateTime<Utc>>,
    /// true: never used; false: used at least once.
    #[serde(default)]
    pub never_used: Option<bool>,
    /// Key holds every one of these scopes.
    #[serde(default)]
    pub scopes_contain_all: Vec<String>,
    /// Key holds at least one of these scopes (ignored when empty).
    #[serde(default)]
    pub scopes_contain_any: Vec<String>,
    /// Case-insensitive substring of the name ([`fold_case`] on both
    /// sides); `%`, `_`, `\` are literal.
    #[serde(default)]
    pub name_contains: Option<String>,
    /// Exact name.
    #[serde(default)]
    pub name_exact: Option<String>,
    /// Exact owner id.
    #[serde(default)]
    pub owner_id: Option<String>,
    /// Exact public key id (the middle part of a key).
    #[serde(default)]
    pub key_id: Option<String>,
    /// true: keys with credits (metered); false: unlimited keys.
    #[serde(default)]
    pub has_credits: Option<bool>,
    /// Keys whose stored `credits.remaining` is below this (keys without
    /// credits never match). A refill due but not yet applied by a use is
    /// not counted.
    #[serde(default)]
    pub credits_below: Option<u64>,
    /// true: keys with rate limits; false: keys without.
    #[serde(default)]
    pub has_rate_limits: Option<bool>,
    /// Sort column (default `created_at`).
    #[serde(default)]
    pub order_by: OrderBy,
    /// Descending (default true).
    #[serde(default = "default_true")]
    pub order_desc: bool,
    /// Rows to skip.
    #[serde(default)]
    pub offset: u64,
    /// Rows to return at most; `None` for all.
    #[serde(default)]
    pub limit: Option<u64>,
}

impl Default for ApiKeyFilter {
    fn default() -> Self {
        Self {
            is_active: None,
            expires_before: None,
            expires_after: None,
            unexpired_at: None,
            created_before: None,
            created_after: None,
            last_used_before: None,
            last_used_after: None,
            never_used: None,
            scopes_contain_all: Vec::new(),
            scopes_contain_any: Vec::new(),
            name_contains: None,
            name_exact: None,
            owner_id: None,
            key_id: None,
            has_credits: None,
            credits_below: None,
            has_rate_limits: None,
            order_by: OrderBy::default(),
            order_desc: true,
            offset: 0,
            limit: None,
        }
    }
}

impl ApiKeyFilter {
    /// Newest first, one page.
    pub fn page(offset: u64, limit: u64) -> Self {
        Self {
            offset,
            limit: Some(limit),
            ..Self::default()
        }
    }

    /// Checks the scope lists: at most
    /// [`MAX_SCOPES_PER_LIST`](crate::MAX_SCOPES_PER_LIST) entries each, every
    /// entry a valid scope. A bad scope can never match a stored key, so it
    /// is reported rather than silently returning nothing.
    pub fn validate(&self) -> Result<(), Error> {
        let errors: Vec<FieldError> = [
            ("scopes_contain_all", &self.scopes_contain_all),
            ("scopes_contain_any", &self.scopes_contain_any),
        ]
        .into_iter()
        .flat_map(|(field, list)| match too_many_scopes(field, list.len()) {
            // One error for the list, not one per entry.
            Some(e) => vec![e],
            None => list
                .iter()
                .filter(|s| !is_valid_scope(s))
                .map(|s| FieldError::new(field, format!("invalid scope {s:?}")))
                .collect(),
        })
        .chain(self.bounds().into_iter().filter_map(|(field, bound)| {
            bound
                .and_then(storable_time_problem)
                .map(|problem| FieldError::new(field, problem))
        }))
        .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(errors))
        }
    }

    fn bounds(&self) -> [(&'static str, Option<DateTime<Utc>>); 6] {
        [
            ("expires_before", self.expires_before),
            ("expires_after", self.expires_after),
            ("created_before", self.created_before),
            ("created_after", self.created_after),
            ("last_used_before", self.last_used_before),
            ("last_used_after", self.last_used_after),
        ]
    }

    /// The same filter with its time bounds at the microsecond precision
    /// every store keeps, selecting exactly the same stored keys: `…_before`
    /// bounds rounded up, `…_after` bounds rounded down.
    pub fn at_store_precision(&self) -> Self {
        let down = |t: Option<DateTime<Utc>>| t.map(truncate_micros);
        let up = |t: Option<DateTime<Utc>>| {
            t.map(|t| {
                let cut = truncate_micros(t);
                if cut < t {
                    cut + chrono::TimeDelta::microseconds(1)
                } else {
                    cut
                }
            })
        };
        Self {
            expires_before: up(self.expires_before),
            created_before: up(self.created_before),
            last_used_before: up(self.last_used_before),
            expires_after: down(self.expires_after),
            unexpired_at: down(self.unexpired_at),
            created_after: down(self.created_after),
            last_used_after: down(self.last_used_after),
            // No key holds more: the same matches, and a value every store binds.
            credits_below: self.credits_below.map(|n| n.min(MAX_CREDITS + 1)),
            ..self.clone()
        }
    }

    /// True when `key` meets every criterion. The reference semantics that
    /// SQL stores reproduce.
    pub fn matches(&self, key: &ApiKey) -> bool {
        fn lt(v: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>) -> bool {
            bound.is_none_or(|b| v.is_some_and(|v| v < b))
        }
        fn gt(v: Option<DateTime<Utc>>, bound: Option<DateTime<Utc>>) -> bool {
            bound.is_none_or(|b| v.is_some_and(|v| v > b))
        }
        self.is_active.is_none_or(|a| key.is_active == a)
            && lt(key.expires_at, self.expires_before)
            && gt(key.expires_at, self.expires_after)
            && self
                .unexpired_at
                .is_none_or(|t| key.expires_at.is_none_or(|e| e > t))
            && lt(Some(key.created_at), self.created_before)
            && gt(Some(key.created_at), self.created_after)
            && lt(key.last_used_at, self.last_used_before)
            && gt(key.last_used_at, self.last_used_after)
            && self
                .never_used
                .is_none_or(|n| key.last_used_at.is_none() == n)
            && key.scopes.contains_all(&self.scopes_contain_all)
            && (self.scopes_contain_any.is_empty()
                || self
                    .scopes_contain_any
                    .iter()
                    .any(|s| key.scopes.contains(s)))
            && self.name_contains.as_deref().is_none_or(|needle| {
                key.name
                    .as_deref()
                    .is_some_and(|n| fold_case(n).contains(&fold_case(needle)))
            })
            && self
                .name_exact
                .as_deref()
                .is_none_or(|exact| key.name.as_deref() == Some(exact))
            && self
                .owner_id
                .as_deref()
                .is_none_or(|owner| key.owner_id.as_deref() == Some(owner))
            && self.key_id.as_deref().is_none_or(|k| key.key_id == k)
            && self.has_credits.is_none_or(|h| key.credits.is_some() == h)
            && self
                .credits_below
                .is_none_or(|n| key.credits.as_ref().is_some_and(|c| c.remaining < n))
            && self
                .has_rate_limits
                .is_none_or(|h| key.rate_limits.is_some() == h)
    }

    /// The order of results: by `order_by` (nulls smallest), then by `id`,
    /// both in the requested direction.
    pub fn compare(&self, a: &ApiKey, b: &ApiKey) -> Ordering {
        let primary = match self.order_by {
            OrderBy::Id => Ordering::Equal,
            OrderBy::Name => a.name.cmp(&b.name),
            OrderBy::CreatedAt => a.created_at.cmp(&b.created_at),
            OrderBy::ExpiresAt => a.expires_at.cmp(&b.expires_at),
            OrderBy::LastUsedAt => a.last_used_at.cmp(&b.last_used_at),
            OrderBy::IsActive => a.is_active.cmp(&b.is_active),
            OrderBy::KeyId => a.key_id.cmp(&b.key_id),
        };
        let ord = primary.then_with(|| a.id.cmp(&b.id));
        if self.order_desc {
            ord.reverse()
        } else {
            ord
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_names_and_defaults() {
        let f: ApiKeyFilter = serde_json::from_str(
            r#"{"is_active":true,"never_used":false,"name_contains":"a%_","order_by":"last_used_at","order_desc":false,"offset":3,"limit":7,
                "expires_before":"2030-01-01T00:00:00Z","scopes_contain_any":["read"]}"#,
        )
        .unwrap();
        assert_eq!(f.order_by, OrderBy::LastUsedAt);
        assert!(!f.order_desc);
        assert_eq!((f.offset, f.limit), (3, Some(7)));
        assert!(serde_json::from_str::<ApiKeyFilter>(r#"{"order_by":"key_hash"}"#).is_err());
        assert!(serde_json::from_str::<ApiKeyFilter>(r#"{"bogus":1}"#).is_err());
        assert_eq!(ApiKeyFilter::default(), serde_json::from_str("{}").unwrap());
    }

    #[test]
    fn order_by_parses_every_column() {
        for o in OrderBy::ALL {
            assert_eq!(o.as_str().parse::<OrderBy>().unwrap(), o);
        }
        assert!("password".parse::<OrderBy>().is_err());
    }

    #[test]
    fn bounds_the_stores_cannot_keep_are_refused() {
        for bad in [
            "0000-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2024-02-29T23:59:60Z",
        ] {
            let f: ApiKeyFilter =
                serde_json::from_str(&format!(r#"{{"created_after":"{bad}"}}"#)).unwrap();
            assert!(
                matches!(f.validate(), Err(Error::Validation(e)) if e[0].field == "created_after"),
                "{bad}"
            );
        }
    }

    #[test]
    fn store_precision_selects_the_same_keys() {
        let f: ApiKeyFilter = serde_json::from_str(
            r#"{"created_before":"2024-01-01T00:00:00.1234561Z","created_after":"2024-01-01T00:00:00.1234561Z"}"#,
        )
        .unwrap();
        let p = f.at_store_precision();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(p.created_before, Some(t("2024-01-01T00:00:00.123457Z")));
        assert_eq!(p.created_after, Some(t("2024-01-01T00:00:00.123456Z")));
        let mut key = crate::entity::sample_key("h");
        for stored in ["2024-01-01T00:00:00.123456Z", "2024-01-01T00:00:00.123457Z"] {
            key.created_at = t(stored);
            for filter in [
                ApiKeyFilter {
                    created_after: None,
                    ..f.clone()
                },
                ApiKeyFilter {
                    created_before: None,
                    ..f.clone()
                },
            ] {
                assert_eq!(
                    filter.matches(&key),
                    filter.at_store_precision().matches(&key),
                    "{stored}"
                );
            }
        }
    }

    #[test]
    fn bad_filter_scopes_are_reported() {
        let f = ApiKeyFilter {
            scopes_contain_any: vec!["Bad Scope".into()],
            ..ApiKeyFilter::default()
        };
        assert!(matches!(f.validate(), Err(Error::Validation(_))));
    }

    #[test]
    fn filter_scope_lists_are_bounded() {
        let list = |n: usize| -> Vec<String> { (0..n).map(|i| format!("s{i}")).collect() };
        let max = crate::MAX_SCOPES_PER_LIST;
        let ok = ApiKeyFilter {
            scopes_contain_all: list(max),
            scopes_contain_any: list(max),
            ..ApiKeyFilter::default()
        };
        assert!(ok.validate().is_ok());
        for (all, any, field) in [
            (max + 1, 0, "scopes_contain_all"),
            (0, 1000, "scopes_contain_any"),
        ] {
            let f = ApiKeyFilter {
                scopes_contain_all: list(all),
                scopes_contain_any: list(any),
                ..ApiKeyFilter::default()
            };
            match f.validate() {
                Err(Error::Validation(e)) => {
                    assert_eq!(e.len(), 1, "{e:?}");
                    assert_eq!(e[0].field, field);
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
