//! The one place where keygate's errors become HTTP responses.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use keygate::{Error, FieldError};
use serde_json::{json, Value};

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
            Self::Keygate(e) => match e {
                Error::KeyNotProvided | Error::InvalidKey | Error::KeyNotFound => {
                    StatusCode::UNAUTHORIZED
                }
                Error::KeyInactive | Error::KeyExpired | Error::InvalidScopes { .. } => {
                    StatusCode::FORBIDDEN
                }
                Error::NotFound => StatusCode::NOT_FOUND,
                Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Error::Conflict(_) => StatusCode::CONFLICT,
                Error::StoreUnavailable(_) | Error::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut challenge: Option<HeaderValue> = None;
        let mut retry_after: Option<HeaderValue> = None;
        let detail: Value = match self {
            Self::Keygate(e) => match &e {
                Error::KeyNotProvided => {
                    challenge = Some(HeaderValue::from_static("Bearer"));
                    json!("API key missing")
                }
                Error::InvalidKey | Error::KeyNotFound => {
                    challenge = Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#));
                    json!("API key invalid")
                }
                Error::KeyInactive => json!("API key inactive"),
                Error::KeyExpired => json!("API key expired"),
                Error::InvalidScopes { required, .. } => {
                    challenge = Some(scope_challenge(required));
                    json!(e.to_string())
                }
                Error::NotFound => json!("API key not found"),
                Error::Validation(errors) => field_errors("body", errors),
                Error::Conflict(reason) => {
                    tracing::info!(%reason, "conflicting API key write refused");
                    json!("API key already exists")
                }
                Error::StoreUnavailable(reason) => {
                    tracing::error!(%reason, "API key store unavailable");
                    json!("API key store unavailable")
                }
                Error::Overloaded => {
                    retry_after = Some(HeaderValue::from_static("1"));
                    json!("Server busy: too many keys waiting to be checked, retry shortly")
                }
                other => {
                    // Store and hash failures may carry internals: log, never answer them.
                    tracing::error!(error = %other, "internal error in keygate");
                    json!("Internal server error")
                }
            },
            Self::InvalidQuery(errors) => field_errors("query", &errors),
            Self::BadRequest { detail, .. } => json!(detail),
            Self::Internal(reason) => {
                tracing::error!(%reason, "internal error");
                json!("Internal server error")
            }
        };
        let mut response = (status, Json(json!({ "detail": detail }))).into_response();
        if let Some(value) = challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        if let Some(value) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
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
            let mut loc = vec![json!(location)];
            loc.extend(
                e.field
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u64>().map_or_else(|_| json!(s), |i| json!(i))),
            );
            json!({ "loc": loc, "field": e.field, "msg": e.message })
        })
        .collect()
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
