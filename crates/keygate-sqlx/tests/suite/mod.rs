//! The conformance suite, written once and run against every store: each
//! check takes a fresh, empty store; `conformance_tests!` turns every check
//! into a `#[tokio::test]` for one backend.
#![allow(dead_code)]

pub mod filters;
pub mod service;

pub use filters::*;
pub use service::*;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keygate::{new_entity_id, ApiKey, ApiKeyFilter, Repository, ScopeSet, StoreError};

/// One `#[tokio::test]` per check, each on a fresh store from `$setup`
/// (an `async fn() -> Option<support::Store>`; `None` means skipped).
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::suite::conformance_tests!(
            $setup;
            crud_round_trip,
            optional_and_unicode_fields_round_trip,
            duplicate_key_id_is_conflict,
            duplicate_key_hash_is_conflict,
            update_to_taken_key_id_is_conflict,
            touch_only_moves_forward,
            ping_answers,
            every_filter_field_matches_reference,
            name_contains_is_literal_and_case_insensitive,
            ordering_every_column_both_directions,
            paging_is_stable_and_complete,
            scope_filters_run_before_paging,
            empty_scopes_any_is_no_constraint,
            verify_outcomes,
            manage_through_service,
            concurrent_creates_and_verifies,
        );
    };
    ($setup:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(store) = $setup().await else { return };
                $crate::suite::$check(store.repo.clone()).await;
            }
        )+
    };
}
pub(crate) use conformance_tests;

pub type Repo = Arc<dyn Repository>;

/// A fixed instant the test data is laid out around.
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    base() + TimeDelta::seconds(seconds)
}

/// A valid entity with a unique id, key id and hash.
pub fn key(name: Option<&str>, scopes: &[&str]) -> ApiKey {
    let id = new_entity_id();
    ApiKey {
        key_id: id[..16].to_owned(),
        key_hash: format!("$keygate-hmac-sha256$v=1${id}"),
        id,
        name: name.map(str::to_owned),
        description: None,
        is_active: true,
        created_at: base(),
        last_used_at: None,
        expires_at: None,
        scopes: ScopeSet::new(scopes.iter().copied()).unwrap(),
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

pub async fn all(repo: &Repo) -> Vec<ApiKey> {
    repo.find(&ApiKeyFilter::default()).await.unwrap()
}

pub async fn crud_round_trip(repo: Repo) {
    let mut k = key(Some("crud"), &["read", "write"]);
    k.description = Some("first".into());
    k.expires_at = Some(at(3600));
    k.last_used_at = Some(at(-60));
    repo.insert(&k).await.unwrap();

    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&k));
    assert_eq!(
        repo.get_by_key_id(&k.key_id).await.unwrap().as_ref(),
        Some(&k)
    );
    assert_eq!(
        repo.get("0123456789abcdef0123456789abcdef").await.unwrap(),
        None
    );
    assert_eq!(repo.get_by_key_id("ffffffffffffffff").await.unwrap(), None);

    let mut changed = k.clone();
    changed.name = Some("renamed".into());
    changed.description = None;
    changed.is_active = false;
    changed.expires_at = None;
    changed.last_used_at = Some(at(5));
    changed.scopes = ScopeSet::new(["api:admin"]).unwrap();
    assert!(repo.update(&changed).await.unwrap());
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&changed));
    // last_used_at only moves forward, so an update built from a stale read
    // cannot undo a use recorded meanwhile.
    let stale = ApiKey {
        last_used_at: Some(at(1)),
        ..changed.clone()
    };
    assert!(repo.update(&stale).await.unwrap());
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&changed));
    // Same values again: still "found" (MySQL reports matched, not changed, rows).
    assert!(repo.update(&changed).await.unwrap());
    assert!(!repo.update(&key(Some("ghost"), &[])).await.unwrap());

    assert_eq!(repo.delete(&k.id).await.unwrap().as_ref(), Some(&changed));
    assert_eq!(repo.delete(&k.id).await.unwrap(), None);
    assert_eq!(repo.get(&k.id).await.unwrap(), None);
    assert_eq!(repo.get_by_key_id(&k.key_id).await.unwrap(), None);
    assert_eq!(repo.count(&ApiKeyFilter::default()).await.unwrap(), 0);
}

