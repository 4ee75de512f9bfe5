//! Service-level checks: `ApiKeyService` over each store.

use std::sync::Arc;

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use super::{change, service, Repo};
use crate::{ApiKeyFilter, ApiKeyUpdate, Error, KeyChange, NewApiKey};

/// Every verify outcome of SPEC §5, in order.
pub async fn verify_outcomes(repo: Repo) {
    let svc = service(repo.clone());
    let (reader, key) = svc
        .create(NewApiKey::named("reader").with_scopes(["read", "write"]))
        .await
        .unwrap();
    let ok = svc.verify(key.expose(), &["read", "write"]).await.unwrap();
    assert_eq!(ok.id, reader.id);
    // The use was written to the store (touch interval zero).
    let stored = repo.get(&reader.id).await.unwrap().unwrap();
    assert!(stored.last_used_at.is_some());

    assert!(matches!(
        svc.verify("", &["read"]).await,
        Err(Error::KeyNotProvided)
    ));
    assert!(matches!(
        svc.verify("nope", &["read"]).await,
        Err(Error::InvalidKey)
    ));
    let unknown = format!("ak_v1-0000000000000000-{}", "a".repeat(64));
    assert!(matches!(
        svc.verify(&unknown, &["read"]).await,
        Err(Error::KeyNotFound)
    ));
    let wrong_secret = format!("ak_v1-{}-{}", reader.key_id, "b".repeat(64));
    assert!(matches!(
        svc.verify(&wrong_secret, &["read"]).await,
        Err(Error::InvalidKey)
    ));
    match svc.verify(key.expose(), &["read", "admin"]).await {
        Err(Error::InvalidScopes { missing, .. }) => assert_eq!(missing, ["admin"]),
        other => panic!("expected InvalidScopes, got {other:?}"),
    }

    svc.deactivate(&reader.id).await.unwrap();
    assert!(matches!(
        svc.verify(key.expose(), &["read"]).await,
        Err(Error::KeyInactive)
    ));
    svc.activate(&reader.id).await.unwrap();

    // Expired: written straight to the store (create refuses past expiries).
    let expire = KeyChange {
        expires_at: Some(Some(crate::now_micros() - TimeDelta::seconds(1))),
        ..KeyChange::default()
    };
    change(&repo, &reader.id, &expire).await.unwrap().unwrap();
    assert!(matches!(
        svc.verify(key.expose(), &["read"]).await,
        Err(Error::KeyExpired)
    ));

    svc.delete(&reader.id).await.unwrap();
    assert!(matches!(
        svc.verify(key.expose(), &["read"]).await,
        Err(Error::KeyNotFound)
    ));
}

/// Create, get, update, find, list, delete through the service.
pub async fn manage_through_service(repo: Repo) {
    let svc = service(repo);
    let expires = Utc::now() + TimeDelta::days(30);
    let (created, _) = svc
        .create(
            NewApiKey::named("managed")
                .with_description("d")
                .with_scopes(["read"])
                .owned_by("customer-7")
                .with_meta(serde_json::from_str(r#"{"plan":"pro"}"#).unwrap())
                .expiring_at(expires),
        )
        .await
        .unwrap();
    assert_eq!(created.owner_id.as_deref(), Some("customer-7"));
    assert_eq!(svc.get(&created.id).await.unwrap(), created);
    assert_eq!(svc.get_by_key_id(&created.key_id).await.unwrap(), created);
    let change = ApiKeyUpdate {
        name: Some("renamed".into()),
        scopes: Some(vec!["read".into(), "write".into()]),
        clear_expires: true,
        meta: Some(None),
        ..ApiKeyUpdate::default()
    };
    let updated = svc.update(&created.id, change).await.unwrap();
    assert_eq!(svc.get(&created.id).await.unwrap(), updated);
    assert_eq!(updated.expires_at, None);
    assert_eq!(updated.meta, None);
    assert_eq!(updated.owner_id.as_deref(), Some("customer-7"));
    assert_eq!(updated.description.as_deref(), Some("d"));
    let found = svc
        .find(&ApiKeyFilter {
            scopes_contain_all: vec!["write".into()],
            ..ApiKeyFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(found, vec![updated.clone()]);
    assert_eq!(svc.list(0, 10).await.unwrap(), vec![updated.clone()]);
    assert_eq!(svc.delete(&created.id).await.unwrap(), updated);
    assert!(matches!(svc.get(&created.id).await, Err(Error::NotFound)));
    assert!(matches!(
        svc.delete(&created.id).await,
        Err(Error::NotFound)
    ));
}

/// 50 concurrent creates, each followed by a verify: nothing lost.
pub async fn concurrent_creates_and_verifies(repo: Repo) {
    let svc = Arc::new(service(repo.clone()));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let (entity, key) = svc
                    .create(NewApiKey::named(format!("concurrent-{i:02}")).with_scopes(["read"]))
                    .await
                    .expect("create");
                let verified = svc.verify(key.expose(), &["read"]).await.expect("verify");
                assert_eq!(verified.id, entity.id);
                entity.id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(repo.count(&ApiKeyFilter::default()).await.unwrap(), 50);
    let used = ApiKeyFilter {
        never_used: Some(false),
        ..ApiKeyFilter::default()
    };
    assert_eq!(repo.count(&used).await.unwrap(), 50);
    let mut stored: Vec<_> = repo
        .find(&ApiKeyFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    stored.sort();
    assert_eq!(stored, ids);
}

/// Rotation: same entity, new secret; the old one during its grace only; a
/// second rotation ends the first grace at once.
pub async fn rotation_through_service(repo: Repo) {
    let svc = service(repo.clone());
    let (entity, first) = svc
        .create(NewApiKey::named("rotating").with_scopes(["read"]))
        .await
        .unwrap();
    svc.verify(first.expose(), &["read"]).await.unwrap();
    let (rotated, second) = svc
        .rotate(&entity.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        (rotated.id.as_str(), rotated.key_id.as_str()),
        (entity.id.as_str(), entity.key_id.as_str())
    );
    assert_eq!(rotated.scopes, entity.scopes);
    assert!(rotated.last_used_at.is_some(), "usage history kept");
    let until = rotated.previous_secret_expires_at.expect("grace set");
    assert!(until > Utc::now() + TimeDelta::minutes(59));
    assert_ne!(first.expose(), second.expose());
    svc.verify(second.expose(), &["read"]).await.unwrap();
    svc.verify(first.expose(), &["read"]).await.unwrap();

    let (again, third) = svc.rotate(&entity.id, Duration::ZERO).await.unwrap();
    assert_eq!(again.previous_secret_expires_at, None);
    for old in [&first, &second] {
        assert!(matches!(
            svc.verify(old.expose(), &["read"]).await,
            Err(Error::InvalidKey)
        ));
    }
    svc.verify(third.expose(), &["read"]).await.unwrap();

    assert!(matches!(
        svc.rotate("0123456789abcdef0123456789abcdef", Duration::ZERO)
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        svc.rotate(&entity.id, crate::MAX_GRACE + Duration::from_secs(1))
            .await,
        Err(Error::Validation(_))
    ));
}
