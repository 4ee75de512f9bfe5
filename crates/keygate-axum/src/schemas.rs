//! Schemas of the OpenAPI document that mirror core structs. Tests check
//! that they match the core's JSON field for field. The core's enums
//! (`AuditAction`, `OrderBy`, `RefillInterval`) derive `ToSchema`
//! themselves (keygate's feature `utoipa`); the structs stay here because
//! the API documents them differently from the Rust API (request
//! constraints, examples, nullability, fields it never shows).
//!
//! Examples are realistic values (a name, the scope `read`, an expiry in
//! the future), so the docs page's samples can be sent as they are. Lists
//! and JSON objects get theirs from `openapi.rs` (`PropertyExamples`):
//! utoipa drops or misplaces an `examples` attribute on those.
//!
//! Nullability follows what the core's parser accepts: a field the core
//! reads as `Option<T>` is `T` or `null`; a field with a serde default
//! (`clear_expires`, `order_by`, the scope lists…) may be left out but is
//! never `null`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use keygate::{AuditAction, OrderBy, RefillInterval};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// The pattern every scope matches (SPEC §4).
pub(crate) const SCOPE_PATTERN: &str = "^[a-z][a-z0-9:_-]*$";
/// Longest scope, in bytes (= characters: scopes are ASCII).
pub(crate) const SCOPE_MAX_LEN: usize = 64;

/// A scope as a request may give it: `read`, `api:write`. Its example
/// (`read`) is the sample of every list of scopes in a request.
pub(crate) struct Scope;

impl PartialSchema for Scope {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A permission: a lowercase letter, then lowercase letters, digits, `:`, `_` or `-` \
                 (at most 64 characters), e.g. `read`, `api:write`.",
            ))
            .pattern(Some(SCOPE_PATTERN))
            .min_length(Some(1))
            .max_length(Some(SCOPE_MAX_LEN))
            .examples(["read"])
            .into()
    }
}

impl ToSchema for Scope {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scope")
    }
}

/// An API key as the API shows it: never its hash.
#[derive(ToSchema)]
#[schema(as = ApiKey)]
#[allow(dead_code)]
pub(crate) struct ApiKeySchema {
    /// UUIDv4, 32 lowercase hex characters.
    #[schema(examples("5b8f0c7e2d4a4f6b9c1d3e5f7a9b0c2d"))]
    id: String,
    /// Public key id: the middle part of the key, 16 hex characters.
    #[schema(examples("7a74caa323a5410d"))]
    key_id: String,
    // Always present; `null` when absent.
    #[schema(required = true, examples("billing-service"))]
    name: Option<String>,
    #[schema(required = true, examples("Invoices and payment webhooks"))]
    description: Option<String>,
    is_active: bool,
    #[schema(examples("2025-06-01T09:30:00Z"))]
    created_at: DateTime<Utc>,
    #[schema(required = true, examples("2025-06-02T14:05:00Z"))]
    last_used_at: Option<DateTime<Utc>>,
    #[schema(required = true, examples("2030-01-01T00:00:00Z"))]
    expires_at: Option<DateTime<Utc>>,
    /// The key's scopes. Not held to the scope pattern here: a key imported
    /// from the Python library's database may carry one keygate would
    /// refuse (it can never satisfy a route).
    scopes: Vec<String>,
    /// The application's user, team or customer the key belongs to.
    #[schema(required = true, min_length = 1, max_length = 256, examples("team-7"))]
    owner_id: Option<String>,
    /// The application's own data: a JSON object (at most 8 KiB).
    #[schema(required = true, value_type = Option<Object>)]
    meta: Option<serde_json::Value>,
    /// Until when the secret replaced by the last rotation still verifies;
    /// `null` when no previous secret is valid.
    #[schema(required = true)]
    previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Rate-limit windows; `null`: no rate limit.
    #[schema(required = true)]
    rate_limits: Option<Vec<RateLimitSchema>>,
    /// Usage credits as they stand now (a refill that is due shown
    /// applied); `null`: unlimited usage.
    #[schema(required = true)]
    credits: Option<CreditsSchema>,
}

