//! The dashboard's errors as HTML pages: one mapping, like
//! [`ApiError`](crate::ApiError)'s for JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::views::{render, Chrome, ErrorPage};

/// What a dashboard handler may fail with.
#[derive(Debug)]
pub(crate) enum UiError {
    /// No such key (or page): 404.
    NotFound,
    /// A POST without the session's CSRF token: 403.
    Csrf,
    /// The store (keys or sessions) does not answer: 503.
    Unavailable(String),
    /// A bug or an unexpected store error: 500, the reason logged only.
    Internal(String),
    /// A request target or header fields above the API's limits: 414 or
    /// 431 with the limit.
    TooLarge(StatusCode, String),
}

impl From<keygate::Error> for UiError {
    fn from(e: keygate::Error) -> Self {
        match e {
            keygate::Error::NotFound => Self::NotFound,
            keygate::Error::StoreUnavailable(reason) => Self::Unavailable(reason),
            keygate::Error::Overloaded => Self::Unavailable("overloaded".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<tower_sessions::session::Error> for UiError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Unavailable(format!("session store: {e}"))
    }
}

impl From<crate::ApiError> for UiError {
    fn from(e: crate::ApiError) -> Self {
        match e {
            crate::ApiError::Keygate(e) => e.into(),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl UiError {
    /// The page's status, heading and message (logging the reason of a
    /// 500 or 503: it is never shown).
    pub(crate) fn parts(self) -> (StatusCode, &'static str, String) {
        match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such key or page.".to_owned(),
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "CSRF token missing or invalid.".to_owned(),
            ),
            Self::Unavailable(reason) => {
                tracing::warn!(%reason, "dashboard: store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable",
                    "The key store does not answer. Try again in a moment.".to_owned(),
                )
            }
            Self::Internal(reason) => {
                tracing::error!(%reason, "dashboard: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error",
                    "Something went wrong; the server log has the details.".to_owned(),
                )
            }
            Self::TooLarge(status, reason) => (
                status,
                status.canonical_reason().unwrap_or("Request too large"),
                format!("{reason}."),
            ),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, heading, message) = self.parts();
        // Outside a session (no admin known): no CSRF token, no sign-out.
        // A signed-in handler renders its errors with `Ctx::error`.
        let page = ErrorPage {
            chrome: Chrome::new(heading, String::new(), None),
            heading: heading.to_owned(),
            message,
        };
        render(status, &page)
    }
}

/// The size limits of the JSON API (`MAX_URI_BYTES`, `MAX_HEADER_BYTES`)
/// as pages, before any session is read. Counts the target as the client
/// sent it, `/ui` included.
pub(crate) async fn size_limits(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or(request.uri(), |original| &original.0);
    match crate::limits::too_large(uri, request.headers()) {
        Some((status, reason)) => UiError::TooLarge(status, reason).into_response(),
        None => next.run(request).await,
    }
}
