//! The last working admin key (active, unexpired, holding the admin scope)
//! cannot be deactivated, deleted, stripped of its admin scope or of its
//! active flag, or left without credits over HTTP: 409, and the key stays
//! as it was.

use axum::http::{Method, StatusCode};
use keygate::{NewApiKey, DEFAULT_ACTOR};
use keygate_axum::{AppConfig, DEFAULT_ADMIN_SCOPE};
use serde_json::{json, Value};

use crate::support::{key, Call, TestApp};

/// The requests that would leave no admin key: (method, path after the id, body).
fn demotions() -> [(Method, &'static str, Option<Value>); 7] {
    [
        (Method::POST, "/credits", Some(json!({"set": 0}))),
        (
            Method::PATCH,
            "",
            Some(json!({"credits": {"remaining": 0}})),
        ),
        (Method::POST, "/deactivate", None),
        (Method::DELETE, "", None),
        (Method::PATCH, "", Some(json!({"is_active": false}))),
        (Method::PATCH, "", Some(json!({"scopes": ["read"]}))),
        (
            Method::PATCH,
            "",
            Some(json!({"scopes": [], "name": "demoted"})),
        ),
    ]
}

async fn send(app: &TestApp, call: Call, body: Option<Value>) -> crate::support::Reply {
    match body {
        Some(b) => call.json(b),
        None => call,
    }
    .send(&app.router)
    .await
}

async fn admin_id(app: &TestApp) -> String {
    app.service
        .get_by_key_id(&app.admin_key_id)
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_removed_and_stays_as_it_was() {
    let app = TestApp::new().await;
    let id = admin_id(&app).await;
    for (method, tail, body) in demotions() {
        let uri = format!("/api-keys/{id}{tail}");
        let reply = send(&app, app.admin(method.clone(), &uri), body.clone()).await;
        reply.assert_json_4xx(StatusCode::CONFLICT);
        let detail = reply.json["detail"].as_str().unwrap();
        assert!(detail.contains("last active admin key"), "{detail}");
        assert!(detail.contains(DEFAULT_ADMIN_SCOPE), "{detail}");
        let kept = app.service.get(&id).await.unwrap();
        assert!(kept.is_active, "{method} {uri} {body:?}");
        assert!(kept.scopes.contains(DEFAULT_ADMIN_SCOPE));
        assert_eq!(kept.name.as_deref(), Some("admin"));
        assert_eq!(kept.credits, None, "{method} {uri} {body:?}");
    }
    // Changes that keep it an admin key go through.
    for body in [
        json!({"name": "root"}),
        json!({"is_active": true}),
        json!({"scopes": [DEFAULT_ADMIN_SCOPE, "read"]}),
    ] {
        let uri = format!("/api-keys/{id}");
        let reply = send(&app, app.admin(Method::PATCH, &uri), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}: {}", reply.text);
    }
    // The refused requests wrote no audit event.
    let events = app
        .admin(Method::GET, &format!("/api-keys/{id}/events"))
        .send(&app.router)
        .await;
    let actions: Vec<&str> = events.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "update", "update"]);
}

#[tokio::test]
async fn with_a_second_admin_key_each_can_go_but_not_both() {
    for (method, tail, body) in demotions() {
        let app = TestApp::new().await;
        let first = admin_id(&app).await;
        let (second, second_plain) = key(&app.service, "second", &[DEFAULT_ADMIN_SCOPE]).await;
        let reply = send(
            &app,
            Call::new(method.clone(), &format!("/api-keys/{first}{tail}")).bearer(&second_plain),
            body.clone(),
        )
        .await;
        assert!(
            reply.status.is_success(),
            "{method} {tail} {body:?}: {}",
            reply.text
        );
        // Now the second is the last one, even to itself.
        let reply = send(
            &app,
            Call::new(method.clone(), &format!("/api-keys/{}{tail}", second.id))
                .bearer(&second_plain),
            body.clone(),
        )
        .await;
        reply.assert_json_4xx(StatusCode::CONFLICT);
        assert!(app.service.get(&second.id).await.unwrap().is_active);
    }
}

