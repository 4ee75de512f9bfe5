//! Who is signed in: the session names the admin key (entity id and key
//! id, never its plaintext), and every request re-reads that key.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keygate::ApiKey;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::csrf;
use super::error::UiError;
use super::views::{render, Chrome, ErrorPage, Flash};
use super::Ui;
use crate::last_admin::works_as_admin;

/// The session entry naming the admin key.
const ADMIN_KEY: &str = "admin";
/// The session entry holding the next page's message.
const FLASH_KEY: &str = "flash";

/// What the session remembers of the admin key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SignedIn {
    pub(crate) id: String,
    pub(crate) key_id: String,
}

/// Records `key` as signed in on a fresh session id (against fixation),
/// with a fresh CSRF token.
pub(crate) async fn sign_in(session: &Session, key: &ApiKey) -> Result<(), UiError> {
    session.cycle_id().await?;
    let who = SignedIn {
        id: key.id.clone(),
        key_id: key.key_id.clone(),
    };
    session.insert(ADMIN_KEY, &who).await?;
    csrf::renew(session).await?;
    Ok(())
}

/// Leaves a message for the next page.
pub(crate) async fn flash(session: &Session, message: Flash) -> Result<(), UiError> {
    session.insert(FLASH_KEY, &message).await?;
    Ok(())
}

/// Takes the message left for this page, if any.
pub(crate) async fn take_flash(session: &Session) -> Result<Option<Flash>, UiError> {
    Ok(session.remove::<Flash>(FLASH_KEY).await?)
}

/// The middleware of every signed-in route: no admin in the session → the
/// sign-in page; an admin key that is gone, inactive, expired or no
/// longer holds the admin scope → the session is deleted and the sign-in
/// page says so. Otherwise the fresh key is handed to the handler.
pub(crate) async fn require_admin(
    State(ui): State<Ui>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    match check(&ui, &session).await {
        Ok(Some(key)) => {
            request.extensions_mut().insert(AdminKey(key));
            next.run(request).await
        }
        Ok(None) => Redirect::to("/ui/login").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn check(ui: &Ui, session: &Session) -> Result<Option<ApiKey>, UiError> {
    let Some(who) = session.get::<SignedIn>(ADMIN_KEY).await? else {
        return Ok(None);
    };
    let key = match ui.service.get(&who.id).await {
        Ok(key) => Some(key),
        Err(keygate::Error::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let now = keygate::now_micros();
    match key {
        Some(key) if key.key_id == who.key_id && works_as_admin(&key, &ui.admin_scope, now) => {
            Ok(Some(key))
        }
        _ => {
            tracing::info!(key_id = %who.key_id, "dashboard: admin key no longer valid, session ended");
            session.flush().await?;
            flash(session, Flash::alert("Your session has ended.")).await?;
            Ok(None)
        }
    }
}

/// `e` as a page inside the signed-in layout (header and sign-out).
fn signed_in_error(e: UiError, csrf: &str, admin: &ApiKey) -> Response {
    let (status, heading, message) = e.parts();
    let page = ErrorPage {
        chrome: Chrome::new(heading, csrf.to_owned(), Some(admin)),
        heading: heading.to_owned(),
        message,
    };
    render(status, &page)
}

/// The 404 of any path under `/ui` that no route has: inside the
/// signed-in layout for a session of a working admin key, a plain page
/// for anyone else (no session is made for them).
pub(crate) async fn not_found_page(State(ui): State<Ui>, session: Session) -> Response {
    let admin = match check(&ui, &session).await {
        Ok(Some(admin)) => admin,
        Ok(None) => return UiError::NotFound.into_response(),
        Err(e) => return e.into_response(),
    };
    match csrf::token(&session).await {
        Ok(csrf) => signed_in_error(UiError::NotFound, &csrf, &admin),
        Err(e) => e.into_response(),
    }
}

/// The signed-in admin key, as re-read for this request.
#[derive(Debug, Clone)]
pub(crate) struct AdminKey(pub(crate) ApiKey);

/// What a signed-in handler works with: the session, the admin key, the
/// service acting as that key (for the audit log), and the CSRF token.
pub(crate) struct Ctx {
    pub(crate) session: Session,
    pub(crate) admin: ApiKey,
    pub(crate) service: keygate::ApiKeyService,
    pub(crate) admin_scope: std::sync::Arc<str>,
    pub(crate) csrf: String,
}

impl FromRequestParts<Ui> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, ui)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(AdminKey(admin)) = parts.extensions.get::<AdminKey>().cloned() else {
            return Err(
                UiError::Internal("Ctx used on a route without require_admin".into())
                    .into_response(),
            );
        };
        let csrf = csrf::token(&session)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            service: ui.service.with_actor(admin.key_id.as_str()),
            admin_scope: ui.admin_scope.clone(),
            session,
            admin,
            csrf,
        })
    }
}

impl Ctx {
    /// The layout for a page titled `title`, with the message left for it.
    pub(crate) async fn chrome(&self, title: impl Into<String>) -> Result<Chrome, UiError> {
        let flash = take_flash(&self.session).await?;
        Ok(Chrome::new(title, self.csrf.clone(), Some(&self.admin)).with_flash(flash))
    }

    /// An error page inside the signed-in layout (header and sign-out).
    /// Every error a signed-in page meets (a missing key, a store that
    /// does not answer, a bug) keeps the way back and the sign-out.
    pub(crate) fn error(&self, e: UiError) -> Response {
        signed_in_error(e, &self.csrf, &self.admin)
    }

    /// 303 to `to` with a status message for the page there.
    pub(crate) async fn see_other(&self, to: &str, message: &str) -> Result<Response, UiError> {
        flash(&self.session, Flash::status(message)).await?;
        Ok(Redirect::to(to).into_response())
    }
}
