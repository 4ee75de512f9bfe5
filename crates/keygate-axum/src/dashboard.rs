//! The web dashboard (feature `dashboard`): sign in with an admin key,
//! list, search, create, edit, rotate and delete keys, read their usage
//! and audit events, in server-rendered HTML under `/ui`.
//!
//! Security properties:
//! - the session cookie `keygate_session` is `HttpOnly`, `SameSite=Strict`,
//!   `Path=/ui`, `Secure` unless [`Dashboard::secure_cookies`] says
//!   otherwise, and expires after [`Dashboard::idle_timeout`] without a
//!   request; sessions live in the [`SessionStore`] given to
//!   [`Dashboard::router`] (the keys' database in `keygate serve`), so
//!   any instance serves any session;
//! - the session holds the admin key's entity id and key id, never its
//!   plaintext; every request re-reads the key, and a key that is gone,
//!   inactive, expired or without the admin scope ends the session;
//! - every POST carries a synchronizer token (hidden field `csrf`, compared
//!   in constant time) or is refused with 403; signing in cycles the
//!   session id, signing out deletes the session from the store;
//! - every response has a strict `Content-Security-Policy` (no inline
//!   script or style), `X-Frame-Options: DENY`, `nosniff` and
//!   `Referrer-Policy: no-referrer`; pages are `Cache-Control: no-store`;
//! - a plaintext key appears only in the body of the answer to the create
//!   or rotate POST: never in a URL, a redirect, a log line or the session.
//!
//! ```no_run
//! use std::time::Duration;
//! use keygate::{ApiKeyService, InMemoryRepository};
//! use keygate_axum::dashboard::Dashboard;
//!
//! // Any tower-sessions store: `keygate serve` uses tower-sessions-sqlx-store's
//! // store over the keys' database.
//! fn app(store: impl tower_sessions::SessionStore + Clone) -> axum::Router {
//!     let service = ApiKeyService::builder(InMemoryRepository::new()).build().unwrap();
//!     Dashboard::new(service)
//!         .idle_timeout(Duration::from_secs(30 * 60))
//!         .router(store)
//! }
//! ```

mod actions;
mod assets;
mod auth;
mod csrf;
mod error;
mod fields;
mod forms;
mod headers;
mod pages;
mod session;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use keygate::ApiKeyService;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use crate::management::DEFAULT_ADMIN_SCOPE;

/// Where [`Dashboard::router`] serves the dashboard.
pub const UI_PATH: &str = "/ui";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "keygate_session";
/// Idle time after which a session ends, unless configured: 30 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Keys per page of the list.
pub const PAGE_SIZE: u64 = 50;

/// The dashboard's settings; [`router`](Self::router) builds it.
///
/// ```
/// use std::time::Duration;
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let dashboard = keygate_axum::dashboard::Dashboard::new(service)
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .secure_cookies(false);
/// # let _ = dashboard;
/// ```
#[derive(Debug, Clone)]
pub struct Dashboard {
    service: ApiKeyService,
    admin_scope: String,
    idle_timeout: Duration,
    secure_cookies: bool,
}

impl Dashboard {
    /// A dashboard over `service`, for keys holding
    /// [`DEFAULT_ADMIN_SCOPE`], with a 30-minute idle timeout and `Secure`
    /// cookies.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let dashboard = keygate_axum::dashboard::Dashboard::new(service);
    /// # let _ = dashboard;
    /// ```
    pub fn new(service: ApiKeyService) -> Self {
        Self {
            service,
            admin_scope: DEFAULT_ADMIN_SCOPE.to_owned(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            secure_cookies: true,
        }
    }

    /// The scope a key needs to sign in (default `keygate:admin`).
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let dashboard = keygate_axum::dashboard::Dashboard::new(service).admin_scope("ops:keys");
    /// # let _ = dashboard;
    /// ```
    pub fn admin_scope(mut self, scope: impl Into<String>) -> Self {
        self.admin_scope = scope.into();
        self
    }

    /// How long a session lasts without a request (default 30 minutes;
    /// at least one second).
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let dashboard = keygate_axum::dashboard::Dashboard::new(service)
    ///     .idle_timeout(std::time::Duration::from_secs(600));
    /// # let _ = dashboard;
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// Whether the session cookie carries `Secure` (default true). Browsers
    /// keep `Secure` cookies from `https://` origins and from
    /// `http://localhost` / `http://127.0.0.1`, but drop them from plain
    /// HTTP on any other address: turn it off only for such a deployment.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let dashboard = keygate_axum::dashboard::Dashboard::new(service).secure_cookies(false);
    /// # let _ = dashboard;
    /// ```
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// The dashboard's routes, all under [`UI_PATH`], with sessions kept in
    /// `store`. Merge it into your app. Call the store's own setup (e.g.
    /// `migrate()`) and expired-session deletion beforehand.
    ///
    /// # Panics
    /// When the admin scope is not a valid scope.
    ///
    /// ```no_run
    /// # async fn run(store: impl tower_sessions::SessionStore + Clone) {
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let app: axum::Router = keygate_axum::app(service.clone(), Default::default())
    ///     .merge(keygate_axum::dashboard::Dashboard::new(service).router(store));
    /// # }
    /// ```
    pub fn router<S: SessionStore + Clone>(self, store: S) -> Router {
        assert!(
            keygate::is_valid_scope(&self.admin_scope),
            "invalid admin scope {:?}",
            self.admin_scope
        );
        let expiry = time_duration(self.idle_timeout);
        let sessions = SessionManagerLayer::new(store)
            .with_name(SESSION_COOKIE)
            .with_path(UI_PATH)
            .with_http_only(true)
            .with_same_site(SameSite::Strict)
            .with_secure(self.secure_cookies)
            .with_expiry(Expiry::OnInactivity(expiry))
            // Saved on every request, so the idle expiry restarts in the
            // store too, not only in the cookie.
            .with_always_save(true);
        let ui = Ui {
            service: self.service,
            admin_scope: self.admin_scope.into(),
        };
        let signed_in = Router::new()
            .route("/", get(pages::home))
            .route("/keys", get(pages::list).post(actions::create))
            .route("/keys/new", get(pages::new_key))
            .route("/keys/{id}", get(pages::detail))
            .route("/keys/{id}/edit", post(actions::update))
            .route("/keys/{id}/activate", post(actions::activate))
            .route("/keys/{id}/deactivate", post(actions::deactivate))
            .route("/keys/{id}/rotate", post(actions::rotate))
            .route("/keys/{id}/credits", post(actions::credits))
            .route(
                "/keys/{id}/delete",
                get(pages::confirm_delete).post(actions::delete),
            )
            .route("/logout", post(auth::logout))
            .route_layer(middleware::from_fn_with_state(
                ui.clone(),
                session::require_admin,
            ));
        let inner = Router::new()
            .route("/login", get(auth::login_page).post(auth::login))
            .route("/assets/{name}", get(assets::serve))
            .merge(signed_in)
            .fallback(session::not_found_page)
            .with_state(ui)
            .layer(middleware::from_fn(csrf::guard))
            .layer(sessions)
            .layer(middleware::from_fn(error::size_limits))
            .layer(middleware::from_fn(headers::secure));
        Router::new().nest(UI_PATH, inner)
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct Ui {
    pub(crate) service: ApiKeyService,
    pub(crate) admin_scope: Arc<str>,
}

fn time_duration(d: Duration) -> tower_sessions::cookie::time::Duration {
    tower_sessions::cookie::time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
