//! The audit log over HTTP: `GET /api-keys/{id}/events` (one key, oldest
//! first) and `GET /audit` (every key, newest first), and the router that
//! serves the latter at the root.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use keygate::{ApiKeyService, AuditAction, AuditEvent, EventFilter, FieldError, ACTOR_MAX};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::management::{
    finish, protect, AppState, EntityId, ManagementConfig, Page, PageParams, DEFAULT_PAGE_LIMIT,
};
use crate::schemas::{AuditEventSchema, ErrorBody, ValidationErrorBody};

/// Where [`audit_router`] serves the whole audit log.
pub const AUDIT_PATH: &str = "/audit";

/// `GET /audit`: every change made to any key, newest first, protected like
/// the management routes (admin scope and key sources of `config`, or
/// open), with the same JSON 404/405 answers and body limit. Merge it at
/// the root of your app; [`app`](crate::app) does.
///
/// # Panics
/// When the configured admin scope is not a valid scope.
///
/// ```
/// use axum::Router;
/// use keygate_axum::{audit_router, ManagementConfig};
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: Router = Router::new().merge(audit_router(service, ManagementConfig::default()));
/// ```
pub fn audit_router(service: ApiKeyService, config: ManagementConfig) -> Router {
    let admin = Router::new().route("/", get(audit));
    let inner = finish(protect(admin, &service, &config), service, &config);
    // Nested, so its 404 fallback covers `/audit/...` only and the router
    // merges into an app that has a fallback of its own.
    Router::new().nest(AUDIT_PATH, inner)
}

/// One page of audit events.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventPage {
    #[schema(value_type = Vec<AuditEventSchema>)]
    items: Vec<AuditEvent>,
    /// Number of events matching, all pages together.
    total: u64,
    limit: u64,
    offset: u64,
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One page of `filter` and the total of its matches.
async fn page(service: &ApiKeyService, filter: EventFilter, limit: u64) -> Result<EventPage> {
    let items = service.events(&filter).await?;
    let total = service.count_events(&filter).await?;
    Ok(EventPage {
        items,
        total,
        limit,
        offset: filter.offset,
    })
}

/// The changes made to one key, oldest first. Answers for a deleted key
/// too: its events are kept.
#[utoipa::path(get, path = "/api-keys/{id}/events", tag = "audit",
    params(("id" = String, Path, description = "Entity id (32 hex characters)", max_length = 128), PageParams),
    responses(
        (status = 200, description = "The key's events, oldest first", body = EventPage),
        (status = 404, description = "No such key, and no events for this id", body = ErrorBody),
        (status = 422, description = "Invalid offset or limit", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn key_events(
    State(s): State<AppState>,
    EntityId(id): EntityId,
    page_params: Page,
) -> Result<Json<EventPage>> {
    let limit = page_params.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    let filter = EventFilter {
        offset: page_params.offset.unwrap_or(0),
        limit: Some(limit),
        ..EventFilter::for_key(&id)
    };
    let events = page(&s.service, filter, limit).await?;
    if events.total == 0 {
        // No events: 404 unless the key exists (e.g. imported, never changed).
        s.service.get(&id).await?;
    }
    Ok(Json(events))
}

/// `GET /audit` query, read as text so a bad value is a 422 naming it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Events to skip (≥ 0, default 0).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    offset: Option<String>,
    /// Events to return (1..=100, default 50).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Only events of this action.
    #[param(value_type = Option<keygate::AuditAction>, inline)]
    action: Option<String>,
    /// Only events by this actor (exact, at most 256 characters, as stored):
    /// an admin key's `key_id`, `anonymous` (open router), `cli`…
    #[param(max_length = 256)]
    actor: Option<String>,
    /// Only events of the key with this public key id (exact, at most 128
    /// characters; works after the key is deleted).
    #[param(max_length = 128)]
    key_id: Option<String>,
    /// Only events at or after this time (RFC 3339; write `+` in an offset
    /// as `%2B`, or use `Z`).
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
}

/// Longest `key_id` a `GET /audit` query may name (keygate's are 16
/// characters; a longer one names no key).
const MAX_KEY_ID_FILTER: usize = 128;

/// The validated `GET /audit` query.
pub(crate) struct AuditQuery(EventFilter, u64);

impl<S: Send + Sync> FromRequestParts<S> for AuditQuery {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Query(p) = Query::<AuditParams>::from_request_parts(parts, state).await?;
        let mut errors = Vec::new();
        let page = Page::parse(p.offset.as_deref(), p.limit.as_deref(), &mut errors);
        let action = p.action.as_deref().and_then(|a| {
            a.parse::<AuditAction>()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "action",
                        "must be one of create, update, delete, activate, deactivate, rotate",
                    ));
                })
                .ok()
        });
        let since = p.since.as_deref().and_then(|t| {
            parse_time(t)
                .map_err(|()| {
                    errors.push(FieldError::new(
                        "since",
                        "must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z",
                    ));
                })
                .ok()
        });
        for (field, value, max) in [
            ("actor", &p.actor, ACTOR_MAX),
            ("key_id", &p.key_id, MAX_KEY_ID_FILTER),
        ] {
            if value.as_deref().is_some_and(|v| v.chars().count() > max) {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {max} characters"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::InvalidQuery(errors));
        }
        let limit = page.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        let filter = EventFilter {
            entity_id: None,
            key_id: p.key_id,
            action,
            actor: p.actor,
            since,
            newest_first: true,
            offset: page.offset.unwrap_or(0),
            limit: Some(limit),
        };
        Ok(Self(filter, limit))
    }
}

/// An RFC 3339 time. A query string decodes `+` to a space, so
/// `…T12:00:00 02:00` is read as `…T12:00:00+02:00`.
fn parse_time(text: &str) -> std::result::Result<DateTime<Utc>, ()> {
    let text = text.trim_start();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    match text.len().checked_sub(6) {
        Some(i) if text.is_char_boundary(i) && text[i..].starts_with(' ') => {
            DateTime::parse_from_rfc3339(&format!("{}+{}", &text[..i], &text[i + 1..]))
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ())
        }
        _ => Err(()),
    }
}

/// Every change made to any key, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "Events, newest first", body = EventPage),
        (status = 422, description = "Invalid offset, limit, action or since", body = ValidationErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn audit(
    State(s): State<AppState>,
    AuditQuery(filter, limit): AuditQuery,
) -> Result<Json<EventPage>> {
    Ok(Json(page(&s.service, filter, limit).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_a_query_string() {
        let utc = parse_time("2025-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_time("2025-01-31T14:00:00+02:00").unwrap(), utc);
        assert_eq!(parse_time("2025-01-31T14:00:00 02:00").unwrap(), utc);
        for bad in [
            "",
            "yesterday",
            "2025-01-31",
            "2025-01-31T12:00:00",
            "é1234567",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
