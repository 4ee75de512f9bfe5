//! SPEC §6 "Management router": every route with its success and error
//! answers, over the SQLite store.

use axum::http::{Method, StatusCode};
use chrono::{TimeDelta, Utc};
use keygate::KeyStore;
use serde_json::{json, Value};

use crate::support::{Call, TestApp};

pub(crate) const ENTITY_FIELDS: [&str; 14] = [
    "id",
    "key_id",
    "name",
    "description",
    "is_active",
    "created_at",
    "last_used_at",
    "expires_at",
    "scopes",
    "owner_id",
    "meta",
    "previous_secret_expires_at",
    "rate_limits",
    "credits",
];

#[track_caller]
pub(crate) fn assert_entity(v: &Value) {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = ENTITY_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{v}");
    assert_eq!(v["id"].as_str().unwrap().len(), 32);
    chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn create_returns_201_with_the_key_once_and_the_entity() {
    let app = TestApp::new().await;
    let expires = (Utc::now() + TimeDelta::days(30)).to_rfc3339();
    let (entity, plain) = app
        .create(json!({
            "name": "ci", "description": "builds", "is_active": true,
            "scopes": ["read", "api:write"], "expires_at": expires,
        }))
        .await;
    assert_entity(&entity);
    assert_eq!(entity["name"], "ci");
    assert_eq!(entity["description"], "builds");
    assert_eq!(entity["scopes"], json!(["read", "api:write"]));
    assert_eq!(entity["last_used_at"], Value::Null);
    assert!(plain.starts_with(&format!("ak_v1-{}-", entity["key_id"].as_str().unwrap())));
    // The plaintext works, and is nowhere in the stored entity.
    let verified = app.service.verify(&plain, &["api:write"]).await.unwrap();
    assert_eq!(verified.id, entity["id"]);
    assert!(!entity.to_string().contains(&plain[30..]));

    // Minimal body: defaults.
    let (entity, _) = app.create(json!({"name": "min"})).await;
    assert_eq!(entity["rate_limits"], Value::Null);
    assert_eq!(entity["credits"], Value::Null);
    assert_eq!(entity["is_active"], true);
    assert_eq!(entity["scopes"], json!([]));
    assert_eq!(entity["expires_at"], Value::Null);
    assert_eq!(entity["description"], Value::Null);
}

#[tokio::test]
async fn create_422_names_every_bad_field() {
    let app = TestApp::new().await;
    let past = (Utc::now() - TimeDelta::hours(1)).to_rfc3339();
    let create = |body: Value| {
        app.admin(Method::POST, "/api-keys")
            .json(body)
            .send(&app.router)
    };

    let reply = create(json!({
        "name": "", "description": "d".repeat(1025), "scopes": ["ok", "Bad Scope"], "expires_at": past,
    }))
    .await;
    let mut fields = reply.invalid_fields();
    fields.sort();
    assert_eq!(fields, ["description", "expires_at", "name", "scopes"]);
    let first = &reply.json["detail"][0];
    assert_eq!(first["loc"][0], "body");
    assert!(first["msg"].as_str().unwrap().len() > 3);

    assert_eq!(
        create(json!({"name": "n".repeat(129)}))
            .await
            .invalid_fields(),
        ["name"]
    );
    assert_eq!(
        create(json!({"name": "é".repeat(128)})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        create(json!({"description": "x"})).await.invalid_fields(),
        ["name"]
    );
    assert_eq!(create(json!({"name": 5})).await.invalid_fields(), ["name"]);
    assert_eq!(
        create(json!({"name": "a", "scope": ["read"]}))
            .await
            .invalid_fields(),
        ["scope"]
    );
    let reply = create(json!({"name": "a", "scopes": ["read", 7]})).await;
    assert_eq!(reply.invalid_fields(), ["scopes.1"]);
    assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "scopes", 1]));
}

#[tokio::test]
async fn list_is_newest_first_and_paged() {
    let app = TestApp::new().await;
    for name in ["k1", "k2", "k3"] {
        app.create(json!({ "name": name })).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = app.admin(Method::GET, "/api-keys").send(&app.router).await;
    assert_eq!(reply.status, StatusCode::OK);
    // The admin key was created first, so it is last.
    assert_eq!(names(&reply.json), ["k3", "k2", "k1", "admin"]);
    reply
        .json
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_entity);

    let page = app
        .admin(Method::GET, "/api-keys?offset=1&limit=2")
        .send(&app.router)
        .await;
    assert_eq!(names(&page.json), ["k2", "k1"]);
    let edge = app
        .admin(Method::GET, "/api-keys?offset=0&limit=100")
        .send(&app.router)
        .await;
    assert_eq!(edge.status, StatusCode::OK);
}

