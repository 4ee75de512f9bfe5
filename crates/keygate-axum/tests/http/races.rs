//! A race through HTTP: concurrent PATCHes against one deactivation, over
//! a SQLite file so the requests really overlap in the store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::audit::actions;
use crate::support::{key, Call, TempDir, TestApp};

/// Six clients PATCH the description of one key in a loop while one
/// deactivates it; twenty rounds over a SQLite file (a pool of several
/// connections, so the writes really overlap). No PATCH may write back a
/// stale `is_active`: the key ends inactive and is refused every round, a
/// PATCH sent after the deactivation answered sees the key inactive, and
/// every change has its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_never_undo_a_deactivation() {
    const CLIENTS: usize = 6;
    const PATCHES: usize = 8;
    let dir = TempDir::create();
    let app = TestApp::on_file(&dir.path().join("race.db")).await;
    let (mut before, mut after) = (0, 0);
    for round in 0..20u64 {
        let (entity, plain) = key(&app.service, &format!("race-{round}"), &["read"]).await;
        // Warm the verification cache, so the refusal below is not a cold read.
        assert_eq!(app.verify_status(&plain).await, StatusCode::OK);

        let uri = format!("/api-keys/{}", entity.id);
        let sent = Arc::new(AtomicUsize::new(0));
        let deactivated = Arc::new(AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let (router, admin, uri) = (app.router.clone(), app.admin.clone(), uri.clone());
            let (sent, deactivated) = (sent.clone(), deactivated.clone());
            clients.spawn(async move {
                let mut seen = (0, 0);
                for n in 0..PATCHES {
                    let late = deactivated.load(Ordering::SeqCst);
                    let reply = Call::new(Method::PATCH, &uri)
                        .bearer(&admin)
                        .json(json!({"description": format!("n{client}-{n}")}))
                        .send(&router)
                        .await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                    let active = reply.json["is_active"].as_bool().unwrap();
                    // Sent after the deactivation was answered: must see it.
                    assert!(!(late && active), "round {round}: reactivated");
                    if late {
                        seen.1 += 1;
                    } else {
                        seen.0 += 1;
                    }
                }
                seen
            });
        }
        // Deactivate while the PATCHes are in full flow.
        while sent.load(Ordering::SeqCst) < CLIENTS * PATCHES / 3 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        let off = app
            .admin(Method::POST, &format!("{uri}/deactivate"))
            .send(&app.router)
            .await;
        deactivated.store(true, Ordering::SeqCst);
        assert_eq!(off.status, StatusCode::OK, "{}", off.text);
        assert_eq!(off.json["is_active"], false);
        while let Some(done) = clients.join_next().await {
            let (b, a) = done.unwrap();
            (before, after) = (before + b, after + a);
        }

        let now = app.admin(Method::GET, &uri).send(&app.router).await;
        assert_eq!(now.json["is_active"], false, "round {round}: {}", now.text);
        Call::post("/api-keys/verify")
            .json(json!({"api_key": plain}))
            .send(&app.router)
            .await
            .assert_detail(StatusCode::FORBIDDEN, "API key inactive");
        // Each PATCH set a new description: one event each, none lost.
        let events = app.events(&entity.id, "?limit=100").await.json;
        let log = actions(&events);
        let of = |action: &str| log.iter().filter(|a| **a == action).count();
        assert_eq!(
            (of("create"), of("update"), of("deactivate")),
            (1, CLIENTS * PATCHES, 1),
            "round {round}: {log:?}"
        );
        assert_eq!(events["items"][0]["actor"], keygate::DEFAULT_ACTOR);
        assert!(events["items"][1]["actor"] == app.admin_key_id.as_str());
    }
    // The deactivation really landed among the PATCHes.
    assert!(before > 0 && after > 0, "{before} before, {after} after");
}
