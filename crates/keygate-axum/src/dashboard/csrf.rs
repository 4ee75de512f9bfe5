//! CSRF protection: a synchronizer token kept in the session, sent back in
//! every POST form's hidden field `csrf`, compared in constant time before
//! any handler runs.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use super::error::UiError;

/// The session entry holding the token.
const CSRF_KEY: &str = "csrf";
/// The form field carrying it.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// Largest form body read (the metadata field allows 8 KiB of JSON).
pub(crate) const FORM_LIMIT: usize = 64 * 1024;

/// The session's token, made (and stored) on first use.
pub(crate) async fn token(session: &Session) -> Result<String, UiError> {
    if let Some(token) = session.get::<String>(CSRF_KEY).await? {
        return Ok(token);
    }
    renew(session).await
}

/// Replaces the session's token (at sign-in: a token seen before signing in
/// is worth nothing after).
pub(crate) async fn renew(session: &Session) -> Result<String, UiError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    session.insert(CSRF_KEY, &token).await?;
    Ok(token)
}

/// The middleware: a POST whose form has no `csrf` field equal to the
/// session's token is answered 403 and reaches no handler. The body is
/// read here (at most [`FORM_LIMIT`] bytes) and handed on unchanged.
pub(crate) async fn guard(session: Session, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "Form too large").into_response();
    };
    let sent = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    let expected = match session.get::<String>(CSRF_KEY).await {
        Ok(token) => token,
        Err(e) => return UiError::from(e).into_response(),
    };
    if !matches(sent.as_deref(), expected.as_deref()) {
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(parts.uri.path(), |uri| uri.0.path());
        tracing::info!(%path, "dashboard: POST refused (CSRF token missing or invalid)");
        return UiError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// True when both tokens exist, are not empty and are equal (compared in
/// constant time).
fn matches(sent: Option<&str>, expected: Option<&str>) -> bool {
    match (sent, expected) {
        (Some(sent), Some(expected)) if !expected.is_empty() => {
            bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn tokens_must_exist_and_be_equal() {
        assert!(matches(Some("abc"), Some("abc")));
        assert!(!matches(Some("abd"), Some("abc")));
        assert!(!matches(Some("ab"), Some("abc")));
        assert!(!matches(None, Some("abc")));
        assert!(!matches(Some("abc"), None));
        assert!(!matches(Some(""), Some("")));
    }
}
