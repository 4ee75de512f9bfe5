//! The management handlers and their request and response bodies
//! (rotation and the audit log are in `rotation.rs` and `audit.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use keygate::{
    ApiKeyFilter, ApiKeyUpdate, Credits, FieldError, Meta, NewApiKey, RateLimit, Usage, MAX_COST,
    MAX_SCOPES_PER_LIST,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::last_admin::{refuse_last_admin, Change};
use crate::management::{
    check_limit, AppState, Editor, EntityId, Page, PageParams, DEFAULT_PAGE_LIMIT,
};
use crate::schemas::{
    ApiKeyFilterSchema, ApiKeySchema, CreditsSchema, ErrorBody, RateLimitSchema, Scope,
    UpdateApiKeySchema, ValidationErrorBody, VerifiedApiKeySchema,
};

/// Body of `POST /api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    /// 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128, examples("billing-service"))]
    name: String,
    /// At most 1024 characters.
    #[schema(max_length = 1024, examples("Invoices and payment webhooks"))]
    description: Option<String>,
    /// Default true.
    #[schema(examples(true))]
    is_active: Option<bool>,
    /// At most 100, each matching `^[a-z][a-z0-9:_-]*$` (duplicates are dropped).
    #[schema(value_type = Option<Vec<Scope>>, max_items = 100)]
    scopes: Option<Vec<String>>,
    /// Must be in the future (RFC 3339).
    #[schema(examples("2030-01-01T00:00:00Z"))]
    expires_at: Option<DateTime<Utc>>,
    /// The application's user, team or customer the key belongs to
    /// (1 to 256 characters).
    #[schema(min_length = 1, max_length = 256, examples("team-7"))]
    owner_id: Option<String>,
    /// The application's own data: a JSON object of at most 8 KiB
    /// (compact JSON), returned with the entity.
    #[schema(value_type = Option<Object>)]
    meta: Option<Meta>,
    /// Rate-limit windows (1 to 8, names unique); absent or `null`: no
    /// rate limit.
    #[schema(value_type = Option<Vec<RateLimitSchema>>, min_items = 1, max_items = 8)]
    rate_limits: Option<Vec<RateLimit>>,
    /// Usage credits; absent or `null`: unlimited.
    #[schema(value_type = Option<CreditsSchema>)]
    credits: Option<Credits>,
}

/// Answer of `POST /api-keys` and `POST /api-keys/{id}/rotate`: the
/// plaintext key, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey<'a> {
    /// The full key. It is not stored and cannot be shown again.
    #[schema(examples(
        "ak_v1-7a74caa323a5410d-Q2kR8vN4xT7bL1mZ9cW3yH6pD0fJ5sA2gE8uK4nV7qB1tX3rM6zC9wY0hP5dL2jF8"
    ))]
    pub(crate) api_key: &'a str,
    #[schema(value_type = ApiKeySchema)]
    pub(crate) entity: keygate::ApiKey,
}

/// Body of `POST /api-keys/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest {
    /// The full key to check.
    #[schema(examples(
        "ak_v1-7a74caa323a5410d-Q2kR8vN4xT7bL1mZ9cW3yH6pD0fJ5sA2gE8uK4nV7qB1tX3rM6zC9wY0hP5dL2jF8"
    ))]
    api_key: String,
    /// Scopes the key must all hold (at most 100).
    #[serde(default)]
    #[schema(value_type = Vec<Scope>, max_items = 100)]
    required_scopes: Vec<String>,
    /// What this request takes from the key's rate limits and credits (0
    /// to 1000, default 1). 0 checks that one more request would pass and
    /// takes nothing.
    #[serde(default = "one")]
    #[schema(minimum = 0, maximum = 1000, default = 1)]
    cost: u64,
}

fn one() -> u64 {
    1
}

