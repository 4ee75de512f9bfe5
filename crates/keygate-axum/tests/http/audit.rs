//! SPEC §13 over HTTP: `GET /api-keys/{id}/events` and `GET /audit`, the
//! actor of each change, no secret in any event.

use axum::http::{Method, StatusCode};
use keygate_axum::{AppConfig, DEFAULT_ADMIN_SCOPE};
use serde_json::{json, Value};

use crate::support::{key, Call, Reply, TestApp};

pub(crate) fn actions(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

impl TestApp {
    pub(crate) async fn events(&self, id: &str, query: &str) -> Reply {
        self.admin(Method::GET, &format!("/api-keys/{id}/events{query}"))
            .send(&self.router)
            .await
    }

    async fn audit(&self, query: &str) -> Value {
        let reply = self
            .admin(Method::GET, &format!("/audit{query}"))
            .send(&self.router)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
        reply.json
    }
}

/// Neither a plaintext key nor its secret part appears in `text`.
#[track_caller]
fn assert_no_secret(text: &str, plaintexts: &[&str]) {
    for plain in plaintexts {
        let secret = plain.rsplit('-').next().unwrap();
        assert!(!text.contains(plain), "plaintext key in {text}");
        assert!(!text.contains(secret), "secret in {text}");
    }
    assert!(!text.contains("$keygate"), "a hash in {text}");
}

#[tokio::test]
async fn key_events_record_every_change_by_the_admin_key_oldest_first() {
    let app = TestApp::new().await;
    let (entity, created) = app
        .create(json!({"name": "audited", "description": "v1", "scopes": ["read"], "owner_id": "o", "meta": {"a": 1}}))
        .await;
    let id = entity["id"].as_str().unwrap().to_owned();
    let uri = format!("/api-keys/{id}");
    let send = |method: Method, path: String, body: Option<Value>| {
        let call = app.admin(method, &path);
        let call = match body {
            Some(b) => call.json(b),
            None => call,
        };
        call.send(&app.router)
    };
    let patched = send(
        Method::PATCH,
        uri.clone(),
        Some(json!({"description": "v2"})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK);
    send(Method::POST, format!("{uri}/deactivate"), None).await;
    send(Method::POST, format!("{uri}/activate"), None).await;
    let (rotated, _) = app.rotate_ok(&id, 60).await;
    send(
        Method::PATCH,
        uri.clone(),
        Some(json!({"meta": null, "owner_id": "p"})),
    )
    .await;

    let reply = app.events(&id, "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let page = &reply.json;
    assert_eq!(
        actions(page),
        [
            "create",
            "update",
            "deactivate",
            "activate",
            "rotate",
            "update"
        ]
    );
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(6), &json!(50), &json!(0))
    );
    for event in page["items"].as_array().unwrap() {
        assert_eq!(event["actor"], app.admin_key_id.as_str(), "{event}");
        assert_eq!(event["entity_id"], id.as_str());
        assert_eq!(event["key_id"], entity["key_id"]);
        assert_eq!(event["id"].as_str().unwrap().len(), 32);
        chrono::DateTime::parse_from_rfc3339(event["at"].as_str().unwrap()).unwrap();
    }
    let items = &page["items"];
    assert_eq!(items[0]["changes"]["name"], json!([null, "audited"]));
    assert_eq!(items[0]["changes"]["meta"], json!([null, {"a": 1}]));
    assert_eq!(items[1]["changes"], json!({"description": ["v1", "v2"]}));
    assert_eq!(items[2]["changes"], json!({"is_active": [true, false]}));
    assert_eq!(items[3]["changes"], json!({"is_active": [false, true]}));
    assert_eq!(
        items[4]["changes"]["secret"],
        json!(["(hidden)", "(hidden)"])
    );
    assert_eq!(
        items[4]["changes"]["previous_secret_expires_at"][0],
        Value::Null
    );
    assert!(items[4]["changes"]["previous_secret_expires_at"][1].is_string());
    assert_eq!(
        items[5]["changes"],
        json!({"meta": [{"a": 1}, null], "owner_id": ["o", "p"]})
    );
    assert_no_secret(&reply.text, &[&created, &rotated]);

    // Paging.
    let page = app.events(&id, "?offset=2&limit=2").await.json;
    assert_eq!(actions(&page), ["deactivate", "activate"]);
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(6), &json!(2), &json!(2))
    );
    assert_eq!(
        app.events(&id, "?limit=0").await.invalid_fields(),
        ["limit"]
    );

    // The events outlive the key.
    let deleted = send(Method::DELETE, uri.clone(), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = app.events(&id, "").await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(actions(&after.json).last(), Some(&"delete"));
    assert_eq!(after.json["total"], 7);
    let delete_event = &after.json["items"][6];
    assert_eq!(delete_event["actor"], app.admin_key_id.as_str());
    assert_eq!(delete_event["changes"]["name"], json!(["audited", null]));
    assert_no_secret(&after.text, &[&created, &rotated]);
    app.admin(Method::GET, &uri)
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");

    // 404 only for an id with neither a key nor events.
    for missing in ["0123456789abcdef0123456789abcdef", "nope"] {
        app.events(missing, "")
            .await
            .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    }
    Call::get(&format!("/api-keys/{id}/events"))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
}

