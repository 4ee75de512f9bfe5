//! The verification cache across instances and over time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::testing::change;
use keygate::{
    ApiKeyService, CacheConfig, Error, HashAlgorithm, InMemoryRepository, NewApiKey, Pepper,
    Repository,
};
use keygate::{KeyChange, NewSecret};
use support::{service_with, spy, PEPPER};

fn instance(repo: &Arc<dyn Repository>, algorithm: HashAlgorithm) -> ApiKeyService {
    ApiKeyService::builder_shared(repo.clone())
        .pepper(Pepper::new(PEPPER).unwrap())
        .algorithm(algorithm)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_change_through_one_instance_is_seen_by_another_within_a_second() {
    let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new());
    let (a, b) = (
        instance(&repo, HashAlgorithm::HmacSha256),
        instance(&repo, HashAlgorithm::HmacSha256),
    );
    let (entity, key) = a.create(NewApiKey::named("shared")).await.unwrap();
    b.verify::<&str>(key.expose(), &[]).await.unwrap();
    b.verify::<&str>(key.expose(), &[]).await.unwrap();

    // Freshness is 1 s (the default): once it has passed, the very next
    // verify on `b` must see what `a` did, however loaded the machine is.
    let freshness = keygate::CacheConfig::default().ttl;
    a.deactivate(&entity.id).await.unwrap();
    tokio::time::sleep(freshness + Duration::from_millis(20)).await;
    assert!(matches!(
        b.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
    a.delete(&entity.id).await.unwrap();
    tokio::time::sleep(freshness + Duration::from_millis(20)).await;
    assert!(matches!(
        b.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyNotFound)
    ));
}

#[tokio::test]
async fn revalidation_reads_the_store_but_does_not_hash_again() {
    let (repo, reads) = spy();
    // Expensive on purpose: ~100 ms per hash, so a skipped hash is obvious.
    let slow = HashAlgorithm::Argon2 {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    let ttl = Duration::from_millis(50);
    let service = service_with(repo, |b| {
        b.algorithm(slow).cache(CacheConfig {
            ttl,
            ..CacheConfig::default()
        })
    });
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let start = Instant::now();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let first = start.elapsed();
    tokio::time::sleep(ttl * 2).await;
    let before = reads();
    let start = Instant::now();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let revalidation = start.elapsed();
    assert_eq!(reads(), before + 1, "a stale entry re-reads the store");
    assert!(
        revalidation * 4 < first,
        "revalidation {revalidation:?} vs first verify {first:?}"
    );
}

#[tokio::test]
async fn a_changed_stored_hash_is_checked_again() {
    let repo: Arc<dyn Repository> = Arc::new(InMemoryRepository::new());
    let service = ApiKeyService::builder_shared(repo.clone())
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .cache(CacheConfig {
            ttl: Duration::from_millis(20),
            ..CacheConfig::default()
        })
        .build()
        .unwrap();
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
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::InvalidKey)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_of_one_key_hash_it_once() {
    // ~100 ms per hash on one hashing thread: 16 hashes in a row would take >1.5 s.
    let slow = HashAlgorithm::Argon2 {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    let service = service_with(InMemoryRepository::new(), |b| {
        b.algorithm(slow).hash_threads(1)
    });
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    // One hash, measured in this run.
    let single = {
        let other = service.create(NewApiKey::named("other")).await.unwrap().1;
        let t = Instant::now();
        service.verify::<&str>(other.expose(), &[]).await.unwrap();
        t.elapsed()
    };
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (service, key) = (service.clone(), key.expose().to_owned());
            tokio::spawn(async move { service.verify::<&str>(&key, &[]).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let herd = start.elapsed();
    assert!(
        herd < single * 6,
        "16 concurrent first uses took {herd:?}, one hash {single:?}"
    );
}

#[tokio::test]
async fn status_changes_through_the_service_cost_no_hash() {
    let slow = HashAlgorithm::Argon2 {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    let service = service_with(InMemoryRepository::new(), |b| b.algorithm(slow));
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    let start = Instant::now();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let first = start.elapsed();

    service.deactivate(&entity.id).await.unwrap();
    let start = Instant::now();
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
    service.activate(&entity.id).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let after_changes = start.elapsed();
    assert!(
        after_changes * 4 < first,
        "{after_changes:?} for two verifies vs {first:?} for one hash"
    );
}