/// A rate-limit window: at most `limit` units of cost per `window_ms`. A
/// window opens at the first request that finds none open and closes
/// `window_ms` later.
#[derive(ToSchema)]
#[schema(as = RateLimit)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct RateLimitSchema {
    /// Names the window in `usage` (like a scope; unique per key).
    #[schema(
        pattern = "^[a-z][a-z0-9:_-]*$",
        min_length = 1,
        max_length = 64,
        examples("burst")
    )]
    name: String,
    /// Units of cost admitted per window.
    #[schema(minimum = 1, maximum = 1_000_000_000, examples(10))]
    limit: u64,
    /// Window length in milliseconds: 1000 (1 s) to 86400000 (1 day).
    #[schema(minimum = 1000, maximum = 86_400_000, examples(1000))]
    window_ms: u64,
}

/// A key's usage credits: each request takes its cost from `remaining`
/// and is refused (429) when too few are left. With a refill, `remaining`
/// is set to `refill_amount` at the start of every `refill_interval`
/// (UTC). `refill_amount` and `refill_interval` come together or not at all.
#[derive(ToSchema)]
#[schema(as = Credits)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct CreditsSchema {
    /// Credits left (0 to 10^15).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64, examples(1000))]
    remaining: u64,
    /// What `remaining` is set to at each refill (1 to 10^15).
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64, examples(1000))]
    refill_amount: Option<u64>,
    /// How often the refill happens.
    refill_interval: Option<RefillInterval>,
    /// Start of the interval of the last refill. Set by keygate: ignored
    /// in requests.
    #[schema(read_only, examples("2025-06-02T00:00:00Z"))]
    last_refill_at: Option<DateTime<Utc>>,
}

/// What a verification took from one rate-limit window.
#[derive(ToSchema)]
#[schema(as = WindowUsage)]
#[allow(dead_code)]
pub(crate) struct WindowUsageSchema {
    /// The window's name.
    #[schema(examples("burst"))]
    name: String,
    /// Its limit.
    #[schema(examples(10))]
    limit: u64,
    /// Room left after this request.
    #[schema(examples(9))]
    remaining: u64,
    /// Milliseconds until the window closes and its room is back.
    #[schema(examples(850))]
    reset_ms: u64,
}

/// What a successful verification used of the key's limits.
#[derive(ToSchema)]
#[schema(as = Usage)]
#[allow(dead_code)]
pub(crate) struct UsageSchema {
    /// Credits left after this request; `null` for a key without credits.
    #[schema(required = true, examples(999))]
    remaining: Option<u64>,
    /// Every rate-limit window after this request (empty without limits).
    rate_limits: Vec<WindowUsageSchema>,
}

/// Answer of `POST /api-keys/verify`: the key's fields, and `usage`.
#[derive(ToSchema)]
#[schema(as = VerifiedApiKey)]
#[allow(dead_code)]
pub(crate) struct VerifiedApiKeySchema {
    #[serde(flatten)]
    entity: ApiKeySchema,
    usage: UsageSchema,
}

/// Body of `PATCH /api-keys/{id}`: only the fields present change.
/// `clear_expires: true` cannot come with an `expires_at`.
#[derive(ToSchema)]
#[schema(as = UpdateApiKey)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct UpdateApiKeySchema {
    /// New name (1 to 128 characters); `null` leaves it as it is.
    #[schema(min_length = 1, max_length = 128, examples("billing-service"))]
    name: Option<String>,
    /// At most 1024 characters; `null` clears it.
    #[schema(max_length = 1024, examples("Invoices and payment webhooks"))]
    description: Option<String>,
    /// `null` leaves it as it is.
    is_active: Option<bool>,
    /// Replaces the scopes (at most 100); `null` leaves them as they are.
    #[schema(value_type = Option<Vec<Scope>>, max_items = 100)]
    scopes: Option<Vec<String>>,
    /// Must be in the future; `null` leaves it as it is.
    #[schema(examples("2030-01-01T00:00:00Z"))]
    expires_at: Option<DateTime<Utc>>,
    /// true removes the expiry (not with `expires_at`).
    #[serde(default)]
    clear_expires: bool,
    /// New owner (1 to 256 characters); `null` clears it.
    #[schema(min_length = 1, max_length = 256, examples("team-7"))]
    owner_id: Option<String>,
    /// Replaces the whole object (at most 8 KiB); `null` clears it.
    #[schema(value_type = Option<Object>)]
    meta: Option<serde_json::Value>,
    /// Replaces every window (1 to 8, names unique); `null` removes the
    /// rate limit.
    #[schema(min_items = 1, max_items = 8)]
    rate_limits: Option<Vec<RateLimitSchema>>,
    /// Replaces the credits (the current refill interval counts as
    /// refilled); `null` makes usage unlimited.
    credits: Option<CreditsSchema>,
}

