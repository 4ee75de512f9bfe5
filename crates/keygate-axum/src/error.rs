//! The one place where keygate's errors become HTTP responses.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::{Error, FieldError, WindowUsage};
use serde_json::{json, Value};

/// `RateLimit-Limit`: the limit of the window with the least room.
pub(crate) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: what that window has left.
pub(crate) const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: whole seconds (rounded up) until it reopens.
pub(crate) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Every error a keygate route answers with, as an HTTP response.
///
/// Build one from a [`keygate::Error`] with `?` or `.into()`; its
/// [`IntoResponse`] impl is the single mapping from keygate's errors to status
/// codes, `{"detail": ...}` bodies and `WWW-Authenticate` headers.
///
/// ```
/// use axum::http::StatusCode;
/// use axum::response::IntoResponse;
/// use keygate_axum::ApiError;
///
/// let response = ApiError::from(keygate::Error::KeyExpired).into_response();
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
///
/// // Too many keys waiting for the hashing pool: 503, retry in a second.
/// let busy = ApiError::from(keygate::Error::Overloaded).into_response();
/// assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
/// assert_eq!(busy.headers()["retry-after"], "1");
///
/// // Credits used up, refilled in 90.5 s: 429, retry in 91 s.
/// let spent = keygate::Error::UsageExceeded {
///     retry_after: Some(std::time::Duration::from_millis(90_500)),
/// };
/// let spent = ApiError::from(spent).into_response();
/// assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(spent.headers()["retry-after"], "91");
///
/// // In a handler:
/// async fn handler() -> Result<&'static str, ApiError> {
///     Err(keygate::Error::NotFound)?
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// An error of the keygate core (validation errors name body fields).
    Keygate(Error),
    /// Query parameters that failed validation (`limit`, `offset`, ...).
    InvalidQuery(Vec<FieldError>),
    /// The request could not be read: malformed JSON, wrong content type,
    /// missing or oversized body. `status` is a 4xx code.
    BadRequest {
        /// The status to answer with.
        status: StatusCode,
        /// The `detail` text.
        detail: String,
    },
    /// A server-side fault; the reason is logged, the client sees only
    /// `Internal server error` (500).
    Internal(String),
}

impl ApiError {
    /// A 4xx error about the request itself.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// let e = keygate_axum::ApiError::bad_request(StatusCode::BAD_REQUEST, "Malformed JSON");
    /// # let _ = e;
    /// ```
    pub fn bad_request(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            status,
            detail: detail.into(),
        }
    }

    /// The 413 answer to a body above `limit` bytes.
    ///
    /// ```
    /// let e = keygate_axum::ApiError::payload_too_large(64 * 1024);
    /// # let _ = e;
    /// ```
    pub fn payload_too_large(limit: usize) -> Self {
        Self::bad_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large (limit {limit} bytes)"),
        )
    }

    /// A 422 naming one invalid body field (`loc` = `["body", field]`).
    ///
    /// ```
    /// let e = keygate_axum::ApiError::invalid_body_field("name", "must not be empty");
    /// # let _ = e;
    /// ```
    pub fn invalid_body_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Keygate(Error::validation(field, message))
    }

    /// The HTTP status this error answers with.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use keygate_axum::ApiError;
    /// assert_eq!(ApiError::from(keygate::Error::InvalidKey).status(), StatusCode::UNAUTHORIZED);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Keygate(e) => {
                keygate_reply(e).map_or(StatusCode::INTERNAL_SERVER_ERROR, |r| r.status)
            }
            Self::InvalidQuery(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::Keygate(e)
    }
}

/// What a keygate error answers: status, `detail` and headers, declared
/// together.
struct Reply {
    status: StatusCode,
    detail: Value,
    /// `WWW-Authenticate`.
    challenge: Option<HeaderValue>,
    retry_after: Option<HeaderValue>,
    /// The full window of a 429, for its `RateLimit-*` headers.
    full_window: Option<WindowUsage>,
}

impl Reply {
    fn new(status: StatusCode, detail: &str) -> Self {
        Self::with_detail(status, json!(detail))
    }

    fn with_detail(status: StatusCode, detail: Value) -> Self {
        Self {
            status,
            detail,
            challenge: None,
            retry_after: None,
            full_window: None,
        }
    }

