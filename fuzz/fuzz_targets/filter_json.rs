//! JSON decoding of the search filter and of updates, as the HTTP and CLI
//! layers do it: `serde_json::from_slice::<ApiKeyFilter>` then `validate`,
//! `matches` and `compare` against sample keys; `from_slice::<ApiKeyUpdate>`;
//! `from_slice::<ScopeSet>`. Every input is tried as all three.
//!
//! Invariants checked:
//! - nothing panics;
//! - `validate` is Ok exactly when every scope of both lists is valid, no
//!   list has more than 100 entries and every time bound is storable;
//! - a filter that decoded re-encodes and decodes to an equal filter
//!   (what the CLI and clients send back and forth);
//! - `matches` agrees with a field-by-field reference on every sample key
//!   (keys with and without credits and rate limits among them), and a key
//!   never matches when a scope it must hold is invalid;
//! - `at_store_precision` (what the service hands the store) selects the
//!   same sample keys;
//! - `compare` is a consistent order (antisymmetric, reflexive `Equal`
//!   only for the same id);
//! - a decoded `ApiKeyUpdate` keeps "field absent" apart from "field null".
#![no_main]

use std::cmp::Ordering;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use keygate::{
    is_valid_scope, ApiKey, ApiKeyFilter, ApiKeyUpdate, Credits, Error, RateLimit, RefillInterval,
    ScopeSet, MAX_CREDITS,
};
use libfuzzer_sys::fuzz_target;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .expect("valid timestamp")
}

#[allow(clippy::too_many_arguments)]
fn key(
    id: &str,
    name: Option<&str>,
    active: bool,
    created: i64,
    used: Option<i64>,
    expires: Option<i64>,
    scopes: ScopeSet,
    owner: Option<&str>,
) -> ApiKey {
    ApiKey {
        id: id.into(),
        key_id: "0123456789abcdef".into(),
        name: name.map(Into::into),
        description: None,
        is_active: active,
        created_at: at(created),
        last_used_at: used.map(at),
        expires_at: expires.map(at),
        scopes,
        owner_id: owner.map(Into::into),
        meta: None,
        previous_secret_expires_at: None,
        rate_limits: None,
        credits: None,
        previous_key_hash: None,
        key_hash: "$keygate-hmac-sha256$v=1$x".into(),
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

fn samples() -> &'static [ApiKey] {
    static SAMPLES: OnceLock<Vec<ApiKey>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        vec![
            ApiKey {
                // Metered and rate-limited.
                credits: Some(Credits::new(5).refilled(100, RefillInterval::Daily)),
                rate_limits: Some(vec![RateLimit::new(
                    "burst",
                    10,
                    std::time::Duration::from_secs(1),
                )]),
                ..key(
                    "00000000000000000000000000000001",
                    Some("CI Bot"),
                    true,
                    1_700_000_000,
                    Some(1_750_000_000),
                    Some(1_900_000_000),
                    ScopeSet::new(["read", "write", "api:admin"]).unwrap(),
                    Some("team-1"),
                )
            },
            key(
                "00000000000000000000000000000002",
                None,
                false,
                0,
                None,
                None,
                ScopeSet::default(),
                None,
            ),
            // A row another tool wrote: scopes keygate would refuse, a non-ASCII name.
            ApiKey {
                credits: Some(Credits::new(MAX_CREDITS)),
                ..key(
                    "00000000000000000000000000000003",
                    Some("Ünïcode ǅ İstanbul"),
                    true,
                    -62_135_596_800,       // 0001-01-01
                    Some(253_402_300_799), // 9999-12-31T23:59:59
                    Some(1),
                    ScopeSet::from_stored(vec!["Legacy Scope".into(), "read".into(), "".into()]),
                    Some(""),
                )
            },
            // Out of credits, rate-limited, otherwise bare.
            ApiKey {
                credits: Some(Credits::new(0)),
                rate_limits: Some(vec![RateLimit::new(
                    "day",
                    1_000,
                    std::time::Duration::from_secs(86_400),
                )]),
                ..key(
                    "00000000000000000000000000000004",
                    None,
                    true,
                    1_700_000_000,
                    None,
                    None,
                    ScopeSet::default(),
                    None,
                )
            },
        ]
    })
}

/// `matches`, written out from the field documentation of `ApiKeyFilter`.
fn reference_matches(f: &ApiKeyFilter, k: &ApiKey) -> bool {
    fn lt(v: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
        match (v, b) {
            (_, None) => true,
            (Some(v), Some(b)) => v < b,
            (None, Some(_)) => false,
        }
    }
    fn gt(v: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
        match (v, b) {
            (_, None) => true,
            (Some(v), Some(b)) => v > b,
            (None, Some(_)) => false,
        }
    }
    let holds = |s: &String| k.scopes.iter().any(|t| t == s);
    (f.is_active.is_none() || f.is_active == Some(k.is_active))
        && lt(k.expires_at, f.expires_before)
        && gt(k.expires_at, f.expires_after)
        && lt(Some(k.created_at), f.created_before)
        && gt(Some(k.created_at), f.created_after)
        && lt(k.last_used_at, f.last_used_before)
        && gt(k.last_used_at, f.last_used_after)
        && f.never_used.is_none_or(|n| n == k.last_used_at.is_none())
        && f.scopes_contain_all.iter().all(holds)
        && (f.scopes_contain_any.is_empty() || f.scopes_contain_any.iter().any(holds))
        && f.name_contains.as_ref().is_none_or(|needle| {
            k.name
                .as_ref()
                .is_some_and(|n| lower_each(n).contains(&lower_each(needle)))
        })
        && f.name_exact
            .as_ref()
            .is_none_or(|e| k.name.as_ref() == Some(e))
        && f.owner_id
            .as_ref()
            .is_none_or(|o| k.owner_id.as_ref() == Some(o))
        && f.key_id.as_ref().is_none_or(|id| &k.key_id == id)
        && match f.has_credits {
            None => true,
            Some(wanted) => wanted == k.credits.is_some(),
        }
        && match (f.credits_below, &k.credits) {
            (None, _) => true,
            // Keys without credits never match.
            (Some(_), None) => false,
            (Some(n), Some(c)) => c.remaining < n,
        }
        && match f.has_rate_limits {
            None => true,
            Some(wanted) => wanted == k.rate_limits.is_some(),
        }
}