/// Answer of `POST /api-keys/verify`: the entity's fields and `usage`.
#[derive(Serialize)]
pub(crate) struct VerifiedApiKey<'a> {
    #[serde(flatten)]
    entity: &'a keygate::ApiKey,
    usage: &'a Usage,
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

/// An expiry must be writable back as RFC 3339, whose years have four
/// digits: `9999-12-31T23:59:59-05:00` is a valid input but lands in the
/// year 10000 in UTC.
fn check_expiry_year(expires_at: Option<DateTime<Utc>>) -> Result<()> {
    use chrono::Datelike;
    match expires_at {
        Some(t) if t.year() > 9999 => Err(ApiError::invalid_body_field(
            "expires_at",
            "must be before the year 10000 (UTC)",
        )),
        _ => Ok(()),
    }
}

/// Create a key; the plaintext key is in the answer, once.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKey),
        (status = 409, description = "A key with the same key id exists (a collision of random ids)", body = ErrorBody),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid fields, a field given twice, or a body that is not an object", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    Editor(service): Editor,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<Response> {
    check_expiry_year(body.expires_at)?;
    let new = NewApiKey {
        name: Some(body.name),
        description: body.description,
        is_active: body.is_active.unwrap_or(true),
        expires_at: body.expires_at,
        scopes: body.scopes.unwrap_or_default(),
        owner_id: body.owner_id,
        meta: body.meta,
        rate_limits: body.rate_limits,
        credits: body.credits,
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
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    responses(
        (status = 200, description = "The key", body = ApiKeySchema),
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
    params(("key_id" = String, Path, description = "Public key id (16 hex characters)", max_length = 128)),
    responses(
        (status = 200, description = "The key", body = ApiKeySchema),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn get_by_key_id(
    State(s): State<AppState>,
    EntityId(key_id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(s.service.get_by_key_id(&key_id).await?))
}

/// Change some fields of a key. Refused (409) when it would deactivate the
/// last active admin key or take the admin scope from it.
#[utoipa::path(patch, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    request_body = UpdateApiKeySchema,
    responses(
        (status = 200, description = "The updated key", body = ApiKeySchema),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The change would deactivate the last active admin key or remove its admin scope", body = ErrorBody),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid fields, a field given twice, or a body that is not an object", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Editor(service): Editor,
    EntityId(id): EntityId,
    JsonBody(change): JsonBody<ApiKeyUpdate>,
) -> Result<Json<keygate::ApiKey>> {
    check_expiry_year(change.expires_at)?;
    refuse_last_admin(&service, &s.admin_scope, &id, Change::Update(&change)).await?;
    Ok(Json(service.update(&id, change).await?))
}

/// Delete a key. Refused (409) for the last active admin key.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is the last active admin key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Editor(service): Editor,
    EntityId(id): EntityId,
) -> Result<StatusCode> {
    refuse_last_admin(&service, &s.admin_scope, &id, Change::Delete).await?;
    service.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Activate a key (idempotent).
#[utoipa::path(post, path = "/api-keys/{id}/activate", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    responses(
        (status = 200, description = "The key, active", body = ApiKeySchema),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn activate(
    Editor(service): Editor,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    Ok(Json(service.activate(&id).await?))
}

/// Deactivate a key (idempotent); it is refused from now on. Refused (409)
/// for the last active admin key.
#[utoipa::path(post, path = "/api-keys/{id}/deactivate", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    responses(
        (status = 200, description = "The key, inactive", body = ApiKeySchema),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is the last active admin key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn deactivate(
    State(s): State<AppState>,
    Editor(service): Editor,
    EntityId(id): EntityId,
) -> Result<Json<keygate::ApiKey>> {
    refuse_last_admin(&service, &s.admin_scope, &id, Change::Deactivate).await?;
    Ok(Json(service.deactivate(&id).await?))
}

/// Keys matching a filter, one page. `offset`/`limit` in the query take
/// precedence over the same fields of the body.
#[utoipa::path(post, path = "/api-keys/search", tag = "api-keys",
    params(PageParams),
    request_body = ApiKeyFilterSchema,
    responses(
        (status = 200, description = "Matching keys and their total", body = SearchResult),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid filter or paging (e.g. more than 100 scopes in a list)", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn search(
    State(s): State<AppState>,
    page: Page,
    JsonBody(mut filter): JsonBody<ApiKeyFilter>,
) -> Result<Json<SearchResult>> {
    check_body_paging(&filter)?;
    let limit = page.limit.or(filter.limit).unwrap_or(DEFAULT_PAGE_LIMIT);
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

/// The numbers of a filter body, checked wherever they are used or
/// ignored: `limit` 1..=100, `offset` at most `i64::MAX` (what every store
/// can page by), `credits_below` at most `i64::MAX` (the `int64` the
/// document promises; no key holds more than 10^15 credits).
fn check_body_paging(filter: &ApiKeyFilter) -> Result<()> {
    let mut errors = Vec::new();
    if let Some(limit) = filter.limit {
        if let Err(e) = check_limit(i64::try_from(limit).unwrap_or(i64::MAX)) {
            errors.push(e);
        }
    }
    if i64::try_from(filter.offset).is_err() {
        errors.push(FieldError::new(
            "offset",
            format!("must be at most {}", i64::MAX),
        ));
    }
    if filter
        .credits_below
        .is_some_and(|n| i64::try_from(n).is_err())
    {
        errors.push(FieldError::new(
            "credits_below",
            format!("must be at most {}", i64::MAX),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(keygate::Error::Validation(errors).into())
    }
}

/// Number of keys matching a filter (`offset`, `limit` and ordering are
/// validated, then ignored).
#[utoipa::path(post, path = "/api-keys/count", tag = "api-keys",
    request_body = ApiKeyFilterSchema,
    responses(
        (status = 200, description = "Number of matching keys", body = CountResult),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid filter (e.g. more than 100 scopes in a list)", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn count(
    State(s): State<AppState>,
    JsonBody(filter): JsonBody<ApiKeyFilter>,
) -> Result<Json<CountResult>> {
    check_body_paging(&filter)?;
    Ok(Json(CountResult {
        total: s.service.count(&filter).await?,
    }))
}

/// Check a key and its scopes (no admin key needed), and take `cost` from
/// its usage limits. Records a use.
#[utoipa::path(post, path = "/api-keys/verify", tag = "api-keys",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "The key is valid, holds every required scope and had room for the cost: the entity and its `usage` after this request", body = VerifiedApiKeySchema),
        (status = 401, description = "Missing, malformed, unknown or wrong key", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer` for a missing key, `Bearer error=\"invalid_token\"` for a bad one"))),
        (status = 403, description = "Inactive, expired, or a required scope missing", body = ErrorBody),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid body: a required scope that is not a scope, more than 100 of them, a cost outside 0..=1000, a field given twice", body = ValidationErrorBody),
    ))]
pub(crate) async fn verify(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<VerifyRequest>,
) -> Result<Response> {
    if body.required_scopes.len() > MAX_SCOPES_PER_LIST {
        return Err(ApiError::invalid_body_field(
            "required_scopes",
            format!(
                "must hold at most {MAX_SCOPES_PER_LIST} scopes (got {})",
                body.required_scopes.len()
            ),
        ));
    }
    let mut bad: Vec<FieldError> = body
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
    if body.cost > MAX_COST {
        bad.push(FieldError::new("cost", format!("must be 0 to {MAX_COST}")));
    }
    if !bad.is_empty() {
        return Err(keygate::Error::Validation(bad).into());
    }
    let verified = s
        .service
        .verify_with(&body.api_key, &body.required_scopes, body.cost)
        .await?;
    Ok(Json(VerifiedApiKey {
        entity: &verified.key,
        usage: &verified.usage,
    })
    .into_response())
}
