//! # keygate-axum
//!
//! HTTP for [`keygate`] on axum: protect routes with scoped API keys,
//! mount the key-management API, serve its OpenAPI document and docs page.
//!
//! - [`RequireScopes`]: a tower layer requiring a key holding every given
//!   scope and room in its usage limits for the route's cost
//!   ([`RequireScopes::cost`]); the handler reads the key with the
//!   [`VerifiedKey`] extractor. [`Scoped`] is the typed-marker alternative.
//! - [`ApiError`]: the single mapping from keygate's errors to HTTP
//!   (401 `API key missing` / `API key invalid`, 403, 404, 409, 422, 429
//!   `API key rate limit exceeded` / `API key usage exceeded`, 503).
//! - [`management_router`]: the `/api-keys` routes, admin-protected by default.
//!   Changes made through it are recorded in the audit log as made by the
//!   admin key's `key_id` ([`ANONYMOUS_ACTOR`] when mounted open).
//! - [`audit_router`]: `GET /audit`, the whole audit log, protected the same way.
//! - [`app`]: everything above plus `/openapi.json` and `/docs`.
//! - `dashboard` (feature `dashboard`): the web dashboard at `/ui`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use keygate::{ApiKeyService, InMemoryRepository};
//! use keygate_axum::{AppConfig, RequireScopes, VerifiedKey};
//!
//! async fn protected(VerifiedKey(key): VerifiedKey) -> String {
//!     format!("hello {}", key.id)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ApiKeyService::builder(InMemoryRepository::new()).build()?;
//! let app = Router::new()
//!     .route("/protected", get(protected))
//!     .route_layer(RequireScopes::new(service.clone(), ["read", "write"]))
//!     .merge(keygate_axum::app(service, AppConfig::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod audit;
mod credits;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
mod extract;
pub mod gateway;
mod handlers;
mod json;
mod last_admin;
mod layer;
mod limits;
mod management;
mod openapi;
mod rotation;
mod schemas;
mod sources;

use axum::Router;
use keygate::ApiKeyService;

pub use audit::{audit_router, AUDIT_PATH};
pub use error::ApiError;
pub use extract::{RequiredScopes, Scoped, VerifiedKey};
pub use layer::{KeyVerifier, RequireScopes, RequireScopesFuture, RequireScopesService};
pub use limits::{MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use management::{
    management_router, ManagementConfig, ANONYMOUS_ACTOR, DEFAULT_ADMIN_SCOPE, DEFAULT_BODY_LIMIT,
    DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
};
pub use openapi::{
    docs_router, document_health_routes, document_metrics_route, openapi, DEFAULT_MOUNT_PATH,
};
pub use sources::{KeySources, API_KEY_PARAM, X_API_KEY};

/// What [`app`] mounts, and how.
///
/// ```
/// use keygate_axum::{AppConfig, KeySources};
/// let config = AppConfig::default()
///     .admin_scope("ops:keys")
///     .key_sources(KeySources::default().with_x_api_key())
///     .mount_path("/admin/keys");
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct AppConfig {
    management: ManagementConfig,
    mount_path: String,
    docs: bool,
    health_docs: bool,
    metrics_docs: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            management: ManagementConfig::default(),
            mount_path: DEFAULT_MOUNT_PATH.to_owned(),
            docs: true,
            health_docs: false,
            metrics_docs: false,
        }
    }
}

impl AppConfig {
    /// Replaces the management router's settings.
    ///
    /// ```
    /// use keygate_axum::{AppConfig, ManagementConfig};
    /// let config = AppConfig::default().management(ManagementConfig::default().body_limit(16 * 1024));
    /// # let _ = config;
    /// ```
    pub fn management(mut self, management: ManagementConfig) -> Self {
        self.management = management;
        self
    }

    /// Shorthand for [`ManagementConfig::admin_scope`].
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().admin_scope("ops:keys");
    /// # let _ = config;
    /// ```
    pub fn admin_scope(mut self, scope: impl Into<String>) -> Self {
        self.management = self.management.admin_scope(scope);
        self
    }

    /// Shorthand for [`ManagementConfig::key_sources`].
    ///
    /// ```
    /// use keygate_axum::{AppConfig, KeySources};
    /// let config = AppConfig::default().key_sources(KeySources::default().with_x_api_key());
    /// # let _ = config;
    /// ```
    pub fn key_sources(mut self, sources: KeySources) -> Self {
        self.management = self.management.key_sources(sources);
        self
    }

    /// Shorthand for [`ManagementConfig::open_without_authentication`]:
    /// anyone who reaches the server can manage keys.
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().open_without_authentication();
    /// # let _ = config;
    /// ```
    pub fn open_without_authentication(mut self) -> Self {
        self.management = self.management.open_without_authentication();
        self
    }

    /// Where the management router is mounted (default `/api-keys`); the
    /// OpenAPI document follows.
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().mount_path("/admin/keys");
    /// # let _ = config;
    /// ```
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        self.mount_path = path.into();
        self
    }

    /// Documents `GET /healthz` and `GET /readyz` in `/openapi.json`
    /// ([`document_health_routes`]): for a server that serves them next to
    /// the app, as `keygate serve` does. The routes are the caller's; off
    /// by default, so the document lists only routes the app answers.
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().document_health_routes();
    /// # let _ = config;
    /// ```
    pub fn document_health_routes(mut self) -> Self {
        self.health_docs = true;
        self
    }

    /// Documents `GET /metrics` in `/openapi.json`
    /// ([`document_metrics_route`]): for a server that serves it next to
    /// the app, admin-protected, as `keygate serve` does. Off by default.
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().document_metrics_route();
    /// # let _ = config;
    /// ```
    pub fn document_metrics_route(mut self) -> Self {
        self.metrics_docs = true;
        self
    }

    /// Leaves out `/openapi.json` and `/docs`.
    ///
    /// ```
    /// let config = keygate_axum::AppConfig::default().without_docs();
    /// # let _ = config;
    /// ```
    pub fn without_docs(mut self) -> Self {
        self.docs = false;
        self
    }
}

/// The whole HTTP API: the management router at `/api-keys` (or
/// [`AppConfig::mount_path`]), `GET /audit` (at the root, wherever the
/// management router is), `GET /openapi.json` and `GET /docs`.
///
/// Every error it answers is JSON `{"detail": ...}`: unknown paths anywhere
/// are 404 (the router has a fallback: merge it into a router without one,
/// or set yours after merging with `.fallback(...)`), a request target above
/// [`MAX_URI_BYTES`] is 414, header fields above [`MAX_HEADER_BYTES`] are 431.
///
/// # Panics
/// When the admin scope is not a valid scope, or the mount path does not
/// start with `/`.
///
/// ```
/// use keygate_axum::AppConfig;
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: axum::Router = keygate_axum::app(service, AppConfig::default());
/// ```
pub fn app(service: ApiKeyService, config: AppConfig) -> Router {
    let mount = config.mount_path.trim_end_matches('/');
    let audit = audit_router(service.clone(), config.management.clone());
    let management = management_router(service, config.management);
    let router = if mount.is_empty() {
        management
    } else {
        Router::new().nest(mount, management)
    }
    .merge(audit);
    let router = if config.docs {
        let mut doc = openapi(mount);
        if config.health_docs {
            document_health_routes(&mut doc);
        }
        if config.metrics_docs {
            document_metrics_route(&mut doc);
        }
        router.merge(docs_router(doc))
    } else {
        router
    };
    router
        .fallback(limits::not_found)
        .layer(axum::middleware::from_fn(limits::guard))
}
