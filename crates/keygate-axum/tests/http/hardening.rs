//! Input limits and unambiguous requests: scope lists of at most 100,
//! duplicate JSON keys, repeated credentials, integral floats, and a JSON
//! answer with the right status for every error, anywhere in the app.

use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::Router;
use keygate::MAX_SCOPES_PER_LIST;
use keygate_axum::{
    AppConfig, KeySources, KeyVerifier, RequireScopes, Scoped, MAX_HEADER_BYTES, MAX_URI_BYTES,
};
use serde_json::{json, Value};

use crate::support::{key, Call, TestApp};

fn scopes(n: usize) -> Value {
    json!((0..n).map(|i| format!("s{i}")).collect::<Vec<_>>())
}

#[tokio::test]
async fn filters_take_at_most_100_scopes_per_list() {
    let app = TestApp::new().await;
    for route in ["/api-keys/search", "/api-keys/count"] {
        // The limit itself works on SQLite, both lists at once.
        let ok = app
            .admin(Method::POST, route)
            .json(json!({
                "scopes_contain_all": scopes(MAX_SCOPES_PER_LIST),
                "scopes_contain_any": scopes(MAX_SCOPES_PER_LIST),
            }))
            .send(&app.router)
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{route}: {}", ok.text);
        for field in ["scopes_contain_all", "scopes_contain_any"] {
            let reply = app
                .admin(Method::POST, route)
                .json(json!({ field: scopes(MAX_SCOPES_PER_LIST + 1) }))
                .send(&app.router)
                .await;
            assert_eq!(reply.invalid_fields(), [field], "{route}");
            assert!(reply.text.contains("at most 100"), "{}", reply.text);
        }
        // A thousand used to reach SQLite ("Expression tree is too large": 500).
        let reply = app
            .admin(Method::POST, route)
            .json(json!({"scopes_contain_all": scopes(1000), "scopes_contain_any": scopes(1000)}))
            .send(&app.router)
            .await;
        assert_eq!(
            reply.invalid_fields(),
            ["scopes_contain_all", "scopes_contain_any"],
            "{route}"
        );
    }
}

#[tokio::test]
async fn bodies_take_at_most_100_scopes() {
    let app = TestApp::new().await;
    let (_, plain) = app
        .create(json!({"name": "hundred", "scopes": scopes(MAX_SCOPES_PER_LIST)}))
        .await;
    let (target, _) = key(&app.service, "target", &["read"]).await;
    for n in [MAX_SCOPES_PER_LIST + 1, 1000] {
        let create = app
            .admin(Method::POST, "/api-keys")
            .json(json!({"name": "many", "scopes": scopes(n)}))
            .send(&app.router)
            .await;
        assert_eq!(create.invalid_fields(), ["scopes"]);
        let patch = app
            .admin(Method::PATCH, &format!("/api-keys/{}", target.id))
            .json(json!({ "scopes": scopes(n) }))
            .send(&app.router)
            .await;
        assert_eq!(patch.invalid_fields(), ["scopes"]);
        let verify = Call::post("/api-keys/verify")
            .json(json!({"api_key": plain, "required_scopes": scopes(n)}))
            .send(&app.router)
            .await;
        assert_eq!(verify.invalid_fields(), ["required_scopes"]);
    }
    assert_eq!(
        app.service.get(&target.id).await.unwrap().scopes.as_slice(),
        ["read"]
    );
    let verify = Call::post("/api-keys/verify")
        .json(json!({"api_key": plain, "required_scopes": scopes(MAX_SCOPES_PER_LIST)}))
        .send(&app.router)
        .await;
    assert_eq!(verify.status, StatusCode::OK, "{}", verify.text);
}

#[tokio::test]
async fn a_key_given_twice_in_a_body_is_422_naming_it() {
    let app = TestApp::new().await;
    let (target, plain) = key(&app.service, "target", &["read"]).await;
    let before = app.service.count(&Default::default()).await.unwrap();
    let cases = [
        (
            Method::POST,
            "/api-keys".to_owned(),
            r#"{"name": "x", "scopes": ["read"], "scopes": ["keygate:admin"]}"#.to_owned(),
            "scopes",
        ),
        (
            Method::PATCH,
            format!("/api-keys/{}", target.id),
            r#"{"is_active": true, "is_active": false}"#.to_owned(),
            "is_active",
        ),
        (
            Method::PATCH,
            format!("/api-keys/{}", target.id),
            r#"{"meta": {"plan": "free", "plan": "pro"}}"#.to_owned(),
            "meta.plan",
        ),
        (
            Method::POST,
            "/api-keys/search".to_owned(),
            r#"{"owner_id": "a", "owner_id": "b"}"#.to_owned(),
            "owner_id",
        ),
        (
            Method::POST,
            format!("/api-keys/{}/rotate", target.id),
            r#"{"grace_seconds": 0, "grace_seconds": 60}"#.to_owned(),
            "grace_seconds",
        ),
        (
            Method::POST,
            "/api-keys/verify".to_owned(),
            format!(r#"{{"api_key": "{plain}", "api_key": "x"}}"#),
            "api_key",
        ),
    ];
    for (method, uri, body, field) in cases {
        let reply = app
            .admin(method.clone(), &uri)
            .header("content-type", "application/json")
            .raw(body)
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), [field], "{method} {uri}");
        assert!(reply.text.contains("more than once"), "{}", reply.text);
    }
    // Nothing was created, changed or rotated.
    assert_eq!(
        app.service.count(&Default::default()).await.unwrap(),
        before
    );
    let unchanged = app.service.get(&target.id).await.unwrap();
    assert!(unchanged.is_active && unchanged.meta.is_none());
    assert!(app.service.verify(&plain, &["read"]).await.is_ok());
}

