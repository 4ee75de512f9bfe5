//! The management router: create, list, get, update, delete, activate,
//! deactivate, search, count and verify keys over HTTP.

use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use keygate::{ApiKeyFilter, ApiKeyService, ApiKeyUpdate, FieldError, NewApiKey};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::layer::RequireScopes;
use crate::openapi::{
    ApiKeyFilterSchema, ApiKeySchema, BearerScheme, ErrorBody, UpdateApiKeySchema,
    ValidationErrorBody,
};
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
    body_limit: usize,
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
struct AppState {
    service: ApiKeyService,
}

/// The management routes, to mount where you like (the OpenAPI document of
/// [`openapi`](crate::openapi) assumes `/api-keys`; [`app`](crate::app) takes
/// care of both).
///
/// # Panics
/// When the configured admin scope is not a valid scope.
///
/// ```
/// use axum::Router;
/// use keygate_axum::{management_router, ManagementConfig};
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: Router = Router::new().nest("/api-keys", management_router(service, ManagementConfig::default()));
/// ```
pub fn management_router(service: ApiKeyService, config: ManagementConfig) -> Router {
    let admin = Router::new()
        .route("/", post(create).get(list))
        .route("/search", post(search))
        .route("/count", post(count))
        .route("/{id}", get(get_one).patch(update).delete(delete))
        .route("/{id}/activate", post(activate))
        .route("/{id}/deactivate", post(deactivate));
    let admin = if config.open {
        admin
    } else {
        admin.route_layer(
            RequireScopes::new(service.clone(), [config.admin_scope]).with_sources(config.sources),
        )
    };
    let limit = config.body_limit;
    admin
        .route("/verify", post(verify))
        .fallback(|| async { ApiError::bad_request(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::bad_request(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(AppState { service })
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
struct EntityId(String);

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
    #[param(value_type = Option<u64>, minimum = 0)]
    offset: Option<String>,
    /// Rows to return (1..=100, default 50).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

struct Page {
    offset: Option<u64>,
    limit: Option<u64>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(p) = Query::<PageParams>::from_request_parts(parts, state).await?;
        let mut errors = Vec::new();
        let offset = p
            .offset
            .as_deref()
            .and_then(|v| match v.trim().parse::<i64>() {
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
        let limit = p
            .limit
            .as_deref()
            .and_then(|v| match v.trim().parse::<i64>() {
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
        if errors.is_empty() {
            Ok(Self { offset, limit })
        } else {
            Err(ApiError::InvalidQuery(errors))
        }
    }
}

fn check_limit(n: i64) -> Result<u64, FieldError> {
    match u64::try_from(n) {
        Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        _ => Err(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_LIMIT}"),
        )),
    }
}

/// Body of `POST /api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    /// 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// At most 1024 characters.
    #[schema(max_length = 1024)]
    description: Option<String>,
    /// Default true.
    is_active: Option<bool>,
    /// Each matches `^[a-z][a-z0-9:_-]*$`.
    #[schema(inline, value_type = Option<Vec<String>>)]
    scopes: Option<Vec<String>>,
    /// Must be in the future (RFC 3339).
    expires_at: Option<DateTime<Utc>>,
}

/// Answer of `POST /api-keys`: the plaintext key, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    /// The full key. It is not stored and cannot be shown again.
    api_key: String,
    #[schema(value_type = ApiKeySchema)]
    entity: keygate::ApiKey,
}

/// Body of `POST /api-keys/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// The full key to check.
    api_key: String,
    /// Scopes the key must all hold.
    #[serde(default)]
    required_scopes: Vec<String>,
}

/// Answer of `POST /api-keys/search`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SearchResult {
    #[schema(value_type = Vec<ApiKeySchema>)]
    items: Vec<keygate::ApiKey>,
    /// Number of keys matching the filter, all pages together.
    total: u64,
    limit: u64,
    offset: u64,
}

/// Answer of `POST /api-keys/count`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CountResult {
    total: u64,
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Create a key; the plaintext key is in the answer, once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<Response> {
    let new = NewApiKey {
        name: Some(body.name),
        description: body.description,
        is_active: body.is_active.unwrap_or(true),
        expires_at: body.expires_at,
        scopes: body.scopes.unwrap_or_default(),
        ..NewApiKey::default()
    };
    let (entity, key) = s.service.create(new).await?;
    let created = CreatedApiKey {
        api_key: key.expose().to_owned(),
        entity,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// One page of keys, newest first.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys",
    params(PageParams),
    responses(
        (status = 200, description = "Keys, newest first", body = Vec<ApiKeySchema>),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 422, description = "Invalid offset or limit", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
async fn list(State(s): State<AppState>, page: Page) -> Result<Json<Vec<keygate::ApiKey>>> {
    let keys = s
        .service
        .list(
            page.offset.unwrap_or(0),
            page.limit.unwrap_or(DEFAULT_PAGE_LIMIT),
        )
        .await?;
    Ok(Json(keys))
}

/// One key by its entity id.
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)")),
    responses(
        (status = 200, description = "The key", body = ApiKeySchema),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_one(
    State(s): State<AppState>,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.get(&id).await?))
}

/// Change some fields of a key.
#[utoipa::path(patch, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)")),
    request_body = UpdateApiKeySchema,
    responses(
        (status = 200, description = "The updated key", body = ApiKeySchema),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
async fn update(
    State(s): State<AppState>,
    EntityId(id): EntityId,
    JsonBody(change): JsonBody<ApiKeyUpdate>,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.update(&id, change).await?))
}

/// Delete a key.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn delete(State(s): State<AppState>, EntityId(id): EntityId) -> Result<StatusCode> {
    s.service.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Activate a key (idempotent).
#[utoipa::path(post, path = "/api-keys/{id}/activate", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)")),
    responses(
        (status = 200, description = "The key, active", body = ApiKeySchema),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn activate(
    State(s): State<AppState>,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.activate(&id).await?))
}

/// Deactivate a key (idempotent); it is refused from now on.
#[utoipa::path(post, path = "/api-keys/{id}/deactivate", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)")),
    responses(
        (status = 200, description = "The key, inactive", body = ApiKeySchema),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn deactivate(
    State(s): State<AppState>,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.deactivate(&id).await?))
}

