//! What [`app`](crate::app) answers before and after routing: 414 for a
//! request target above [`MAX_URI_BYTES`], 431 for header fields above
//! [`MAX_HEADER_BYTES`], JSON 404 for an unknown path, and a JSON body for
//! every error response that has none (405 of `/openapi.json`, 404 of a
//! missing `/docs/` asset).
//!
//! The limits sit well below hyper's own (URIs up to 64 KiB, headers up to
//! its read buffer), so a too-large request meets these JSON answers rather
//! than hyper's, which have no body.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest request target (path and query) [`app`](crate::app) serves: 8 KiB.
/// Longer ones are answered 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header bytes [`app`](crate::app) reads: 16 KiB, counting each
/// field's name and value plus 4 bytes (`": "` and the line end). More
/// are answered 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The JSON 404 of a path no route serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::bad_request(StatusCode::NOT_FOUND, "Not Found")
}

/// The middleware of [`app`](crate::app): the size limits, then JSON bodies
/// on error responses that lack one.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    if let Some((status, detail)) = too_large(request.uri(), request.headers()) {
        return ApiError::bad_request(status, detail).into_response();
    }
    with_json_detail(next.run(request).await)
}

/// 414 or 431 with its reason when the request target or the header
/// fields are above the limits.
pub(crate) fn too_large(uri: &Uri, headers: &HeaderMap) -> Option<(StatusCode, String)> {
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if target > MAX_URI_BYTES {
        return Some((
            StatusCode::URI_TOO_LONG,
            format!("URI too long (limit {MAX_URI_BYTES} bytes)"),
        ));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (header_bytes > MAX_HEADER_BYTES).then(|| {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("Request header fields too large (limit {MAX_HEADER_BYTES} bytes)"),
        )
    })
}

/// An error response without a JSON body gets `{"detail": "<reason>"}`;
/// its other headers (`Allow`, `WWW-Authenticate`) stay.
fn with_json_detail(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let detail = status.canonical_reason().unwrap_or("Error");
    let json = ApiError::bad_request(status, detail).into_response();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    let (json_parts, body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn limits_count_the_target_and_the_header_bytes() {
        let ok: Uri = format!("/{}", "a".repeat(MAX_URI_BYTES - 1))
            .parse()
            .unwrap();
        assert!(too_large(&ok, &HeaderMap::new()).is_none());
        let long: Uri = format!("/?q={}", "a".repeat(MAX_URI_BYTES))
            .parse()
            .unwrap();
        let e = too_large(&long, &HeaderMap::new()).unwrap();
        assert_eq!(e.0, StatusCode::URI_TOO_LONG);

        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&"v".repeat(1000)).unwrap();
        for i in 0..16 {
            headers.insert(
                format!("x-h{i:02}")
                    .parse::<axum::http::HeaderName>()
                    .unwrap(),
                value.clone(),
            );
        }
        // 16 × (5 + 1000 + 4) bytes < 16 KiB.
        assert!(too_large(&"/".parse().unwrap(), &headers).is_none());
        headers.insert("x-h16", value);
        let e = too_large(&"/".parse().unwrap(), &headers).unwrap();
        assert_eq!(e.0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn bodiless_errors_get_a_json_detail_and_keep_their_headers() {
        let bare = Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header("allow", "GET,HEAD")
            .header(CONTENT_LENGTH, "0")
            .body(Body::empty())
            .unwrap();
        let json = with_json_detail(bare);
        assert_eq!(json.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(json.headers()["allow"], "GET,HEAD");
        assert_eq!(json.headers()[CONTENT_TYPE], "application/json");
        assert!(json.headers().get(CONTENT_LENGTH).is_none());
        // Success and JSON errors pass as they are.
        let ok = Response::new(Body::from("hi"));
        assert!(with_json_detail(ok).headers().get(CONTENT_TYPE).is_none());
    }
}
