//! The verification cache across instances and over time. Time is a
//! `ManualClock` the tests move; "less work" is counted in hashes
//! (`hashing_stats`) and store reads, never timed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::testing::change;
use keygate::{
    ApiKeyService, ApiKeyUpdate, CacheConfig, Credits, Error, InMemoryRepository, KeyChange,
    ManualClock, NewApiKey, NewSecret, Pepper, RateLimit, Repository,
};
use support::{argon2_cheap, service_with, spy, with_wrong_secret, PEPPER};

fn instance(repo: &Arc<dyn Repository>, clock: &Arc<ManualClock>) -> ApiKeyService {
    ApiKeyService::builder_shared(repo.clone())
        .pepper(Pepper::new(PEPPER).unwrap())
        .algorithm(argon2_cheap())
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn hashes(service: &ApiKeyService) -> u64 {
    service.hashing_stats().completed
}

#[tokio::test]
async fn a_change_through_one_instance_is_seen_by_another_within_a_second() {
    let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new());
    let clock = Arc::new(ManualClock::starting_now());
    let (a, b) = (instance(&repo, &clock), instance(&repo, &clock));
    let (entity, key) = a.create(NewApiKey::named("shared")).await.unwrap();
    // Enough uses for `b`'s thread to keep its own copy of the key.
    for _ in 0..4 {
        b.verify::<&str>(key.expose(), &[]).await.unwrap();
    }

    // Within the freshness window (1 s, the default) `b` answers from its
    // cache; once it has passed, the very next verify sees what `a` did.
    let freshness = CacheConfig::default().ttl;
    a.deactivate(&entity.id).await.unwrap();
    clock.advance(freshness - Duration::from_millis(1));
    b.verify::<&str>(key.expose(), &[]).await.unwrap();
    clock.advance(Duration::from_millis(1));
    assert!(matches!(
        b.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
    a.delete(&entity.id).await.unwrap();
    clock.advance(freshness);
    assert!(matches!(
        b.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyNotFound)
    ));
}

#[tokio::test]
async fn revalidation_reads_the_store_but_does_not_hash_again() {
    let (repo, reads) = spy();
    let clock = Arc::new(ManualClock::starting_now());
    let service = service_with(repo, |b| b.algorithm(argon2_cheap()).clock(clock.clone()));
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let before = hashes(&service);
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    assert_eq!(hashes(&service), before + 1, "the first verify hashes");
    for _ in 0..3 {
        clock.advance(CacheConfig::default().ttl);
        let read = reads();
        service.verify::<&str>(key.expose(), &[]).await.unwrap();
        assert_eq!(reads(), read + 1, "a stale entry re-reads the store");
    }
    assert_eq!(hashes(&service), before + 1, "and never hashes again");
}

#[tokio::test]
async fn a_changed_stored_hash_is_checked_again() {
    let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new());
    let clock = Arc::new(ManualClock::starting_now());
    let service = instance(&repo, &clock);
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    // Another instance rotates the secret behind this one's back.
    let rotate = KeyChange {
        secret: Some(NewSecret {
            key_hash: service
                .hasher()
                .hash("AnotherSecretEntirely0123456789")
                .unwrap(),
            first: "Anot".into(),
            last: "6789".into(),
            grace_until: None,
        }),
        ..KeyChange::default()
    };
    change(&repo, &entity.id, &rotate).await.unwrap().unwrap();
    clock.advance(CacheConfig::default().ttl);
    let before = hashes(&service);
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::InvalidKey)
    ));
    assert_eq!(hashes(&service), before + 1, "checked against the new hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_of_one_key_hash_it_once() {
    let service = Arc::new(service_with(InMemoryRepository::new(), |b| {
        b.algorithm(argon2_cheap()).hash_threads(1)
    }));
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let before = hashes(&service);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (service, key) = (service.clone(), key.expose().to_owned());
            tokio::spawn(async move { service.verify::<&str>(&key, &[]).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(hashes(&service), before + 1, "16 first uses, one hash");
}

#[tokio::test]
async fn status_changes_through_the_service_cost_no_hash() {
    let service = service_with(InMemoryRepository::new(), |b| b.algorithm(argon2_cheap()));
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let before = hashes(&service);
    service.deactivate(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
    service.activate(&entity.id).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    assert_eq!(hashes(&service), before, "re-read, not re-hashed");
}

/// A key used over and over on one thread is answered from that thread's
/// own copy; every change made through the service still applies to the
/// very next request.
#[tokio::test]
async fn a_hot_keys_thread_copy_goes_with_every_change() {
    let service = service_with(InMemoryRepository::new(), |b| {
        b.algorithm(argon2_cheap())
            .touch_interval(Duration::from_secs(60))
    });
    let (entity, key) = service
        .create(NewApiKey::named("hot").with_scopes(["read"]))
        .await
        .unwrap();
    let warm = || async {
        for _ in 0..5 {
            service.verify(key.expose(), &["read"]).await.unwrap();
        }
    };
    warm().await;
    service.deactivate(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["read"]).await,
        Err(Error::KeyInactive)
    ));
    service.activate(&entity.id).await.unwrap();
    warm().await;
    let update = ApiKeyUpdate {
        scopes: Some(vec!["write".into()]),
        ..ApiKeyUpdate::default()
    };
    service.update(&entity.id, update).await.unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["read"]).await,
        Err(Error::InvalidScopes { .. })
    ));
    service.verify(key.expose(), &["write"]).await.unwrap();
    let (_, new_key) = service.rotate(&entity.id, Duration::ZERO).await.unwrap();
    assert!(matches!(
        service.verify(key.expose(), &["write"]).await,
        Err(Error::InvalidKey)
    ));
    for _ in 0..5 {
        service.verify(new_key.expose(), &["write"]).await.unwrap();
    }
    service.delete(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify(new_key.expose(), &["write"]).await,
        Err(Error::KeyNotFound)
    ));
}

