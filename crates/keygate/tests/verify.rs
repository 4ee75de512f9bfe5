//! Every verification outcome of SPEC §5, in order, on the in-memory store.

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keygate::testing::change;
use keygate::Clock;
use keygate::{ApiKeyUpdate, Error, HashAlgorithm, KeyChange, NewApiKey};
use support::{argon2_cheap, fast_service, service_with, spy, with_wrong_secret};

#[tokio::test]
async fn blank_and_malformed_keys() {
    let service = fast_service();
    assert!(matches!(
        service.verify::<&str>("", &[]).await,
        Err(Error::KeyNotProvided)
    ));
    assert!(matches!(
        service.verify::<&str>("  ", &[]).await,
        Err(Error::KeyNotProvided)
    ));
    for bad in [
        "nope",
        "ak_v1-zz-abc",
        "ak_v2-0123456789abcdef-abc",
        "ak_v1-0123456789abcdef-",
    ] {
        assert!(
            matches!(
                service.verify::<&str>(bad, &[]).await,
                Err(Error::InvalidKey)
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn unknown_key_id_wrong_secret_and_success() {
    let service = fast_service();
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let verified = service.verify::<&str>(key.expose(), &[]).await.unwrap();
    assert_eq!(verified.id, entity.id);

    let unknown = format!("ak_v1-0000000000000000-{}", &key.expose()[23..]);
    assert!(matches!(
        service.verify::<&str>(&unknown, &[]).await,
        Err(Error::KeyNotFound)
    ));

    let wrong = with_wrong_secret(key.expose());
    assert!(matches!(
        service.verify::<&str>(&wrong, &[]).await,
        Err(Error::InvalidKey)
    ));
}

#[tokio::test]
async fn hash_is_checked_before_status() {
    let service = fast_service();
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.deactivate(&entity.id).await.unwrap();
    let wrong = with_wrong_secret(key.expose());
    // A wrong secret learns nothing about the key's state.
    assert!(matches!(
        service.verify::<&str>(&wrong, &[]).await,
        Err(Error::InvalidKey)
    ));
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
}

#[tokio::test]
async fn inactive_then_expired_then_scopes() {
    // The store is changed behind the service's back, so no cache here.
    let service = service_with(keygate::InMemoryRepository::new(), |b| b.without_cache());
    let (entity, key) = service
        .create(
            NewApiKey::named("k")
                .with_scopes(["read"])
                .expiring_at(Utc::now() + TimeDelta::hours(1)),
        )
        .await
        .unwrap();
    // Make it expired and inactive directly in the store: inactive wins.
    let repo = service.repository();
    let set = |active: Option<bool>, expires_at: Option<Option<DateTime<Utc>>>| KeyChange {
        is_active: active,
        expires_at,
        ..KeyChange::default()
    };
    let past = Some(Utc::now() - TimeDelta::seconds(1));
    change(repo, &entity.id, &set(Some(false), Some(past)))
        .await
        .unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["write"]).await,
        Err(Error::KeyInactive)
    ));
    change(repo, &entity.id, &set(Some(true), None))
        .await
        .unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["write"]).await,
        Err(Error::KeyExpired)
    ));
    change(repo, &entity.id, &set(None, Some(None)))
        .await
        .unwrap();
    match service.verify(key.expose(), &["read", "write"]).await {
        Err(Error::InvalidScopes { required, missing }) => {
            assert_eq!(required, ["read", "write"]);
            assert_eq!(missing, ["write"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn all_required_scopes_must_be_held() {
    let service = fast_service();
    let (_, both) = service
        .create(NewApiKey::named("rw").with_scopes(["read", "write"]))
        .await
        .unwrap();
    let (_, read) = service
        .create(NewApiKey::named("r").with_scopes(["read"]))
        .await
        .unwrap();
    assert!(service
        .verify(both.expose(), &["read", "write"])
        .await
        .is_ok());
    assert!(service.verify(both.expose(), &["write"]).await.is_ok());
    assert!(service.verify(read.expose(), &["read"]).await.is_ok());
    assert!(matches!(
        service.verify(read.expose(), &["read", "write"]).await,
        Err(Error::InvalidScopes { .. })
    ));
}

#[tokio::test]
async fn unknown_key_id_costs_the_same_hashing_work() {
    let service = service_with(keygate::InMemoryRepository::new(), |b| {
        b.algorithm(argon2_cheap()).without_cache()
    });
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let unknown = format!("ak_v1-0000000000000000-{}", &key.expose()[23..]);
    let before = service.hashing_stats().completed;
    assert!(matches!(
        service.verify::<&str>(&unknown, &[]).await,
        Err(Error::KeyNotFound)
    ));
    // The same Argon2 work as a wrong secret for a real key id: one hash.
    assert_eq!(service.hashing_stats().completed, before + 1);
}

#[tokio::test]
async fn cache_is_invalidated_by_every_change() {
    let (repo, reads) = spy();
    let service = service_with(repo, |b| b);
    let (entity, key) = service
        .create(NewApiKey::named("k").with_scopes(["read"]))
        .await
        .unwrap();
    service.verify(key.expose(), &["read"]).await.unwrap();
    let after_first = reads();
    service.verify(key.expose(), &["read"]).await.unwrap();
    assert_eq!(
        reads(),
        after_first,
        "second verify is served from the cache"
    );

    // Knowing the key id alone never hits the cache.
    let forged = with_wrong_secret(key.expose());
    assert!(matches!(
        service.verify(&forged, &["read"]).await,
        Err(Error::InvalidKey)
    ));

    service.deactivate(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["read"]).await,
        Err(Error::KeyInactive)
    ));
    service.activate(&entity.id).await.unwrap();
    service
        .update(
            &entity.id,
            ApiKeyUpdate {
                scopes: Some(vec!["write".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["read"]).await,
        Err(Error::InvalidScopes { .. })
    ));
    service.delete(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["write"]).await,
        Err(Error::KeyNotFound)
    ));
}

#[tokio::test]
async fn expiry_is_rechecked_on_cache_hits() {
    let clock = std::sync::Arc::new(keygate::ManualClock::starting_now());
    let service = service_with(keygate::InMemoryRepository::new(), |b| {
        b.clock(clock.clone())
    });
    let soon = clock.now() + TimeDelta::seconds(1);
    let (_, key) = service
        .create(NewApiKey::named("k").expiring_at(soon))
        .await
        .unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    // Still inside the cache's freshness window: the entry is a hit.
    clock.advance(Duration::from_millis(999));
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyExpired)
    ));
}

