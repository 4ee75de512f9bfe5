//! SPEC §11 over HTTP: `POST /api-keys/{id}/rotate`, the grace period of
//! the replaced secret, and its 404/422 answers.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::management::assert_entity;
use crate::support::{Call, Reply, TestApp};

impl TestApp {
    /// `POST /api-keys/{id}/rotate` as admin with `body` (no body for `None`).
    pub(crate) async fn rotate(&self, id: &str, body: Option<Value>) -> Reply {
        let call = self.admin(Method::POST, &format!("/api-keys/{id}/rotate"));
        match body {
            Some(body) => call.json(body),
            None => call,
        }
        .send(&self.router)
        .await
    }

    /// Rotates (expecting 200) and returns the new plaintext and entity.
    pub(crate) async fn rotate_ok(&self, id: &str, grace_seconds: u64) -> (String, Value) {
        let reply = self
            .rotate(id, Some(json!({ "grace_seconds": grace_seconds })))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let plain = reply.json["api_key"].as_str().unwrap().to_owned();
        (plain, reply.json["entity"].clone())
    }

    /// The status `POST /api-keys/verify` answers for `key`.
    pub(crate) async fn verify_status(&self, key: &str) -> StatusCode {
        Call::post("/api-keys/verify")
            .json(json!({ "api_key": key }))
            .send(&self.router)
            .await
            .status
    }
}

