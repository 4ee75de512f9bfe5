//! Admin protection, explicit open mounting, body limits and unreadable
//! requests, and a store that is down.

use axum::http::{Method, StatusCode};
use keygate::{ApiKeyService, Pepper};
use keygate_axum::{AppConfig, KeySources};
use serde_json::json;

use crate::support::{key, sqlite_service, Call, TestApp};

#[tokio::test]
async fn management_routes_need_the_admin_scope() {
    let app = TestApp::new().await;
    let (_, plain) = key(&app.service, "reader", &["read"]).await;
    let (target, _) = key(&app.service, "target", &[]).await;
    let id = target.id.as_str();
    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::POST, "/api-keys".into(), Some(json!({"name": "x"}))),
        (Method::GET, "/api-keys".into(), None),
        (Method::GET, format!("/api-keys/{id}"), None),
        (
            Method::PATCH,
            format!("/api-keys/{id}"),
            Some(json!({"name": "y"})),
        ),
        (Method::POST, format!("/api-keys/{id}/activate"), None),
        (Method::POST, format!("/api-keys/{id}/deactivate"), None),
        (Method::POST, "/api-keys/search".into(), Some(json!({}))),
        (Method::POST, "/api-keys/count".into(), Some(json!({}))),
        (Method::DELETE, format!("/api-keys/{id}"), None),
    ];
    for (method, uri, body) in routes {
        let build = |c: Call| match &body {
            Some(b) => c.json(b.clone()),
            None => c,
        };
        let none = build(Call::new(method.clone(), &uri))
            .send(&app.router)
            .await;
        none.assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer"),
            "{method} {uri}"
        );

        let weak = build(Call::new(method.clone(), &uri).bearer(&plain))
            .send(&app.router)
            .await;
        weak.assert_detail(
            StatusCode::FORBIDDEN,
            "API key missing required scopes 'keygate:admin'",
        );
        assert_eq!(
            weak.header("www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="keygate:admin""#)
        );

        let admin = build(app.admin(method.clone(), &uri))
            .send(&app.router)
            .await;
        assert!(admin.status.is_success(), "{method} {uri}: {}", admin.text);
    }
}

