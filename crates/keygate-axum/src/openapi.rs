//! The OpenAPI 3.1 document and the offline docs page.

#[cfg(feature = "swagger-ui")]
use std::sync::Arc;

#[cfg(feature = "swagger-ui")]
use axum::body::Body;
#[cfg(feature = "swagger-ui")]
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
#[cfg(feature = "swagger-ui")]
use axum::http::StatusCode;
#[cfg(feature = "swagger-ui")]
use axum::response::{IntoResponse, Response};
use axum::Router;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, ResponseBuilder};
use utoipa::Modify;
#[cfg(feature = "swagger-ui")]
use utoipa_swagger_ui::{Config, SwaggerUi};

use keygate::{AuditAction, RefillInterval};

use crate::audit::{__path_audit, __path_key_events, EventPage};
use crate::credits::{__path_change_credits, CreditsRequest};
use crate::handlers::{
    __path_activate, __path_count, __path_create, __path_deactivate, __path_delete,
    __path_get_by_key_id, __path_get_one, __path_list, __path_search, __path_update, __path_verify,
    CountResult, CreateApiKey, CreatedApiKey, SearchResult, VerifyRequest,
};
use crate::rotation::{__path_rotate, RotateRequest};
use crate::schemas::{
    ApiKeyFilterSchema, ApiKeySchema, AuditEventSchema, CreditsSchema, ErrorBody, RateLimitSchema,
    Scope, UpdateApiKeySchema, UsageSchema, ValidationErrorBody, VerifiedApiKeySchema,
    WindowUsageSchema,
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
    info(title = "keygate API", description = "API key management: issue keys, store only their hashes, verify them with scopes."),
    paths(
        create, list, get_one, get_by_key_id, update, delete, activate, deactivate, rotate,
        change_credits, key_events, search, count, verify, audit
    ),
    components(schemas(
        ApiKeySchema, CreateApiKey, CreatedApiKey, UpdateApiKeySchema, ApiKeyFilterSchema,
        RotateRequest, VerifyRequest, VerifiedApiKeySchema, SearchResult, CountResult,
        AuditEventSchema, AuditAction, EventPage, ErrorBody, ValidationErrorBody, Scope,
        RateLimitSchema, CreditsSchema, RefillInterval, UsageSchema, WindowUsageSchema,
        CreditsRequest
    )),
    modifiers(
        &PropertyExamples, &BearerScheme, &OptionalRotateBody, &CommonResponses,
        &UpdateConstraints, &CreditsConstraints
    ),
    tags(
        (name = "api-keys", description = "Manage and verify API keys. Every route but `/verify` needs a key with the admin scope."),
        (name = "audit", description = "The audit log: one event per change, never a secret. Needs a key with the admin scope.")
    )
)]
pub(crate) struct ManagementDoc;

/// `GET /openapi.json` (the document) and, with the `swagger-ui` feature
/// (on by default), `GET /docs` (Swagger UI, served
/// from assets embedded in the binary: no request leaves for another host).
/// The page's title (the browser tab, bookmarks) is the document's
/// `info.title`, `keygate API` for [`openapi`], not Swagger UI's own.
///
/// ```
/// use axum::Router;
/// let app: Router = Router::new().merge(keygate_axum::docs_router(keygate_axum::openapi("/api-keys")));
/// ```
#[cfg(feature = "swagger-ui")]
pub fn docs_router(doc: OpenApi) -> Router {
    // validatorUrl "none": Swagger UI would otherwise send the document to
    // validator.swagger.io.
    let config = Config::new(["/openapi.json"])
        .validator_url("none")
        .try_it_out_enabled(true)
        .persist_authorization(false);
    let title: Arc<str> = html_escape(&doc.info.title).into();
    // utoipa-swagger-ui has no setting for the page title: its index.html
    // says `<title>Swagger UI</title>`, replaced on the way out.
    Router::from(
        SwaggerUi::new("/docs")
            .url("/openapi.json", doc)
            .config(config),
    )
    .layer(axum::middleware::map_response(move |response| {
        retitle(response, Arc::clone(&title))
    }))
}

