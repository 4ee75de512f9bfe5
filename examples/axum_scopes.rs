//! An axum app with a route that requires the `write` scope, the key
//! management API under `/api-keys`, its OpenAPI document and docs page;
//! keys live in a SQLite file. The Rust version of the seed page's FastAPI
//! example.
//!
//! Run with `cargo run --example axum_scopes`, then use the curl lines it
//! prints: the `write` key gets 200 from `/protected/`, the `read` key 403.
//!
//! The management API stays protected (secure by default): the example
//! creates a key holding `keygate:admin` and prints it once.

use axum::routing::get;
use axum::{Json, Router};
use keygate::{ApiKeyService, NewApiKey, Pepper};
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
    let repo = SqlRepository::connect("sqlite://axum_scopes.db").await?;
    repo.migrate().await?;
    let service = ApiKeyService::builder(repo).pepper(pepper).build()?;

    let (_, read_key) = service
        .create(NewApiKey::named("no-scope-key").with_scopes(["read"]))
        .await?;
    let (_, write_key) = service
        .create(NewApiKey::named("with-scope-key").with_scopes(["write"]))
        .await?;
    let (_, admin_key) = service
        .create(NewApiKey::named("admin").with_scopes([DEFAULT_ADMIN_SCOPE]))
        .await?;

    let protected = Router::new()
        .route("/protected/", get(read_protected_data))
        .route("/protected", get(read_protected_data))
        .route_layer(RequireScopes::new(service.clone(), ["write"]));
    let app = protected.merge(keygate_axum::app(service.clone(), AppConfig::default()));

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (read, write, admin) = (read_key.expose(), write_key.expose(), admin_key.expose());
    println!("Bad API Key (no required scopes): '{read}'");
    println!("Good API Key (with required scopes): '{write}'");
    println!("Admin API Key (scope {DEFAULT_ADMIN_SCOPE}, for /api-keys; shown once): '{admin}'");
    println!();
    println!("Try:");
    println!("  curl -i -H 'Authorization: Bearer {write}' {base}/protected/   # 200");
    println!("  curl -i -H 'Authorization: Bearer {read}' {base}/protected/   # 403");
    println!("  curl -i {base}/protected/   # 401");
    println!("  curl -i -H 'Authorization: Bearer {admin}' {base}/api-keys   # the keys");
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
