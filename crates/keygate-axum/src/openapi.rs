//! The OpenAPI 3.1 document and the offline docs page.

use axum::Router;
use chrono::{DateTime, Utc};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Required};
use utoipa::{Modify, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::audit::{__path_audit, __path_key_events, EventPage};
use crate::handlers::{
    __path_activate, __path_count, __path_create, __path_deactivate, __path_delete,
    __path_get_by_key_id, __path_get_one, __path_list, __path_search, __path_update, __path_verify,
    CountResult, CreateApiKey, CreatedApiKey, SearchResult, VerifyRequest,
};
use crate::rotation::{__path_rotate, RotateRequest};

/// Where [`app`](crate::app) mounts the management router by default.
pub const DEFAULT_MOUNT_PATH: &str = "/api-keys";

/// The OpenAPI 3.1 document of the management routes, with their paths
/// under `mount_path` (e.g. `"/api-keys"`), and of `GET /audit`, which
/// stays at the root wherever the management routes are.
///
/// ```
/// let doc = keygate_axum::openapi("/api-keys");
/// assert!(doc.paths.paths.contains_key("/api-keys/{id}"));
/// let moved = keygate_axum::openapi("/admin/keys");
/// assert!(moved.paths.paths.contains_key("/admin/keys/verify"));
/// assert!(moved.paths.paths.contains_key("/audit"));
/// ```
pub fn openapi(mount_path: &str) -> OpenApi {
    let mut doc = <ManagementDoc as utoipa::OpenApi>::openapi();
    let mount = mount_path.trim_end_matches('/');
    if mount != DEFAULT_MOUNT_PATH {
        let paths = std::mem::take(&mut doc.paths.paths);
        doc.paths.paths = paths
            .into_iter()
            .map(|(path, item)| match under_mount(&path) {
                Some(rest) => {
                    let moved = format!("{mount}{rest}");
                    (
                        if moved.is_empty() {
                            "/".to_owned()
                        } else {
                            moved
                        },
                        item,
                    )
                }
                None => (path, item),
            })
            .collect();
    }
    doc
}

/// The rest of a documented path under the default mount (`""`, `"/{id}"`),
/// or `None` for a path outside it (`/audit`).
fn under_mount(path: &str) -> Option<&str> {
    path.strip_prefix(DEFAULT_MOUNT_PATH)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The OpenAPI document of the management routes at `/api-keys`, and of
/// `/audit`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "keygate", description = "API key management: issue keys, store only their hashes, verify them with scopes."),
    paths(
        create, list, get_one, get_by_key_id, update, delete, activate, deactivate, rotate,
        key_events, search, count, verify, audit
    ),
    components(schemas(
        ApiKeySchema, CreateApiKey, CreatedApiKey, UpdateApiKeySchema, ApiKeyFilterSchema,
        RotateRequest, VerifyRequest, SearchResult, CountResult, AuditEventSchema,
        AuditActionSchema, EventPage, ErrorBody, ValidationErrorBody
    )),
    modifiers(&BearerScheme, &OptionalRotateBody),
    tags(
        (name = "api-keys", description = "Manage and verify API keys. Every route but `/verify` needs a key with the admin scope."),
        (name = "audit", description = "The audit log: one event per change, never a secret. Needs a key with the admin scope.")
    )
)]
pub(crate) struct ManagementDoc;

/// `GET /openapi.json` (the document) and `GET /docs` (Swagger UI, served
/// from assets embedded in the binary: no request leaves for another host).
///
/// ```
/// use axum::Router;
/// let app: Router = Router::new().merge(keygate_axum::docs_router(keygate_axum::openapi("/api-keys")));
/// ```
pub fn docs_router(doc: OpenApi) -> Router {
    // validatorUrl "none": Swagger UI would otherwise send the document to
    // validator.swagger.io.
    let config = Config::new(["/openapi.json"])
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(false);
    Router::from(
        SwaggerUi::new("/docs")
            .url("/openapi.json", doc)
            .config(config),
    )
}

