//! The `AuditLog` contract: one event per change, written with it, kept
//! after the key is gone, never holding a secret.

use serde_json::json;

use super::{audit, change, key, put, service, Repo};
use crate::{AuditAction, EventFilter, KeyChange, NewApiKey, ScopeSet, StoreError};

/// Each change through the service leaves one event with the right
/// action, actor and `[old, new]` pairs, and no secret.
pub async fn events_are_written_with_their_changes(repo: Repo) {
    let svc = service(repo.clone()).with_actor("admin-1");
    let (k, plain) = svc
        .create(NewApiKey::named("audited").with_scopes(["read"]))
        .await
        .unwrap();
    svc.update(
        &k.id,
        crate::ApiKeyUpdate {
            name: Some("renamed".into()),
            owner_id: Some(Some("team-9".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    svc.deactivate(&k.id).await.unwrap();
    svc.deactivate(&k.id).await.unwrap(); // no change: no event
    svc.activate(&k.id).await.unwrap();
    let (_, rotated) = svc
        .with_actor("cli")
        .rotate(&k.id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let stored = repo.get(&k.id).await.unwrap().unwrap();

    let events = repo.events(&EventFilter::for_key(&k.id)).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action).collect();
    use AuditAction::*;
    assert_eq!(actions, [Create, Update, Deactivate, Activate, Rotate]);
    assert!(events
        .iter()
        .all(|e| e.entity_id == k.id && e.key_id == k.key_id));
    assert_eq!(events[4].actor, "cli");
    assert!(events[..4].iter().all(|e| e.actor == "admin-1"));
    assert_eq!(events[0].changes["name"], json!([null, "audited"]));
    assert_eq!(events[0].changes["scopes"], json!([null, ["read"]]));
    assert_eq!(
        serde_json::Value::Object(events[1].changes.clone()),
        json!({"name": ["audited", "renamed"], "owner_id": [null, "team-9"]})
    );
    assert_eq!(events[2].changes["is_active"], json!([true, false]));
    assert_eq!(
        events[4].changes["secret"],
        json!([crate::HIDDEN, crate::HIDDEN])
    );
    assert!(events[4].changes.contains_key("previous_secret_expires_at"));
    for w in events.windows(2) {
        assert!((w[0].at, &w[0].id) <= (w[1].at, &w[1].id), "oldest first");
    }
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        plain.expose(),
        rotated.expose(),
        &stored.key_hash,
        stored.previous_key_hash.as_deref().unwrap(),
        &k.key_hash,
    ] {
        assert!(!text.contains(secret), "an event holds a secret or hash");
    }
    let tail = &plain.expose()[plain.expose().len() - 12..];
    assert!(!text.contains(tail));
    assert_eq!(
        repo.count_events(&EventFilter::for_key(&k.id))
            .await
            .unwrap(),
        5
    );
}

/// Filters by action, actor, time and key; newest first by default; pages.
pub async fn events_filter_order_and_page(repo: Repo) {
    let svc = service(repo.clone());
    let mut ids = Vec::new();
    for i in 0..6 {
        let actor = if i % 2 == 0 { "even" } else { "odd" };
        let (k, _) = svc
            .with_actor(actor)
            .create(NewApiKey::named(format!("k{i}")))
            .await
            .unwrap();
        svc.with_actor(actor).deactivate(&k.id).await.unwrap();
        ids.push(k.id);
    }
    let all = repo.events(&EventFilter::default()).await.unwrap();
    assert_eq!(all.len(), 12);
    for w in all.windows(2) {
        assert!((w[0].at, &w[0].id) >= (w[1].at, &w[1].id), "newest first");
    }
    let mut reference = all.clone();
    reference.sort_by(|a, b| EventFilter::default().compare(a, b));
    assert_eq!(all, reference);
    let filters = [
        EventFilter {
            action: Some(AuditAction::Deactivate),
            ..EventFilter::default()
        },
        EventFilter {
            actor: Some("odd".into()),
            ..EventFilter::default()
        },
        EventFilter {
            actor: Some("'; DROP TABLE api_key_events;--".into()),
            ..EventFilter::default()
        },
        EventFilter {
            since: Some(all[5].at),
            ..EventFilter::default()
        },
        EventFilter {
            entity_id: Some(ids[3].clone()),
            action: Some(AuditAction::Create),
            ..EventFilter::default()
        },
        EventFilter {
            key_id: Some(all[0].key_id.clone()),
            ..EventFilter::default()
        },
        EventFilter {
            key_id: Some(all[0].key_id[..8].to_owned()),
            ..EventFilter::default()
        },
        EventFilter {
            actor: Some("even".into()),
            newest_first: false,
            offset: 2,
            limit: Some(3),
            ..EventFilter::default()
        },
    ];
    for filter in filters {
        let mut expected: Vec<_> = all.iter().filter(|e| filter.matches(e)).cloned().collect();
        expected.sort_by(|a, b| filter.compare(a, b));
        let total = expected.len() as u64;
        let expected: Vec<_> = expected
            .into_iter()
            .skip(filter.offset as usize)
            .take(filter.limit.map_or(usize::MAX, |l| l as usize))
            .collect();
        assert_eq!(repo.events(&filter).await.unwrap(), expected, "{filter:?}");
        assert_eq!(
            repo.count_events(&filter).await.unwrap(),
            total,
            "{filter:?}"
        );
    }
}

/// Deleting a key keeps its events and adds a `delete` event.
pub async fn events_survive_deletion(repo: Repo) {
    let svc = service(repo.clone());
    let (k, _) = svc.create(NewApiKey::named("doomed")).await.unwrap();
    svc.delete(&k.id).await.unwrap();
    let events = repo.events(&EventFilter::for_key(&k.id)).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action).collect();
    assert_eq!(actions, [AuditAction::Create, AuditAction::Delete]);
    assert_eq!(events[1].changes["name"], json!(["doomed", null]));
}

/// A change that fails (conflict, unknown id) writes no event; a change
/// that sets nothing new writes none either.
pub async fn failed_changes_write_no_event(repo: Repo) {
    let a = key(Some("a"), &[]);
    let b = key(Some("b"), &["read"]);
    put(&repo, &a).await.unwrap();
    put(&repo, &b).await.unwrap();
    let mut twin = key(Some("twin"), &[]);
    twin.key_id = a.key_id.clone();
    assert!(put(&repo, &twin).await.is_err());
    let onto_a = KeyChange {
        name: Some("should not stay".into()),
        secret: Some(crate::NewSecret {
            key_hash: a.key_hash.clone(),
            first: "AAAA".into(),
            last: "ZZZZ".into(),
            grace_until: None,
        }),
        ..KeyChange::default()
    };
    assert!(matches!(
        change(&repo, &b.id, &onto_a).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        repo.get(&b.id).await.unwrap().unwrap().name.as_deref(),
        Some("b")
    );
    let same = KeyChange {
        scopes: Some(ScopeSet::new(["read"]).unwrap()),
        ..KeyChange::default()
    };
    change(&repo, &b.id, &same).await.unwrap().unwrap();
    let ghost = key(Some("ghost"), &[]);
    assert_eq!(change(&repo, &ghost.id, &same).await.unwrap(), None);
    assert_eq!(
        repo.delete(&ghost.id, &audit(AuditAction::Delete))
            .await
            .unwrap(),
        None
    );
    let events = repo.events(&EventFilter::default()).await.unwrap();
    assert_eq!(events.len(), 2, "only the two creates: {events:?}");
    assert!(events.iter().all(|e| e.action == AuditAction::Create));
}

/// Actor names are kept whole up to 256 characters and cut beyond.
pub async fn long_actor_names_are_kept_or_cut(repo: Repo) {
    let svc = service(repo.clone());
    let long = "é".repeat(crate::ACTOR_MAX);
    let (k, _) = svc
        .with_actor(format!("{long}-and-more"))
        .create(NewApiKey::named("k"))
        .await
        .unwrap();
    let events = repo.events(&EventFilter::for_key(&k.id)).await.unwrap();
    assert_eq!(events[0].actor, long);
}