#[tokio::test]
async fn python_argon2_parameters_verify_through_the_service() {
    let service = service_with(keygate::InMemoryRepository::new(), |b| {
        b.algorithm(HashAlgorithm::Argon2 {
            m_cost: 65536,
            t_cost: 3,
            p_cost: 4,
        })
    });
    let (_, key) = service.create(NewApiKey::named("py-params")).await.unwrap();
    assert!(service.verify::<&str>(key.expose(), &[]).await.is_ok());
}

mod never_by_accident {
    //! Whatever is presented, only the exact key authenticates.
    use super::*;
    use proptest::prelude::*;

    fn fixture() -> (tokio::runtime::Runtime, keygate::ApiKeyService, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let service = fast_service();
        let key = rt.block_on(async {
            let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
            // Cached, so forgeries are also checked against the cache.
            service.verify::<&str>(key.expose(), &[]).await.unwrap();
            key.expose().to_owned()
        });
        (rt, service, key)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_strings_never_verify(raw in any::<String>()) {
            let (rt, service, key) = fixture();
            prop_assume!(raw != key);
            prop_assert!(rt.block_on(service.verify::<&str>(&raw, &[])).is_err());
        }

        #[test]
        fn the_real_key_id_with_any_other_secret_never_verifies(
            secret in "[A-Za-z0-9]{1,80}",
            padding in prop::sample::select(vec!["", " ", "\t", "\n"]),
        ) {
            let (rt, service, key) = fixture();
            let head = &key[..key.rfind('-').unwrap() + 1];
            let forged = format!("{padding}{head}{secret}{padding}");
            prop_assume!(forged.trim() != key);
            prop_assert!(rt.block_on(service.verify::<&str>(&forged, &[])).is_err());
        }

        #[test]
        fn the_real_key_with_one_character_changed_never_verifies(
            at in any::<prop::sample::Index>(),
            with in any::<char>(),
        ) {
            let (rt, service, key) = fixture();
            let mut chars: Vec<char> = key.chars().collect();
            let i = at.index(chars.len());
            prop_assume!(chars[i] != with);
            chars[i] = with;
            let forged: String = chars.into_iter().collect();
            prop_assert!(rt.block_on(service.verify::<&str>(&forged, &[])).is_err());
        }
    }
}
