//! The verification cache across instances and over time. Time is a
//! `ManualClock` the tests move; "less work" is counted in hashes
//! (`hashing_stats`) and store reads, never timed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::testing::change;
use keygate::{
    ApiKeyService, CacheConfig, Error, InMemoryRepository, KeyChange, ManualClock, NewApiKey,
    NewSecret, Pepper, Repository,
};
use support::{argon2_cheap, service_with, spy, PEPPER};

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
    b.verify::<&str>(key.expose(), &[]).await.unwrap();
    b.verify::<&str>(key.expose(), &[]).await.unwrap();

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