pub async fn optional_and_unicode_fields_round_trip(repo: Repo) {
    let bare = key(None, &[]);
    let mut fancy = key(
        Some("Ünïcødé 🚀 \"quoted\" 'single'"),
        &["a", "b:c", "d-e_f"],
    );
    fancy.description = Some("line1\nline2 \\ % _ 'x'".into());
    fancy.created_at = at(1) + TimeDelta::microseconds(123_456);
    fancy.expires_at = Some(at(10) + TimeDelta::microseconds(1));
    for k in [&bare, &fancy] {
        repo.insert(k).await.unwrap();
        assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(all(&repo).await, vec![fancy, bare]);
}

pub async fn duplicate_key_id_is_conflict(repo: Repo) {
    let first = key(Some("first"), &[]);
    repo.insert(&first).await.unwrap();
    let mut twin = key(Some("twin"), &[]);
    twin.key_id = first.key_id.clone();
    match repo.insert(&twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("key_id"), "{message}");
            assert!(message.contains(&first.key_id), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut same_id = key(Some("same id"), &[]);
    same_id.id = first.id.clone();
    assert!(matches!(
        repo.insert(&same_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(all(&repo).await, vec![first]);
}

pub async fn duplicate_key_hash_is_conflict(repo: Repo) {
    let first = key(Some("first"), &[]);
    repo.insert(&first).await.unwrap();
    let mut twin = key(Some("twin"), &[]);
    twin.key_hash = first.key_hash.clone();
    match repo.insert(&twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("key hash"), "{message}");
            assert!(!message.contains(&first.key_hash), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let other = key(Some("other"), &[]);
    repo.insert(&other).await.unwrap();
    let mut moved = other.clone();
    moved.key_hash = first.key_hash.clone();
    assert!(matches!(
        repo.update(&moved).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(repo.get(&other.id).await.unwrap().as_ref(), Some(&other));
}

pub async fn update_to_taken_key_id_is_conflict(repo: Repo) {
    let a = key(Some("a"), &[]);
    let b = key(Some("b"), &[]);
    repo.insert(&a).await.unwrap();
    repo.insert(&b).await.unwrap();
    let mut moved = b.clone();
    moved.key_id = a.key_id.clone();
    assert!(matches!(
        repo.update(&moved).await,
        Err(StoreError::Conflict(m)) if m.contains("key_id")
    ));
    assert_eq!(repo.get(&b.id).await.unwrap().as_ref(), Some(&b));
}

pub async fn touch_only_moves_forward(repo: Repo) {
    let never = key(Some("never"), &[]);
    let mut used = key(Some("used"), &[]);
    used.last_used_at = Some(at(100));
    let untouched = key(Some("untouched"), &[]);
    for k in [&never, &used, &untouched] {
        repo.insert(k).await.unwrap();
    }
    repo.touch(&[]).await.unwrap();
    repo.touch(&[
        (never.id.clone(), at(50)),
        (used.id.clone(), at(99)), // earlier than stored: ignored
        ("00000000000000000000000000000000".into(), at(1)), // unknown: ignored
    ])
    .await
    .unwrap();
    let get = |id: String| {
        let repo = repo.clone();
        async move { repo.get(&id).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(get(never.id.clone()).await, Some(at(50)));
    assert_eq!(get(used.id.clone()).await, Some(at(100)));
    assert_eq!(get(untouched.id.clone()).await, None);

    // Later values win, also within one batch in any order.
    let later = at(200) + TimeDelta::microseconds(7);
    repo.touch(&[(used.id.clone(), later), (used.id.clone(), at(150))])
        .await
        .unwrap();
    assert_eq!(get(used.id.clone()).await, Some(later));
    // Equal is not later: unchanged, no error.
    repo.touch(&[(used.id.clone(), later)]).await.unwrap();
    assert_eq!(get(used.id).await, Some(later));
}

pub async fn ping_answers(repo: Repo) {
    repo.ping().await.unwrap();
}
