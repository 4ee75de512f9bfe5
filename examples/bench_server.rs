//! The servers `bench/http.sh` loads with wrk. Not a tutorial: see
//! `axum_scopes` for that.
//!
//! `MODE=bare`: `GET /protected` compares the bearer token with a constant.
//! `MODE=keygate`: the same route behind `RequireScopes(["write"])`, a real
//! store (`DATABASE_URL`, SQLite by default) and the service's defaults
//! (Argon2id, cache on); `GET /scoped` is the same route verified by the
//! `Scoped` extractor instead of the layer. Both answer the same JSON. The key is written to
//! `KEY_FILE`; keygate also writes a key with a rate limit that is never
//! reached to `KEY_FILE.limited` (counted in process, or in Redis when
//! `REDIS_URL` is set) and one with credits that never run out to
//! `KEY_FILE.metered` (taken in the store on every request).
//!
//! `MODE=keygate PORT=18002 KEY_FILE=/tmp/k DATABASE_URL=sqlite://target/bench.db cargo run --release --example bench_server`

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use keygate::{
    ApiKeyService, Credits, HashAlgorithm, NewApiKey, Pepper, RateLimit, MAX_CREDITS,
    MAX_WINDOW_LIMIT,
};
use keygate_axum::{KeyVerifier, RequireScopes, Scoped, VerifiedKey};
use keygate_sqlx::SqlRepository;
use serde_json::json;

/// An id as long as a real key's, so both servers send the same bytes.
const BARE_ID: &str = "0123456789abcdef0123456789abcdef";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn protected(VerifiedKey(key): VerifiedKey) -> Json<serde_json::Value> {
    Json(json!({"message": "This is protected data", "id": key.id}))
}

keygate_axum::required_scopes!(Write = ["write"]);

async fn scoped(Scoped(key, _): Scoped<Write>) -> Json<serde_json::Value> {
    Json(json!({"message": "This is protected data", "id": key.id}))
}

async fn keygate_app(key_file: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let repo = SqlRepository::connect(&env("DATABASE_URL", "sqlite://target/bench.db")).await?;
    repo.migrate().await?;
    let algorithm = match env("HASHER", "argon2").as_str() {
        "hmac" => HashAlgorithm::HmacSha256,
        _ => HashAlgorithm::default(),
    };
    let mut builder = ApiKeyService::builder(repo)
        .pepper(Pepper::new("bench-pepper")?)
        .algorithm(algorithm);
    if let Ok(url) = std::env::var("REDIS_URL") {
        let limiter = keygate_redis::RedisRateLimiter::connect(&url).await?;
        builder = builder.shared_rate_limiter(Arc::new(limiter));
    }
    let service = builder.build()?;
    let bench = || NewApiKey::named("bench").with_scopes(["write"]);
    let (_, key) = service.create(bench()).await?;
    std::fs::write(key_file, key.expose())?;
    let never_reached = RateLimit::new("bench", MAX_WINDOW_LIMIT, Duration::from_secs(86_400));
    let (_, limited) = service.create(bench().rate_limited(never_reached)).await?;
    std::fs::write(format!("{key_file}.limited"), limited.expose())?;
    let (_, metered) = service
        .create(bench().with_credits(Credits::new(MAX_CREDITS)))
        .await?;
    std::fs::write(format!("{key_file}.metered"), metered.expose())?;
    let extractor = Router::new()
        .route("/scoped", get(scoped))
        .with_state(KeyVerifier::new(service.clone()));
    Ok(Router::new()
        .route("/protected", get(protected))
        .route_layer(RequireScopes::new(service, ["write"]))
        .merge(extractor))
}

fn bare_app(key_file: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let key =
        "ak_v1-0123456789abcdef-BareBenchmarkConstantSecret0123456789abcdefghijklmnopqrstuvwxyz";
    std::fs::write(key_file, key)?;
    let expected: Arc<str> = format!("Bearer {key}").into();
    Ok(Router::new().route(
        "/protected",
        get(move |headers: axum::http::HeaderMap| {
            let expected = expected.clone();
            async move {
                let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
                if given == Some(expected.as_bytes()) {
                    Json(json!({"message": "This is protected data", "id": BARE_ID}))
                        .into_response()
                } else {
                    let body = Json(json!({"detail": "API key invalid"}));
                    (StatusCode::UNAUTHORIZED, body).into_response()
                }
            }
        }),
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = env("KEY_FILE", "target/bench.key");
    let app = match env("MODE", "keygate").as_str() {
        "bare" => bare_app(&key_file)?,
        "keygate" => keygate_app(&key_file).await?,
        other => return Err(format!("MODE must be bare or keygate, not {other}").into()),
    };
    let addr = format!("127.0.0.1:{}", env("PORT", "18001"));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bench_server listening on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
