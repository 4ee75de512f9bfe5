//! Concurrent changes to one key: every change survives. A store that
//! reads a row, edits it and writes it back loses some of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Barrier;

use super::{service, Repo};
use crate::{ApiKeyService, ApiKeyUpdate, AuditAction, Error, EventFilter, NewApiKey};

const WRITERS: usize = 6;
const WRITES_EACH: usize = 5;

fn describe(text: String) -> ApiKeyUpdate {
    ApiKeyUpdate {
        description: Some(Some(text)),
        ..ApiKeyUpdate::default()
    }
}

/// Six writers loop on the description while the key is deactivated, 50
/// rounds: the key always ends inactive (and refused), and every change
/// has exactly one event.
pub async fn race_writers_against_deactivate(repo: Repo) {
    let svc = service(repo.clone());
    for round in 0..50 {
        let (k, plain) = svc
            .create(NewApiKey::named(format!("race-{round}")))
            .await
            .unwrap();
        let start = Arc::new(Barrier::new(WRITERS + 1));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (svc, id, start) = (svc.clone(), k.id.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                for i in 0..WRITES_EACH {
                    svc.update(&id, describe(format!("w{w}-{i}")))
                        .await
                        .unwrap();
                }
            }));
        }
        start.wait().await;
        tokio::task::yield_now().await;
        let answered = svc.deactivate(&k.id).await.unwrap();
        assert!(!answered.is_active);
        for t in tasks {
            t.await.unwrap();
        }
        let stored = repo.get(&k.id).await.unwrap().unwrap();
        assert!(
            !stored.is_active,
            "round {round}: the deactivation was lost"
        );
        assert!(matches!(
            svc.verify(plain.expose(), &[""; 0]).await,
            Err(Error::KeyInactive)
        ));
        let events = repo.events(&EventFilter::for_key(&k.id)).await.unwrap();
        assert_eq!(events.len(), 2 + WRITERS * WRITES_EACH, "round {round}");
        let deactivations = events
            .iter()
            .filter(|e| e.action == AuditAction::Deactivate)
            .count();
        assert_eq!(deactivations, 1);
    }
}

/// A rename and a scope change at the same time, 50 rounds: both survive.
pub async fn race_rename_against_scope_change(repo: Repo) {
    let svc = service(repo.clone());
    for round in 0..50 {
        let (k, _) = svc
            .create(NewApiKey::named("before").with_scopes(["read"]))
            .await
            .unwrap();
        let start = Arc::new(Barrier::new(2));
        let rename = {
            let (svc, id, start) = (svc.clone(), k.id.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let change = ApiKeyUpdate {
                    name: Some(format!("after-{round}")),
                    ..ApiKeyUpdate::default()
                };
                svc.update(&id, change).await.unwrap();
            })
        };
        let rescope = {
            let (svc, id) = (svc.clone(), k.id.clone());
            tokio::spawn(async move {
                start.wait().await;
                let change = ApiKeyUpdate {
                    scopes: Some(vec!["read".into(), "write".into()]),
                    ..ApiKeyUpdate::default()
                };
                svc.update(&id, change).await.unwrap();
            })
        };
        rename.await.unwrap();
        rescope.await.unwrap();
        let stored = repo.get(&k.id).await.unwrap().unwrap();
        assert_eq!(stored.name, Some(format!("after-{round}")), "round {round}");
        assert_eq!(stored.scopes.as_slice(), ["read", "write"], "round {round}");
    }
}

/// A rotation and a deactivation at the same time, 20 rounds: the key ends
/// inactive *and* holds the new secret (the old one is refused as invalid,
/// the new one as inactive).
pub async fn race_rotate_against_deactivate(repo: Repo) {
    let svc: ApiKeyService = service(repo.clone());
    for round in 0..20 {
        let (k, old) = svc.create(NewApiKey::named("rotating")).await.unwrap();
        let start = Arc::new(Barrier::new(2));
        let rotate = {
            let (svc, id, start) = (svc.clone(), k.id.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                svc.rotate(&id, Duration::ZERO).await.unwrap().1
            })
        };
        let deactivate = {
            let (svc, id) = (svc.clone(), k.id.clone());
            tokio::spawn(async move {
                start.wait().await;
                svc.deactivate(&id).await.unwrap();
            })
        };
        let new = rotate.await.unwrap();
        deactivate.await.unwrap();
        let stored = repo.get(&k.id).await.unwrap().unwrap();
        assert!(
            !stored.is_active,
            "round {round}: the deactivation was lost"
        );
        assert!(
            matches!(
                svc.verify(new.expose(), &[""; 0]).await,
                Err(Error::KeyInactive)
            ),
            "round {round}: the rotation was lost"
        );
        assert!(matches!(
            svc.verify(old.expose(), &[""; 0]).await,
            Err(Error::InvalidKey)
        ));
    }
}
