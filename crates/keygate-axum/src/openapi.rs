//! The OpenAPI 3.1 document and the offline docs page.

use axum::Router;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::Modify;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::audit::{__path_audit, __path_key_events, EventPage};
use crate::credits::{__path_change_credits, CreditsRequest};
use crate::handlers::{
    __path_activate, __path_count, __path_create, __path_deactivate, __path_delete,
    __path_get_by_key_id, __path_get_one, __path_list, __path_search, __path_update, __path_verify,
    CountResult, CreateApiKey, CreatedApiKey, SearchResult, VerifyRequest,
};
use crate::rotation::{__path_rotate, RotateRequest};
use crate::schemas::{
    ApiKeyFilterSchema, ApiKeySchema, AuditActionSchema, AuditEventSchema, CreditsSchema,
    ErrorBody, RateLimitSchema, RefillIntervalSchema, Scope, UpdateApiKeySchema, UsageSchema,
    ValidationErrorBody, VerifiedApiKeySchema, WindowUsageSchema,
};

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
        change_credits, key_events, search, count, verify, audit
    ),
    components(schemas(
        ApiKeySchema, CreateApiKey, CreatedApiKey, UpdateApiKeySchema, ApiKeyFilterSchema,
        RotateRequest, VerifyRequest, VerifiedApiKeySchema, SearchResult, CountResult,
        AuditEventSchema, AuditActionSchema, EventPage, ErrorBody, ValidationErrorBody, Scope,
        RateLimitSchema, CreditsSchema, RefillIntervalSchema, UsageSchema, WindowUsageSchema,
        CreditsRequest
    )),
    modifiers(
        &BearerScheme, &OptionalRotateBody, &CommonResponses, &UpdateConstraints,
        &CreditsConstraints
    ),
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

/// Which operations a common response applies to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    /// Every operation.
    Everywhere,
    /// Operations that need the admin key.
    Secured,
    /// Operations that check a key against its usage limits: the secured
    /// ones (the admin key may have limits) and `/verify`.
    Metered,
}

/// The answers any operation can give, as reusable responses: `(status,
/// name, description, where)`.
const COMMON_RESPONSES: [(&str, &str, &str, Applies); 8] = [
    ("400", "BadRequest", "Unreadable request: malformed JSON, no body where one is needed, a query parameter given twice or not decodable, or more than one `Authorization` header", Applies::Everywhere),
    ("401", "Unauthorized", "No admin key, or a malformed, unknown or wrong one", Applies::Secured),
    ("403", "Forbidden", "The key is inactive, expired, or lacks the admin scope", Applies::Secured),
    ("413", "PayloadTooLarge", "Request body above 64 KiB", Applies::Everywhere),
    ("414", "UriTooLong", "Request target (path and query) above 8 KiB", Applies::Everywhere),
    ("429", "TooManyRequests", "The key's usage limits have no room for this request: `API key rate limit exceeded` (a rate-limit window is full; with `Retry-After` and `RateLimit-*`) or `API key usage exceeded` (too few credits; `Retry-After` until the next refill, when one is scheduled). Nothing was taken from any limit.", Applies::Metered),
    ("431", "RequestHeaderFieldsTooLarge", "Request header fields above 16 KiB", Applies::Everywhere),
    ("503", "Unavailable", "The key store does not answer, or too many keys are waiting to be hashed (then with `Retry-After`)", Applies::Everywhere),
];

/// Adds [`COMMON_RESPONSES`] to every operation that does not describe
/// that status itself; a 401 carries its `WWW-Authenticate` challenge, a
/// 429 its `Retry-After` and `RateLimit-*` headers. The success answer of
/// an admin-protected operation may carry `RateLimit-*` (an admin key with
/// rate limits).
pub(crate) struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description, _) in COMMON_RESPONSES {
            let mut response = ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            );
            if status == "401" {
                response = response.header("WWW-Authenticate", www_authenticate());
            }
            if status == "429" {
                response = response.header(
                    "Retry-After",
                    seconds_header(
                        "Whole seconds (at least 1) until the request can pass: until the full \
                         window closes, or until the next refill of the credits (absent when \
                         none is scheduled)",
                    ),
                );
                for (header, schema) in rate_limit_headers(Sent::OnRefusal) {
                    response = response.header(header, schema);
                }
            }
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response.build()));
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                let secured = op.security.is_some();
                let metered = secured || op.operation_id.as_deref() == Some("verify");
                for (status, name, _, applies) in COMMON_RESPONSES {
                    let applies = match applies {
                        Applies::Everywhere => true,
                        Applies::Secured => secured,
                        Applies::Metered => metered,
                    };
                    if applies {
                        op.responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
                if !secured {
                    continue;
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                        for (header, schema) in rate_limit_headers(Sent::OnSuccess) {
                            response.headers.insert(header.to_owned(), schema);
                        }
                    }
                }
            }
        }
    }
}

