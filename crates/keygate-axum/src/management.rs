//! The management router: create, list, get (by id or key id), update,
//! delete, activate, deactivate, rotate, search, count and verify keys,
//! change their credits, and read one key's audit events, over HTTP.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use keygate::{ApiKeyService, FieldError};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::key_events;
use crate::credits::change_credits;
use crate::error::ApiError;
use crate::extract::VerifiedKey;
use crate::handlers::{
    activate, count, create, deactivate, delete, get_by_key_id, get_one, list, search, update,
    verify,
};
use crate::layer::RequireScopes;
use crate::rotation::rotate;
use crate::sources::KeySources;

/// The scope a key needs to use the management routes, unless configured.
pub const DEFAULT_ADMIN_SCOPE: &str = "keygate:admin";
/// Largest accepted request body: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Page size when a request names none.
pub const DEFAULT_PAGE_LIMIT: u64 = 50;
/// Largest page a request may ask for.
pub const MAX_PAGE_LIMIT: u64 = 100;

/// How the management router is protected and limited.
///
/// Secure by default: every route except `POST /verify` requires a key
/// holding [`DEFAULT_ADMIN_SCOPE`], presented as `Authorization: Bearer`.
///
/// ```
/// use keygate_axum::{KeySources, ManagementConfig};
/// let config = ManagementConfig::default()
///     .admin_scope("ops:keys")
///     .key_sources(KeySources::default().with_x_api_key());
/// assert_eq!(config.admin_scope_name(), "ops:keys");
/// ```
#[derive(Debug, Clone)]
pub struct ManagementConfig {
    admin_scope: String,
    open: bool,
    sources: KeySources,
    pub(crate) body_limit: usize,
}

impl Default for ManagementConfig {
    fn default() -> Self {
        Self {
            admin_scope: DEFAULT_ADMIN_SCOPE.to_owned(),
            open: false,
            sources: KeySources::default(),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

impl ManagementConfig {
    /// The scope required on every route but `/verify`.
    ///
    /// The router panics when built with a scope that does not match
    /// `^[a-z][a-z0-9:_-]*$`.
    ///
    /// ```
    /// let config = keygate_axum::ManagementConfig::default().admin_scope("ops:keys");
    /// # let _ = config;
    /// ```
    pub fn admin_scope(mut self, scope: impl Into<String>) -> Self {
        self.admin_scope = scope.into();
        self
    }

    /// The admin scope in use.
    ///
    /// ```
    /// let config = keygate_axum::ManagementConfig::default();
    /// assert_eq!(config.admin_scope_name(), keygate_axum::DEFAULT_ADMIN_SCOPE);
    /// ```
    pub fn admin_scope_name(&self) -> &str {
        &self.admin_scope
    }

    /// Where the admin key is read from (default: `Authorization: Bearer`).
    ///
    /// ```
    /// use keygate_axum::{KeySources, ManagementConfig};
    /// let config = ManagementConfig::default().key_sources(KeySources::default().with_x_api_key());
    /// # let _ = config;
    /// ```
    pub fn key_sources(mut self, sources: KeySources) -> Self {
        self.sources = sources;
        self
    }

    /// Mounts the routes **without any authentication**: anyone who can
    /// reach them can create, read and delete keys. Only for a router that
    /// sits behind your own authentication, or on a trusted socket.
    ///
    /// ```
    /// let config = keygate_axum::ManagementConfig::default().open_without_authentication();
    /// assert!(config.is_open());
    /// ```
    pub fn open_without_authentication(mut self) -> Self {
        self.open = true;
        self
    }

    /// True when the routes are mounted without authentication.
    ///
    /// ```
    /// assert!(!keygate_axum::ManagementConfig::default().is_open());
    /// ```
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Largest accepted request body in bytes (default 64 KiB); larger
    /// bodies are answered 413.
    ///
    /// ```
    /// let config = keygate_axum::ManagementConfig::default().body_limit(16 * 1024);
    /// # let _ = config;
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) service: ApiKeyService,
    /// The scope of the keys that may manage keys (also in open mode: the
    /// last such key is not removed).
    pub(crate) admin_scope: Arc<str>,
}

/// The actor recorded in the audit log for changes made through a router
/// mounted with [`ManagementConfig::open_without_authentication`].
pub const ANONYMOUS_ACTOR: &str = "anonymous";

/// The service, recording its changes as made by the admin key that
/// authenticated this request (its `key_id`), or [`ANONYMOUS_ACTOR`] when
/// no key did (an open router).
pub(crate) struct Editor(pub(crate) ApiKeyService);

impl FromRequestParts<AppState> for Editor {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let actor = parts
            .extensions
            .get::<VerifiedKey>()
            .map_or(ANONYMOUS_ACTOR, |key| key.key_id.as_str());
        Ok(Self(state.service.with_actor(actor)))
    }
}

/// The management routes, to mount where you like (the OpenAPI document of
/// [`openapi`](crate::openapi) assumes `/api-keys`; [`app`](crate::app) takes
/// care of both). `GET /audit` lives outside this router: mount
/// [`audit_router`](crate::audit_router) next to it.
///
/// # Panics
/// When the configured admin scope is not a valid scope.
///
/// ```
/// use axum::Router;
/// use keygate_axum::{audit_router, management_router, ManagementConfig};
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let config = ManagementConfig::default();
/// let app: Router = Router::new()
///     .nest("/api-keys", management_router(service.clone(), config.clone()))
///     .merge(audit_router(service, config));
/// ```
pub fn management_router(service: ApiKeyService, config: ManagementConfig) -> Router {
    let admin = Router::new()
        .route("/", post(create).get(list))
        .route("/search", post(search))
        .route("/count", post(count))
        .route("/by-key-id/{key_id}", get(get_by_key_id))
        .route("/{id}", get(get_one).patch(update).delete(delete))
        .route("/{id}/activate", post(activate))
        .route("/{id}/deactivate", post(deactivate))
        .route("/{id}/rotate", post(rotate))
        .route("/{id}/credits", post(change_credits))
        .route("/{id}/events", get(key_events));
    let router = protect(admin, &service, &config).route("/verify", post(verify));
    finish(router, service, &config)
}

/// Requires the admin scope on every route of `admin`, unless the
/// configuration opens them.
pub(crate) fn protect(
    admin: Router<AppState>,
    service: &ApiKeyService,
    config: &ManagementConfig,
) -> Router<AppState> {
    if config.open {
        admin
    } else {
        admin.route_layer(
            RequireScopes::new(service.clone(), [config.admin_scope.clone()])
                .with_sources(config.sources),
        )
    }
}

/// JSON 404/405 fallbacks, the state, and the body limit.
pub(crate) fn finish(
    router: Router<AppState>,
    service: ApiKeyService,
    config: &ManagementConfig,
) -> Router {
    let limit = config.body_limit;
    let state = AppState {
        service,
        admin_scope: config.admin_scope.as_str().into(),
    };
    router
        .fallback(|| async { ApiError::bad_request(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::bad_request(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            refuse_large(limit, req, next)
        }))
}

/// Answers 413 before anything else when `Content-Length` is above the
/// limit; streamed bodies are cut by `DefaultBodyLimit` in the extractor.
async fn refuse_large(limit: usize, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::payload_too_large(limit).into_response();
    }
    next.run(req).await
}

/// The `{id}` path segment.
pub(crate) struct EntityId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for EntityId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state).await?;
        Ok(Self(id))
    }
}

