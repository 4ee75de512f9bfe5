//! Gateway mode ("forward auth"): keygate decides, a reverse proxy
//! enforces, and the service behind it can be written in any language.
//!
//! [`router`] answers [`AUTH_PATH`] (`/auth`, any method) for nginx
//! `auth_request`, Traefik `ForwardAuth` and Caddy `forward_auth`. The
//! proxy sends it the client's headers plus the original method and URI
//! (`X-Forwarded-Method` / `X-Forwarded-Uri` from Traefik and Caddy,
//! `X-Original-Method` / `X-Original-URI` from nginx); the [`Policy`]
//! says which scopes that method and path need:
//!
//! 1. The URI's query is dropped and its path normalized
//!    ([`normalize_path`]): percent-decoded once, dot segments removed.
//!    A path some server could read another way (`%2F`, `//`, a climb
//!    above `/`, a backslash, a control character, ...) is refused: 403.
//! 2. The first route whose methods and path pattern match decides
//!    (case-sensitive). No route: the policy's `default` — `deny` answers
//!    403, `allow` answers 200 **without checking any key**.
//! 3. A matched route needs a valid key (read from the request's headers
//!    like everywhere else, see [`KeySources`](crate::KeySources)) holding
//!    all its scopes, with room in its limits for the route's cost.
//!
//! Allowed: 200, empty body, with `X-Keygate-Key-Id`, `X-Keygate-Entity-Id`,
//! `X-Keygate-Owner-Id` (left out when the key has no owner) and
//! `X-Keygate-Scopes` (the key's scopes, space-separated) for the proxy to
//! pass upstream, plus `RateLimit-*` for a rate-limited key. Refused: what
//! [`RequireScopes`](crate::RequireScopes) answers on a protected route
//! (401 with `WWW-Authenticate`, 403, 429 with `Retry-After` and
//! `RateLimit-*`, 503), through the same [`ApiError`](crate::ApiError)
//! mapping — except that a 400 (a key sent twice) becomes a 403, since
//! nginx turns anything but 2xx/401/403 into a 500.
//!
//! ```
//! use keygate_axum::gateway::{self, Policy, SharedPolicy};
//! use keygate_axum::KeyVerifier;
//! # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
//! let policy = Policy::from_toml_str(r#"
//!     [[route]]
//!     methods = ["GET", "HEAD"]
//!     path = "/reports/*"
//!     scopes = ["read"]
//! "#).unwrap();
//! let shared = SharedPolicy::new(policy);
//! let app: axum::Router = gateway::router(KeyVerifier::new(service), shared.clone());
//! // Later (e.g. on SIGHUP): requests in flight finish with the old policy.
//! shared.store(Policy::default());
//! ```

mod handler;
mod path;
mod policy;

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::routing::any;
use axum::Router;

use crate::layer::KeyVerifier;

pub use path::{normalize_path, PathRefusal};
pub use policy::{Decision, DefaultAction, Policy, PolicyError, Route};

/// Where [`router`] answers.
pub const AUTH_PATH: &str = "/auth";

/// The original request's URI, as Traefik and Caddy send it.
pub const X_FORWARDED_URI: &str = "x-forwarded-uri";
/// The original request's method, as Traefik and Caddy send it.
pub const X_FORWARDED_METHOD: &str = "x-forwarded-method";
/// The original request's URI, as the nginx configuration sends it.
pub const X_ORIGINAL_URI: &str = "x-original-uri";
/// The original request's method, as the nginx configuration sends it.
pub const X_ORIGINAL_METHOD: &str = "x-original-method";

/// Answer header: the verified key's public key id.
pub const X_KEYGATE_KEY_ID: &str = "x-keygate-key-id";
/// Answer header: the verified key's entity id.
pub const X_KEYGATE_ENTITY_ID: &str = "x-keygate-entity-id";
/// Answer header: the verified key's owner (absent when it has none).
pub const X_KEYGATE_OWNER_ID: &str = "x-keygate-owner-id";
/// Answer header: the verified key's scopes, space-separated.
pub const X_KEYGATE_SCOPES: &str = "x-keygate-scopes";

/// The policy in force, replaceable while requests are being answered:
/// each request reads the policy once, so it is decided wholly by the old
/// or wholly by the new one. Cheap to clone (one shared cell).
///
/// ```
/// use keygate_axum::gateway::{Policy, SharedPolicy};
/// let shared = SharedPolicy::new(Policy::default());
/// let before = shared.load();
/// shared.store(Policy::from_toml_str("default = \"allow\"").unwrap());
/// assert_ne!(*before, *shared.load());
/// ```
#[derive(Debug, Clone)]
pub struct SharedPolicy(Arc<ArcSwap<Policy>>);

impl SharedPolicy {
    /// Holds `policy`.
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(policy)))
    }

    /// The policy in force now.
    pub fn load(&self) -> Arc<Policy> {
        self.0.load_full()
    }

    /// Puts `policy` in force for every request that starts from now on.
    pub fn store(&self, policy: Policy) {
        self.0.store(Arc::new(policy));
    }
}

impl From<Policy> for SharedPolicy {
    fn from(policy: Policy) -> Self {
        Self::new(policy)
    }
}

/// `/auth` (any method), deciding with `policy` and verifying keys with
/// `verifier` (its service and [`KeySources`](crate::KeySources)). Merge
/// it into an application router.
///
/// The key sources are read from the auth request's headers; the `api_key`
/// query parameter, when enabled, from the forwarded URI's query.
pub fn router(verifier: KeyVerifier, policy: SharedPolicy) -> Router {
    Router::new()
        .route(AUTH_PATH, any(handler::auth))
        .with_state(handler::Gateway::new(verifier, policy))
}

#[cfg(test)]
mod tests;