#[tokio::test]
async fn a_credential_given_twice_is_400_even_when_the_first_is_valid() {
    let app = TestApp::new().await;
    let twice = |call: Call, first: &str| {
        call.header("authorization", &format!("Bearer {first}"))
            .header("authorization", "Bearer ak_v1-0000000000000000-nope")
    };
    for (method, uri) in [
        (Method::GET, "/api-keys"),
        (Method::GET, "/audit"),
        (Method::POST, "/api-keys/count"),
    ] {
        let reply = twice(Call::new(method.clone(), uri), &app.admin)
            .json(json!({}))
            .send(&app.router)
            .await;
        reply.assert_json_4xx(StatusCode::BAD_REQUEST);
        assert!(reply.text.contains("Authorization"), "{}", reply.text);
    }

    // An application route behind RequireScopes, and one with `Scoped`.
    let (_, reader) = key(&app.service, "reader", &["read"]).await;
    keygate_axum::required_scopes!(Read = ["read"]);
    let routes: Router = Router::new()
        .route("/layer", get(|| async { "ok" }))
        .route_layer(RequireScopes::new(app.service.clone(), ["read"]))
        .merge(
            Router::new()
                .route("/scoped", get(|_: Scoped<Read>| async { "ok" }))
                .with_state(KeyVerifier::new(app.service.clone())),
        );
    for uri in ["/layer", "/scoped"] {
        let once = Call::get(uri).bearer(&reader).send(&routes).await;
        assert_eq!(once.status, StatusCode::OK, "{uri}");
        twice(Call::get(uri), &reader)
            .send(&routes)
            .await
            .assert_json_4xx(StatusCode::BAD_REQUEST);
    }

    // X-API-Key, when it is a source: twice is 400 too.
    let app = TestApp::with_config(
        AppConfig::default().key_sources(KeySources::default().with_x_api_key()),
    )
    .await;
    let once = Call::get("/api-keys")
        .header("x-api-key", &app.admin)
        .send(&app.router)
        .await;
    assert_eq!(once.status, StatusCode::OK, "{}", once.text);
    Call::get("/api-keys")
        .header("x-api-key", &app.admin)
        .header("x-api-key", &app.admin)
        .send(&app.router)
        .await
        .assert_json_4xx(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_error_of_the_app_is_json_with_its_status() {
    let app = TestApp::new().await;
    let long_query = format!("?q={}", "a".repeat(MAX_URI_BYTES));
    let cases = [
        // Unknown paths, inside and outside the management routes.
        (Method::GET, "/nope".to_owned(), StatusCode::NOT_FOUND),
        (Method::POST, "/".to_owned(), StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/api-keys/a/b/c".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/audit/more".to_owned(), StatusCode::NOT_FOUND),
        (
            Method::GET,
            "/docs/no-such-asset.js".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        // Known paths, other methods.
        (
            Method::POST,
            "/openapi.json".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/api-keys".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::DELETE,
            "/audit".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        // Too long a request target, wherever it points.
        (
            Method::GET,
            format!("/api-keys{long_query}"),
            StatusCode::URI_TOO_LONG,
        ),
        (
            Method::GET,
            format!("/nope{long_query}"),
            StatusCode::URI_TOO_LONG,
        ),
        (
            Method::GET,
            format!("/openapi.json{long_query}"),
            StatusCode::URI_TOO_LONG,
        ),
    ];
    for (method, uri, status) in cases {
        for call in [
            Call::new(method.clone(), &uri),
            app.admin(method.clone(), &uri),
        ] {
            let reply = call.send(&app.router).await;
            reply.assert_json_4xx(status);
            assert!(
                reply.json["detail"].is_string(),
                "{method} {uri}: {}",
                reply.text
            );
            let allow = reply.header("allow").is_some();
            assert_eq!(
                allow,
                status == StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
        }
    }
    // Header fields above 16 KiB in all: 431, on any path.
    let filler = "h".repeat(1000);
    for uri in ["/api-keys", "/nope", "/openapi.json"] {
        let mut call = app.admin(Method::GET, uri);
        for i in 0..=MAX_HEADER_BYTES / 1000 {
            call = call.header(&format!("x-filler-{i}"), &filler);
        }
        call.send(&app.router)
            .await
            .assert_json_4xx(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    // Just under the limits, all is well.
    let near = format!("/api-keys?x={}", "a".repeat(MAX_URI_BYTES - 100));
    let reply = app.admin(Method::GET, &near).send(&app.router).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn integers_may_be_written_with_a_zero_fraction() {
    let app = TestApp::new().await;
    let (target, _) = key(&app.service, "target", &[]).await;
    let listed = app
        .admin(Method::GET, "/api-keys?limit=1.0&offset=0.0")
        .send(&app.router)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    let found = app
        .admin(Method::POST, "/api-keys/search")
        .json(json!({"limit": 1.0, "offset": 1.0}))
        .send(&app.router)
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(
        (found.json["limit"].clone(), found.json["offset"].clone()),
        (json!(1), json!(1))
    );
    let rotated = app
        .admin(Method::POST, &format!("/api-keys/{}/rotate", target.id))
        .json(json!({"grace_seconds": 60.0}))
        .send(&app.router)
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let fractional = app
        .admin(Method::POST, &format!("/api-keys/{}/rotate", target.id))
        .json(json!({"grace_seconds": 60.5}))
        .send(&app.router)
        .await;
    assert_eq!(fractional.invalid_fields(), ["grace_seconds"]);
}

/// `offset` and `limit` of a filter body are checked on `/count` too (it
/// ignores them), and `offset` stays within what a store can page by.
#[tokio::test]
async fn filter_paging_is_checked_wherever_it_is_sent() {
    let app = TestApp::new().await;
    for route in ["/api-keys/search", "/api-keys/count"] {
        for (body, field) in [
            (json!({"limit": 0}), "limit"),
            (json!({"limit": 101}), "limit"),
            (json!({"offset": 9_223_372_036_854_775_808_u64}), "offset"),
        ] {
            let reply = app
                .admin(Method::POST, route)
                .json(body.clone())
                .send(&app.router)
                .await;
            assert_eq!(reply.invalid_fields(), [field], "{route} {body}");
        }
        let max = app
            .admin(Method::POST, route)
            .json(json!({"offset": i64::MAX, "limit": 100}))
            .send(&app.router)
            .await;
        assert_eq!(max.status, StatusCode::OK, "{route}: {}", max.text);
    }
}

/// Timestamps are answered in RFC 3339, whose years have four digits.
#[tokio::test]
async fn an_expiry_past_the_year_9999_in_utc_is_422() {
    let app = TestApp::new().await;
    let (target, _) = key(&app.service, "target", &[]).await;
    let late = "9999-12-31T23:59:59-05:00";
    let create = app
        .admin(Method::POST, "/api-keys")
        .json(json!({"name": "late", "expires_at": late}))
        .send(&app.router)
        .await;
    assert_eq!(create.invalid_fields(), ["expires_at"]);
    let patch = app
        .admin(Method::PATCH, &format!("/api-keys/{}", target.id))
        .json(json!({ "expires_at": late }))
        .send(&app.router)
        .await;
    assert_eq!(patch.invalid_fields(), ["expires_at"]);
    let (entity, _) = app
        .create(json!({"name": "last", "expires_at": "9999-12-31T23:59:59Z"}))
        .await;
    assert_eq!(entity["expires_at"], "9999-12-31T23:59:59Z");
}

/// Times no store can keep the same way (leap seconds, years outside
/// 1000–9999 in UTC) are 422 naming the field, never stored: MariaDB turned
/// a leap-second expiry into "no expiry" (found by fuzz/store_diff).
#[tokio::test]
async fn times_the_stores_cannot_keep_are_422() {
    let app = TestApp::new().await;
    let (target, _) = key(&app.service, "target", &["read"]).await;
    for bad in [
        "2030-06-30T23:59:60Z",
        "9999-12-31T23:59:59-01:00",
        "0999-12-31T23:59:59Z",
    ] {
        let create = app
            .admin(Method::POST, "/api-keys")
            .json(json!({"name": "leap", "expires_at": bad}))
            .send(&app.router)
            .await;
        let mut fields = create.invalid_fields();
        fields.dedup(); // a year before 1000 is also in the past
        assert_eq!(fields, ["expires_at"], "{bad}");
        let patch = app
            .admin(Method::PATCH, &format!("/api-keys/{}", target.id))
            .json(json!({ "expires_at": bad }))
            .send(&app.router)
            .await;
        let mut fields = patch.invalid_fields();
        fields.dedup();
        assert_eq!(fields, ["expires_at"], "{bad}");
        let search = app
            .admin(Method::POST, "/api-keys/search")
            .json(json!({ "created_after": bad }))
            .send(&app.router)
            .await;
        assert_eq!(search.invalid_fields(), ["created_after"], "{bad}");
    }
    assert_eq!(app.service.get(&target.id).await.unwrap().expires_at, None);
}