#[tokio::test]
async fn list_422_on_bad_paging() {
    let app = TestApp::new().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
    ] {
        let reply = app
            .admin(Method::GET, &format!("/api-keys?{query}"))
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), [field], "{query}");
        assert_eq!(reply.json["detail"][0]["loc"], json!(["query", field]));
    }
    let both = app
        .admin(Method::GET, "/api-keys?offset=-1&limit=0")
        .send(&app.router)
        .await;
    assert_eq!(both.invalid_fields(), ["offset", "limit"]);
}

#[tokio::test]
async fn get_by_id_200_and_404() {
    let app = TestApp::new().await;
    let (entity, _) = app.create(json!({"name": "one"})).await;
    let id = entity["id"].as_str().unwrap();
    let reply = app
        .admin(Method::GET, &format!("/api-keys/{id}"))
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, entity);
    for missing in ["0123456789abcdef0123456789abcdef", "nope"] {
        app.admin(Method::GET, &format!("/api-keys/{missing}"))
            .send(&app.router)
            .await
            .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    }
}

#[tokio::test]
async fn patch_updates_given_fields_404_and_422() {
    let app = TestApp::new().await;
    let expires = (Utc::now() + TimeDelta::days(1)).to_rfc3339();
    let (entity, plain) = app
        .create(json!({"name": "old", "description": "keep", "scopes": ["read"], "expires_at": expires}))
        .await;
    let uri = format!("/api-keys/{}", entity["id"].as_str().unwrap());
    let patch = |body: Value| app.admin(Method::PATCH, &uri).json(body).send(&app.router);

    let reply =
        patch(json!({"name": "new", "scopes": ["read", "write"], "clear_expires": true})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_entity(&reply.json);
    assert_eq!(reply.json["name"], "new");
    assert_eq!(reply.json["description"], "keep");
    assert_eq!(reply.json["scopes"], json!(["read", "write"]));
    assert_eq!(reply.json["expires_at"], Value::Null);
    assert!(app.service.verify(&plain, &["write"]).await.is_ok());

    let reply = patch(json!({"is_active": false})).await;
    assert_eq!(reply.json["is_active"], false);

    let mut fields = patch(
        json!({"name": "", "description": "d".repeat(1025), "scopes": ["UPPER"],
        "expires_at": (Utc::now() - TimeDelta::hours(1)).to_rfc3339()}),
    )
    .await
    .invalid_fields();
    fields.sort();
    assert_eq!(fields, ["description", "expires_at", "name", "scopes"]);
    assert_eq!(
        patch(json!({"nmae": "typo"})).await.invalid_fields(),
        ["nmae"]
    );

    app.admin(Method::PATCH, "/api-keys/0123456789abcdef0123456789abcdef")
        .json(json!({"name": "x"}))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let app = TestApp::new().await;
    let (entity, plain) = app.create(json!({"name": "gone"})).await;
    let uri = format!("/api-keys/{}", entity["id"].as_str().unwrap());
    let reply = app.admin(Method::DELETE, &uri).send(&app.router).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.text.is_empty());
    app.admin(Method::DELETE, &uri)
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    app.admin(Method::GET, &uri)
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    assert!(app.service.verify(&plain, &[""; 0]).await.is_err());
}

#[tokio::test]
async fn activate_and_deactivate_are_idempotent() {
    let app = TestApp::new().await;
    let (entity, plain) = app
        .create(json!({"name": "toggle", "scopes": ["read"]}))
        .await;
    let id = entity["id"].as_str().unwrap();
    for _ in 0..2 {
        let reply = app
            .admin(Method::POST, &format!("/api-keys/{id}/deactivate"))
            .send(&app.router)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_entity(&reply.json);
        assert_eq!(reply.json["is_active"], false);
    }
    let refused = Call::post("/api-keys/verify")
        .json(json!({"api_key": plain}))
        .send(&app.router)
        .await;
    refused.assert_detail(StatusCode::FORBIDDEN, "API key inactive");
    for _ in 0..2 {
        let reply = app
            .admin(Method::POST, &format!("/api-keys/{id}/activate"))
            .send(&app.router)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json["is_active"], true);
    }
    for action in ["activate", "deactivate"] {
        app.admin(
            Method::POST,
            &format!("/api-keys/0123456789abcdef0123456789abcdef/{action}"),
        )
        .send(&app.router)
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    }
}

/// A key for the filter tests: name, scopes, active, used, expires in days.
type SeedRow = (
    &'static str,
    &'static [&'static str],
    bool,
    bool,
    Option<i64>,
);