/// Search criteria, all optional, combined with AND.
#[derive(ToSchema)]
#[schema(as = ApiKeyFilter)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct ApiKeyFilterSchema {
    is_active: Option<bool>,
    /// Expires before (keys without an expiry never match).
    expires_before: Option<DateTime<Utc>>,
    /// Expires after (keys without an expiry never match).
    expires_after: Option<DateTime<Utc>>,
    /// Not expired at this time: no expiry, or expires after it.
    unexpired_at: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    created_after: Option<DateTime<Utc>>,
    /// Last used before (never-used keys never match).
    last_used_before: Option<DateTime<Utc>>,
    last_used_after: Option<DateTime<Utc>>,
    /// true: never used; false: used at least once.
    never_used: Option<bool>,
    /// Key holds every one of these (at most 100).
    #[serde(default)]
    #[schema(value_type = Vec<Scope>, max_items = 100)]
    scopes_contain_all: Vec<String>,
    /// Key holds at least one of these (at most 100; ignored when empty).
    #[serde(default)]
    #[schema(value_type = Vec<Scope>, max_items = 100)]
    scopes_contain_any: Vec<String>,
    /// Case-insensitive substring; `%` and `_` match literally.
    name_contains: Option<String>,
    name_exact: Option<String>,
    /// Exact owner id.
    owner_id: Option<String>,
    /// Exact public key id (the middle part of a key).
    key_id: Option<String>,
    /// true: keys with credits; false: keys without (unlimited usage).
    has_credits: Option<bool>,
    /// Keys whose stored `credits.remaining` is below this (keys without
    /// credits never match; a refill due but not yet applied by a use is
    /// not counted). At most 2^63 - 1 (no key holds more than 10^15).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    credits_below: Option<u64>,
    /// true: keys with rate limits; false: keys without.
    has_rate_limits: Option<bool>,
    /// Default `created_at`.
    #[serde(default)]
    #[schema(inline)]
    order_by: OrderBy,
    /// Default true.
    #[serde(default)]
    order_desc: bool,
    /// Default 0. Ignored by count; the query parameter wins in search.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    offset: u64,
    /// 1..=100 (search's default 50). Ignored by count; the query
    /// parameter wins in search.
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// One recorded change. Never holds a secret, a hash or a plaintext key
/// (a rotation shows `"secret": ["(hidden)", "(hidden)"]`).
#[derive(ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub(crate) struct AuditEventSchema {
    /// Time-ordered unique id (32 hex characters).
    #[schema(examples("01977a3c5e8b7d2e9f4a1b6c3d8e0f52"))]
    id: String,
    /// When the change was made.
    #[schema(examples("2025-06-02T14:05:00Z"))]
    at: DateTime<Utc>,
    action: AuditAction,
    /// The public key id of the changed key.
    #[schema(examples("7a74caa323a5410d"))]
    key_id: String,
    /// The entity id of the changed key.
    #[schema(examples("5b8f0c7e2d4a4f6b9c1d3e5f7a9b0c2d"))]
    entity_id: String,
    /// Who made the change: the admin key's `key_id` over HTTP, `anonymous`
    /// through an open router, `cli` from the command line.
    #[schema(examples("cli"))]
    actor: String,
    /// Each changed field mapped to `[old, new]`.
    #[schema(value_type = Object, additional_properties)]
    changes: serde_json::Value,
}

/// An error: `{"detail": "API key invalid"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    #[schema(examples("API key invalid"))]
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
    #[schema(examples("expires_at"))]
    field: String,
    /// What is wrong with it.
    #[schema(examples("must be in the future"))]
    msg: String,
}