#[tokio::test]
async fn admin_scope_and_key_sources_are_configurable() {
    let app = TestApp::with_config(
        AppConfig::default()
            .admin_scope("ops:keys")
            .key_sources(KeySources::default().with_x_api_key()),
    )
    .await;
    // The default admin key no longer suffices...
    let reply = app.admin(Method::GET, "/api-keys").send(&app.router).await;
    reply.assert_detail(
        StatusCode::FORBIDDEN,
        "API key missing required scopes 'ops:keys'",
    );
    // ...a key with the configured scope does, from the opted-in header too.
    let (_, ops) = key(&app.service, "ops", &["ops:keys"]).await;
    let reply = Call::get("/api-keys")
        .header("x-api-key", &ops)
        .send(&app.router)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn open_mounting_is_explicit_and_works_without_a_key() {
    let app = TestApp::with_config(AppConfig::default().open_without_authentication()).await;
    let created = Call::post("/api-keys")
        .json(json!({"name": "open"}))
        .send(&app.router)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let listed = Call::get("/api-keys").send(&app.router).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_json() {
    let app = TestApp::new().await;
    let big = json!({"name": "x", "description": "d".repeat(65 * 1024)}).to_string();
    assert!(big.len() > 64 * 1024);
    // Declared length: refused before reading.
    let declared = app
        .admin(Method::POST, "/api-keys")
        .header("content-type", "application/json")
        .header("content-length", &big.len().to_string())
        .raw(big.clone())
        .send(&app.router)
        .await;
    declared.assert_json_4xx(StatusCode::PAYLOAD_TOO_LARGE);
    // No declared length (streamed): cut while reading.
    for uri in ["/api-keys", "/api-keys/search", "/api-keys/verify"] {
        let streamed = app
            .admin(Method::POST, uri)
            .header("content-type", "application/json")
            .raw(big.clone())
            .send(&app.router)
            .await;
        streamed.assert_json_4xx(StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Just under the limit is read (and then judged on its content).
    let fits = json!({"name": "x", "description": "d".repeat(60 * 1024)});
    let reply = app
        .admin(Method::POST, "/api-keys")
        .json(fits)
        .send(&app.router)
        .await;
    assert_eq!(reply.invalid_fields(), ["description"]);
}

#[tokio::test]
async fn unreadable_requests_are_4xx_with_a_json_detail() {
    let app = TestApp::new().await;
    for uri in [
        "/api-keys",
        "/api-keys/search",
        "/api-keys/count",
        "/api-keys/verify",
    ] {
        let post = || app.admin(Method::POST, uri);
        let malformed = post()
            .header("content-type", "application/json")
            .raw("{\"name\": ")
            .send(&app.router)
            .await;
        malformed.assert_json_4xx(StatusCode::BAD_REQUEST);
        assert!(malformed.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("Malformed JSON"));

        let wrong_type = post()
            .header("content-type", "text/plain")
            .raw("{\"name\": \"x\"}")
            .send(&app.router)
            .await;
        wrong_type.assert_json_4xx(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let no_type = post().raw("{\"name\": \"x\"}").send(&app.router).await;
        no_type.assert_json_4xx(StatusCode::UNSUPPORTED_MEDIA_TYPE);

        let missing = post().send(&app.router).await;
        missing.assert_json_4xx(StatusCode::BAD_REQUEST);
        let empty_json = post()
            .header("content-type", "application/json")
            .send(&app.router)
            .await;
        empty_json.assert_json_4xx(StatusCode::BAD_REQUEST);

        let not_object = post().json(json!([1, 2])).send(&app.router).await;
        not_object.assert_json_4xx(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let patch = app
        .admin(Method::PATCH, &format!("/api-keys/{}", "0".repeat(32)))
        .header("content-type", "application/json")
        .raw("not json")
        .send(&app.router)
        .await;
    patch.assert_json_4xx(StatusCode::BAD_REQUEST);
}

/// A closed SQLite pool: every route answers 503, never 401 or 200.
#[tokio::test]
async fn a_store_that_is_down_is_503() {
    let (_, repo) = sqlite_service().await;
    // No verification cache, so nothing can be answered from memory.
    let service = ApiKeyService::builder(repo.clone())
        .pepper(Pepper::new(crate::support::PEPPER).unwrap())
        .fast_hashing()
        .without_cache()
        .build()
        .unwrap();
    let (entity, admin) = key(&service, "admin", &["keygate:admin", "read", "write"]).await;
    let app = keygate_axum::app(service.clone(), AppConfig::default());
    let protected = axum::Router::new()
        .route("/protected", axum::routing::get(|| async { "secret data" }))
        .route_layer(keygate_axum::RequireScopes::new(service.clone(), ["read"]));
    assert_eq!(
        Call::get("/protected")
            .bearer(&admin)
            .send(&protected)
            .await
            .status,
        StatusCode::OK
    );

    repo.close().await;

    let down = "API key store unavailable";
    Call::get("/protected")
        .bearer(&admin)
        .send(&protected)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    Call::get("/api-keys")
        .bearer(&admin)
        .send(&app)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    Call::get(&format!("/api-keys/{}", entity.id))
        .bearer(&admin)
        .send(&app)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    Call::post("/api-keys/verify")
        .json(json!({"api_key": admin}))
        .send(&app)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    // An unknown key id needs the store too: 503, not 401.
    let unknown = format!("ak_v1-0123456789abcdef-{}", "a".repeat(64));
    Call::get("/protected")
        .bearer(&unknown)
        .send(&protected)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    // No key at all needs no store: still 401.
    Call::get("/protected")
        .send(&protected)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
}

#[test]
fn internal_errors_are_500_without_their_reason_and_conflicts_409() {
    use axum::response::IntoResponse;
    use keygate_axum::ApiError;
    for (error, status, detail) in [
        (
            keygate::Error::Store("password=hunter2 at db:5432".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ),
        (
            keygate::Error::Hash("pepper=hunter2".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ),
        (
            keygate::Error::Conflict("key_id hunter2 exists".into()),
            StatusCode::CONFLICT,
            "API key already exists",
        ),
        (
            keygate::Error::StoreUnavailable("tcp://hunter2:5432 refused".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            "API key store unavailable",
        ),
    ] {
        let response = ApiError::from(error).into_response();
        assert_eq!(response.status(), status);
        let body = futures_body(response);
        assert_eq!(body, json!({"detail": detail}));
    }
}

fn futures_body(response: axum::response::Response) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = rt
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::new().await;
    let id = "0".repeat(32);
    for (method, uri, status) in [
        (
            Method::PUT,
            format!("/api-keys/{id}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api-keys/verify".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            format!("/api-keys/{id}/activate/more"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        for call in [
            Call::new(method.clone(), &uri),
            app.admin(method.clone(), &uri),
        ] {
            let reply = call.send(&app.router).await;
            reply.assert_json_4xx(status);
            let allow = reply.header("allow").is_some();
            assert_eq!(allow, status == StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        }
    }
}

/// `app()` has a JSON 404 fallback of its own, so it merges into a router
/// without one; an application that wants its own fallback sets it after
/// merging (the nested management router keeps its JSON 404).
#[tokio::test]
async fn an_application_fallback_is_set_after_merging_the_app() {
    let (service, _repo) = sqlite_service().await;
    let router: axum::Router = axum::Router::new()
        .route("/mine", axum::routing::get(|| async { "mine" }))
        .merge(keygate_axum::app(service, AppConfig::default()))
        .fallback(|| async { (StatusCode::IM_A_TEAPOT, "mine") });
    assert_eq!(
        Call::get("/mine").send(&router).await.status,
        StatusCode::OK
    );
    let reply = Call::get("/elsewhere").send(&router).await;
    assert_eq!(reply.status, StatusCode::IM_A_TEAPOT);
    Call::get("/api-keys/x/y/z")
        .send(&router)
        .await
        .assert_json_4xx(StatusCode::NOT_FOUND);
}

/// With the default verification cache: a key never verified before, and
/// every management call, still need the store and answer 503.
#[tokio::test]
async fn a_store_that_is_down_is_503_with_the_cache_on() {
    let app = TestApp::new().await;
    let (_, cold) = key(&app.service, "cold", &["read"]).await;
    assert_eq!(
        app.admin(Method::GET, "/api-keys")
            .send(&app.router)
            .await
            .status,
        StatusCode::OK
    );
    app.repo.close().await;
    let down = "API key store unavailable";
    // The admin key is cached, so the handler runs and its store call fails.
    app.admin(Method::GET, "/api-keys")
        .send(&app.router)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    app.admin(Method::POST, "/api-keys")
        .json(json!({"name": "x"}))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
    Call::post("/api-keys/verify")
        .json(json!({"api_key": cold}))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::SERVICE_UNAVAILABLE, down);
}