    fn challenge(mut self, value: HeaderValue) -> Self {
        self.challenge = Some(value);
        self
    }

    fn retry_after(mut self, value: Option<HeaderValue>) -> Self {
        self.retry_after = value;
        self
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "detail": self.detail }))).into_response();
        let headers = response.headers_mut();
        if let Some(value) = self.challenge {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(value) = self.retry_after {
            headers.insert(RETRY_AFTER, value);
        }
        if let Some(window) = self.full_window {
            // The refused request took nothing; the window has no room for it.
            insert_rate_limit(headers, &window, 0);
        }
        response
    }
}

/// The one table from keygate's errors to HTTP (SPEC §6 and §12). `None`
/// for a variant added to [`keygate::Error`] (non-exhaustive) after this
/// table: it answers 500 and is logged as unmapped, and the test over
/// `keygate::testing::every_error` fails until it has a row.
fn keygate_reply(e: &Error) -> Option<Reply> {
    use StatusCode as S;
    Some(match e {
        Error::KeyNotProvided => Reply::new(S::UNAUTHORIZED, "API key missing")
            .challenge(HeaderValue::from_static("Bearer")),
        Error::InvalidKey | Error::KeyNotFound => Reply::new(S::UNAUTHORIZED, "API key invalid")
            .challenge(HeaderValue::from_static(r#"Bearer error="invalid_token""#)),
        Error::KeyInactive => Reply::new(S::FORBIDDEN, "API key inactive"),
        Error::KeyExpired => Reply::new(S::FORBIDDEN, "API key expired"),
        Error::InvalidScopes { required, .. } => {
            Reply::new(S::FORBIDDEN, &e.to_string()).challenge(scope_challenge(required))
        }
        Error::RateLimited {
            retry_after,
            window,
        } => Reply {
            full_window: Some(window.clone()),
            ..Reply::new(S::TOO_MANY_REQUESTS, "API key rate limit exceeded")
                .retry_after(Some(whole_seconds(*retry_after)))
        },
        // `Retry-After` only when a refill is scheduled: otherwise waiting
        // does not help.
        Error::UsageExceeded { retry_after } => {
            Reply::new(S::TOO_MANY_REQUESTS, "API key usage exceeded")
                .retry_after(retry_after.map(whole_seconds))
        }
        Error::NotFound => Reply::new(S::NOT_FOUND, "API key not found"),
        Error::Validation(errors) => {
            Reply::with_detail(S::UNPROCESSABLE_ENTITY, field_errors("body", errors))
        }
        Error::Conflict(_) => Reply::new(S::CONFLICT, "API key already exists"),
        Error::StoreUnavailable(_) => {
            Reply::new(S::SERVICE_UNAVAILABLE, "API key store unavailable")
        }
        Error::Overloaded => Reply::new(
            S::SERVICE_UNAVAILABLE,
            "Server busy: too many keys waiting to be checked, retry shortly",
        )
        .retry_after(Some(HeaderValue::from_static("1"))),
        // Store and hash failures may carry internals: logged, never answered.
        Error::Store(_) | Error::Hash(_) => Reply::new(S::INTERNAL_SERVER_ERROR, INTERNAL),
        _ => return None,
    })
}

/// The `detail` of every 500.
const INTERNAL: &str = "Internal server error";

/// What the server log says of a keygate error it answers.
fn log(e: &Error) {
    match e {
        Error::Conflict(reason) => tracing::info!(%reason, "conflicting API key write refused"),
        Error::StoreUnavailable(reason) => tracing::error!(%reason, "API key store unavailable"),
        Error::Store(_) | Error::Hash(_) => {
            tracing::error!(error = %e, "internal error in keygate")
        }
        _ => {}
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Keygate(e) => {
                log(&e);
                keygate_reply(&e)
                    .unwrap_or_else(|| {
                        tracing::error!(error = %e, "keygate error without an HTTP mapping");
                        Reply::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
                    })
                    .into_response()
            }
            Self::InvalidQuery(errors) => Reply::with_detail(
                StatusCode::UNPROCESSABLE_ENTITY,
                field_errors("query", &errors),
            )
            .into_response(),
            Self::BadRequest { status, detail } => Reply::new(status, &detail).into_response(),
            Self::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                Reply::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL).into_response()
            }
        }
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining` (given) and `RateLimit-Reset`
/// of `window`.
pub(crate) fn insert_rate_limit(headers: &mut HeaderMap, window: &WindowUsage, remaining: u64) {
    let [limit, remaining, reset] = rate_limit_values(window, remaining);
    headers.insert(RATELIMIT_LIMIT, limit);
    headers.insert(RATELIMIT_REMAINING, remaining);
    headers.insert(RATELIMIT_RESET, reset);
}

/// The values of `RateLimit-Limit`, `RateLimit-Remaining` (given) and
/// `RateLimit-Reset` of `window`, their digits in one shared buffer.
pub(crate) fn rate_limit_values(window: &WindowUsage, remaining: u64) -> [HeaderValue; 3] {
    let reset = seconds_up(Duration::from_millis(window.reset_ms));
    let (mut b0, mut b1, mut b2) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    let (limit, remaining, reset) = (
        b0.format(window.limit),
        b1.format(remaining),
        b2.format(reset),
    );
    let mut text = Vec::with_capacity(limit.len() + remaining.len() + reset.len());
    for part in [limit, remaining, reset] {
        text.extend_from_slice(part.as_bytes());
    }
    let text = Bytes::from(text);
    let (a, b) = (limit.len(), limit.len() + remaining.len());
    // Digits are always a valid header value.
    let value = |range: std::ops::Range<usize>| {
        HeaderValue::from_maybe_shared(text.slice(range)).unwrap_or(HeaderValue::from_static("0"))
    };
    [value(0..a), value(a..b), value(b..text.len())]
}

/// A duration as whole seconds, rounded up, at least 1: a client that waits
/// this long never comes back too early, and never is told to retry at once.
pub(crate) fn whole_seconds(d: Duration) -> HeaderValue {
    integer(seconds_up(d))
}

/// `d` in whole seconds, rounded up, at least 1.
fn seconds_up(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// `n` as a header value, in one allocation of its exact size
/// (`HeaderValue::from(u64)` takes two: it grows a buffer, then shrinks it;
/// and `itoa` skips the formatting machinery of `write!`).
fn integer(n: u64) -> HeaderValue {
    let mut buf = itoa::Buffer::new();
    // Digits are always a valid header value.
    HeaderValue::from_bytes(buf.format(n).as_bytes()).unwrap_or(HeaderValue::from_static("0"))
}

/// `Bearer error="insufficient_scope", scope="read write"` (RFC 6750 §3).
fn scope_challenge(required: &[String]) -> HeaderValue {
    let value = format!(
        r#"Bearer error="insufficient_scope", scope="{}""#,
        required.join(" ")
    );
    // Scopes are validated against ^[a-z][a-z0-9:_-]*$ so this cannot fail;
    // fall back to the bare challenge rather than panic.
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static(r#"Bearer error="insufficient_scope""#))
}

fn field_errors(location: &str, errors: &[FieldError]) -> Value {
    errors
        .iter()
        .map(|e| {
            let field = dotted(&e.field);
            let mut loc = vec![json!(location)];
            loc.extend(
                field
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u64>().map_or_else(|_| json!(s), |i| json!(i))),
            );
            json!({ "loc": loc, "field": field, "msg": e.message })
        })
        .collect()
}

/// A field path as the HTTP API writes it: the core's `rate_limits[1].name`
/// becomes `rate_limits.1.name`, the form serde errors take (`scopes.1`).
fn dotted(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str(&rest[..open]);
                out.push('.');
                out.push_str(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::bad_request(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
        } else {
            Self::bad_request(StatusCode::BAD_REQUEST, "Could not read the request body")
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(
            StatusCode::BAD_REQUEST,
            format!("Invalid query string: {}", rejection.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(
            StatusCode::BAD_REQUEST,
            format!("Invalid path: {}", rejection.body_text()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_indexes_become_dotted() {
        for (core, http) in [
            ("rate_limits[1].name", "rate_limits.1.name"),
            ("rate_limits[12]", "rate_limits.12"),
            ("credits.remaining", "credits.remaining"),
            ("meta.a[b].c", "meta.a[b].c"),
            ("meta.x[]", "meta.x[]"),
            ("a[1][2]", "a.1.2"),
            ("", ""),
        ] {
            assert_eq!(dotted(core), http, "{core}");
        }
    }

    #[test]
    fn seconds_round_up_and_are_never_zero() {
        for (ms, header) in [
            (0, "1"),
            (1, "1"),
            (999, "1"),
            (1000, "1"),
            (1001, "2"),
            (86_400_000, "86400"),
        ] {
            assert_eq!(whole_seconds(Duration::from_millis(ms)), header, "{ms}");
        }
        assert_eq!(whole_seconds(Duration::from_nanos(2_000_000_001)), "3");
        for n in [0, 7, 10, 1_000_000_000, u64::MAX] {
            assert_eq!(integer(n), n.to_string().as_str());
        }
    }

    #[test]
    fn rate_limited_is_429_with_every_header() {
        let e = Error::RateLimited {
            retry_after: Duration::from_millis(2_500),
            window: WindowUsage {
                name: "burst".into(),
                limit: 10,
                remaining: 3,
                reset_ms: 2_500,
            },
        };
        let r = ApiError::from(e).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = r.headers();
        assert_eq!(h[RETRY_AFTER], "3");
        assert_eq!(h[RATELIMIT_LIMIT], "10");
        assert_eq!(h[RATELIMIT_REMAINING], "0");
        assert_eq!(h[RATELIMIT_RESET], "3");
        let spent = ApiError::from(Error::UsageExceeded { retry_after: None }).into_response();
        assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(spent.headers().get(RETRY_AFTER).is_none());
        assert!(spent.headers().get(RATELIMIT_LIMIT).is_none());
    }

    /// Every variant of `keygate::Error` has a row in the table, and the
    /// response says what the SPEC says: status, `detail`, headers.
    #[tokio::test]
    async fn every_keygate_error_has_its_status_detail_and_headers() {
        use axum::body::to_bytes;
        let all = keygate::testing::every_error();
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let name = format!("{e:?}");
            let name = name
                .split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap()
                .to_owned();
            assert!(keygate_reply(&e).is_some(), "{name} has no HTTP mapping");
            let (status, detail, headers): (u16, &str, &[(&str, &str)]) = match name.as_str() {
                "KeyNotProvided" => (401, "API key missing", &[("www-authenticate", "Bearer")]),
                "InvalidKey" | "KeyNotFound" => (
                    401,
                    "API key invalid",
                    &[("www-authenticate", r#"Bearer error="invalid_token""#)],
                ),
                "KeyInactive" => (403, "API key inactive", &[]),
                "KeyExpired" => (403, "API key expired", &[]),
                "InvalidScopes" => (
                    403,
                    "API key missing required scopes 'read', 'write'",
                    &[(
                        "www-authenticate",
                        r#"Bearer error="insufficient_scope", scope="read write""#,
                    )],
                ),
                "RateLimited" => (
                    429,
                    "API key rate limit exceeded",
                    &[
                        ("retry-after", "2"),
                        ("ratelimit-limit", "100"),
                        ("ratelimit-remaining", "0"),
                        ("ratelimit-reset", "2"),
                    ],
                ),
                "UsageExceeded" => (429, "API key usage exceeded", &[("retry-after", "60")]),
                "NotFound" => (404, "API key not found", &[]),
                "Validation" => (422, "", &[]),
                "Conflict" => (409, "API key already exists", &[]),
                "StoreUnavailable" => (503, "API key store unavailable", &[]),
                "Store" | "Hash" => (500, "Internal server error", &[]),
                "Overloaded" => (
                    503,
                    "Server busy: too many keys waiting to be checked, retry shortly",
                    &[("retry-after", "1")],
                ),
                other => panic!("no expected response for keygate::Error::{other}"),
            };
            seen.insert(name.clone());
            let api = ApiError::from(e);
            assert_eq!(api.status().as_u16(), status, "{name}");
            let response = api.into_response();
            assert_eq!(response.status().as_u16(), status, "{name}");
            for (header, value) in headers {
                assert_eq!(response.headers()[*header], *value, "{name} {header}");
            }
            let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            if name == "Validation" {
                assert_eq!(body["detail"][0]["loc"], json!(["body", "name"]), "{body}");
            } else {
                assert_eq!(body, json!({ "detail": detail }), "{name}");
            }
        }
        assert_eq!(seen.len(), 15, "{seen:?}");
    }
}