#[tokio::test]
async fn rotation_gives_the_same_entity_a_new_secret_and_a_grace_period() {
    let app = TestApp::new().await;
    let (entity, old) = app
        .create(json!({"name": "svc", "scopes": ["read", "write"], "owner_id": "o", "meta": {"plan": "pro"}}))
        .await;
    let id = entity["id"].as_str().unwrap();
    assert_eq!(app.verify_status(&old).await, StatusCode::OK);

    let before = Utc::now();
    let reply = app.rotate(id, Some(json!({"grace_seconds": 3600}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let keys: Vec<&str> = reply
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["api_key", "entity"]);
    let new = reply.json["api_key"].as_str().unwrap().to_owned();
    let rotated = &reply.json["entity"];
    assert_entity(rotated);
    assert_ne!(new, old);
    // Same entity: id, key id, scopes, owner, meta, name, creation time.
    for field in [
        "id",
        "key_id",
        "name",
        "scopes",
        "owner_id",
        "meta",
        "created_at",
        "is_active",
    ] {
        assert_eq!(rotated[field], entity[field], "{field}");
    }
    assert!(new.starts_with(&format!("ak_v1-{}-", entity["key_id"].as_str().unwrap())));
    let until: DateTime<Utc> = rotated["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        until >= before + TimeDelta::seconds(3599)
            && until <= Utc::now() + TimeDelta::seconds(3601)
    );
    // The plaintext is shown once: it is not in the entity, nor on GET.
    assert!(!rotated.to_string().contains(&new[23..]));
    let got = app
        .admin(Method::GET, &format!("/api-keys/{id}"))
        .send(&app.router)
        .await;
    assert_eq!(&got.json, rotated);

    // Both secrets verify during the grace period, with the same scopes.
    assert_eq!(app.verify_status(&new).await, StatusCode::OK);
    assert_eq!(app.verify_status(&old).await, StatusCode::OK);
    let scoped = Call::post("/api-keys/verify")
        .json(json!({"api_key": new, "required_scopes": ["read", "write"]}))
        .send(&app.router)
        .await;
    assert_eq!(scoped.status, StatusCode::OK);

    // `grace_seconds: 0` ends it: only the newest secret works.
    let (newest, entity) = app.rotate_ok(id, 0).await;
    assert_eq!(entity["previous_secret_expires_at"], Value::Null);
    assert_eq!(app.verify_status(&newest).await, StatusCode::OK);
    for stale in [&old, &new] {
        assert_eq!(app.verify_status(stale).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_second_rotation_ends_the_first_grace_at_once() {
    let app = TestApp::new().await;
    let (entity, k0) = app.create(json!({"name": "twice"})).await;
    let id = entity["id"].as_str().unwrap();
    let (k1, _) = app.rotate_ok(id, 3600).await;
    assert_eq!(app.verify_status(&k0).await, StatusCode::OK);
    let (k2, second) = app.rotate_ok(id, 3600).await;
    assert!(second["previous_secret_expires_at"].is_string());
    // Only one previous secret is kept: k1 (in its grace) and k2 work, k0 not.
    assert_eq!(app.verify_status(&k0).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.verify_status(&k1).await, StatusCode::OK);
    assert_eq!(app.verify_status(&k2).await, StatusCode::OK);
}

#[tokio::test]
async fn an_absent_or_empty_body_means_no_grace() {
    let app = TestApp::new().await;
    let (entity, mut current) = app.create(json!({"name": "plain"})).await;
    let id = entity["id"].as_str().unwrap();
    let uri = format!("/api-keys/{id}/rotate");
    let bodies: [(&str, Option<&str>); 4] = [
        ("no body", None),
        ("empty JSON body", Some("")),
        ("{}", Some("{}")),
        ("null grace", Some(r#"{"grace_seconds": null}"#)),
    ];
    for (what, body) in bodies {
        let mut call = app.admin(Method::POST, &uri);
        if let Some(body) = body {
            call = call
                .header("content-type", "application/json")
                .raw(body.to_owned());
        }
        let reply = call.send(&app.router).await;
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.text);
        assert_eq!(
            reply.json["entity"]["previous_secret_expires_at"],
            Value::Null
        );
        let next = reply.json["api_key"].as_str().unwrap().to_owned();
        assert_eq!(
            app.verify_status(&current).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
        assert_eq!(app.verify_status(&next).await, StatusCode::OK, "{what}");
        current = next;
    }
    // A body that is there must be JSON.
    let reply = app
        .admin(Method::POST, &uri)
        .header("content-type", "text/plain")
        .raw("grace_seconds=5")
        .send(&app.router)
        .await;
    reply.assert_json_4xx(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Blank but declared JSON is malformed JSON (there is no empty JSON
    // document), and rotates nothing; blank without a type is no body.
    let before = app.service.get(id).await.unwrap();
    let reply = app
        .admin(Method::POST, &uri)
        .header("content-type", "application/json")
        .raw("\n")
        .send(&app.router)
        .await;
    reply.assert_json_4xx(StatusCode::BAD_REQUEST);
    assert_eq!(app.service.get(id).await.unwrap().key_hash, before.key_hash);
    let reply = app
        .admin(Method::POST, &uri)
        .raw(" \n")
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn bad_grace_is_422_unknown_id_404_and_neither_rotates() {
    let app = TestApp::new().await;
    let (entity, plain) = app.create(json!({"name": "stay"})).await;
    let id = entity["id"].as_str().unwrap();
    for grace in [
        json!(-1),
        json!(2_592_001),
        json!("x"),
        json!(1.5),
        json!(i64::MAX),
        json!(u64::MAX),
    ] {
        let reply = app
            .rotate(id, Some(json!({ "grace_seconds": grace })))
            .await;
        assert_eq!(reply.invalid_fields(), ["grace_seconds"], "{grace}");
        assert_eq!(
            reply.json["detail"][0]["loc"],
            json!(["body", "grace_seconds"])
        );
    }
    let unknown = app.rotate(id, Some(json!({"grace": 60}))).await;
    assert_eq!(unknown.invalid_fields(), ["grace"]);
    let not_object = app.rotate(id, Some(json!([60]))).await;
    not_object.assert_json_4xx(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(not_object.json["detail"][0]["loc"], json!(["body"]));
    // Nothing was rotated: the original key still works, alone.
    assert_eq!(app.verify_status(&plain).await, StatusCode::OK);
    let got = app
        .admin(Method::GET, &format!("/api-keys/{id}"))
        .send(&app.router)
        .await;
    assert_eq!(got.json["previous_secret_expires_at"], Value::Null);

    // The 30-day maximum itself is accepted.
    let (_, rotated) = app.rotate_ok(id, 2_592_000).await;
    assert!(rotated["previous_secret_expires_at"].is_string());

    for missing in ["0123456789abcdef0123456789abcdef", "nope"] {
        app.rotate(missing, None)
            .await
            .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    }
    Call::post(&format!("/api-keys/{id}/rotate"))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    let wrong_method = app
        .admin(Method::GET, &format!("/api-keys/{id}/rotate"))
        .send(&app.router)
        .await;
    wrong_method.assert_detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}
