//! Management operations of `ApiKeyService` on the in-memory store.

mod support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use keygate::{ApiKeyFilter, ApiKeyUpdate, Error, NewApiKey, Secret};
use support::{fast_service, service_with, spy_with_touches};

fn fields(e: Error) -> Vec<String> {
    match e {
        Error::Validation(v) => v.into_iter().map(|f| f.field).collect(),
        other => panic!("expected validation, got {other:?}"),
    }
}

#[tokio::test]
async fn create_stores_only_a_hash_and_returns_the_key_once() {
    let service = fast_service();
    let (entity, key) = service
        .create(
            NewApiKey::named("k")
                .with_description("d")
                .with_scopes(["read", "api:write"]),
        )
        .await
        .unwrap();
    let secret = &key.expose()[23..];
    assert!(key
        .expose()
        .starts_with(&format!("ak_v1-{}-", entity.key_id)));
    assert_eq!(secret.len(), 64);
    assert_eq!(entity.key_secret_first, &secret[..4]);
    assert_eq!(entity.key_secret_last, &secret[60..]);
    assert!(!entity.key_hash.contains(secret));
    assert_eq!(entity.id.len(), 32);
    assert!(entity.is_active);
    assert_eq!(entity.last_used_at, None);
    assert_eq!(service.get(&entity.id).await.unwrap(), entity);
    assert_eq!(service.get_by_key_id(&entity.key_id).await.unwrap(), entity);
}

