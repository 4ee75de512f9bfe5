//! SPEC §6 "Protecting routes": every row of the table, key sources, the
//! typed extractor, and a plain tower service.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use chrono::{TimeDelta, Utc};
use keygate::{ApiKeyService, Audit, AuditAction, KeyChange, KeyStore};
use keygate_axum::{KeySources, KeyVerifier, RequireScopes, Scoped, VerifiedKey};
use tower::{ServiceBuilder, ServiceExt};

use crate::support::{key, sqlite_service, Call, Reply};

async fn whoami(VerifiedKey(key): VerifiedKey) -> String {
    key.id.clone()
}

fn protected(service: &ApiKeyService, sources: KeySources) -> Router {
    Router::new()
        .route("/protected", get(whoami))
        .route_layer(RequireScopes::new(service.clone(), ["read", "write"]).with_sources(sources))
}

async fn call(router: &Router, key: Option<&str>) -> Reply {
    let mut c = Call::get("/protected");
    if let Some(k) = key {
        c = c.bearer(k);
    }
    c.send(router).await
}

#[tokio::test]
async fn a_key_with_every_scope_passes_and_the_handler_sees_it() {
    let (service, _repo) = sqlite_service().await;
    let (entity, plain) = key(&service, "rw", &["write", "read", "other"]).await;
    let reply = call(&protected(&service, KeySources::default()), Some(&plain)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.text, entity.id);
}