#[tokio::test]
async fn credits_may_shrink_on_the_last_admin_key_but_not_to_zero() {
    let app = TestApp::new().await;
    let id = admin_id(&app).await;
    let credits = format!("/api-keys/{id}/credits");
    let set = app.admin(Method::POST, &credits).json(json!({"set": 10}));
    assert_eq!(set.send(&app.router).await.status, StatusCode::OK);
    // Each request takes one credit as it is let in: 9 left when this one
    // asks for all of them.
    let all = app.admin(Method::POST, &credits).json(json!({"add": -9}));
    all.send(&app.router)
        .await
        .assert_json_4xx(StatusCode::CONFLICT);
    let some = app.admin(Method::POST, &credits).json(json!({"add": -5}));
    let reply = some.send(&app.router).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // 8 left once this one was let in, less 5.
    assert_eq!(reply.json["credits"]["remaining"], 3);
    // A second admin key whose credits ran out does not count either.
    let (spent, _) = app
        .service
        .create(
            NewApiKey::named("spent")
                .with_scopes([DEFAULT_ADMIN_SCOPE])
                .with_credits(keygate::Credits::new(0)),
        )
        .await
        .unwrap();
    let reply = app
        .admin(Method::POST, &format!("/api-keys/{id}/deactivate"))
        .send(&app.router)
        .await;
    reply.assert_json_4xx(StatusCode::CONFLICT);
    assert!(app.service.get(&spent.id).await.unwrap().is_active);
}

#[tokio::test]
async fn inactive_and_expired_admin_keys_do_not_count() {
    let app = TestApp::new().await;
    let id = admin_id(&app).await;
    // An inactive admin key: may be deactivated while the first one works.
    let (inactive, _) = key(&app.service, "inactive", &[DEFAULT_ADMIN_SCOPE]).await;
    let reply = app
        .admin(
            Method::POST,
            &format!("/api-keys/{}/deactivate", inactive.id),
        )
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // An admin key that has expired (moved into the past through the store:
    // the service refuses past expiries, and no test waits on the clock).
    let (expired, _) = app
        .service
        .create(NewApiKey::named("expired").with_scopes([DEFAULT_ADMIN_SCOPE]))
        .await
        .unwrap();
    let past = keygate::KeyChange {
        expires_at: Some(Some(chrono::Utc::now() - chrono::TimeDelta::seconds(1))),
        ..keygate::KeyChange::default()
    };
    let audit = keygate::Audit {
        actor: "test".into(),
        at: keygate::now_micros(),
        action: keygate::AuditAction::Update,
    };
    keygate::KeyStore::update(&app.repo, &expired.id, &past, &audit)
        .await
        .unwrap()
        .unwrap();
    let reply = app
        .admin(Method::POST, &format!("/api-keys/{id}/deactivate"))
        .send(&app.router)
        .await;
    reply.assert_json_4xx(StatusCode::CONFLICT);
    // Neither does a key with another scope, nor does removing a non-admin key need one.
    let (reader, _) = key(&app.service, "reader", &["read"]).await;
    let reply = app
        .admin(Method::DELETE, &format!("/api-keys/{}", reader.id))
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    // A missing key is still 404, not 409.
    let missing = format!("/api-keys/{}/deactivate", "0".repeat(32));
    app.admin(Method::POST, &missing)
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
}

/// Mounted open, the routes still keep an admin key (for the day the
/// router is mounted protected again), with the configured admin scope.
#[tokio::test]
async fn open_mounting_and_custom_admin_scopes_are_guarded_too() {
    let app = TestApp::with_config(
        AppConfig::default()
            .open_without_authentication()
            .admin_scope("ops:keys"),
    )
    .await;
    let (ops, _) = key(&app.service, "ops", &["ops:keys"]).await;
    let reply = Call::post(&format!("/api-keys/{}/deactivate", ops.id))
        .send(&app.router)
        .await;
    reply.assert_json_4xx(StatusCode::CONFLICT);
    assert!(reply.text.contains("ops:keys"), "{}", reply.text);
    // The default admin scope is just a scope here.
    let default_admin = admin_id(&app).await;
    let reply = Call::post(&format!("/api-keys/{default_admin}/deactivate"))
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // The CLI (the service itself) is not refused: it is the way back in.
    let cli = app.service.with_actor(DEFAULT_ACTOR);
    assert!(!cli.deactivate(&ops.id).await.unwrap().is_active);
}