/// Keys matching a filter, one page. `offset`/`limit` in the query take
/// precedence over the same fields of the body.
#[utoipa::path(post, path = "/api-keys/search", tag = "api-keys",
    params(PageParams),
    request_body = ApiKeyFilterSchema,
    responses(
        (status = 200, description = "Matching keys and their total", body = SearchResult),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 422, description = "Invalid filter or paging", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
async fn search(
    State(s): State<AppState>,
    page: Page,
    JsonBody(mut filter): JsonBody<ApiKeyFilter>,
) -> Result<Json<SearchResult>> {
    let limit = match (page.limit, filter.limit) {
        (Some(q), _) => q,
        (None, Some(b)) => check_limit(i64::try_from(b).unwrap_or(i64::MAX))
            .map_err(|e| ApiError::from(keygate::Error::Validation(vec![e])))?,
        (None, None) => DEFAULT_PAGE_LIMIT,
    };
    filter.offset = page.offset.unwrap_or(filter.offset);
    filter.limit = Some(limit);
    let items = s.service.find(&filter).await?;
    let total = s.service.count(&filter).await?;
    Ok(Json(SearchResult {
        items,
        total,
        limit,
        offset: filter.offset,
    }))
}

/// Number of keys matching a filter (`offset`, `limit` and ordering are ignored).
#[utoipa::path(post, path = "/api-keys/count", tag = "api-keys",
    request_body = ApiKeyFilterSchema,
    responses(
        (status = 200, description = "Number of matching keys", body = CountResult),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 422, description = "Invalid filter", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
async fn count(
    State(s): State<AppState>,
    JsonBody(filter): JsonBody<ApiKeyFilter>,
) -> Result<Json<CountResult>> {
    Ok(Json(CountResult {
        total: s.service.count(&filter).await?,
    }))
}

/// Check a key and its scopes (no admin key needed). Records a use.
#[utoipa::path(post, path = "/api-keys/verify", tag = "api-keys",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The key is valid and holds every required scope", body = ApiKeySchema),
        (status = 401, description = "Missing, malformed, unknown or wrong key", body = ErrorBody),
        (status = 403, description = "Inactive, expired, or a required scope missing", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ValidationErrorBody),
        (status = 503, description = "Key store unavailable", body = ErrorBody),
    ))]
async fn verify(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<VerifyRequest>,
) -> Result<Response> {
    let bad: Vec<FieldError> = body
        .required_scopes
        .iter()
        .enumerate()
        .filter(|(_, s)| !keygate::is_valid_scope(s))
        .map(|(i, s)| {
            FieldError::new(
                format!("required_scopes.{i}"),
                format!("invalid scope {s:?}"),
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(keygate::Error::Validation(bad).into());
    }
    let key = s
        .service
        .verify(&body.api_key, &body.required_scopes)
        .await?;
    Ok(Json(&*key).into_response())
}

/// The OpenAPI document of the routes above, at `/api-keys`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "keygate", description = "API key management: issue keys, store only their hashes, verify them with scopes."),
    paths(create, list, get_one, update, delete, activate, deactivate, search, count, verify),
    components(schemas(
        ApiKeySchema, CreateApiKey, CreatedApiKey, UpdateApiKeySchema, ApiKeyFilterSchema,
        VerifyRequest, SearchResult, CountResult, ErrorBody, ValidationErrorBody
    )),
    modifiers(&BearerScheme),
    tags((name = "api-keys", description = "Manage and verify API keys. Every route but `/verify` needs a key with the admin scope."))
)]
pub(crate) struct ManagementDoc;