/// `GET /openapi.json`: the document (built without the `swagger-ui`
/// feature, so without `/docs`).
///
/// ```
/// use axum::Router;
/// let app: Router = Router::new().merge(keygate_axum::docs_router(keygate_axum::openapi("/api-keys")));
/// ```
#[cfg(not(feature = "swagger-ui"))]
pub fn docs_router(doc: OpenApi) -> Router {
    // Serialized once; every request gets the same bytes.
    let json = axum::body::Bytes::from(doc.to_json().expect("an OpenAPI document serializes"));
    Router::new().route(
        "/openapi.json",
        axum::routing::get(move || {
            let json = json.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    json,
                )
            }
        }),
    )
}

/// Swagger UI's page title, as its `index.html` has it.
#[cfg(feature = "swagger-ui")]
const SWAGGER_UI_TITLE: &str = "<title>Swagger UI</title>";

/// `response` with Swagger UI's title replaced by `title` when it is the
/// HTML page; anything else as it is.
#[cfg(feature = "swagger-ui")]
async fn retitle(response: Response, title: Arc<str>) -> Response {
    let html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The page is about 700 bytes; 1 MiB is far more than any HTML here.
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let page = String::from_utf8_lossy(&bytes).replacen(
        SWAGGER_UI_TITLE,
        &format!("<title>{title}</title>"),
        1,
    );
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}

/// `text` safe inside an HTML element.
#[cfg(feature = "swagger-ui")]
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Adds `GET /healthz` (liveness) and `GET /readyz` (readiness) to `doc`,
/// with the `Health` body they answer. For a server that serves both
/// routes next to [`app`](crate::app), as `keygate serve` does; the
/// routes themselves are not part of this crate. [`AppConfig::document_health_routes`](crate::AppConfig::document_health_routes)
/// does this for the document `app` serves.
///
/// ```
/// let mut doc = keygate_axum::openapi("/api-keys");
/// keygate_axum::document_health_routes(&mut doc);
/// assert!(doc.paths.paths.contains_key("/healthz"));
/// assert!(doc.paths.paths.contains_key("/readyz"));
/// ```
pub fn document_health_routes(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        "Health".to_owned(),
        RefOr::T(
            ObjectBuilder::new()
                .description(Some("What a health route answers."))
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some(
                            "`ok` (`/healthz`) or `ready` (`/readyz`) with 200; with 503, why \
                             not, e.g. `unavailable` or `draining`",
                        ))
                        .examples(["ok"]),
                )
                .required("status")
                .property(
                    "detail",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("With 503: what is wrong, in words"))
                        .examples(["store unreachable"]),
                )
                .into(),
        ),
    );
    let health = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("Health"))),
            )
            .build()
    };
    let routes = [
        (
            "/healthz",
            "healthz",
            "Liveness: is the process serving?",
            "Answers 200 as long as the process serves requests, whatever the state of the key \
             store: for a supervisor that restarts a process which stopped answering. Use \
             `/readyz` to decide whether to send traffic. No key needed.",
            "The process is serving",
            "The process cannot serve requests",
        ),
        (
            "/readyz",
            "readyz",
            "Readiness: can this instance verify keys?",
            "Answers 200 when the key store answers, 503 when it does not or while the server \
             shuts down: for a load balancer that sends traffic only to instances that can \
             verify keys. No key needed.",
            "The key store answers: ready for traffic",
            "The key store does not answer, or the server is shutting down: keep traffic away",
        ),
    ];
    for (path, id, summary, description, ok, unavailable) in routes {
        let operation = OperationBuilder::new()
            .operation_id(Some(id))
            .tag("health")
            .summary(Some(summary))
            .description(Some(description))
            .response("200", health(ok))
            .response("503", health(unavailable))
            .build();
        doc.paths
            .add_path_operation(path, vec![HttpMethod::Get], operation);
    }
    let tags = doc.tags.get_or_insert_with(Vec::new);
    if !tags.iter().any(|t| t.name == "health") {
        tags.push(
            TagBuilder::new()
                .name("health")
                .description(Some(
                    "Probes for supervisors and load balancers: liveness and readiness. Open, no key.",
                ))
                .build(),
        );
    }
}

