//! The OpenAPI 3.1 document and the offline docs page.

use axum::Router;
use chrono::{DateTime, Utc};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::handlers::ManagementDoc;

/// Where [`app`](crate::app) mounts the management router by default.
pub const DEFAULT_MOUNT_PATH: &str = "/api-keys";

/// The OpenAPI 3.1 document of the management routes, with their paths
/// under `mount_path` (e.g. `"/api-keys"`).
///
/// ```
/// let doc = keygate_axum::openapi("/api-keys");
/// assert!(doc.paths.paths.contains_key("/api-keys/{id}"));
/// let moved = keygate_axum::openapi("/admin/keys");
/// assert!(moved.paths.paths.contains_key("/admin/keys/verify"));
/// ```
pub fn openapi(mount_path: &str) -> OpenApi {
    let mut doc = <ManagementDoc as utoipa::OpenApi>::openapi();
    let mount = mount_path.trim_end_matches('/');
    if mount != DEFAULT_MOUNT_PATH {
        let paths = std::mem::take(&mut doc.paths.paths);
        doc.paths.paths = paths
            .into_iter()
            .map(|(path, item)| {
                let rest = path.strip_prefix(DEFAULT_MOUNT_PATH).unwrap_or(&path);
                let moved = format!("{mount}{rest}");
                (
                    if moved.is_empty() {
                        "/".to_owned()
                    } else {
                        moved
                    },
                    item,
                )
            })
            .collect();
    }
    doc
}

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
}

/// Body of `PATCH /api-keys/{id}`: only the fields present change.
#[derive(ToSchema)]
#[schema(as = UpdateApiKey)]
#[allow(dead_code)]
pub(crate) struct UpdateApiKeySchema {
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    #[schema(max_length = 1024)]
    description: Option<String>,
    is_active: Option<bool>,
    /// Replaces the scopes.
    scopes: Option<Vec<String>>,
    /// Must be in the future.
    expires_at: Option<DateTime<Utc>>,
    /// Removes the expiry (not with `expires_at`).
    clear_expires: Option<bool>,
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
