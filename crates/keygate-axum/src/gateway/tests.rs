//! `/auth` in process: statuses, identity headers, limits, the default,
//! path tricks, reloads.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use keygate::{ApiKeyService, Credits, InMemoryRepository, NewApiKey, RateLimit};
use tower::ServiceExt;

use super::*;

const POLICY: &str = r#"
default = "deny"
[[route]]
methods = ["GET", "HEAD"]
path = "/reports/**"
scopes = ["read"]
[[route]]
methods = ["POST"]
path = "/reports/**"
scopes = ["write"]
cost = 5
[[route]]
path = "/admin/**"
scopes = ["admin"]
"#;

struct World {
    app: Router,
    policy: SharedPolicy,
    reader: String,
    reader_id: String,
    reader_key_id: String,
    writer: String,
    admin: String,
}

async fn world(policy: &str) -> World {
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .fast_hashing()
        .build()
        .unwrap();
    let (reader_entity, reader) = service
        .create(
            NewApiKey::named("reader")
                .with_scopes(["read", "extra"])
                .owned_by("team-7"),
        )
        .await
        .unwrap();
    let (_, writer) = service
        .create(
            NewApiKey::named("writer")
                .with_scopes(["read", "write"])
                .with_credits(Credits::new(10)),
        )
        .await
        .unwrap();
    let (_, admin) = service
        .create(NewApiKey::named("admin").with_scopes(["admin"]))
        .await
        .unwrap();
    let shared = SharedPolicy::new(Policy::from_toml_str(policy).unwrap());
    World {
        app: router(KeyVerifier::new(service), shared.clone()),
        policy: shared,
        reader: reader.expose().to_owned(),
        reader_id: reader_entity.id.clone(),
        reader_key_id: reader_entity.key_id.clone(),
        writer: writer.expose().to_owned(),
        admin: admin.expose().to_owned(),
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn detail(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        v["detail"].as_str().unwrap_or_default().to_owned()
    }
}

async fn send(app: &Router, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().method("GET").uri(AUTH_PATH);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `/auth` as Traefik or Caddy call it.
async fn forward(app: &Router, method: &str, uri: &str, key: Option<&str>) -> Answer {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("x-forwarded-method", method), ("x-forwarded-uri", uri)];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    send(app, &headers).await
}

#[tokio::test]
async fn gateway_auth_allows_with_identity_headers() {
    let w = world(POLICY).await;
    for headers in [
        // Traefik, Caddy
        [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/reports/2024?x=1"),
        ],
        // nginx
        [
            ("x-original-method", "GET"),
            ("x-original-uri", "/reports/2024?x=1"),
        ],
    ] {
        let bearer = format!("Bearer {}", w.reader);
        let mut all = headers.to_vec();
        all.push(("authorization", &bearer));
        let a = send(&w.app, &all).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body, "");
        assert_eq!(a.header(X_KEYGATE_KEY_ID), Some(w.reader_key_id.as_str()));
        assert_eq!(a.header(X_KEYGATE_ENTITY_ID), Some(w.reader_id.as_str()));
        assert_eq!(a.header(X_KEYGATE_OWNER_ID), Some("team-7"));
        assert_eq!(a.header(X_KEYGATE_SCOPES), Some("read extra"));
        assert!(
            a.header("ratelimit-limit").is_none(),
            "no limits, no headers"
        );
        assert!(a.header("www-authenticate").is_none());
    }
    // No owner: the header is left out, not empty.
    let a = forward(&w.app, "HEAD", "/reports/x", Some(&w.writer)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.header(X_KEYGATE_OWNER_ID).is_none());
    assert_eq!(a.header(X_KEYGATE_SCOPES), Some("read write"));
    // `/auth` answers whatever method the proxy uses for it.
    for method in ["POST", "HEAD", "PUT", "OPTIONS"] {
        let request = Request::builder()
            .method(method)
            .uri(AUTH_PATH)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/reports/x")
            .header("authorization", format!("Bearer {}", w.reader))
            .body(Body::empty())
            .unwrap();
        let response = w.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{method}");
    }
}

