//! Shared setup for the HTTP tests: a service over an in-memory SQLite
//! store (or a SQLite file, for races), keys, and a small request helper
//! around `oneshot`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use keygate::{ApiKey, ApiKeyService, NewApiKey, Pepper};
use keygate_axum::{AppConfig, DEFAULT_ADMIN_SCOPE};
use keygate_sqlx::SqlRepository;
use serde_json::Value;
use tower::ServiceExt;

pub(crate) const PEPPER: &str = "test-pepper";

/// A fast service (HMAC hashing, explicit pepper) over a fresh SQLite
/// database in memory, and the store itself so a test can close it.
pub(crate) async fn sqlite_service() -> (ApiKeyService, SqlRepository) {
    sqlite_service_at("sqlite::memory:").await
}

/// The same over the SQLite database at `url`. `sqlite::memory:` uses one
/// connection, which serializes every request; a file has a pool of
/// several, so concurrent requests really overlap in the store.
pub(crate) async fn sqlite_service_at(url: &str) -> (ApiKeyService, SqlRepository) {
    let repo = SqlRepository::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    repo.migrate().await.expect("migrate");
    let service = ApiKeyService::builder(repo.clone())
        .pepper(Pepper::new(PEPPER).unwrap())
        .fast_hashing()
        .build()
        .unwrap();
    (service, repo)
}

/// Creates a key and returns its entity and plaintext.
pub(crate) async fn key(service: &ApiKeyService, name: &str, scopes: &[&str]) -> (ApiKey, String) {
    let (entity, plain) = service
        .create(NewApiKey::named(name).with_scopes(scopes.iter().copied()))
        .await
        .unwrap();
    (entity, plain.expose().to_owned())
}

/// The full app of `keygate_axum::app` with default config, and a key
/// holding the admin scope.
pub(crate) struct TestApp {
    pub service: ApiKeyService,
    pub repo: SqlRepository,
    pub router: Router,
    /// The admin key's plaintext.
    pub admin: String,
    /// The admin key's public key id: the actor of its changes.
    pub admin_key_id: String,
}

impl TestApp {
    pub(crate) async fn new() -> Self {
        Self::with_config(AppConfig::default()).await
    }

    pub(crate) async fn with_config(config: AppConfig) -> Self {
        Self::build(sqlite_service().await, config).await
    }

    /// The default app over a SQLite file at `path` (created).
    pub(crate) async fn on_file(path: &Path) -> Self {
        let url = format!("sqlite://{}", path.display());
        Self::build(sqlite_service_at(&url).await, AppConfig::default()).await
    }

    async fn build((service, repo): (ApiKeyService, SqlRepository), config: AppConfig) -> Self {
        let (entity, admin) = key(&service, "admin", &[DEFAULT_ADMIN_SCOPE]).await;
        let router = keygate_axum::app(service.clone(), config);
        Self {
            service,
            repo,
            router,
            admin,
            admin_key_id: entity.key_id,
        }
    }

    /// A request to this app carrying the admin key.
    pub(crate) fn admin(&self, method: Method, uri: &str) -> Call {
        Call::new(method, uri).bearer(&self.admin)
    }

    /// Creates a key over HTTP (as admin) and returns (entity JSON, plaintext).
    pub(crate) async fn create(&self, body: Value) -> (Value, String) {
        let reply = self
            .admin(Method::POST, "/api-keys")
            .json(body)
            .send(&self.router)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let plain = reply.json["api_key"].as_str().unwrap().to_owned();
        (reply.json["entity"].clone(), plain)
    }
}

/// One request, built fluently.
pub(crate) struct Call {
    builder: axum::http::request::Builder,
    body: Body,
}

impl Call {
    pub(crate) fn new(method: Method, uri: &str) -> Self {
        Self {
            builder: Request::builder().method(method).uri(uri),
            body: Body::empty(),
        }
    }

    pub(crate) fn get(uri: &str) -> Self {
        Self::new(Method::GET, uri)
    }

    pub(crate) fn post(uri: &str) -> Self {
        Self::new(Method::POST, uri)
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub(crate) fn bearer(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub(crate) fn json(mut self, body: Value) -> Self {
        self.builder = self
            .builder
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(body.to_string());
        self
    }

    pub(crate) fn raw(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    pub(crate) async fn send(self, router: &Router) -> Reply {
        let request = self.builder.body(self.body).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        Reply::read(response).await
    }
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub(crate) async fn read(response: axum::response::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts status, `{"detail": detail}` and a JSON content type.
    #[track_caller]
    pub(crate) fn assert_detail(&self, status: StatusCode, detail: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.json,
            serde_json::json!({ "detail": detail }),
            "{}",
            self.text
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    /// Asserts a 4xx with a JSON `detail` (string or list).
    #[track_caller]
    pub(crate) fn assert_json_4xx(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert!(self.json.get("detail").is_some(), "{}", self.text);
    }

    /// The `field`s named by a 422 body.
    #[track_caller]
    pub(crate) fn invalid_fields(&self) -> Vec<String> {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.text
        );
        self.json["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("detail is not a list: {}", self.text))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A fresh directory under the system's temporary directory, removed (with
/// what it holds) when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn create() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "keygate-axum-test-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