#[tokio::test]
async fn an_open_router_records_anonymous_changes() {
    let app = TestApp::with_config(AppConfig::default().open_without_authentication()).await;
    let created = Call::post("/api-keys")
        .json(json!({"name": "open"}))
        .send(&app.router)
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json["entity"]["id"].as_str().unwrap();
    let events = Call::get(&format!("/api-keys/{id}/events"))
        .send(&app.router)
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    assert_eq!(
        events.json["items"][0]["actor"],
        keygate_axum::ANONYMOUS_ACTOR
    );
    // `/audit` is open too, and shows the admin key made by the service.
    let audit = Call::get("/audit").send(&app.router).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    let actors: Vec<&str> = audit.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["anonymous", keygate::DEFAULT_ACTOR]);
}

#[tokio::test]
async fn audit_is_newest_first_filtered_paged_and_admin_only() {
    let app = TestApp::new().await;
    // A second admin, created by the service itself (actor "system").
    let (second, second_plain) = key(&app.service, "admin-2", &[DEFAULT_ADMIN_SCOPE]).await;
    let as_second = |method: Method, uri: &str| Call::new(method, uri).bearer(&second_plain);

    let (k1, k1_plain) = app.create(json!({"name": "k1"})).await;
    let k2 = as_second(Method::POST, "/api-keys")
        .json(json!({"name": "k2"}))
        .send(&app.router)
        .await;
    assert_eq!(k2.status, StatusCode::CREATED);
    let k1_id = k1["id"].as_str().unwrap();
    let k2_id = k2.json["entity"]["id"].as_str().unwrap();
    let patched = as_second(Method::PATCH, &format!("/api-keys/{k1_id}"))
        .json(json!({"description": "by the second admin"}))
        .send(&app.router)
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    app.admin(Method::POST, &format!("/api-keys/{k2_id}/deactivate"))
        .send(&app.router)
        .await;
    let (k1_rotated, _) = app.rotate_ok(k1_id, 0).await;

    let all = app.audit("").await;
    assert_eq!(
        actions(&all),
        [
            "rotate",
            "deactivate",
            "update",
            "create",
            "create",
            "create",
            "create"
        ]
    );
    assert_eq!(
        (&all["total"], &all["limit"], &all["offset"]),
        (&json!(7), &json!(50), &json!(0))
    );
    let first = app.admin_key_id.as_str();
    let actors: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [
            first,
            first,
            &second.key_id,
            &second.key_id,
            first,
            "system",
            "system"
        ]
    );
    let plains = [
        app.admin.as_str(),
        &second_plain,
        &k1_plain,
        k2.json["api_key"].as_str().unwrap(),
        &k1_rotated,
    ];
    assert_no_secret(&all.to_string(), &plains);

    // Filters, alone and together.
    assert_eq!(actions(&app.audit("?action=create").await).len(), 4);
    let by_second = app.audit(&format!("?actor={}", second.key_id)).await;
    assert_eq!(actions(&by_second), ["update", "create"]);
    assert_eq!(by_second["total"], 2);
    assert_eq!(
        actions(&app.audit("?actor=system").await),
        ["create", "create"]
    );
    assert_eq!(
        actions(&app.audit("?actor=nobody").await),
        Vec::<&str>::new()
    );
    let both = app
        .audit(&format!("?action=update&actor={}", second.key_id))
        .await;
    assert_eq!(both["total"], 1);
    assert_eq!(both["items"][0]["entity_id"], k1_id);
    let of_k1 = app
        .audit(&format!("?key_id={}", k1["key_id"].as_str().unwrap()))
        .await;
    assert_eq!(actions(&of_k1), ["rotate", "update", "create"]);

    // `since` is inclusive; an offset's `+` may be encoded or not.
    let update_at = all["items"][2]["at"].as_str().unwrap();
    assert!(update_at.ends_with('Z'), "{update_at}");
    let since = app.audit(&format!("?since={update_at}")).await;
    assert_eq!(actions(&since), ["rotate", "deactivate", "update"]);
    let at = chrono::DateTime::parse_from_rfc3339(update_at).unwrap();
    let local = at.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let encoded = local.to_rfc3339().replace('+', "%2B");
    assert_eq!(
        actions(&app.audit(&format!("?since={encoded}")).await).len(),
        3
    );
    let raw_plus = local.to_rfc3339();
    assert!(raw_plus.contains('+'));
    assert_eq!(
        actions(&app.audit(&format!("?since={raw_plus}")).await).len(),
        3
    );
    let future = app.audit("?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["total"], 0);
    let rotations = app
        .audit(&format!("?since={update_at}&action=rotate"))
        .await;
    assert_eq!(actions(&rotations), ["rotate"]);

    // Paging: the total counts every match.
    let page = app.audit("?limit=2").await;
    assert_eq!(actions(&page), ["rotate", "deactivate"]);
    let page = app.audit("?offset=2&limit=2").await;
    assert_eq!(actions(&page), ["update", "create"]);
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(7), &json!(2), &json!(2))
    );
    let page = app.audit("?action=create&offset=3&limit=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 4);

    // Bad values are 422 naming the query field.
    for (query, fields) in [
        ("action=bogus", vec!["action"]),
        ("action=Create", vec!["action"]),
        ("since=yesterday", vec!["since"]),
        ("since=2025-01-01", vec!["since"]),
        ("limit=0", vec!["limit"]),
        ("limit=101", vec!["limit"]),
        ("offset=-1", vec!["offset"]),
        ("action=x&since=y&limit=z", vec!["limit", "action", "since"]),
    ] {
        let reply = app
            .admin(Method::GET, &format!("/audit?{query}"))
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), fields, "{query}");
        assert_eq!(reply.json["detail"][0]["loc"][0], "query", "{query}");
    }

    // Admin only, with JSON answers for everything else under /audit.
    Call::get("/audit")
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    Call::get("/audit")
        .bearer("ak_v1-0123456789abcdef-nope")
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key invalid");
    let not_admin = Call::get("/audit")
        .bearer(&k1_rotated)
        .send(&app.router)
        .await;
    not_admin.assert_detail(
        StatusCode::FORBIDDEN,
        "API key missing required scopes 'keygate:admin'",
    );
    app.admin(Method::POST, "/audit")
        .send(&app.router)
        .await
        .assert_detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    app.admin(Method::GET, "/audit/more")
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "Not Found");
    let big = "x".repeat(65 * 1024);
    let too_large = app
        .admin(Method::GET, "/audit")
        .header("content-length", &big.len().to_string())
        .raw(big)
        .send(&app.router)
        .await;
    too_large.assert_json_4xx(StatusCode::PAYLOAD_TOO_LARGE);
}
