//! What `RequireScopes` adds to a request, in process (no sockets): the same
//! route answered by a bare axum router that compares the bearer token with
//! a constant, the same behind a layer that does nothing (`noop_layer`: what
//! any route layer costs in axum), and by one behind `RequireScopes` with
//! the cache warm:
//! `keygate` without a metrics recorder (the library default),
//! `keygate_metrics` with the Prometheus recorder of `keygate serve`
//! (`keygate::telemetry::prometheus`).
//!
//! `cargo bench -p keygate-axum --bench layer`
// criterion_group! declares an undocumented `pub fn`.
#![allow(missing_docs)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use keygate::{ApiKeyService, InMemoryRepository, NewApiKey, Pepper};
use keygate_axum::{RequireScopes, VerifiedKey};
use serde_json::json;
use tower::ServiceExt;

const BARE_KEY: &str =
    "ak_v1-0123456789abcdef-BareBenchmarkConstantSecret0123456789abcdefghijklmnopqrstuvwxyz";

/// An id as long as a real key's, so both routes send the same bytes.
const BARE_ID: &str = "0123456789abcdef0123456789abcdef";

fn request(key: &str) -> Request<Body> {
    Request::get("/protected")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap()
}

/// A router behind `RequireScopes(["write"])` with the cache warm, and its key.
fn protected_router(rt: &tokio::runtime::Runtime) -> (Router, String) {
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .pepper(Pepper::new("bench-pepper").unwrap())
        .build()
        .unwrap();
    let key = rt.block_on(async {
        let (_, key) = service
            .create(NewApiKey::named("bench").with_scopes(["write"]))
            .await
            .unwrap();
        key.expose().to_owned()
    });
    let protected = Router::new()
        .route(
            "/protected",
            get(|VerifiedKey(key): VerifiedKey| async move {
                Json(json!({"message": "This is protected data", "id": key.id}))
            }),
        )
        .route_layer(RequireScopes::new(service, ["write"]))
        // As `axum::serve` does (`into_make_service`): routes built once,
        // not layered again on every call.
        .with_state(());
    // Warm the cache (the first verify hashes with Argon2).
    rt.block_on(async {
        let r = protected.clone().oneshot(request(&key)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    });
    (protected, key)
}

/// Compares the bearer token with a constant and answers the same JSON as
/// the protected route.
async fn bare_handler(headers: axum::http::HeaderMap) -> Json<serde_json::Value> {
    let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    let ok = given.and_then(|g| g.strip_prefix(b"Bearer ")) == Some(BARE_KEY.as_bytes());
    assert!(ok);
    Json(json!({"message": "This is protected data", "id": BARE_ID}))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bare = Router::new()
        .route("/protected", get(bare_handler))
        .with_state(());
    // The same bare route behind a layer that does nothing: what any tower
    // layer on a route costs in axum (a boxed clone and future per level).
    let noop_layer = Router::new()
        .route("/protected", get(bare_handler))
        .route_layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r))
        .with_state(());
    let (protected, key) = protected_router(&rt);
    // Services take their metric handles when built: this one records into
    // the Prometheus recorder of `keygate serve`, whose upkeep runs every 5 s.
    let prometheus = keygate::telemetry::prometheus::Prometheus::install().unwrap();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        prometheus.run_upkeep();
    });
    let (metered, metered_key) = protected_router(&rt);

    let mut g = c.benchmark_group("request");
    g.bench_function("bare", |b| {
        b.to_async(&rt).iter_batched(
            || request(BARE_KEY),
            |req| bare.clone().oneshot(req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("noop_layer", |b| {
        b.to_async(&rt).iter_batched(
            || request(BARE_KEY),
            |req| noop_layer.clone().oneshot(req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("keygate", |b| {
        b.to_async(&rt).iter_batched(
            || request(&key),
            |req| protected.clone().oneshot(req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("keygate_metrics", |b| {
        b.to_async(&rt).iter_batched(
            || request(&metered_key),
            |req| metered.clone().oneshot(req),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