/// An integer header of whole seconds.
fn seconds_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some(description))
        .build()
}

/// When `RateLimit-*` headers are sent.
#[derive(Clone, Copy)]
enum Sent {
    /// With `API key rate limit exceeded`: the full window.
    OnRefusal,
    /// With the answer of an admin-protected operation, when the admin key
    /// has rate limits: its window with the least room left.
    OnSuccess,
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`.
fn rate_limit_headers(sent: Sent) -> [(&'static str, Header); 3] {
    let integer = |minimum: u64, description: &str| {
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(minimum)),
            )
            .description(Some(description))
            .build()
    };
    match sent {
        Sent::OnRefusal => [
            (
                "RateLimit-Limit",
                integer(1, "The full window's limit (rate limit exceeded only)"),
            ),
            (
                "RateLimit-Remaining",
                integer(0, "0 (rate limit exceeded only)"),
            ),
            (
                "RateLimit-Reset",
                integer(
                    1,
                    "Whole seconds, rounded up, until the full window reopens (rate limit exceeded only)",
                ),
            ),
        ],
        Sent::OnSuccess => [
            (
                "RateLimit-Limit",
                integer(
                    1,
                    "When the admin key has rate limits: the limit of its window with the least room left",
                ),
            ),
            (
                "RateLimit-Remaining",
                integer(0, "When the admin key has rate limits: that window's room left"),
            ),
            (
                "RateLimit-Reset",
                integer(
                    1,
                    "When the admin key has rate limits: whole seconds, rounded up, until that window reopens",
                ),
            ),
        ],
    }
}

/// The challenge header of every 401.
pub(crate) fn www_authenticate() -> Header {
    HeaderBuilder::new()
        .schema(Object::with_type(Type::String))
        .description(Some(
            "`Bearer` when no key was sent, `Bearer error=\"invalid_token\"` for a bad one",
        ))
        .build()
}

/// `clear_expires: true` and an `expires_at` time exclude each other: the
/// `UpdateApiKey` schema becomes `allOf: [the object, anyOf: [clear_expires
/// absent or false, expires_at absent or null]]`.
pub(crate) struct UpdateConstraints;

impl Modify for UpdateConstraints {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(object) = schemas.remove("UpdateApiKey") else {
            return;
        };
        let property = |name: &str, schema: Object| -> Schema {
            ObjectBuilder::new().property(name, schema).into()
        };
        let not_clearing = property(
            "clear_expires",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([false]))
                .build(),
        );
        let no_expiry = property("expires_at", Object::with_type(Type::Null));
        let either = AnyOfBuilder::new().item(not_clearing).item(no_expiry);
        let description = match &object {
            RefOr::T(Schema::Object(o)) => o.description.clone(),
            _ => None,
        };
        let combined = AllOfBuilder::new()
            .description(description)
            .item(object)
            .item(either);
        schemas.insert("UpdateApiKey".to_owned(), RefOr::T(combined.into()));
    }
}

/// Constraints between fields that the derived schemas cannot state:
/// - `Credits`: `refill_amount` and `refill_interval` come together (both
///   set) or not at all (both absent or `null`);
/// - `CreditsRequest`: exactly one of `set` and `add`.
///
/// Each schema becomes `allOf: [the object, the constraint]`.
pub(crate) struct CreditsConstraints;

impl Modify for CreditsConstraints {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let properties = |fields: [(&str, Type); 2]| -> ObjectBuilder {
            fields
                .into_iter()
                .fold(ObjectBuilder::new(), |o, (name, t)| {
                    o.property(name, Object::with_type(t))
                })
        };
        let no_refill: Schema = properties([
            ("refill_amount", Type::Null),
            ("refill_interval", Type::Null),
        ])
        .into();
        let refill: Schema = properties([
            ("refill_amount", Type::Integer),
            ("refill_interval", Type::String),
        ])
        .required("refill_amount")
        .required("refill_interval")
        .into();
        constrain(
            schemas,
            "Credits",
            AnyOfBuilder::new().item(no_refill).item(refill).into(),
        );
        let one = |field: &str| -> Schema { ObjectBuilder::new().required(field).into() };
        constrain(
            schemas,
            "CreditsRequest",
            OneOfBuilder::new().item(one("set")).item(one("add")).into(),
        );
    }
}

/// Replaces the schema `name` with `allOf: [it, constraint]`, keeping its
/// description on the outside.
fn constrain(
    schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>,
    name: &str,
    constraint: Schema,
) {
    let Some(object) = schemas.remove(name) else {
        return;
    };
    let description = match &object {
        RefOr::T(Schema::Object(o)) => o.description.clone(),
        _ => None,
    };
    let combined = AllOfBuilder::new()
        .description(description)
        .item(object)
        .item(constraint);
    schemas.insert(name.to_owned(), RefOr::T(combined.into()));
}
