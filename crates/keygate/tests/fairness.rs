//! Failures cannot starve legitimate hashing work. These tests count the
//! hashes run (never time them): with one hashing thread and a queue full
//! of bad keys, a create or a real key's first verification must get its
//! turn after a few hashes, not after the whole flood.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::{ApiKeyService, Error, InMemoryRepository, NewApiKey, Secret};
use support::{argon2_cheap, service_with};

fn one_thread() -> Arc<ApiKeyService> {
    Arc::new(service_with(InMemoryRepository::new(), |b| {
        b.algorithm(argon2_cheap()).hash_threads(1)
    }))
}

/// Starts `n` verifications of distinct bad keys built by `bad`, and waits
/// until at least `queued` of them wait in the pool.
async fn flood(
    service: &Arc<ApiKeyService>,
    n: usize,
    queued: usize,
    bad: impl Fn() -> String,
) -> Vec<tokio::task::JoinHandle<Result<Arc<keygate::ApiKey>, Error>>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (service, key) = (service.clone(), bad());
            tokio::spawn(async move { service.verify::<&str>(&key, &[]).await })
        })
        .collect();
    while service.hashing_stats().queued < queued {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tasks
}

fn random_key() -> String {
    format!(
        "ak_v1-{}-{}",
        keygate::KeyId::generate(),
        Secret::generate().expose()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_keys_wait_behind_a_real_first_verification_and_a_create() {
    let service = one_thread();
    let (_, real) = service.create(NewApiKey::named("real")).await.unwrap();
    let tasks = flood(&service, 200, 100, random_key).await;
    let before = service.hashing_stats().completed;
    service.verify::<&str>(real.expose(), &[]).await.unwrap();
    let first_verify = service.hashing_stats().completed - before;
    let before = service.hashing_stats().completed;
    service.create(NewApiKey::named("during")).await.unwrap();
    let create = service.hashing_stats().completed - before;
    // Its own hash plus at most the one already running (FIFO: ~200).
    assert!(
        first_verify <= 2,
        "{first_verify} hashes before the real key"
    );
    assert!(create <= 2, "{create} hashes before the create");
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::KeyNotFound)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_for_one_key_id_do_not_hold_back_another_key() {
    let service = one_thread();
    let (attacked, _) = service.create(NewApiKey::named("attacked")).await.unwrap();
    let (_, other) = service.create(NewApiKey::named("other")).await.unwrap();
    let wrong = || format!("ak_v1-{}-{}", attacked.key_id, Secret::generate().expose());
    // The per-key-id bound (64) caps what one key id can queue.
    let tasks = flood(&service, 60, 30, wrong).await;
    let before = service.hashing_stats().completed;
    service.verify::<&str>(other.expose(), &[]).await.unwrap();
    let waited = service.hashing_stats().completed - before;
    // Round-robin across key ids: its own hash, at most one of the
    // attacked key's, and at most the one already running.
    assert!(waited <= 3, "{waited} hashes before the other key");
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(Error::InvalidKey)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_lane_sheds_with_overloaded_instead_of_queueing() {
    let service = one_thread();
    let (attacked, _) = service.create(NewApiKey::named("attacked")).await.unwrap();
    let wrong = || format!("ak_v1-{}-{}", attacked.key_id, Secret::generate().expose());
    let tasks = flood(&service, 150, 60, wrong).await;
    let mut overloaded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::Overloaded) => overloaded += 1,
            Err(Error::InvalidKey) => {}
            other => panic!("{other:?}"),
        }
    }
    // 64 may wait per key id (plus the one running): the rest were refused.
    assert!((80..=86).contains(&overloaded), "{overloaded} shed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_cost_one_hash_like_wrong_secrets() {
    let service = one_thread();
    let (entity, _) = service.create(NewApiKey::named("k")).await.unwrap();
    let count = |s: &ApiKeyService| s.hashing_stats().completed;
    let before = count(&service);
    let _ = service.verify::<&str>(&random_key(), &[]).await;
    let unknown = count(&service) - before;
    let before = count(&service);
    let wrong = format!("ak_v1-{}-{}", entity.key_id, Secret::generate().expose());
    let _ = service.verify::<&str>(&wrong, &[]).await;
    assert_eq!((unknown, count(&service) - before), (1, 1));
}
