//! Push invalidation (SPEC §9): an announced change reaches a cache at once,
//! whatever its TTL; a lost announcement is covered by a resync; a store
//! read that raced with an announcement is never cached as fresh.
//! Every cache here has a TTL of one hour, so polling cannot explain a
//! change being seen.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keygate::{
    ApiKeyService, ApiKeyUpdate, CacheConfig, ChangePublisher, Error, NewApiKey, Pepper,
    Repository, StoreError,
};
use support::{spy, PEPPER};

fn long_cache() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(3600),
        ..CacheConfig::default()
    }
}

fn instance(repo: &Arc<dyn Repository>) -> ApiKeyService {
    ApiKeyService::builder_shared(repo.clone())
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .cache(long_cache())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_announced_change_is_seen_at_once_and_reread_without_hashing() {
    let (store, reads) = spy();
    let repo: Arc<dyn Repository> = Arc::new(store);
    let (a, b) = (instance(&repo), instance(&repo));
    let (entity, key) = a.create(NewApiKey::named("k")).await.unwrap();
    b.verify::<&str>(key.expose(), &[]).await.unwrap();

    a.deactivate(&entity.id).await.unwrap();
    // Not announced: `b` answers from its cache for the whole TTL.
    b.verify::<&str>(key.expose(), &[]).await.unwrap();

    let before = reads();
    assert!(b.invalidator().key_changed(&entity.key_id));
    assert!(matches!(
        b.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
    assert_eq!(reads(), before + 1, "one store read after the announcement");

    // Re-activated and announced: verified again from the re-read entity,
    // the proof kept (no hashing: fast hashing counts nothing, so count
    // reads instead: one per announcement, none per request).
    a.activate(&entity.id).await.unwrap();
    b.invalidator().key_changed(&entity.key_id);
    for _ in 0..5 {
        b.verify::<&str>(key.expose(), &[]).await.unwrap();
    }
    assert_eq!(reads(), before + 2);
}

#[tokio::test]
async fn a_resync_rereads_every_cached_key() {
    let (store, _) = spy();
    let repo: Arc<dyn Repository> = Arc::new(store);
    let (a, b) = (instance(&repo), instance(&repo));
    let mut keys = Vec::new();
    for name in ["one", "two", "three"] {
        let (entity, key) = a.create(NewApiKey::named(name)).await.unwrap();
        b.verify::<&str>(key.expose(), &[]).await.unwrap();
        keys.push((entity, key));
    }
    for (entity, _) in &keys[..2] {
        a.deactivate(&entity.id).await.unwrap();
    }
    // Announcements lost: nothing seen yet.
    for (_, key) in &keys {
        b.verify::<&str>(key.expose(), &[]).await.unwrap();
    }
    assert!(b.invalidator().resync());
    for (_, key) in &keys[..2] {
        assert!(matches!(
            b.verify::<&str>(key.expose(), &[]).await,
            Err(Error::KeyInactive)
        ));
    }
    b.verify::<&str>(keys[2].1.expose(), &[]).await.unwrap();
}

/// The race the generation counter closes: a verify reads the row, the
/// change is made and announced, then the verify caches what it read.
/// Without the counter the old row would be fresh for the whole TTL.
#[tokio::test]
async fn a_read_that_raced_with_an_announcement_is_not_cached_as_fresh() {
    let (mut store, _) = spy();
    let hold = Arc::new((tokio::sync::Notify::new(), tokio::sync::Notify::new()));
    store.hold_reads = Some(hold.clone());
    let repo: Arc<dyn Repository> = Arc::new(store);
    let (a, b) = (instance(&repo), instance(&repo));
    let (entity, key) = a.create(NewApiKey::named("raced")).await.unwrap();

    let raw = key.expose().to_owned();
    let b2 = b.clone();
    let in_flight = tokio::spawn(async move { b2.verify::<&str>(&raw, &[]).await });
    hold.0.notified().await; // the row is read (still active)
    a.deactivate(&entity.id).await.unwrap();
    b.invalidator().key_changed(&entity.key_id);
    hold.1.notify_one();
    // The request in flight answers from what it read: it began first.
    in_flight.await.unwrap().unwrap();

    let mut next = tokio::spawn({
        let b = b.clone();
        let raw = key.expose().to_owned();
        async move { b.verify::<&str>(&raw, &[]).await }
    });
    let answer = tokio::select! {
        // Answered without a store read: from a fresh cache entry.
        answer = &mut next => answer,
        () = hold.0.notified() => {
            hold.1.notify_one();
            next.await
        }
    };
    assert!(
        matches!(answer.unwrap(), Err(Error::KeyInactive)),
        "the next verify must read the store again"
    );
}

/// Records what it is asked to announce.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

#[async_trait]
impl ChangePublisher for Recorder {
    async fn publish(&self, key_id: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(key_id.to_owned());
        Ok(())
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
}

/// Always fails: a change must still succeed.
struct Broken;

#[async_trait]
impl ChangePublisher for Broken {
    async fn publish(&self, _: &str) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("bus down".into()))
    }
    fn name(&self) -> &'static str {
        "broken"
    }
}

#[tokio::test]
async fn every_change_is_announced_and_a_failed_announcement_fails_nothing() {
    let (store, _) = spy();
    let recorder = Arc::new(Recorder::default());
    let service = ApiKeyService::builder(store)
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .change_publisher(recorder.clone())
        .build()
        .unwrap();
    let (entity, _) = service.create(NewApiKey::named("k")).await.unwrap();
    service.deactivate(&entity.id).await.unwrap();
    service
        .update(
            &entity.id,
            ApiKeyUpdate {
                name: Some("renamed".into()),
                ..ApiKeyUpdate::default()
            },
        )
        .await
        .unwrap();
    let (rotated, _) = service.rotate(&entity.id, Duration::ZERO).await.unwrap();
    service.delete(&entity.id).await.unwrap();
    let said = recorder.0.lock().unwrap().clone();
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(said[..3].iter().all(|id| *id == entity.key_id), "{said:?}");
    assert_eq!(said[3], rotated.key_id);

    let (store, _) = spy();
    let service = ApiKeyService::builder(store)
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .change_publisher(Arc::new(Broken))
        .build()
        .unwrap();
    let (entity, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.deactivate(&entity.id).await.unwrap();
    assert!(matches!(
        service.verify::<&str>(key.expose(), &[]).await,
        Err(Error::KeyInactive)
    ));
}

#[tokio::test]
async fn an_invalidator_outliving_its_service_says_so() {
    let (store, _) = spy();
    let service = ApiKeyService::builder(store)
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .build()
        .unwrap();
    let invalidator = service.invalidator();
    assert!(!invalidator.is_closed());
    assert!(invalidator.key_changed("0123456789abcdef"));
    drop(service);
    assert!(invalidator.is_closed());
    assert!(!invalidator.key_changed("0123456789abcdef"));
    assert!(!invalidator.resync());
}

/// The loop every listener runs: retries a feed that cannot be reached
/// (50 ms, doubling to 1 s), resyncs each time it listens again, passes
/// announcements on, and stops once the service is gone.
#[tokio::test(start_paused = true)]
async fn keep_listening_retries_resyncs_and_stops_with_the_service() {
    let (store, reads) = spy();
    let reads = Arc::new(reads);
    let repo: Arc<dyn Repository> = Arc::new(store);
    let service = instance(&repo);
    let (_, key) = service.create(NewApiKey::named("k")).await.unwrap();
    service.verify::<&str>(key.expose(), &[]).await.unwrap();
    let invalidator = service.invalidator();

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let started = tokio::time::Instant::now();
    let sessions = Arc::new(Mutex::new(0));
    let service = Arc::new(Mutex::new(Some(service)));
    let listening = {
        let (attempts, sessions, service) = (attempts.clone(), sessions.clone(), service.clone());
        let key = key.expose().to_owned();
        tokio::spawn(invalidator.keep_listening(
            "test",
            move || {
                let attempts = attempts.clone();
                async move {
                    let mut attempts = attempts.lock().unwrap();
                    attempts.push(started.elapsed());
                    // Down for the first 4 attempts, and the 6th.
                    match attempts.len() {
                        1..=4 | 6 => Err("refused".to_owned()),
                        _ => Ok(()),
                    }
                }
            },
            move |(), invalidator| {
                let (sessions, service, key) = (sessions.clone(), service.clone(), key.clone());
                let reads = reads.clone();
                async move {
                    let session = {
                        let mut n = sessions.lock().unwrap();
                        *n += 1;
                        *n
                    };
                    let current = service.lock().unwrap().clone().unwrap();
                    // Resynced before listening: one store read, then cached.
                    let before = reads();
                    current.verify::<&str>(&key, &[]).await.unwrap();
                    current.verify::<&str>(&key, &[]).await.unwrap();
                    assert_eq!(
                        reads(),
                        before + 1,
                        "session {session}: resync, then cached"
                    );
                    assert!(invalidator.key_changed("unknown0000000000"));
                    if session == 2 {
                        drop(current);
                        service.lock().unwrap().take();
                    }
                    "connection closed".to_owned()
                }
            },
        ))
    };
    tokio::time::timeout(Duration::from_secs(60), listening)
        .await
        .expect("the loop stops once the service is dropped")
        .unwrap();

    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    let gaps: Vec<u128> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // Backoff 50, 100, 200, 400 ms; then straight back after the session
    // ended; one failure waits 50 ms again (the delay was reset).
    assert_eq!(gaps, [50, 100, 200, 400, 0, 50], "{gaps:?}");
    assert_eq!(*sessions.lock().unwrap(), 2);
}
