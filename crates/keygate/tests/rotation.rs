//! Rotation and the verification cache, on a clock the test moves: the old
//! secret works during its grace and never after it, cache hits included.

mod support;

use std::sync::Arc;
use std::time::Duration;

use keygate::{ApiKeyService, Clock, Error, InMemoryRepository, ManualClock, NewApiKey};
use support::service_with;

fn cached_service(clock: Arc<ManualClock>) -> ApiKeyService {
    // The cache is on (the default); the clock is the test's.
    service_with(InMemoryRepository::new(), |b| b.clock(clock))
}

fn refused(result: Result<Arc<keygate::ApiKey>, Error>) -> bool {
    matches!(result, Err(Error::InvalidKey))
}

#[tokio::test]
async fn the_old_secret_stops_when_its_grace_ends_even_on_a_cache_hit() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = cached_service(clock.clone());
    let (entity, old) = service
        .create(NewApiKey::named("leaked").with_scopes(["read"]))
        .await
        .unwrap();
    service.verify(old.expose(), &["read"]).await.unwrap();
    let (rotated, new) = service
        .rotate(&entity.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        rotated.previous_secret_expires_at,
        Some(clock.now_micros() + chrono::TimeDelta::seconds(60))
    );
    // During the grace: both work, the old one from the cache too.
    for _ in 0..3 {
        service.verify(old.expose(), &["read"]).await.unwrap();
        service.verify(new.expose(), &["read"]).await.unwrap();
    }
    clock.advance(Duration::from_secs(59));
    service.verify(old.expose(), &["read"]).await.unwrap();
    // The grace ends: the next use of the old secret is refused at once,
    // although its cache entry is still fresh.
    clock.advance(Duration::from_secs(1));
    assert!(refused(service.verify(old.expose(), &["read"]).await));
    assert!(refused(service.verify(old.expose(), &["read"]).await));
    service.verify(new.expose(), &["read"]).await.unwrap();
}

#[tokio::test]
async fn a_second_rotation_ends_the_first_grace_at_once() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = cached_service(clock);
    let (entity, first) = service.create(NewApiKey::named("k")).await.unwrap();
    let (_, second) = service
        .rotate(&entity.id, Duration::from_secs(3600))
        .await
        .unwrap();
    service.verify::<&str>(first.expose(), &[]).await.unwrap();
    service.verify::<&str>(second.expose(), &[]).await.unwrap();
    let (_, third) = service
        .rotate(&entity.id, Duration::from_secs(3600))
        .await
        .unwrap();
    // The first secret is no longer kept at all; the second is in its grace.
    assert!(refused(service.verify::<&str>(first.expose(), &[]).await));
    service.verify::<&str>(second.expose(), &[]).await.unwrap();
    service.verify::<&str>(third.expose(), &[]).await.unwrap();
    let (_, fourth) = service.rotate(&entity.id, Duration::ZERO).await.unwrap();
    for gone in [&first, &second, &third] {
        assert!(refused(service.verify::<&str>(gone.expose(), &[]).await));
    }
    service.verify::<&str>(fourth.expose(), &[]).await.unwrap();
}

#[tokio::test]
async fn another_instance_sees_the_grace_end_without_hearing_of_it() {
    // Two services share a store; B rotates, A only reads.
    let clock = Arc::new(ManualClock::starting_now());
    let repo: Arc<dyn keygate::Repository> = Arc::new(InMemoryRepository::new());
    // Entries are stale at once (a freshness window of zero), so A re-reads
    // the key on every use, as it does once a second by default.
    let build = |clock: Arc<ManualClock>| {
        ApiKeyService::builder_shared(repo.clone())
            .pepper(keygate::Pepper::new(support::PEPPER).unwrap())
            .fast_hashing()
            .cache(keygate::CacheConfig {
                ttl: Duration::ZERO,
                ..keygate::CacheConfig::default()
            })
            .clock(clock)
            .build()
            .unwrap()
    };
    let (a, b) = (build(clock.clone()), build(clock.clone()));
    let (entity, old) = b.create(NewApiKey::named("shared")).await.unwrap();
    a.verify::<&str>(old.expose(), &[]).await.unwrap();
    let (_, new) = b.rotate(&entity.id, Duration::from_secs(30)).await.unwrap();
    a.verify::<&str>(old.expose(), &[]).await.unwrap();
    a.verify::<&str>(new.expose(), &[]).await.unwrap();
    clock.advance(Duration::from_secs(31));
    // A's entry for the old key was proven against the then-current hash;
    // re-read, that hash is now a previous one whose grace has ended.
    assert!(refused(a.verify::<&str>(old.expose(), &[]).await));
    a.verify::<&str>(new.expose(), &[]).await.unwrap();
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let clock = Arc::new(ManualClock::starting_now());
    let service = cached_service(clock.clone());
    let expires = clock.now() + chrono::TimeDelta::minutes(10);
    let (_, key) = service
        .create(NewApiKey::named("short").expiring_at(expires))
        .await
        .unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    clock.advance(Duration::from_secs(600));
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyExpired)
    ));
}
