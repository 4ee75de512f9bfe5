//! `POST /api-keys/{id}/credits`: set or add to a key's usage credits,
//! atomically in the store.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keygate::{CreditChange, Error};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::last_admin::{refuse_last_admin, Change};
use crate::management::{AppState, Editor, EntityId};
use crate::schemas::{ApiKeySchema, ErrorBody, ValidationErrorBody};

/// Body of `POST /api-keys/{id}/credits`: exactly one of `set` and `add`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreditsRequest {
    /// `remaining` becomes this (0 to 10^15). The refill settings stay; a
    /// key without credits gets credits without refill.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = u64, minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    set: Option<u64>,
    /// Added to `remaining` (-10^15 to 10^15; negative takes away, never
    /// below 0). The key must have credits (409 otherwise).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(
        value_type = i64,
        minimum = -1_000_000_000_000_000_i64,
        maximum = 1_000_000_000_000_000_i64
    )]
    add: Option<i64>,
}

/// A field that may be left out but is never `null` (`null` is a 422
/// naming it, as the document says).
fn not_null<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

impl CreditsRequest {
    fn change(&self) -> Result<CreditChange, ApiError> {
        match (self.set, self.add) {
            (Some(n), None) => Ok(CreditChange::Set(n)),
            (None, Some(n)) => Ok(CreditChange::Add(n)),
            _ => Err(ApiError::invalid_body_field(
                "",
                "must hold exactly one of `set` and `add`",
            )),
        }
    }
}

/// Set (`set`) or change (`add`) a key's remaining credits. Atomic: an
/// `add` racing with requests that use credits loses none of either.
/// Recorded in the audit log as an update.
#[utoipa::path(post, path = "/api-keys/{id}/credits", tag = "api-keys",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128)),
    request_body = CreditsRequest,
    responses(
        (status = 200, description = "The key with its new credits", body = ApiKeySchema),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "`add` on a key without credits (its usage is unlimited): `set` them first; or no credits left on the last working admin key", body = ErrorBody),
        (status = 415, description = "Body without a JSON content type", body = ErrorBody),
        (status = 422, description = "Not exactly one of `set` and `add`, a value out of range, an unknown field, or a body that is not an object", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn change_credits(
    State(s): State<AppState>,
    Editor(service): Editor,
    EntityId(id): EntityId,
    JsonBody(body): JsonBody<CreditsRequest>,
) -> Result<Json<keygate::ApiKey>, ApiError> {
    let change = body.change()?;
    refuse_last_admin(&service, &s.admin_scope, &id, Change::Credits(change)).await?;
    Ok(Json(apply(&service, &id, change).await?))
}

/// Applies a credits change; `add` on a key without credits is a 409 with
/// a fixed reason (the dashboard shows it as it is).
pub(crate) async fn apply(
    service: &keygate::ApiKeyService,
    id: &str,
    change: CreditChange,
) -> Result<keygate::ApiKey, ApiError> {
    match service.change_credits(id, change).await {
        Ok(key) => Ok(key),
        // The only conflict of a credits change; its text is the core's,
        // so answer a fixed one.
        Err(Error::Conflict(_)) if matches!(change, CreditChange::Add(_)) => {
            Err(ApiError::bad_request(
                StatusCode::CONFLICT,
                "The key has no credits (its usage is unlimited): set them with `set` first",
            ))
        }
        Err(e) => Err(e.into()),
    }
}
