//! An axum app with a route that requires the `write` scope, the key
//! management API under `/api-keys`, its OpenAPI document and docs page;
//! keys live in `DATABASE_URL` (default `sqlite://axum_scopes.db`, the
//! same variable the `keygate` CLI reads). The Rust version of the seed
//! page's FastAPI example.
//!
//! Run with `cargo run --example axum_scopes`, then use the curl lines it
//! prints: the `write` key gets 200 from `/protected/`, the `read` key 403.
//!
//! The management API stays protected (secure by default): on its first
//! start the example creates three demo keys (one holding `keygate:admin`)
//! and prints them, once. Later starts find them by name and create
//! nothing: a key is shown only when it is made (`keygate rotate ID` gives
//! one a new secret, printed once).

use axum::routing::get;
use axum::{Json, Router};
use keygate::{ApiKeyFilter, ApiKeyService, NewApiKey, Pepper};
use keygate_axum::{AppConfig, RequireScopes, VerifiedKey, DEFAULT_ADMIN_SCOPE};
use keygate_sqlx::SqlRepository;
use serde_json::{json, Value};

async fn read_protected_data(VerifiedKey(key): VerifiedKey) -> Json<Value> {
    Json(json!({
        "message": "This is protected data",
        "apiKey": {
            "id": key.id,
            "name": key.name,
            "description": key.description,
            "isActive": key.is_active,
            "createdAt": key.created_at,
            "expiresAt": key.expires_at,
            "lastUsedAt": key.last_used_at,
        },
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Set API_KEY_PEPPER in every real environment; the placeholder warns.
    let pepper = Pepper::from_env();
    if pepper.is_placeholder() {
        eprintln!("warning: API_KEY_PEPPER is not set; using the insecure placeholder pepper");
    }
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://axum_scopes.db".to_owned());
    let repo = SqlRepository::connect(&url).await?;
    repo.migrate().await?;
    let service = ApiKeyService::builder(repo).pepper(pepper).build()?;

    // The demo keys, each created only if no key of that name exists yet.
    let read = demo_key(&service, "no-scope-key", "read").await?;
    let write = demo_key(&service, "with-scope-key", "write").await?;
    let admin = demo_key(&service, "admin", DEFAULT_ADMIN_SCOPE).await?;

    let protected = Router::new()
        .route("/protected/", get(read_protected_data))
        .route("/protected", get(read_protected_data))
        .route_layer(RequireScopes::new(service.clone(), ["write"]));
    let app = protected.merge(keygate_axum::app(service.clone(), AppConfig::default()));

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    match (read, write, admin) {
        (Some(read), Some(write), Some(admin)) => {
            println!("Bad API Key (no required scopes): '{read}'");
            println!("Good API Key (with required scopes): '{write}'");
            println!(
                "Admin API Key (scope {DEFAULT_ADMIN_SCOPE}, for /api-keys; shown once): '{admin}'"
            );
            println!();
            println!("Try:");
            println!("  curl -i -H 'Authorization: Bearer {write}' {base}/protected/   # 200");
            println!("  curl -i -H 'Authorization: Bearer {read}' {base}/protected/   # 403");
            println!("  curl -i {base}/protected/   # 401");
            println!("  curl -i -H 'Authorization: Bearer {admin}' {base}/api-keys   # the keys");
        }
        _ => {
            println!(
                "The demo keys exist already in {url}: they were printed when they were made."
            );
            println!("A new secret for one of them, printed once: keygate rotate ID (keygate list shows the ids).");
            println!();
            println!("Try:");
            println!("  curl -i {base}/protected/   # 401");
        }
    }
    println!("  open {base}/docs   # API docs (served locally)");
    println!();
    println!("Listening on {base} (Ctrl-C to stop)");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Write the last coalesced `last_used_at` values before exiting.
    service.flush().await?;
    Ok(())
}

/// The plaintext of a new key named `name` with `scope`; `None` when a
/// key of that name exists (an earlier start made it): only hashes are
/// stored, so an existing key cannot be shown again.
async fn demo_key(
    service: &ApiKeyService,
    name: &str,
    scope: &str,
) -> Result<Option<String>, keygate::Error> {
    let filter = ApiKeyFilter {
        name_exact: Some(name.to_owned()),
        limit: Some(1),
        ..ApiKeyFilter::default()
    };
    if !service.find(&filter).await?.is_empty() {
        return Ok(None);
    }
    let (_, key) = service
        .create(NewApiKey::named(name).with_scopes([scope]))
        .await?;
    Ok(Some(key.expose().to_owned()))
}