/// The documented folding of `name_contains`: each character to the first
/// character of its lowercase mapping (as the databases' `lower()` works).
fn lower_each(text: &str) -> String {
    text.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// A time every store keeps alike: years 1000..=9999 in UTC, no leap second.
fn storable(t: &Option<chrono::DateTime<chrono::Utc>>) -> bool {
    use chrono::{Datelike, Timelike};
    t.is_none_or(|t| (1000..=9999).contains(&t.year()) && t.nanosecond() < 1_000_000_000)
}

fn check_filter(filter: &ApiKeyFilter) {
    let all_valid = filter
        .scopes_contain_all
        .iter()
        .chain(&filter.scopes_contain_any)
        .all(|s| is_valid_scope(s))
        && filter.scopes_contain_all.len() <= keygate::MAX_SCOPES_PER_LIST
        && filter.scopes_contain_any.len() <= keygate::MAX_SCOPES_PER_LIST
        && [
            &filter.expires_before,
            &filter.expires_after,
            &filter.created_before,
            &filter.created_after,
            &filter.last_used_before,
            &filter.last_used_after,
        ]
        .into_iter()
        .all(storable);
    match filter.validate() {
        Ok(()) => assert!(all_valid, "validate accepted an invalid filter: {filter:?}"),
        Err(Error::Validation(errors)) => {
            assert!(!all_valid, "validate refused a valid filter: {filter:?}");
            assert!(!errors.is_empty());
            let _ = Error::Validation(errors).to_string();
        }
        Err(other) => panic!("validate answered {other:?}"),
    }

    // What a client gets back from the CLI / sends again decodes to the same filter.
    let encoded = serde_json::to_vec(filter).expect("a filter serializes");
    let decoded: ApiKeyFilter = serde_json::from_slice(&encoded).unwrap_or_else(|e| {
        panic!(
            "re-encoded filter does not decode ({e}): {}",
            String::from_utf8_lossy(&encoded)
        )
    });
    assert_eq!(&decoded, filter, "filter JSON round trip");

    let stored = filter.at_store_precision();
    for k in samples() {
        let m = filter.matches(k);
        assert_eq!(
            m,
            reference_matches(filter, k),
            "matches vs reference on {}",
            k.id
        );
        assert_eq!(
            stored.matches(k),
            m,
            "at_store_precision changes the match on {}",
            k.id
        );
        if m {
            // Every required scope is held, so it is a scope the key really has.
            for s in &filter.scopes_contain_all {
                assert!(k.scopes.contains(s));
            }
        }
        assert_eq!(filter.compare(k, k), Ordering::Equal);
        for other in samples() {
            let ab = filter.compare(k, other);
            assert_eq!(
                ab,
                filter.compare(other, k).reverse(),
                "compare antisymmetry"
            );
            if k.id != other.id {
                assert_ne!(ab, Ordering::Equal, "ties are broken by id");
            }
        }
    }
}

fn check_update(data: &[u8], update: &ApiKeyUpdate) {
    // "field": null is Some(None), a missing field None. (serde also decodes
    // a struct from a JSON array, by position; the HTTP layer refuses
    // non-object bodies before that, so arrays are not checked here.)
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        panic!("an ApiKeyUpdate decoded from bytes that are not JSON");
    };
    let Some(obj) = value.as_object() else {
        return;
    };
    let presence = |field: &str, got: bool| {
        assert_eq!(obj.contains_key(field), got, "presence of {field}");
    };
    presence("description", update.description.is_some());
    presence("owner_id", update.owner_id.is_some());
    presence("meta", update.meta.is_some());
    presence("rate_limits", update.rate_limits.is_some());
    presence("credits", update.credits.is_some());
    if let Some(v) = obj.get("description") {
        assert_eq!(v.is_null(), update.description == Some(None));
    }
    if let Some(v) = obj.get("owner_id") {
        assert_eq!(v.is_null(), update.owner_id == Some(None));
    }
    if let Some(v) = obj.get("meta") {
        assert_eq!(v.is_null(), matches!(update.meta, Some(None)));
    }
    if let Some(v) = obj.get("rate_limits") {
        assert_eq!(v.is_null(), matches!(update.rate_limits, Some(None)));
    }
    if let Some(v) = obj.get("credits") {
        assert_eq!(v.is_null(), matches!(update.credits, Some(None)));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(filter) = serde_json::from_slice::<ApiKeyFilter>(data) {
        check_filter(&filter);
    }
    if let Ok(update) = serde_json::from_slice::<ApiKeyUpdate>(data) {
        check_update(data, &update);
    }
    if let Ok(scopes) = serde_json::from_slice::<ScopeSet>(data) {
        assert!(scopes.iter().all(is_valid_scope), "{scopes:?}");
        let again: ScopeSet =
            serde_json::from_str(&serde_json::to_string(&scopes).unwrap()).unwrap();
        assert_eq!(again, scopes);
    }
});
