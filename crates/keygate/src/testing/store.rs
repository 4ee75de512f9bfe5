//! The `KeyStore` contract: look-ups, inserts, changes, deletes, touches.

use chrono::TimeDelta;

use super::{all, at, audit, change, key, put, Repo};
use crate::{ApiKeyFilter, AuditAction, KeyChange, NewSecret, ScopeSet, StoreError};

/// Insert, read back by both ids, change every field, delete.
pub async fn crud_round_trip(repo: Repo) {
    let mut k = key(Some("crud"), &["read", "write"]);
    k.description = Some("first".into());
    k.expires_at = Some(at(3600));
    k.last_used_at = Some(at(-60));
    k.owner_id = Some("team-42".into());
    k.meta = Some(serde_json::from_str(r#"{"plan":"pro","seats":3,"tags":["a"]}"#).unwrap());
    put(&repo, &k).await.unwrap();

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

    let every_field = KeyChange {
        name: Some("renamed".into()),
        description: Some(None),
        is_active: Some(false),
        scopes: Some(ScopeSet::new(["api:admin"]).unwrap()),
        expires_at: Some(None),
        owner_id: Some(None),
        meta: Some(Some(serde_json::from_str(r#"{"plan":"free"}"#).unwrap())),
        rate_limits: Some(Some(vec![crate::RateLimit::new(
            "per-second",
            5,
            std::time::Duration::from_secs(1),
        )])),
        credits: Some(Some(crate::Credits::new(7))),
        credit_change: Some(crate::CreditChange::Add(3)),
        secret: None,
    };
    let changed = change(&repo, &k.id, &every_field).await.unwrap().unwrap();
    assert_eq!(changed, every_field.apply_to(&k));
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&changed));
    // The same change again: still found, nothing different.
    let again = change(&repo, &k.id, &every_field).await.unwrap();
    assert_eq!(again.as_ref(), Some(&changed));
    let ghost = key(Some("ghost"), &[]);
    assert_eq!(change(&repo, &ghost.id, &every_field).await.unwrap(), None);

    let gone = repo.delete(&k.id, &audit(AuditAction::Delete)).await;
    assert_eq!(gone.unwrap().as_ref(), Some(&changed));
    let twice = repo.delete(&k.id, &audit(AuditAction::Delete)).await;
    assert_eq!(twice.unwrap(), None);
    assert_eq!(repo.get(&k.id).await.unwrap(), None);
    assert_eq!(repo.get_by_key_id(&k.key_id).await.unwrap(), None);
    assert_eq!(repo.count(&ApiKeyFilter::default()).await.unwrap(), 0);
}

/// NULLs, quotes, newlines, emoji and microseconds survive the store.
pub async fn optional_and_unicode_fields_round_trip(repo: Repo) {
    let bare = key(None, &[]);
    let mut fancy = key(
        Some("Ünïcødé 🚀 \"quoted\" 'single'"),
        &["a", "b:c", "d-e_f"],
    );
    fancy.description = Some("line1\nline2 \\ % _ 'x'".into());
    fancy.created_at = at(1) + TimeDelta::microseconds(123_456);
    fancy.expires_at = Some(at(10) + TimeDelta::microseconds(1));
    fancy.owner_id = Some("ÉCOLE 'owner' \"x\" 🚀".into());
    fancy.meta = Some(
        serde_json::from_str(r#"{"nested":{"k":[1,2.5,null,true]},"quote":"'\"","é":"🚀"}"#)
            .unwrap(),
    );
    for k in [&bare, &fancy] {
        put(&repo, k).await.unwrap();
        assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(all(&repo).await, vec![fancy, bare]);
}

/// A taken key id or entity id is a conflict naming the key id.
pub async fn duplicate_key_id_is_conflict(repo: Repo) {
    let first = key(Some("first"), &[]);
    put(&repo, &first).await.unwrap();
    let mut twin = key(Some("twin"), &[]);
    twin.key_id = first.key_id.clone();
    match put(&repo, &twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("key_id"), "{message}");
            assert!(message.contains(&first.key_id), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut same_id = key(Some("same id"), &[]);
    same_id.id = first.id.clone();
    assert!(matches!(
        put(&repo, &same_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(all(&repo).await, vec![first]);
}

/// A taken hash is a conflict whose message does not show the hash.
pub async fn duplicate_key_hash_is_conflict(repo: Repo) {
    let first = key(Some("first"), &[]);
    put(&repo, &first).await.unwrap();
    let mut twin = key(Some("twin"), &[]);
    twin.key_hash = first.key_hash.clone();
    match put(&repo, &twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("key hash"), "{message}");
            assert!(!message.contains(&first.key_hash), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(all(&repo).await, vec![first]);
}

fn new_secret(hash: &str, grace_until: Option<chrono::DateTime<chrono::Utc>>) -> KeyChange {
    KeyChange {
        secret: Some(NewSecret {
            key_hash: hash.into(),
            first: "AAAA".into(),
            last: "ZZZZ".into(),
            grace_until,
        }),
        ..KeyChange::default()
    }
}

/// Rotating onto another key's hash is refused and changes nothing.
pub async fn rotation_to_a_taken_hash_is_conflict(repo: Repo) {
    let a = key(Some("a"), &[]);
    let b = key(Some("b"), &[]);
    put(&repo, &a).await.unwrap();
    put(&repo, &b).await.unwrap();
    let onto_a = new_secret(&a.key_hash, None);
    assert!(matches!(
        change(&repo, &b.id, &onto_a).await,
        Err(StoreError::Conflict(m)) if m.contains("key hash")
    ));
    assert_eq!(repo.get(&b.id).await.unwrap().as_ref(), Some(&b));
    // A rotation keeps the replaced hash during the grace, and a second
    // rotation drops it.
    let until = at(1_000_000);
    let rotated = change(&repo, &b.id, &new_secret("$h$b2", Some(until)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rotated.previous_key_hash.as_deref(),
        Some(b.key_hash.as_str())
    );
    assert_eq!(rotated.previous_secret_expires_at, Some(until));
    assert_eq!(
        (
            rotated.key_secret_first.as_str(),
            rotated.key_secret_last.as_str()
        ),
        ("AAAA", "ZZZZ")
    );
    assert_eq!(repo.get(&b.id).await.unwrap().as_ref(), Some(&rotated));
    let again = change(&repo, &b.id, &new_secret("$h$b3", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.previous_key_hash, None);
    assert_eq!(again.previous_secret_expires_at, None);
    assert_eq!(repo.get(&b.id).await.unwrap().as_ref(), Some(&again));
}

/// A change writes only its own fields: a use recorded after the caller
/// last read the key, and fields changed meanwhile, stay.
pub async fn changes_touch_only_their_fields(repo: Repo) {
    let k = key(Some("partial"), &["read"]);
    put(&repo, &k).await.unwrap();
    repo.touch(&[(k.id.clone(), at(500))]).await.unwrap();
    let rename = KeyChange {
        name: Some("renamed".into()),
        ..KeyChange::default()
    };
    let scopes = KeyChange {
        scopes: Some(ScopeSet::new(["write"]).unwrap()),
        ..KeyChange::default()
    };
    change(&repo, &k.id, &rename).await.unwrap().unwrap();
    let after = change(&repo, &k.id, &scopes).await.unwrap().unwrap();
    assert_eq!(after.name.as_deref(), Some("renamed"));
    assert_eq!(after.scopes.as_slice(), ["write"]);
    assert_eq!(after.last_used_at, Some(at(500)));
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&after));
}

/// `touch` never moves `last_used_at` backwards and ignores unknown ids.
pub async fn touch_only_moves_forward(repo: Repo) {
    let never = key(Some("never"), &[]);
    let mut used = key(Some("used"), &[]);
    used.last_used_at = Some(at(100));
    let untouched = key(Some("untouched"), &[]);
    for k in [&never, &used, &untouched] {
        put(&repo, k).await.unwrap();
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

/// The store answers a ping.
pub async fn ping_answers(repo: Repo) {
    repo.ping().await.unwrap();
}