#[tokio::test]
async fn no_key_is_401_missing_with_a_bearer_challenge() {
    let (service, _repo) = sqlite_service().await;
    let router = protected(&service, KeySources::default());
    for reply in [
        call(&router, None).await,
        Call::get("/protected")
            .header("authorization", "Bearer    ")
            .send(&router)
            .await,
        Call::get("/protected")
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send(&router)
            .await,
    ] {
        reply.assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn malformed_unknown_and_wrong_secret_are_401_invalid() {
    let (service, _repo) = sqlite_service().await;
    let (_, plain) = key(&service, "rw", &["read", "write"]).await;
    let router = protected(&service, KeySources::default());
    let unknown_id = {
        let mut parts: Vec<&str> = plain.split('-').collect();
        parts[1] = "0123456789abcdef";
        parts.join("-")
    };
    let wrong_secret = {
        let (head, last) = plain.split_at(plain.len() - 1);
        format!("{head}{}", if last == "a" { 'b' } else { 'a' })
    };
    for bad in [
        "not-a-key",
        "ak_v1-xyz",
        "other-0123456789abcdef-secret",
        unknown_id.as_str(),
        wrong_secret.as_str(),
    ] {
        let reply = call(&router, Some(bad)).await;
        reply.assert_detail(StatusCode::UNAUTHORIZED, "API key invalid");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn inactive_and_expired_keys_are_403_without_challenge() {
    let (service, repo) = sqlite_service().await;
    let router = protected(&service, KeySources::default());

    let (inactive, plain) = key(&service, "off", &["read", "write"]).await;
    service.deactivate(&inactive.id).await.unwrap();
    let reply = call(&router, Some(&plain)).await;
    reply.assert_detail(StatusCode::FORBIDDEN, "API key inactive");
    assert_eq!(reply.header("www-authenticate"), None);

    // The service refuses a past expiry, so age the stored row directly.
    let (expired, plain) = key(&service, "old", &["read", "write"]).await;
    let age = KeyChange {
        expires_at: Some(Some(Utc::now() - TimeDelta::minutes(1))),
        ..KeyChange::default()
    };
    let audit = Audit {
        actor: "test".into(),
        at: Utc::now(),
        action: AuditAction::Update,
    };
    assert!(repo
        .update(&expired.id, &age, &audit)
        .await
        .unwrap()
        .is_some());
    let reply = call(&router, Some(&plain)).await;
    reply.assert_detail(StatusCode::FORBIDDEN, "API key expired");
    assert_eq!(reply.header("www-authenticate"), None);
}

#[tokio::test]
async fn missing_scopes_are_403_listing_every_required_scope_in_order() {
    let (service, _repo) = sqlite_service().await;
    let router = protected(&service, KeySources::default());
    for held in [&["read"][..], &["write"], &[]] {
        let (_, plain) = key(&service, "partial", held).await;
        let reply = call(&router, Some(&plain)).await;
        reply.assert_detail(
            StatusCode::FORBIDDEN,
            "API key missing required scopes 'read', 'write'",
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="insufficient_scope", scope="read write""#)
        );
    }
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let (service, _repo) = sqlite_service().await;
    let (_, plain) = key(&service, "rw", &["read", "write"]).await;
    let router = protected(&service, KeySources::default());
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let reply = Call::get("/protected")
            .header("authorization", &format!("{scheme} {plain}"))
            .send(&router)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn x_api_key_and_query_are_read_only_when_enabled() {
    let (service, _repo) = sqlite_service().await;
    let (_, plain) = key(&service, "rw", &["read", "write"]).await;
    let by_header = || Call::get("/protected").header("x-api-key", &plain);
    let query_uri = format!("/protected?x=1&api_key={plain}");

    let default = protected(&service, KeySources::default());
    by_header()
        .send(&default)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    Call::get(&query_uri)
        .send(&default)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");

    let header_only = protected(&service, KeySources::default().with_x_api_key());
    assert_eq!(by_header().send(&header_only).await.status, StatusCode::OK);
    Call::get(&query_uri)
        .send(&header_only)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");

    let query_only = protected(&service, KeySources::default().with_query_param());
    assert_eq!(
        Call::get(&query_uri).send(&query_only).await.status,
        StatusCode::OK
    );
    by_header()
        .send(&query_only)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
}

keygate_axum::required_scopes!(ReadWrite = ["read", "write"]);

#[tokio::test]
async fn typed_marker_extractor_requires_its_scopes() {
    async fn handler(Scoped(key, _): Scoped<ReadWrite>) -> String {
        key.name.clone().unwrap_or_default()
    }
    let (service, _repo) = sqlite_service().await;
    let (_, good) = key(&service, "both", &["read", "write"]).await;
    let (_, partial) = key(&service, "reader", &["read"]).await;
    let router = Router::new()
        .route("/typed", get(handler))
        .with_state(KeyVerifier::new(service));

    let ok = Call::get("/typed").bearer(&good).send(&router).await;
    assert_eq!((ok.status, ok.text.as_str()), (StatusCode::OK, "both"));
    let refused = Call::get("/typed").bearer(&partial).send(&router).await;
    refused.assert_detail(
        StatusCode::FORBIDDEN,
        "API key missing required scopes 'read', 'write'",
    );
    Call::get("/typed")
        .send(&router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
}

#[tokio::test]
async fn verified_key_without_the_layer_is_a_500_not_a_pass() {
    let (service, _repo) = sqlite_service().await;
    let (_, plain) = key(&service, "rw", &["read", "write"]).await;
    let router: Router = Router::new().route("/forgot", get(whoami));
    let reply = Call::get("/forgot").bearer(&plain).send(&router).await;
    reply.assert_detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
}

/// The layer on a bare tower service, as tonic or hyper would use it.
#[tokio::test]
async fn the_layer_protects_a_plain_tower_service() {
    let (service, _repo) = sqlite_service().await;
    let (_, good) = key(&service, "rw", &["read", "write"]).await;
    let (_, partial) = key(&service, "r", &["read"]).await;

    let inner = tower::service_fn(|req: Request<String>| async move {
        let key = req.extensions().get::<VerifiedKey>().cloned();
        let body = format!(
            "inner saw {}",
            key.map_or("nobody".into(), |k| k.id.clone())
        );
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    let svc = ServiceBuilder::new()
        .layer(RequireScopes::new(service.clone(), ["read", "write"]))
        .service(inner);

    let request = |key: Option<&str>| {
        let mut b = Request::builder().uri("/rpc.Service/Method");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        b.body(String::from("payload")).unwrap()
    };

    let ok = Reply::read(svc.clone().oneshot(request(Some(&good))).await.unwrap()).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.text.starts_with("inner saw "), "{}", ok.text);
    assert_ne!(ok.text, "inner saw nobody");

    let refused = Reply::read(svc.clone().oneshot(request(Some(&partial))).await.unwrap()).await;
    refused.assert_detail(
        StatusCode::FORBIDDEN,
        "API key missing required scopes 'read', 'write'",
    );
    let missing = Reply::read(svc.oneshot(request(None)).await.unwrap()).await;
    missing.assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
}

#[test]
#[should_panic(expected = "invalid scope")]
fn an_impossible_route_scope_is_refused_at_build_time() {
    let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new())
        .fast_hashing()
        .build()
        .unwrap();
    let _ = RequireScopes::new(service, ["Read Write"]);
}
