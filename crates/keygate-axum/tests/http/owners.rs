//! SPEC §10 over HTTP: `owner_id` and `meta` through create, PATCH (null
//! clears), search and count; the `key_id` filter; lookup by key id.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::management::assert_entity;
use crate::support::{Call, TestApp};

/// A `meta` object whose compact JSON is exactly `bytes` long.
fn meta_of_size(bytes: usize) -> Value {
    // {"k":"…"} is 8 bytes around the value.
    let meta = json!({ "k": "x".repeat(bytes - 8) });
    assert_eq!(meta.to_string().len(), bytes);
    meta
}

async fn count(app: &TestApp, filter: Value) -> u64 {
    let reply = app
        .admin(Method::POST, "/api-keys/count")
        .json(filter)
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json["total"].as_u64().unwrap()
}

#[tokio::test]
async fn owner_and_meta_are_created_returned_patched_and_cleared() {
    let app = TestApp::new().await;
    let meta = json!({"plan": "pro", "limits": {"seats": 5}, "regions": ["eu", "us"]});
    let (entity, plain) = app
        .create(json!({
            "name": "tenant", "description": "d", "owner_id": "team-1", "meta": meta, "scopes": ["read"],
        }))
        .await;
    assert_entity(&entity);
    assert_eq!(entity["owner_id"], "team-1");
    assert_eq!(entity["meta"], meta);
    assert_eq!(entity["previous_secret_expires_at"], Value::Null);
    let uri = format!("/api-keys/{}", entity["id"].as_str().unwrap());
    let got = app.admin(Method::GET, &uri).send(&app.router).await;
    assert_eq!(got.json, entity);

    // Returned with the entity on verify too, for the application's use.
    let verified = Call::post("/api-keys/verify")
        .json(json!({"api_key": plain}))
        .send(&app.router)
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
    assert_eq!(
        (&verified.json["owner_id"], &verified.json["meta"]),
        (&json!("team-1"), &meta)
    );

    let patch = |body: Value| app.admin(Method::PATCH, &uri).json(body).send(&app.router);
    let reply = patch(json!({"owner_id": "team-2"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_entity(&reply.json);
    assert_eq!(reply.json["owner_id"], "team-2");
    assert_eq!(reply.json["meta"], meta, "absent fields are unchanged");
    assert_eq!(reply.json["description"], "d");

    // `meta` is replaced as a whole, not merged.
    let reply = patch(json!({"meta": {"plan": "free"}})).await;
    assert_eq!(reply.json["meta"], json!({"plan": "free"}));
    assert_eq!(reply.json["owner_id"], "team-2");

    // JSON null clears each of the three.
    let reply = patch(json!({"owner_id": null, "meta": null, "description": null})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    for field in ["owner_id", "meta", "description"] {
        assert_eq!(reply.json[field], Value::Null, "{field}");
    }
    assert_eq!(reply.json["name"], "tenant");
    assert_eq!(
        app.admin(Method::GET, &uri).send(&app.router).await.json,
        reply.json
    );

    // An empty object is an object.
    let reply = patch(json!({"meta": {}})).await;
    assert_eq!(reply.json["meta"], json!({}));
}

#[tokio::test]
async fn bad_owner_and_meta_are_422_naming_the_field_and_store_nothing() {
    let app = TestApp::new().await;
    let create = |body: Value| {
        app.admin(Method::POST, "/api-keys")
            .json(body)
            .send(&app.router)
    };
    for (meta, what) in [
        (json!([1, 2]), "array"),
        (json!("plan=pro"), "string"),
        (json!(5), "number"),
        (json!(true), "bool"),
        (meta_of_size(8 * 1024 + 1), "8 KiB + 1"),
    ] {
        let reply = create(json!({"name": "bad", "meta": meta})).await;
        assert_eq!(reply.invalid_fields(), ["meta"], "{what}");
        assert_eq!(
            reply.json["detail"][0]["loc"],
            json!(["body", "meta"]),
            "{what}"
        );
    }
    for owner in [String::new(), "o".repeat(257)] {
        let reply = create(json!({"name": "bad", "owner_id": owner})).await;
        assert_eq!(reply.invalid_fields(), ["owner_id"]);
        assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "owner_id"]));
    }
    let reply = create(json!({"name": "bad", "owner_id": 7})).await;
    assert_eq!(reply.invalid_fields(), ["owner_id"]);
    assert_eq!(count(&app, json!({"name_exact": "bad"})).await, 0);

    // The limits themselves are accepted (characters, not bytes, for owners).
    let (edge, _) = app
        .create(
            json!({"name": "edge", "owner_id": "é".repeat(256), "meta": meta_of_size(8 * 1024)}),
        )
        .await;
    assert_eq!(edge["owner_id"].as_str().unwrap().chars().count(), 256);

    // The same checks on PATCH, and a refused PATCH changes nothing.
    let uri = format!("/api-keys/{}", edge["id"].as_str().unwrap());
    let patch = |body: Value| app.admin(Method::PATCH, &uri).json(body).send(&app.router);
    for body in [
        json!({"meta": [1]}),
        json!({"meta": "x"}),
        json!({"meta": meta_of_size(8 * 1024 + 1)}),
        json!({"meta": {"ok": 1}, "name": "renamed", "owner_id": ""}),
    ] {
        let reply = patch(body.clone()).await;
        let fields = reply.invalid_fields();
        assert!(
            fields == ["meta"] || fields == ["owner_id"],
            "{body}: {fields:?}"
        );
    }
    assert_eq!(
        patch(json!({"owner_id": "o".repeat(257)}))
            .await
            .invalid_fields(),
        ["owner_id"]
    );
    let now = app.admin(Method::GET, &uri).send(&app.router).await;
    assert_eq!(now.json, edge);
}

#[tokio::test]
async fn search_and_count_filter_by_owner_id_and_key_id() {
    let app = TestApp::new().await;
    let mut keys = Vec::new();
    for (name, owner) in [
        ("a", Some("t1")),
        ("b", Some("t1")),
        ("c", Some("t2")),
        ("d", None),
    ] {
        let mut body = json!({ "name": name });
        if let Some(owner) = owner {
            body["owner_id"] = json!(owner);
        }
        keys.push(app.create(body).await.0);
    }
    let search = |filter: Value| {
        app.admin(Method::POST, "/api-keys/search")
            .json(filter)
            .send(&app.router)
    };
    let names = |reply: &Value| -> Vec<String> {
        reply["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let a_key_id = keys[0]["key_id"].as_str().unwrap();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"owner_id": "t1"}), vec!["b", "a"]),
        (json!({"owner_id": "t2"}), vec!["c"]),
        (json!({"owner_id": "T1"}), vec![]),
        (json!({"owner_id": "t"}), vec![]),
        (json!({"key_id": a_key_id}), vec!["a"]),
        (json!({"key_id": a_key_id, "owner_id": "t1"}), vec!["a"]),
        (json!({"key_id": a_key_id, "owner_id": "t2"}), vec![]),
        (json!({"key_id": &a_key_id[..8]}), vec![]),
        (
            json!({"owner_id": "t1", "order_desc": false}),
            vec!["a", "b"],
        ),
    ];
    for (filter, expected) in cases {
        let reply = search(filter.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(names(&reply.json), expected, "{filter}");
        assert_eq!(reply.json["total"], expected.len(), "{filter}");
        assert_eq!(count(&app, filter.clone()).await, expected.len() as u64);
    }
    assert_eq!(
        search(json!({"owner_id": 1})).await.invalid_fields(),
        ["owner_id"]
    );
}

#[tokio::test]
async fn lookup_by_key_id_traces_a_leaked_key_in_one_step() {
    let app = TestApp::new().await;
    let (entity, plain) = app
        .create(json!({"name": "leaked", "owner_id": "acme"}))
        .await;
    // ak_v1-<key_id>-<secret>: the middle part is public.
    let key_id = plain.split('-').nth(1).unwrap();
    assert_eq!(entity["key_id"], key_id);
    let reply = app
        .admin(Method::GET, &format!("/api-keys/by-key-id/{key_id}"))
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, entity);

    for missing in ["0123456789abcdef", "nope", entity["id"].as_str().unwrap()] {
        app.admin(Method::GET, &format!("/api-keys/by-key-id/{missing}"))
            .send(&app.router)
            .await
            .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    }
    Call::get(&format!("/api-keys/by-key-id/{key_id}"))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    let not_admin = Call::get(&format!("/api-keys/by-key-id/{key_id}"))
        .bearer(&plain)
        .send(&app.router)
        .await;
    assert_eq!(not_admin.status, StatusCode::FORBIDDEN);
    let wrong_method = app
        .admin(Method::DELETE, &format!("/api-keys/by-key-id/{key_id}"))
        .send(&app.router)
        .await;
    wrong_method.assert_detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}