async fn seed(app: &TestApp) {
    let rows: [SeedRow; 5] = [
        ("alpha 100%", &["read"], true, true, Some(10)),
        ("beta_one", &["read", "write"], true, false, Some(40)),
        ("Gamma", &["write"], false, false, None),
        ("delta", &["admin:x"], true, true, None),
        ("ALPHA two", &[], true, false, Some(5)),
    ];
    for (name, scopes, active, used, days) in rows {
        let mut body = json!({"name": name, "scopes": scopes, "is_active": active});
        if let Some(d) = days {
            body["expires_at"] = json!((Utc::now() + TimeDelta::days(d)).to_rfc3339());
        }
        let (entity, _) = app.create(body).await;
        if used {
            let at = Utc::now() - TimeDelta::hours(1);
            app.repo
                .touch(&[(entity["id"].as_str().unwrap().to_owned(), at)])
                .await
                .unwrap();
        }
    }
}

async fn search(app: &TestApp, query: &str, filter: Value) -> Value {
    let reply = app
        .admin(Method::POST, &format!("/api-keys/search{query}"))
        .json(filter)
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json
}

fn names(result: &Value) -> Vec<&str> {
    result["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn search_applies_every_filter_and_pages() {
    let app = TestApp::new().await;
    seed(&app).await;
    let now = Utc::now();
    let in_days = |d: i64| (now + TimeDelta::days(d)).to_rfc3339();
    let not_admin = json!({"scopes_contain_any": ["read", "write", "admin:x"]});

    let all = search(&app, "", json!({})).await;
    assert_eq!(all["total"], 6);
    assert_eq!(
        (all["limit"].clone(), all["offset"].clone()),
        (json!(50), json!(0))
    );
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_entity);

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"is_active": false}), vec!["Gamma"]),
        (
            json!({"name_contains": "alpha"}),
            vec!["ALPHA two", "alpha 100%"],
        ),
        (json!({"name_contains": "100%"}), vec!["alpha 100%"]),
        // `_` and `%` are literal: as SQL wildcards both would match "ALPHA two".
        (json!({"name_contains": "a_t"}), vec![]),
        (json!({"name_contains": "a%t"}), vec![]),
        (json!({"name_contains": "a_one"}), vec!["beta_one"]),
        (json!({"name_exact": "Gamma"}), vec!["Gamma"]),
        (json!({"name_exact": "gamma"}), vec![]),
        (
            json!({"scopes_contain_all": ["read", "write"]}),
            vec!["beta_one"],
        ),
        (
            json!({"scopes_contain_any": ["write", "admin:x"]}),
            vec!["delta", "Gamma", "beta_one"],
        ),
        (
            json!({"never_used": false, "scopes_contain_any": ["read", "admin:x"]}),
            vec!["delta", "alpha 100%"],
        ),
        (
            json!({"never_used": true, "scopes_contain_any": ["read", "write"]}),
            vec!["Gamma", "beta_one"],
        ),
        (
            json!({"expires_before": in_days(20)}),
            vec!["ALPHA two", "alpha 100%"],
        ),
        (json!({"expires_after": in_days(20)}), vec!["beta_one"]),
        (json!({"created_before": in_days(-1)}), vec![]),
        (
            json!({"created_after": in_days(-1), "name_contains": "e"}),
            vec!["delta", "beta_one"],
        ),
        // Scoped so the admin key's own (coalesced) use cannot interfere.
        (
            json!({"last_used_before": in_days(0), "scopes_contain_any": ["read", "write", "admin:x"]}),
            vec!["delta", "alpha 100%"],
        ),
        (
            json!({"last_used_after": in_days(-1), "scopes_contain_any": ["read", "write", "admin:x"]}),
            vec!["delta", "alpha 100%"],
        ),
        (
            json!({"last_used_after": in_days(0), "scopes_contain_any": ["read", "write", "admin:x"]}),
            vec![],
        ),
        (
            json!({"order_by": "name", "order_desc": false, "scopes_contain_any": ["read", "write"]}),
            vec!["Gamma", "alpha 100%", "beta_one"],
        ),
        (
            json!({"order_by": "expires_at", "order_desc": true, "expires_after": in_days(0)}),
            vec!["beta_one", "alpha 100%", "ALPHA two"],
        ),
    ];
    for (filter, expected) in cases {
        let result = search(&app, "", filter.clone()).await;
        assert_eq!(names(&result), expected, "{filter}");
        assert_eq!(result["total"], expected.len(), "{filter}");
        let count = app
            .admin(Method::POST, "/api-keys/count")
            .json(filter.clone())
            .send(&app.router)
            .await;
        assert_eq!(count.status, StatusCode::OK);
        assert_eq!(count.json, json!({"total": expected.len()}), "{filter}");
    }

    // Paging: the total counts every match; query paging wins over the body's.
    let page = search(
        &app,
        "?offset=1&limit=2",
        json!({"offset": 0, "limit": 1, "order_desc": false}),
    )
    .await;
    assert_eq!(names(&page), ["alpha 100%", "beta_one"]);
    assert_eq!(
        (
            page["total"].clone(),
            page["limit"].clone(),
            page["offset"].clone()
        ),
        (json!(6), json!(2), json!(1))
    );
    let page = search(
        &app,
        "",
        json!({"offset": 4, "limit": 5, "order_desc": false}),
    )
    .await;
    assert_eq!(names(&page), ["delta", "ALPHA two"]);
    let page = search(&app, "", not_admin).await;
    assert_eq!(page["total"], 4);
}