/// `verify_now` answers at once whatever needs neither the store nor a
/// shared limiter, takes nothing when it cannot answer, and agrees with
/// `verify_with`.
#[tokio::test]
async fn cached_keys_are_decided_without_waiting_unless_the_store_must_answer() {
    let (repo, reads) = spy();
    // (`last_used_at` queued, as by default: written through, it waits.)
    let service = service_with(repo, |b| {
        b.algorithm(argon2_cheap())
            .touch_interval(Duration::from_secs(60))
    });
    let window = RateLimit::new("w", 2, Duration::from_secs(60));
    let (_, plain) = service.create(NewApiKey::named("plain")).await.unwrap();
    let (_, limited) = service
        .create(NewApiKey::named("limited").rate_limited(window))
        .await
        .unwrap();
    let (metered, credited) = service
        .create(NewApiKey::named("metered").with_credits(Credits::new(5)))
        .await
        .unwrap();
    let keys = [&plain, &limited, &credited];
    let now = |key: &str, scopes: &[&str], cost| service.verify_now(key, scopes, cost);

    // Not cached yet: only the store can tell.
    for key in keys {
        assert!(now(key.expose(), &[], 1).is_none());
    }
    // Blank and malformed keys, and a cost out of range: at once.
    assert!(matches!(
        now("  ", &[], 1),
        Some(Err(Error::KeyNotProvided))
    ));
    assert!(matches!(
        now("ak_v1-0123456789abcdef-no!", &[], 1),
        Some(Err(Error::InvalidKey))
    ));
    assert!(matches!(
        now(plain.expose(), &[], 1001),
        Some(Err(Error::Validation(_)))
    ));

    for key in keys {
        service.verify::<&str>(key.expose(), &[]).await.unwrap();
    }
    let read = reads();
    assert!(now(plain.expose(), &[], 1).unwrap().is_ok());
    assert!(matches!(
        now(plain.expose(), &["admin"], 1),
        Some(Err(Error::InvalidScopes { .. }))
    ));
    // In-process windows are counted here too: the second of two, then 429.
    let second = now(limited.expose(), &[], 1).unwrap().unwrap();
    assert_eq!(second.usage.rate_limits[0].remaining, 0);
    assert!(matches!(
        now(limited.expose(), &[], 1),
        Some(Err(Error::RateLimited { .. }))
    ));
    assert!(matches!(
        service.verify::<&str>(limited.expose(), &[]).await,
        Err(Error::RateLimited { .. })
    ));
    // Credits are taken in the store: never here, and nothing is taken.
    assert!(now(credited.expose(), &[], 1).is_none());
    assert_eq!(
        service
            .get(&metered.id)
            .await
            .unwrap()
            .credits
            .unwrap()
            .remaining,
        4
    );
    // A wrong secret for a cached key id: only hashing can tell.
    assert!(now(&with_wrong_secret(plain.expose()), &[], 1).is_none());
    assert_eq!(reads(), read, "no store read for any of these");
}

/// Threads that keep their own copies of a hot key, racing a deactivation:
/// no verification that starts after `deactivate` returned succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_thread_copy_outlives_a_deactivation() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let service = service_with(InMemoryRepository::new(), |b| {
        b.touch_interval(Duration::from_secs(60))
    });
    let (entity, key) = service.create(NewApiKey::named("hot")).await.unwrap();
    let key = Arc::new(key.expose().to_owned());
    let done = Arc::new(AtomicBool::new(false));
    let warm = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (service, key, done) = (service.clone(), key.clone(), done.clone());
            let warm = warm.clone();
            tokio::spawn(async move {
                let mut after = 0;
                while after < 200 {
                    let deactivated = done.load(Ordering::SeqCst);
                    let result = service.verify::<&str>(&key, &[]).await;
                    if deactivated {
                        assert!(matches!(result, Err(Error::KeyInactive)), "{result:?}");
                        after += 1;
                    } else if result.is_ok() {
                        warm.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    // Every task has had hits enough to keep its own copy.
    while warm.load(Ordering::SeqCst) < 100 {
        tokio::task::yield_now().await;
    }
    service.deactivate(&entity.id).await.unwrap();
    done.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
}

/// During a rotation's grace both secrets are in use, clients moving over
/// one by one: going back and forth between them costs no hash and no
/// store read once each is cached.
#[tokio::test]
async fn both_secrets_of_a_rotation_stay_cached_during_its_grace() {
    let (repo, reads) = spy();
    // Time stands still: every hit below is within the freshness window.
    let clock = Arc::new(ManualClock::starting_now());
    let service = service_with(repo, |b| {
        b.algorithm(argon2_cheap())
            .touch_interval(Duration::from_secs(60))
            .clock(clock.clone())
    });
    let (entity, old) = service.create(NewApiKey::named("moving")).await.unwrap();
    service.verify::<&str>(old.expose(), &[]).await.unwrap();
    let (_, new) = service
        .rotate(&entity.id, Duration::from_secs(3600))
        .await
        .unwrap();
    service.verify::<&str>(new.expose(), &[]).await.unwrap();
    service.verify::<&str>(old.expose(), &[]).await.unwrap();
    let (hashed, read) = (hashes(&service), reads());
    for _ in 0..20 {
        service.verify::<&str>(old.expose(), &[]).await.unwrap();
        service.verify::<&str>(new.expose(), &[]).await.unwrap();
    }
    assert_eq!(hashes(&service), hashed, "no hash for a key already proven");
    assert_eq!(reads(), read, "no store read within the freshness window");
}