#[tokio::test]
async fn gateway_auth_refusals_are_the_layers() {
    let w = world(POLICY).await;
    let missing = forward(&w.app, "GET", "/reports/x", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(missing.detail(), "API key missing");

    // The last character changed (to one it is not: a key ending in x
    // would otherwise stay right, and this test pass by luck no more).
    let last = if w.reader.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &w.reader[..w.reader.len() - 1]);
    let invalid = forward(&w.app, "GET", "/reports/x", Some(&wrong)).await;
    assert_eq!(invalid.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        invalid.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );

    let scope = forward(&w.app, "POST", "/reports/x", Some(&w.reader)).await;
    assert_eq!(scope.status, StatusCode::FORBIDDEN);
    assert_eq!(
        scope.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="write""#)
    );
    assert!(scope.header(X_KEYGATE_KEY_ID).is_none());

    let unmatched = forward(&w.app, "GET", "/other", Some(&w.admin)).await;
    assert_eq!(unmatched.status, StatusCode::FORBIDDEN);
    assert_eq!(
        unmatched.detail(),
        "No gateway policy route matches this request"
    );
    let method = forward(&w.app, "DELETE", "/reports/x", Some(&w.writer)).await;
    assert_eq!(method.status, StatusCode::FORBIDDEN, "no route for DELETE");

    // A misconfigured proxy: 403 (nginx shows only 401/403 as they are).
    let bearer = format!("Bearer {}", w.reader);
    let no_uri = send(
        &w.app,
        &[("x-forwarded-method", "GET"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(no_uri.status, StatusCode::FORBIDDEN);
    assert_eq!(no_uri.detail(), "no forwarded URI");
    let no_method = send(
        &w.app,
        &[("x-original-uri", "/reports/x"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(no_method.status, StatusCode::FORBIDDEN);
    assert_eq!(no_method.detail(), "no forwarded method");

    // A client adding the other proxy's header cannot steer the decision.
    let conflict = send(
        &w.app,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/admin/x"),
            ("x-original-uri", "/reports/x"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(conflict.status, StatusCode::FORBIDDEN);
    assert!(
        conflict.detail().contains("Conflicting"),
        "{}",
        conflict.body
    );
    let same = send(
        &w.app,
        &[
            ("x-forwarded-method", "GET"),
            ("x-original-method", "GET"),
            ("x-forwarded-uri", "/reports/x"),
            ("x-original-uri", "/reports/x"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "agreeing headers are fine");
    let twice = send(
        &w.app,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/reports/x"),
            ("x-forwarded-uri", "/reports/y"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(twice.status, StatusCode::FORBIDDEN);

    // A key sent twice is the layer's 400, made a 403 for nginx.
    let other = format!("Bearer {}", w.admin);
    let two_keys = send(
        &w.app,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/reports/x"),
            ("authorization", &bearer),
            ("authorization", &other),
        ],
    )
    .await;
    assert_eq!(two_keys.status, StatusCode::FORBIDDEN);
    assert!(
        two_keys.detail().contains("More than one"),
        "{}",
        two_keys.body
    );
}

#[tokio::test]
async fn gateway_auth_path_tricks_never_reach_a_forbidden_route() {
    let w = world(POLICY).await;
    // The reader may GET /reports/**, never /admin/**.
    for trick in [
        "/reports/../admin",
        "/reports/../admin/users",
        "//admin",
        "//reports/x",
        "/reports//../admin",
        "/reports/%2e%2e/admin",
        "/reports/%2E%2E/admin",
        "/reports/.%2e/admin",
        "/reports%2F..%2Fadmin",
        "/reports%2Fx",
        "/reports%2fx",
        "/reports/..%2Fadmin",
        "/reports/..%5Cadmin",
        "/reports\\..\\admin",
        "/REPORTS/x",
        "/Reports/x",
        "/reports/..;/admin",
        "/reports/x/../../admin",
        "/reports/../../admin",
        "/reports/%00/../../admin",
        "/reports/%C0%AE%C0%AE/admin",
        "/admin",
        "/admin/x",
    ] {
        let a = forward(&w.app, "GET", trick, Some(&w.reader)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{trick}: {}", a.body);
        assert!(a.header(X_KEYGATE_KEY_ID).is_none(), "{trick}");
    }
    // What normalizes to a reports path is a reports path.
    for fine in [
        "/reports/./x",
        "/reports/x/../y",
        "/reports/%78",
        "/reports/%252e%252e/admin",
        "/reports/x?next=/../admin",
    ] {
        let a = forward(&w.app, "GET", fine, Some(&w.reader)).await;
        assert_eq!(a.status, StatusCode::OK, "{fine}: {}", a.body);
    }
    // `%252e` is decoded once: a literal `%2e` segment, not a dot, so the
    // admin key (no `read`) cannot use it to climb into /admin.
    let a = forward(&w.app, "GET", "/reports/%252e%252e/admin", Some(&w.admin)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = forward(&w.app, "GET", "/reports/../admin/x", Some(&w.admin)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Refusals say why.
    let a = forward(&w.app, "GET", "//admin", Some(&w.admin)).await;
    assert_eq!(a.detail(), "Path refused: empty path segment (//)");
}

#[tokio::test]
async fn gateway_auth_rate_limits_and_costs_apply() {
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .fast_hashing()
        .build()
        .unwrap();
    let (_, limited) = service
        .create(
            NewApiKey::named("limited")
                .with_scopes(["read", "write"])
                .rate_limited(RateLimit::new("burst", 2, Duration::from_secs(60))),
        )
        .await
        .unwrap();
    let (_, metered) = service
        .create(
            NewApiKey::named("metered")
                .with_scopes(["write"])
                .with_credits(Credits::new(10)),
        )
        .await
        .unwrap();
    let app = router(
        KeyVerifier::new(service),
        SharedPolicy::new(Policy::from_toml_str(POLICY).unwrap()),
    );
    for remaining in ["1", "0"] {
        let a = forward(&app, "GET", "/reports/x", Some(limited.expose())).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.header("ratelimit-limit"), Some("2"));
        assert_eq!(a.header("ratelimit-remaining"), Some(remaining));
        assert!(a.header("ratelimit-reset").is_some());
    }
    let a = forward(&app, "GET", "/reports/x", Some(limited.expose())).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.detail(), "API key rate limit exceeded");
    let retry: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(a.header("ratelimit-remaining"), Some("0"));
    assert!(a.header(X_KEYGATE_KEY_ID).is_none());

    // POST /reports/** costs 5: 10 credits are two requests.
    for _ in 0..2 {
        let a = forward(&app, "POST", "/reports/x", Some(metered.expose())).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let a = forward(&app, "POST", "/reports/x", Some(metered.expose())).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.detail(), "API key usage exceeded");
}

#[tokio::test]
async fn gateway_default_allow_skips_the_key_check_for_unmatched_requests() {
    let w = world(&POLICY.replace(r#"default = "deny""#, r#"default = "allow""#)).await;
    for key in [None, Some("not-a-key"), Some(w.reader.as_str())] {
        let a = forward(&w.app, "GET", "/public/page", key).await;
        assert_eq!(a.status, StatusCode::OK, "{key:?}: {}", a.body);
        assert_eq!(a.body, "");
        assert!(
            a.header(X_KEYGATE_KEY_ID).is_none(),
            "nothing identifies the caller"
        );
        assert!(a.header(X_KEYGATE_SCOPES).is_none());
    }
    // Matched routes still need a valid key with their scopes.
    let a = forward(&w.app, "GET", "/reports/x", None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = forward(&w.app, "GET", "/admin/x", Some(&w.reader)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // Path refusals come before the default.
    let a = forward(&w.app, "GET", "//admin/x", None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn gateway_policy_swaps_take_effect_for_the_next_request() {
    let w = world(POLICY).await;
    let a = forward(&w.app, "GET", "/new/x", Some(&w.reader)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    w.policy.store(
        Policy::from_toml_str("[[route]]\npath = \"/new/*\"\nscopes = [\"extra\"]\n").unwrap(),
    );
    let a = forward(&w.app, "GET", "/new/x", Some(&w.reader)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = forward(&w.app, "GET", "/reports/x", Some(&w.reader)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "the old routes are gone");
}