/// Adds `GET /metrics` (Prometheus text format, admin key required) to
/// `doc`: for a server that serves it next to [`app`](crate::app), as
/// `keygate serve` does on its main listener unless `--metrics-bind` moves
/// it to a listener of its own. [`AppConfig::document_metrics_route`](crate::AppConfig::document_metrics_route)
/// does this for the document `app` serves. `doc` is expected to come from
/// [`openapi`] (its 401 and 403 answers are referred to).
///
/// ```
/// let mut doc = keygate_axum::openapi("/api-keys");
/// keygate_axum::document_metrics_route(&mut doc);
/// assert!(doc.paths.paths.contains_key("/metrics"));
/// ```
pub fn document_metrics_route(doc: &mut OpenApi) {
    let text = ResponseBuilder::new()
        .description(
            "The metrics in the Prometheus text exposition format (0.0.4): \
             `keygate_verifications_total{outcome}`, `keygate_verify_duration_seconds`, \
             `keygate_cache_hits_total`, `keygate_cache_misses_total`, \
             `keygate_hash_queue_depth`, `keygate_http_requests_total{method,route,status}`, \
             `keygate_store_errors_total`, `keygate_store_up`, `keygate_rate_limit_degraded`",
        )
        // No schema: the body is not JSON, and nothing in it to validate.
        .content("text/plain; version=0.0.4", ContentBuilder::new().build())
        .build();
    let operation = OperationBuilder::new()
        .operation_id(Some("metrics"))
        .tag("metrics")
        .summary(Some("Metrics for Prometheus"))
        .description(Some(
            "Counters, gauges and histograms of this instance, for Prometheus to scrape. Needs a \
             key with the admin scope. A server started with `--metrics-bind ADDR` serves them \
             on that address instead, without a key, and not here.",
        ))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        .response("200", text)
        .response("401", Ref::from_response_name("Unauthorized"))
        .response("403", Ref::from_response_name("Forbidden"))
        .response("429", Ref::from_response_name("TooManyRequests"))
        .response("503", Ref::from_response_name("Unavailable"))
        .build();
    doc.paths
        .add_path_operation("/metrics", vec![HttpMethod::Get], operation);
    let tags = doc.tags.get_or_insert_with(Vec::new);
    if !tags.iter().any(|t| t.name == "metrics") {
        tags.push(
            TagBuilder::new()
                .name("metrics")
                .description(Some("Prometheus metrics of the instance."))
                .build(),
        );
    }
}

/// Examples of list and object properties, which utoipa's `examples`
/// attribute drops (`value_type = Object`) or puts on the items (`Vec<T>`):
/// `(schema, property, example)`. Runs before the constraints wrap
/// schemas in `allOf`.
pub(crate) struct PropertyExamples;

impl Modify for PropertyExamples {
    fn modify(&self, openapi: &mut OpenApi) {
        let examples = [
            ("ApiKey", "scopes", serde_json::json!(["read"])),
            ("ApiKey", "meta", serde_json::json!({"plan": "pro"})),
            ("CreateApiKey", "scopes", serde_json::json!(["read"])),
            ("CreateApiKey", "meta", serde_json::json!({"plan": "pro"})),
            (
                "UpdateApiKey",
                "scopes",
                serde_json::json!(["read", "write"]),
            ),
            ("UpdateApiKey", "meta", serde_json::json!({"plan": "team"})),
            (
                "VerifyRequest",
                "required_scopes",
                serde_json::json!(["read"]),
            ),
            (
                "AuditEvent",
                "changes",
                serde_json::json!({"scopes": [["read"], ["read", "write"]]}),
            ),
            (
                "FieldIssue",
                "loc",
                serde_json::json!(["body", "expires_at"]),
            ),
        ];
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (schema, property, example) in examples {
            let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema) else {
                continue;
            };
            match object.properties.get_mut(property) {
                Some(RefOr::T(Schema::Object(o))) => o.examples = vec![example],
                Some(RefOr::T(Schema::Array(a))) => a.examples = vec![example],
                _ => {}
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn status_and_type(router: &axum::Router, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), content_type)
    }

    #[tokio::test]
    async fn the_document_is_served_with_or_without_swagger_ui() {
        let router = super::docs_router(super::openapi("/api-keys"));
        let (status, content_type) = status_and_type(&router, "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let (status, content_type) = status_and_type(&router, "/docs/").await;
        if cfg!(feature = "swagger-ui") {
            assert_eq!(status, StatusCode::OK);
            assert!(content_type.starts_with("text/html"), "{content_type}");
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
    }
}
