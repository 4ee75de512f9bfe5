//! Extractors: the verified key, typed scope markers, and JSON bodies with
//! JSON rejections.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use keygate::ApiKey;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::json::parse_json;
use crate::layer::KeyVerifier;

/// The key that [`RequireScopes`](crate::RequireScopes) verified for this
/// request. Extracting it on a route without that layer is a programming
/// error and answers 500.
///
/// ```
/// use axum::{routing::get, Json, Router};
/// use keygate_axum::{RequireScopes, VerifiedKey};
///
/// async fn whoami(key: VerifiedKey) -> Json<keygate::ApiKey> {
///     Json((*key).clone())
/// }
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .route_layer(RequireScopes::new(service, ["read"]));
/// ```
#[derive(Debug, Clone)]
pub struct VerifiedKey(pub Arc<ApiKey>);

impl Deref for VerifiedKey {
    type Target = ApiKey;
    fn deref(&self) -> &ApiKey {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<VerifiedKey>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Internal("VerifiedKey extracted on a route without RequireScopes".into())
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedKey>().cloned())
    }
}

/// A type that names the scopes a route requires, for [`Scoped`].
/// Declare one with [`required_scopes!`](crate::required_scopes).
///
/// ```
/// struct Admin;
/// impl keygate_axum::RequiredScopes for Admin {
///     const SCOPES: &'static [&'static str] = &["keygate:admin"];
/// }
/// ```
pub trait RequiredScopes: Send + Sync + 'static {
    /// Every scope the key must hold, in the order reported on refusal.
    const SCOPES: &'static [&'static str];
    /// What one request takes from the key's rate limits and credits
    /// (0..=1000, default 1; see [`RequireScopes::cost`](crate::RequireScopes::cost)).
    /// A value above 1000 fails the build of the route that extracts
    /// [`Scoped`] with it.
    const COST: u64 = 1;
}

/// Declares a [`RequiredScopes`] marker type in one line, optionally with
/// a cost per request.
///
/// ```
/// keygate_axum::required_scopes!(pub ReadWrite = ["read", "write"]);
/// keygate_axum::required_scopes!(pub Export = ["export"], cost = 5);
/// use keygate_axum::RequiredScopes;
/// assert_eq!(ReadWrite::SCOPES, ["read", "write"]);
/// assert_eq!((ReadWrite::COST, Export::COST), (1, 5));
/// ```
#[macro_export]
macro_rules! required_scopes {
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($scope:literal),* $(,)?]) => {
        $crate::required_scopes!($(#[$meta])* $vis $name = [$($scope),*], cost = 1);
    };
    ($(#[$meta:meta])* $vis:vis $name:ident = [$($scope:literal),* $(,)?], cost = $cost:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::RequiredScopes for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),*];
            const COST: u64 = $cost;
        }
    };
}

/// Extractor that verifies the request's key against the scopes of the
/// marker `R`, at the marker's [`COST`](RequiredScopes::COST): the typed
/// alternative to [`RequireScopes`](crate::RequireScopes). The router
/// state must give a [`KeyVerifier`] through [`FromRef`].
///
/// Refusals are the layer's (429 with `Retry-After` and `RateLimit-*`
/// included). An extractor cannot add headers to the handler's response:
/// successful responses get `RateLimit-*` headers only behind the layer.
///
/// ```
/// use axum::{routing::get, Router};
/// use keygate_axum::{KeyVerifier, Scoped};
///
/// keygate_axum::required_scopes!(Write = ["write"]);
///
/// async fn publish(Scoped(key, _): Scoped<Write>) -> String {
///     format!("published by {}", key.id)
/// }
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: Router = Router::new()
///     .route("/publish", get(publish))
///     .with_state(KeyVerifier::new(service));
/// ```
pub struct Scoped<R>(pub Arc<ApiKey>, pub PhantomData<fn() -> R>);

impl<R> std::fmt::Debug for Scoped<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scoped").field(&self.0).finish()
    }
}

impl<R> Clone for Scoped<R> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<R> Deref for Scoped<R> {
    type Target = ApiKey;
    fn deref(&self) -> &ApiKey {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for Scoped<R>
where
    S: Send + Sync,
    R: RequiredScopes,
    KeyVerifier: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        const {
            assert!(
                R::COST <= keygate::MAX_COST,
                "RequiredScopes::COST is above keygate::MAX_COST (1000)"
            )
        };
        let verifier = KeyVerifier::from_ref(state);
        let verified = verifier
            .verify_with(&parts.headers, &parts.uri, R::SCOPES, R::COST)
            .await?;
        Ok(Self(verified.key, PhantomData))
    }
}

/// A JSON body whose every rejection is a JSON `{"detail": ...}` response:
/// missing body 400, wrong content type 415, malformed JSON 400, too large
/// 413, a field of the wrong shape 422 naming it.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match read_json(req, state).await? {
            Some(value) => Ok(Self(value)),
            None => Err(ApiError::bad_request(
                StatusCode::BAD_REQUEST,
                "Request body is missing: expected a JSON object",
            )),
        }
    }
}

/// Like [`JsonBody`], but a missing or empty body (or a blank one without
/// a JSON content type) reads as `T::default()`, i.e. as `{}`.
#[derive(Debug)]
pub(crate) struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(read_json(req, state).await?.unwrap_or_default()))
    }
}

/// The body as `T`; `None` when it is missing or blank.
async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<Option<T>, ApiError> {
    let json_type = is_json(req.headers());
    let bytes = Bytes::from_request(req, state).await?;
    // Blank and declared JSON is malformed JSON (RFC 8259 has no empty
    // document); blank without a JSON type is no body.
    if bytes.is_empty() || (!json_type && bytes.iter().all(u8::is_ascii_whitespace)) {
        return Ok(None);
    }
    if !json_type {
        return Err(ApiError::bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected a request with Content-Type: application/json",
        ));
    }
    parse_json(&bytes).map(Some)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/"))
            && essence.to_ascii_lowercase().ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        for (ct, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_json(&h), ok, "{ct}");
        }
    }
}
