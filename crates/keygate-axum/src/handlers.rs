//! The management handlers and their request and response bodies
//! (rotation and the audit log are in `rotation.rs` and `audit.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use keygate::{ApiKeyFilter, ApiKeyUpdate, FieldError, Meta, NewApiKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::management::{
    check_limit, AppState, Editor, EntityId, Page, PageParams, DEFAULT_PAGE_LIMIT,
};
use crate::openapi::{
    ApiKeyFilterSchema, ApiKeySchema, ErrorBody, UpdateApiKeySchema, ValidationErrorBody,
};

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
    scopes: Option<Vec<String>>,
    /// Must be in the future (RFC 3339).
    expires_at: Option<DateTime<Utc>>,
    /// The application's user, team or customer the key belongs to
    /// (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256)]
    owner_id: Option<String>,
    /// The application's own data: a JSON object of at most 8 KiB
    /// (compact JSON), returned with the entity.
    #[schema(value_type = Option<Object>)]
    meta: Option<Meta>,
}

/// Answer of `POST /api-keys` and `POST /api-keys/{id}/rotate`: the
/// plaintext key, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey<'a> {
    /// The full key. It is not stored and cannot be shown again.
    pub(crate) api_key: &'a str,
    #[schema(value_type = ApiKeySchema)]
    pub(crate) entity: keygate::ApiKey,
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
pub(crate) async fn create(
    Editor(service): Editor,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<Response> {
    let new = NewApiKey {
        name: Some(body.name),
        description: body.description,
        is_active: body.is_active.unwrap_or(true),
        expires_at: body.expires_at,
        scopes: body.scopes.unwrap_or_default(),
        owner_id: body.owner_id,
        meta: body.meta,
        ..NewApiKey::default()
    };
    let (entity, key) = service.create(new).await?;
    // Borrowed, so the plaintext is not copied out of its zeroizing holder.
    let created = CreatedApiKey {
        api_key: key.expose(),
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
pub(crate) async fn list(
    State(s): State<AppState>,
    page: Page,
) -> Result<Json<Vec<keygate::ApiKey>>> {
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
pub(crate) async fn get_one(
    State(s): State<AppState>,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.get(&id).await?))
}

/// One key by its public key id (the middle part of the key string), so a
/// leaked key can be traced to its entity in one step.
#[utoipa::path(get, path = "/api-keys/by-key-id/{key_id}", tag = "api-keys",
    params(("key_id" = String, Path, description = "Public key id (16 hex characters)")),
    responses(
        (status = 200, description = "The key", body = ApiKeySchema),
        (status = 401, description = "No or bad admin key", body = ErrorBody),
        (status = 403, description = "Admin scope missing", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_by_key_id(
    State(s): State<AppState>,
    EntityId(key_id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.get_by_key_id(&key_id).await?))
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
pub(crate) async fn update(
    Editor(service): Editor,
    EntityId(id): EntityId,
    JsonBody(change): JsonBody<ApiKeyUpdate>,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(service.update(&id, change).await?))
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
pub(crate) async fn delete(Editor(service): Editor, EntityId(id): EntityId) -> Result<StatusCode> {
    service.delete(&id).await?;
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
pub(crate) async fn activate(
    Editor(service): Editor,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(service.activate(&id).await?))
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
pub(crate) async fn deactivate(
    Editor(service): Editor,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(service.deactivate(&id).await?))
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
pub(crate) async fn search(
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
pub(crate) async fn count(
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
pub(crate) async fn verify(
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
