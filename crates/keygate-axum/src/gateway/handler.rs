//! The `/auth` handler.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keygate::Verified;

use super::path::normalize_path;
use super::policy::{Decision, DefaultAction};
use super::{
    SharedPolicy, X_FORWARDED_METHOD, X_FORWARDED_URI, X_KEYGATE_ENTITY_ID, X_KEYGATE_KEY_ID,
    X_KEYGATE_OWNER_ID, X_KEYGATE_SCOPES, X_ORIGINAL_METHOD, X_ORIGINAL_URI,
};
use crate::error::{insert_rate_limit, ApiError};
use crate::layer::KeyVerifier;

/// The router state: one `Arc`, so a request clones one counter.
#[derive(Clone)]
pub(super) struct Gateway(Arc<Inner>);

struct Inner {
    verifier: KeyVerifier,
    policy: SharedPolicy,
}

impl Gateway {
    pub(super) fn new(verifier: KeyVerifier, policy: SharedPolicy) -> Self {
        Self(Arc::new(Inner { verifier, policy }))
    }
}

/// One of the two headers that may carry the original URI or method.
struct Forwarded {
    /// As Traefik and Caddy send it.
    proxy: &'static str,
    /// As the nginx configuration sends it.
    nginx: &'static str,
    /// For messages: `X-Forwarded-Uri` / `X-Original-URI`.
    names: &'static str,
    /// The `detail` when neither is there.
    missing: &'static str,
}

const URI: Forwarded = Forwarded {
    proxy: X_FORWARDED_URI,
    nginx: X_ORIGINAL_URI,
    names: "X-Forwarded-Uri / X-Original-URI",
    missing: "no forwarded URI",
};

const METHOD: Forwarded = Forwarded {
    proxy: X_FORWARDED_METHOD,
    nginx: X_ORIGINAL_METHOD,
    names: "X-Forwarded-Method / X-Original-Method",
    missing: "no forwarded method",
};

pub(super) async fn auth(State(gateway): State<Gateway>, request: Request) -> Response {
    let gateway = &*gateway.0;
    let headers = request.headers();
    let target = match forwarded(headers, &URI) {
        Ok(target) => target,
        Err(detail) => return forbidden(detail),
    };
    let method = match forwarded(headers, &METHOD) {
        Ok(method) => method,
        Err(detail) => return forbidden(detail),
    };
    let path = match normalize_path(target) {
        Ok(path) => path,
        Err(why) => {
            tracing::debug!(reason = %why, "gateway: forwarded path refused");
            return forbidden(format!("Path refused: {why}"));
        }
    };
    let policy = gateway.policy.load();
    let route = match policy.decide(method, &path) {
        Decision::Route(route) => route,
        Decision::Unmatched(DefaultAction::Allow) => return StatusCode::OK.into_response(),
        Decision::Unmatched(DefaultAction::Deny) => {
            return forbidden("No gateway policy route matches this request".into())
        }
    };
    // The query is read only when `?api_key=` is a key source.
    let uri = if gateway.verifier.sources().query_param() {
        target.parse::<Uri>().unwrap_or_default()
    } else {
        Uri::default()
    };
    match gateway
        .verifier
        .verify_with(headers, &uri, route.scopes(), route.cost())
        .await
    {
        Ok(verified) => allowed(&verified),
        Err(ApiError::BadRequest { status, detail }) if status == StatusCode::BAD_REQUEST => {
            // A key source given twice: nginx would make a 400 a 500.
            forbidden(detail)
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The original URI or method, from whichever of its two headers the
/// proxy sent. A header sent twice, or both sent with different values,
/// is refused: a client could have added one of them itself, and which
/// one the proxy set is not known here. The error is the 403's detail.
fn forwarded<'a>(headers: &'a HeaderMap, which: &Forwarded) -> Result<&'a str, String> {
    let one = |name: &'static str| -> Result<Option<&'a str>, String> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(format!("More than one {} header", which.names));
        }
        std::str::from_utf8(value.as_bytes())
            .map(Some)
            .map_err(|_| format!("{} is not text", which.names))
    };
    match (one(which.proxy)?, one(which.nginx)?) {
        (Some(a), Some(b)) if a != b => {
            tracing::debug!(
                headers = which.names,
                "gateway: conflicting forwarded headers refused"
            );
            Err(format!("Conflicting {} headers", which.names))
        }
        (Some(value), _) | (None, Some(value)) => Ok(value),
        (None, None) => {
            tracing::warn!(
                expected = which.names,
                "gateway: {} (is the proxy configured to send it?)",
                which.missing
            );
            Err(which.missing.into())
        }
    }
}

/// 403 `{"detail": ...}`: the one refusal status every proxy passes on.
fn forbidden(detail: String) -> Response {
    ApiError::bad_request(StatusCode::FORBIDDEN, detail).into_response()
}

/// 200, empty body, the key's identity for the upstream and the
/// `RateLimit-*` of its tightest window.
fn allowed(verified: &Verified) -> Response {
    let key = &verified.key;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    put(headers, X_KEYGATE_KEY_ID, &key.key_id);
    put(headers, X_KEYGATE_ENTITY_ID, &key.id);
    if let Some(owner) = &key.owner_id {
        put(headers, X_KEYGATE_OWNER_ID, owner);
    }
    let scopes = key.scopes.as_slice().join(" ");
    if !put(headers, X_KEYGATE_SCOPES, &scopes) {
        // Scopes stored by another tool may hold anything: pass the valid ones.
        let valid: Vec<&str> = key
            .scopes
            .iter()
            .filter(|s| keygate::is_valid_scope(s))
            .collect();
        put(headers, X_KEYGATE_SCOPES, &valid.join(" "));
    }
    if let Some(window) = verified.usage.tightest() {
        insert_rate_limit(headers, window, window.remaining);
    }
    response
}

/// Sets `name: value`; false (and nothing set) when `value` cannot be a
/// header value.
fn put(headers: &mut HeaderMap, name: &'static str, value: &str) -> bool {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(HeaderName::from_static(name), value);
            true
        }
        Err(_) => {
            tracing::warn!(
                header = name,
                "gateway: value is not a valid header value: left out"
            );
            false
        }
    }
}
