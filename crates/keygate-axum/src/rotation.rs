//! `POST /api-keys/{id}/rotate`: a new secret for the same entity.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::MAX_GRACE;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::OptionalJsonBody;
use crate::handlers::CreatedApiKey;
use crate::management::{Editor, EntityId};
use crate::schemas::{ErrorBody, ValidationErrorBody};

/// Longest grace period in seconds (30 days).
const MAX_GRACE_SECONDS: i64 = MAX_GRACE.as_secs() as i64;

/// Body of `POST /api-keys/{id}/rotate`; may be empty (as `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    /// How long the replaced secret keeps verifying, in seconds (0 to
    /// 2592000 = 30 days; default 0: it stops at once). Rotating again ends
    /// any earlier grace at once.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2592000, examples(3600))]
    #[serde(default)]
    grace_seconds: Option<i64>,
}

impl RotateRequest {
    fn grace(&self) -> Result<Duration, ApiError> {
        grace(self.grace_seconds.unwrap_or(0))
    }
}

/// A grace period of `seconds` (0 to 30 days), or a 422 naming
/// `grace_seconds`.
pub(crate) fn grace(seconds: i64) -> Result<Duration, ApiError> {
    match seconds {
        n @ 0..=MAX_GRACE_SECONDS => Ok(Duration::from_secs(n.unsigned_abs())),
        _ => Err(ApiError::invalid_body_field(
            "grace_seconds",
            format!("must be between 0 and {MAX_GRACE_SECONDS}"),
        )),
    }
}

/// Give a key a new secret: same entity, key id, scopes, owner, meta and
/// history. The new key is in the answer, once; the replaced one keeps
/// verifying for `grace_seconds`.
#[utoipa::path(post, path = "/api-keys/{id}/rotate", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    request_body(content = RotateRequest, description = "Optional: a missing or empty body is `{}`"),
    responses(
        (status = 200, description = "The new key (shown once) and the entity", body = CreatedApiKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 415, description = "A non-blank body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Invalid grace_seconds, an unknown field, or a body that is not an object", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn rotate(
    Editor(service): Editor,
    EntityId(id): EntityId,
    OptionalJsonBody(body): OptionalJsonBody<RotateRequest>,
) -> Result<Response, ApiError> {
    let grace = body.grace()?;
    let (entity, key) = service.rotate(&id, grace).await?;
    // Borrowed, so the plaintext is not copied out of its zeroizing holder.
    let rotated = CreatedApiKey {
        api_key: key.expose(),
        entity,
    };
    Ok(Json(rotated).into_response())
}