/// `?offset=&limit=`, read as text so a bad value is a 422 naming it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Rows to skip (≥ 0, default 0).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    offset: Option<String>,
    /// Rows to return (1..=100, default 50).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

pub(crate) struct Page {
    pub(crate) offset: Option<u64>,
    pub(crate) limit: Option<u64>,
}

impl Page {
    /// Reads `offset` and `limit` given as text, adding a problem per bad
    /// value to `errors`.
    pub(crate) fn parse(
        offset: Option<&str>,
        limit: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> Self {
        let offset = offset.and_then(|v| match parse_integer(v) {
            Ok(n) if n >= 0 => Some(n.unsigned_abs()),
            Ok(_) => {
                errors.push(FieldError::new(
                    "offset",
                    "must be greater than or equal to 0",
                ));
                None
            }
            Err(_) => {
                errors.push(FieldError::new("offset", "must be an integer"));
                None
            }
        });
        let limit = limit.and_then(|v| match parse_integer(v) {
            Ok(n) => match check_limit(n) {
                Ok(n) => Some(n),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            Err(_) => {
                errors.push(FieldError::new("limit", "must be an integer"));
                None
            }
        });
        Self { offset, limit }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(p) = Query::<PageParams>::from_request_parts(parts, state).await?;
        let mut errors = Vec::new();
        let page = Self::parse(p.offset.as_deref(), p.limit.as_deref(), &mut errors);
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(ApiError::InvalidQuery(errors))
        }
    }
}

/// An integer query value; `16.0` counts (JSON Schema's integers include
/// numbers with a zero fraction, and generators send them).
fn parse_integer(text: &str) -> Result<i64, ()> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    let text = text.trim();
    text.parse::<i64>().or_else(|_| match text.parse::<f64>() {
        // In range, the cast is exact.
        Ok(f) if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) => Ok(f as i64),
        _ => Err(()),
    })
}

pub(crate) fn check_limit(n: i64) -> Result<u64, FieldError> {
    match u64::try_from(n) {
        Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        _ => Err(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_LIMIT}"),
        )),
    }
}