/// Declares the `bearer` security scheme the operations refer to.
pub(crate) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("keygate API key")
                    .description(Some(
                        "An API key, `Authorization: Bearer ak_v1-<key_id>-<secret>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// Marks the body of `POST /api-keys/{id}/rotate` as optional (utoipa
/// would otherwise document `null` as an accepted body).
pub(crate) struct OptionalRotateBody;

impl Modify for OptionalRotateBody {
    fn modify(&self, openapi: &mut OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api-keys/{id}/rotate")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(Required::False);
        }
    }
}

// Mirrors of core types for the document (the core crate has no OpenAPI
// dependency). Tests check that they match the core's JSON field for field.

/// An API key as the API shows it: never its hash.
#[derive(ToSchema)]
#[schema(as = ApiKey)]
#[allow(dead_code)]
pub(crate) struct ApiKeySchema {
    /// UUIDv4, 32 lowercase hex characters.
    id: String,
    /// Public key id: the middle part of the key, 16 hex characters.
    key_id: String,
    // Always present; `null` when absent.
    #[schema(required = true)]
    name: Option<String>,
    #[schema(required = true)]
    description: Option<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    #[schema(required = true)]
    last_used_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    /// The application's user, team or customer the key belongs to.
    #[schema(required = true, min_length = 1, max_length = 256)]
    owner_id: Option<String>,
    /// The application's own data: a JSON object (at most 8 KiB).
    #[schema(required = true, value_type = Option<Object>)]
    meta: Option<serde_json::Value>,
    /// Until when the secret replaced by the last rotation still verifies;
    /// `null` when no previous secret is valid.
    #[schema(required = true)]
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// Body of `PATCH /api-keys/{id}`: only the fields present change.
#[derive(ToSchema)]
#[schema(as = UpdateApiKey)]
#[allow(dead_code)]
pub(crate) struct UpdateApiKeySchema {
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// `null` clears it.
    #[schema(max_length = 1024)]
    description: Option<String>,
    is_active: Option<bool>,
    /// Replaces the scopes.
    scopes: Option<Vec<String>>,
    /// Must be in the future.
    expires_at: Option<DateTime<Utc>>,
    /// Removes the expiry (not with `expires_at`).
    clear_expires: Option<bool>,
    /// New owner (1 to 256 characters); `null` clears it.
    #[schema(min_length = 1, max_length = 256)]
    owner_id: Option<String>,
    /// Replaces the whole object (at most 8 KiB); `null` clears it.
    #[schema(value_type = Option<Object>)]
    meta: Option<serde_json::Value>,
}

/// Sort column of a search.
#[derive(ToSchema)]
#[schema(as = OrderBy)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub(crate) enum OrderBySchema {
    Id,
    Name,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    IsActive,
    KeyId,
}

/// Search criteria, all optional, combined with AND.
#[derive(ToSchema)]
#[schema(as = ApiKeyFilter)]
#[allow(dead_code)]
pub(crate) struct ApiKeyFilterSchema {
    is_active: Option<bool>,
    expires_before: Option<DateTime<Utc>>,
    expires_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    created_after: Option<DateTime<Utc>>,
    last_used_before: Option<DateTime<Utc>>,
    last_used_after: Option<DateTime<Utc>>,
    /// true: never used; false: used at least once.
    never_used: Option<bool>,
    /// Key holds every one of these.
    scopes_contain_all: Option<Vec<String>>,
    /// Key holds at least one of these.
    scopes_contain_any: Option<Vec<String>>,
    /// Case-insensitive substring; `%` and `_` match literally.
    name_contains: Option<String>,
    name_exact: Option<String>,
    /// Exact owner id.
    owner_id: Option<String>,
    /// Exact public key id (the middle part of a key).
    key_id: Option<String>,
    /// Default `created_at`.
    #[schema(inline)]
    order_by: Option<OrderBySchema>,
    /// Default true.
    order_desc: Option<bool>,
    /// Ignored by count; the query parameter wins in search.
    #[schema(minimum = 0)]
    offset: Option<u64>,
    /// 1..=100; ignored by count; the query parameter wins in search.
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// What a change did.
#[derive(ToSchema)]
#[schema(as = AuditAction)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub(crate) enum AuditActionSchema {
    Create,
    Update,
    Delete,
    Activate,
    Deactivate,
    Rotate,
}

/// One recorded change. Never holds a secret, a hash or a plaintext key
/// (a rotation shows `"secret": ["(hidden)", "(hidden)"]`).
#[derive(ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub(crate) struct AuditEventSchema {
    /// Time-ordered unique id (32 hex characters).
    id: String,
    /// When the change was made.
    at: DateTime<Utc>,
    action: AuditActionSchema,
    /// The public key id of the changed key.
    key_id: String,
    /// The entity id of the changed key.
    entity_id: String,
    /// Who made the change: the admin key's `key_id` over HTTP, `anonymous`
    /// through an open router, `cli` from the command line.
    actor: String,
    /// Each changed field mapped to `[old, new]`.
    #[schema(value_type = Object, additional_properties)]
    changes: serde_json::Value,
}

/// An error: `{"detail": "API key invalid"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    detail: String,
}

/// A validation error naming each bad field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ValidationErrorBody {
    detail: Vec<FieldIssue>,
}

/// One bad field.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct FieldIssue {
    /// Where: `["body", "name"]`, `["query", "limit"]`, `["body", "scopes", 0]`.
    loc: Vec<serde_json::Value>,
    /// The field, dotted (`name`, `required_scopes.0`).
    field: String,
    /// What is wrong with it.
    msg: String,
}