#[tokio::test]
async fn search_and_count_422() {
    let app = TestApp::new().await;
    let post =
        |uri: &'static str, body: Value| app.admin(Method::POST, uri).json(body).send(&app.router);
    for uri in ["/api-keys/search", "/api-keys/count"] {
        assert_eq!(
            post(uri, json!({"scopes_contain_all": ["Bad!"]}))
                .await
                .invalid_fields(),
            ["scopes_contain_all"]
        );
        assert_eq!(
            post(uri, json!({"scopes_contain_any": ["ok", "NO"]}))
                .await
                .invalid_fields(),
            ["scopes_contain_any"]
        );
        assert_eq!(
            post(uri, json!({"order_by": "key_hash"}))
                .await
                .invalid_fields(),
            ["order_by"]
        );
        assert_eq!(
            post(uri, json!({"bogus": true})).await.invalid_fields(),
            ["bogus"]
        );
        assert_eq!(
            post(uri, json!({"created_after": "yesterday"}))
                .await
                .invalid_fields(),
            ["created_after"]
        );
        assert_eq!(
            post(uri, json!({"offset": -1})).await.invalid_fields(),
            ["offset"]
        );
    }
    assert_eq!(
        post("/api-keys/search", json!({"limit": 0}))
            .await
            .invalid_fields(),
        ["limit"]
    );
    assert_eq!(
        post("/api-keys/search", json!({"limit": 101}))
            .await
            .invalid_fields(),
        ["limit"]
    );
    let reply = app
        .admin(Method::POST, "/api-keys/search?limit=500&offset=-2")
        .json(json!({}))
        .send(&app.router)
        .await;
    assert_eq!(reply.invalid_fields(), ["offset", "limit"]);
}

#[tokio::test]
async fn verify_route_200_401_403_422_without_admin_key() {
    let app = TestApp::new().await;
    let (entity, plain) = app.create(json!({"name": "v", "scopes": ["read"]})).await;
    let verify = |body: Value| Call::post("/api-keys/verify").json(body).send(&app.router);

    let ok = verify(json!({"api_key": plain, "required_scopes": ["read"]})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // The entity's fields, and what the request used of its limits (none).
    let mut fields = ok.json.clone();
    let usage = fields.as_object_mut().unwrap().remove("usage");
    assert_eq!(usage, Some(json!({"remaining": null, "rate_limits": []})));
    assert_entity(&fields);
    assert_eq!(ok.json["id"], entity["id"]);
    assert!(ok.json["last_used_at"].is_string(), "a verify is a use");
    assert_eq!(
        verify(json!({"api_key": plain})).await.status,
        StatusCode::OK
    );

    let missing = verify(json!({"api_key": "  "})).await;
    missing.assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let invalid = verify(json!({"api_key": "ak_v1-0123456789abcdef-nope"})).await;
    invalid.assert_detail(StatusCode::UNAUTHORIZED, "API key invalid");
    assert_eq!(
        invalid.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );

    let scopes = verify(json!({"api_key": plain, "required_scopes": ["read", "write"]})).await;
    scopes.assert_detail(
        StatusCode::FORBIDDEN,
        "API key missing required scopes 'read', 'write'",
    );
    assert_eq!(
        scopes.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="read write""#)
    );

    assert_eq!(
        verify(json!({"api_key": plain, "required_scopes": ["Bad\""]}))
            .await
            .invalid_fields(),
        ["required_scopes.0"]
    );
    assert_eq!(
        verify(json!({"required_scopes": []}))
            .await
            .invalid_fields(),
        ["api_key"]
    );
}
