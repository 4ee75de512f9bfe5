//! Signing in with an admin key, and out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

use super::csrf;
use super::error::UiError;
use super::session::{sign_in, take_flash, Ctx};
use super::views::{render, Chrome, LoginPage};
use super::Ui;

/// The only answer to a key that cannot sign in, whatever the reason.
const REFUSED: &str = "That key is not an active admin key.";

/// `GET /ui/login`: the form, with a token in a fresh (pre-sign-in) session.
pub(crate) async fn login_page(session: Session) -> Result<Response, UiError> {
    let csrf = csrf::token(&session).await?;
    let flash = take_flash(&session).await?;
    // A "session ended" note is an alert; show it as such.
    let alert = flash.filter(|f| f.alert).map(|f| f.text);
    let page = LoginPage {
        chrome: Chrome::new("Sign in", csrf, None),
        alert,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The sign-in form. `api_key` is read once and never echoed, logged or
/// stored; the session keeps the key's ids.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    api_key: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").finish_non_exhaustive()
    }
}

/// `POST /ui/login`: an active, unexpired key holding the admin scope signs
/// in (new session id, 303 to the list); anything else is 401 with the
/// form again. The check takes nothing from the key's limits (cost 0).
pub(crate) async fn login(
    State(ui): State<Ui>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Result<Response, UiError> {
    let verified = ui
        .service
        .verify_with(form.api_key.trim(), &[&*ui.admin_scope], 0)
        .await;
    drop(form);
    match verified {
        Ok(v) => {
            sign_in(&session, &v.key).await?;
            tracing::info!(key_id = %v.key.key_id, "dashboard: signed in");
            Ok(Redirect::to("/ui/keys").into_response())
        }
        Err(e @ (keygate::Error::StoreUnavailable(_) | keygate::Error::Overloaded)) => {
            Err(e.into())
        }
        Err(_) => {
            let page = LoginPage {
                chrome: Chrome::new("Sign in", csrf::token(&session).await?, None),
                alert: Some(REFUSED.to_owned()),
            };
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
    }
}

/// `POST /ui/logout`: the session is deleted from the store, the cookie
/// cleared.
pub(crate) async fn logout(ctx: Ctx) -> Result<Response, UiError> {
    ctx.session.flush().await?;
    tracing::info!(key_id = %ctx.admin.key_id, "dashboard: signed out");
    Ok(Redirect::to("/ui/login").into_response())
}