#[tokio::test]
async fn create_validates_every_field() {
    let service = fast_service();
    let bad = NewApiKey {
        name: Some(String::new()),
        description: Some("x".repeat(1025)),
        expires_at: Some(Utc::now() - TimeDelta::minutes(1)),
        scopes: vec!["Admin".into(), "ok".into(), "no spaces".into()],
        key_id: Some("XYZ".into()),
        ..NewApiKey::default()
    };
    let got = fields(service.create(bad).await.unwrap_err());
    assert_eq!(
        got,
        [
            "name",
            "description",
            "expires_at",
            "scopes",
            "scopes",
            "key_id"
        ]
    );
    assert_eq!(
        service.count(&ApiKeyFilter::default()).await.unwrap(),
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn explicit_key_id_and_secret() {
    let service = fast_service();
    let new = NewApiKey {
        key_id: Some("0123456789abcdef".into()),
        secret: Some(Secret::parse("ExplicitSecretValue0123456789").unwrap()),
        ..NewApiKey::named("explicit")
    };
    let (entity, key) = service.create(new.clone()).await.unwrap();
    assert_eq!(
        key.expose(),
        "ak_v1-0123456789abcdef-ExplicitSecretValue0123456789"
    );
    assert_eq!(entity.key_id, "0123456789abcdef");
    assert!(service.verify::<&str>(key.expose(), &[]).await.is_ok());
    assert!(matches!(service.create(new).await, Err(Error::Conflict(_))));
}

#[tokio::test]
async fn update_is_partial_and_validated() {
    let service = fast_service();
    let (entity, _) = service
        .create(
            NewApiKey::named("old")
                .with_scopes(["read"])
                .expiring_at(Utc::now() + TimeDelta::days(1)),
        )
        .await
        .unwrap();
    let renamed = service
        .update(
            &entity.id,
            ApiKeyUpdate {
                name: Some("new".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("new"));
    assert_eq!(renamed.scopes, entity.scopes);
    assert_eq!(renamed.expires_at, entity.expires_at);
    let cleared = service
        .update(
            &entity.id,
            ApiKeyUpdate {
                clear_expires: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.expires_at, None);
    assert_eq!(service.get(&entity.id).await.unwrap(), cleared);

    let bad = ApiKeyUpdate {
        scopes: Some(vec!["BAD".into()]),
        expires_at: Some(Utc::now() - TimeDelta::seconds(5)),
        ..Default::default()
    };
    assert_eq!(
        fields(service.update(&entity.id, bad).await.unwrap_err()),
        ["expires_at", "scopes"]
    );
    assert!(matches!(
        service
            .update("0".repeat(32).as_str(), ApiKeyUpdate::default())
            .await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn activate_deactivate_are_idempotent_and_delete_returns_the_entity() {
    let service = fast_service();
    let (entity, _) = service.create(NewApiKey::named("k")).await.unwrap();
    assert!(!service.deactivate(&entity.id).await.unwrap().is_active);
    assert!(!service.deactivate(&entity.id).await.unwrap().is_active);
    assert!(service.activate(&entity.id).await.unwrap().is_active);
    assert!(service.activate(&entity.id).await.unwrap().is_active);
    assert_eq!(service.delete(&entity.id).await.unwrap().id, entity.id);
    assert!(matches!(
        service.delete(&entity.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        service.get(&entity.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        service.activate(&entity.id).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn list_is_newest_first_and_paged() {
    let clock = std::sync::Arc::new(keygate::ManualClock::starting_now());
    let service = service_with(keygate::InMemoryRepository::new(), |b| {
        b.clock(clock.clone())
    });
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            service
                .create(NewApiKey::named(format!("k{i}")))
                .await
                .unwrap()
                .0
                .id,
        );
        clock.advance(Duration::from_millis(2));
    }
    ids.reverse();
    let page: Vec<_> = service
        .list(2, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(page, ids[2..5]);
    assert_eq!(service.list(6, 10).await.unwrap().len(), 1);
    assert!(service.list(7, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn last_used_writes_are_coalesced_and_flushed() {
    let (repo, _, touches) = spy_with_touches();
    let service = service_with(repo, |b| b.touch_interval(Duration::from_secs(60)));
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    for _ in 0..20 {
        let used = service.verify::<&str>(key.expose(), &[]).await.unwrap();
        assert!(
            used.last_used_at.is_some(),
            "the returned entity shows the use"
        );
    }
    assert_eq!(touches(), 0, "nothing written on the request path");
    assert_eq!(service.pending_uses(), 1);
    assert_eq!(service.flush().await.unwrap(), 1);
    assert_eq!(touches(), 1, "twenty uses, one write");
    assert!(service
        .get(&entity.id)
        .await
        .unwrap()
        .last_used_at
        .is_some());
    for _ in 0..5 {
        service.verify::<&str>(key.expose(), &[]).await.unwrap();
    }
    service.flush().await.unwrap();
    assert_eq!(touches(), 1, "within the interval no further write");
}

// Paused time: the flusher's period and the slow write are virtual.
#[tokio::test(start_paused = true)]
async fn flush_waits_for_a_background_write_in_flight() {
    let (mut repo, _, touches) = spy_with_touches();
    repo.touch_delay = Duration::from_millis(600);
    let service = service_with(repo, |b| b.touch_interval(Duration::from_secs(60)));
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    // The background flusher takes the use after about a second and spends
    // 600 ms writing it; a shutdown flush in that window must wait for it.
    while touches() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.flush().await.unwrap();
    assert!(
        service
            .get(&entity.id)
            .await
            .unwrap()
            .last_used_at
            .is_some(),
        "flush returned before the use was in the store"
    );
}

#[tokio::test(start_paused = true)]
async fn background_flusher_writes_within_seconds() {
    let service = service_with(keygate::InMemoryRepository::new(), |b| {
        b.touch_interval(Duration::from_secs(60))
    });
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let never_used = ApiKeyFilter {
        never_used: Some(true),
        ..Default::default()
    };
    for _ in 0..100 {
        if service.count(&never_used).await.unwrap() == 0 {
            assert!(service
                .get(&entity.id)
                .await
                .unwrap()
                .last_used_at
                .is_some());
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("last_used_at was not written by the background flusher within 10 s");
}

#[tokio::test]
async fn load_keys_from_environment() {
    let service = fast_service();
    let a =
        "ak_v1-00000000000000aa-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let b =
        "ak_v1-00000000000000bb-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    // Unique prefix: tests in this binary run in parallel and share the environment.
    std::env::set_var("KGTEST_LOAD_KEY_ALPHA", a);
    std::env::set_var("KGTEST_LOAD_KEY_BETA", b);
    let loaded = service.load_from_env("KGTEST_LOAD_KEY_").await.unwrap();
    let names: Vec<_> = loaded.iter().map(|k| k.name.clone().unwrap()).collect();
    assert_eq!(names, ["KGTEST_LOAD_KEY_ALPHA", "KGTEST_LOAD_KEY_BETA"]);
    assert!(service.verify::<&str>(a, &[]).await.is_ok());
    assert!(service.verify::<&str>(b, &[]).await.is_ok());
    // Loading again keeps the same keys.
    let again = service.load_from_env("KGTEST_LOAD_KEY_").await.unwrap();
    assert_eq!(
        again.iter().map(|k| &k.id).collect::<Vec<_>>(),
        loaded.iter().map(|k| &k.id).collect::<Vec<_>>()
    );
    assert!(matches!(
        service.load_from_env("KGTEST_NOTHING_HERE_").await,
        Err(Error::Validation(_))
    ));
    std::env::set_var("KGTEST_BAD_KEY_X", "not-a-key");
    assert!(matches!(
        service.load_from_env("KGTEST_BAD_KEY_").await,
        Err(Error::Validation(_))
    ));
}

#[tokio::test]
async fn concurrent_creates_and_verifies_lose_nothing() {
    let service = fast_service();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let service = service.clone();
            tokio::spawn(async move {
                let (_, key) = service
                    .create(NewApiKey::named(format!("k{i}")))
                    .await
                    .unwrap();
                service.verify::<&str>(key.expose(), &[]).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(service.count(&ApiKeyFilter::default()).await.unwrap(), 50);
    let used = ApiKeyFilter {
        never_used: Some(false),
        ..Default::default()
    };
    assert_eq!(service.count(&used).await.unwrap(), 50);
}
