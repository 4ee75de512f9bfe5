//! The forms' POST handlers. Each runs as the signed-in admin key (its
//! key id is the audit log's actor), behind the CSRF check, and reuses the
//! management API's rules: the last-admin guard, the grace bounds, the
//! atomic credits change.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use keygate::{ApiKey, CreditChange};
use serde::Deserialize;

use super::error::UiError;
use super::fields::parse_amount;
use super::forms::{is_empty, KeyForm};
use super::pages::{detail_page, Extras};
use super::session::Ctx;
use super::views::{display_name, render, CreatedPage, CreditsForm, NewPage};
use crate::error::ApiError;
use crate::last_admin::{refuse_last_admin, Change};

type Result<T, E = UiError> = std::result::Result<T, E>;

/// Runs a handler's work, answering its error inside the signed-in layout.
async fn answer(ctx: &Ctx, work: impl std::future::Future<Output = Result<Response>>) -> Response {
    work.await.unwrap_or_else(|e| ctx.error(e))
}

/// The reason of a refusal by the last-admin guard (409), to show on the
/// page; any other error stays an error.
fn refusal(e: ApiError) -> Result<String> {
    match e {
        ApiError::BadRequest {
            status: StatusCode::CONFLICT,
            detail,
        } => Ok(detail),
        other => Err(other.into()),
    }
}

/// `POST /ui/keys`: creates the key and answers 200 with the plaintext in
/// the body (never a redirect: the key must not reach a URL or history).
pub(crate) async fn create(ctx: Ctx, Form(mut form): Form<KeyForm>) -> Response {
    answer(&ctx, async {
        let created = match form.read_new_key() {
            Some(new) => match ctx.service.create(new).await {
                Ok(created) => Some(created),
                Err(keygate::Error::Validation(errors)) => {
                    form.add_core_errors(&errors);
                    None
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let Some((entity, key)) = created else {
            let page = NewPage {
                chrome: ctx.chrome("New key").await?,
                form,
            };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        };
        tracing::info!(key_id = %entity.key_id, actor = %ctx.admin.key_id, "dashboard: key created");
        shown_once(&ctx, "Key created", &entity, key.expose()).await
    })
    .await
}

/// The page that shows a new plaintext key, once.
async fn shown_once(
    ctx: &Ctx,
    heading: &'static str,
    key: &ApiKey,
    plain: &str,
) -> Result<Response> {
    let page = CreatedPage {
        chrome: ctx.chrome(heading).await?,
        heading,
        name: display_name(key),
        key: plain,
        detail_url: format!("/ui/keys/{}", key.id),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /ui/keys/{id}/edit`: saves the fields that changed.
pub(crate) async fn update(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(mut form): Form<KeyForm>,
) -> Response {
    answer(&ctx, async {
        let key = ctx.service.get(&id).await?;
        let refused = |form: KeyForm, alert: Option<String>, status| {
            let extras = Extras {
                form,
                alert,
                ..Extras::of(&key)
            };
            detail_page(&ctx, &key, extras, status)
        };
        let Some(change) = form.read_update(&key) else {
            return refused(form, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        };
        if !is_empty(&change) {
            let guard =
                refuse_last_admin(&ctx.service, &ctx.admin_scope, &id, Change::Update(&change));
            if let Err(e) = guard.await {
                return refused(form, Some(refusal(e)?), StatusCode::CONFLICT).await;
            }
            match ctx.service.update(&id, change).await {
                Ok(_) => {}
                Err(keygate::Error::Validation(errors)) => {
                    form.add_core_errors(&errors);
                    return refused(form, None, StatusCode::UNPROCESSABLE_ENTITY).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        ctx.see_other(&format!("/ui/keys/{id}"), "Saved.").await
    })
    .await
}

/// `POST /ui/keys/{id}/activate`.
pub(crate) async fn activate(ctx: Ctx, Path(id): Path<String>) -> Response {
    answer(&ctx, async {
        ctx.service.activate(&id).await?;
        ctx.see_other(&format!("/ui/keys/{id}"), "Key activated.")
            .await
    })
    .await
}

/// `POST /ui/keys/{id}/deactivate`: refused for the last admin key.
pub(crate) async fn deactivate(ctx: Ctx, Path(id): Path<String>) -> Response {
    answer(&ctx, async {
        if let Err(e) =
            refuse_last_admin(&ctx.service, &ctx.admin_scope, &id, Change::Deactivate).await
        {
            return refused_change(&ctx, &id, refusal(e)?).await;
        }
        ctx.service.deactivate(&id).await?;
        ctx.see_other(&format!("/ui/keys/{id}"), "Key deactivated.")
            .await
    })
    .await
}

/// The detail page with `alert`, answered 409.
async fn refused_change(ctx: &Ctx, id: &str, alert: String) -> Result<Response> {
    let key = ctx.service.get(id).await?;
    let extras = Extras {
        alert: Some(alert),
        ..Extras::of(&key)
    };
    detail_page(ctx, &key, extras, StatusCode::CONFLICT).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RotateForm {
    grace_seconds: String,
}

/// `POST /ui/keys/{id}/rotate`: a new secret, shown once; the old one
/// keeps working for the grace period.
pub(crate) async fn rotate(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Response {
    answer(&ctx, async {
        let text = form.grace_seconds.trim();
        let grace = text
            .parse::<i64>()
            .map_err(|_| ())
            .and_then(|n| crate::rotation::grace(n).map_err(|_| ()));
        let Ok(grace) = grace else {
            let key = ctx.service.get(&id).await?;
            let extras = Extras {
                grace: text.to_owned(),
                grace_error: Some(format!(
                    "must be a whole number of seconds from 0 to {}",
                    keygate::MAX_GRACE.as_secs()
                )),
                ..Extras::of(&key)
            };
            return detail_page(&ctx, &key, extras, StatusCode::UNPROCESSABLE_ENTITY).await;
        };
        let (entity, key) = ctx.service.rotate(&id, grace).await?;
        tracing::info!(key_id = %entity.key_id, actor = %ctx.admin.key_id, grace_s = grace.as_secs(), "dashboard: key rotated");
        shown_once(&ctx, "Key rotated", &entity, key.expose()).await
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CreditsFields {
    set: String,
    add: String,
}

/// `POST /ui/keys/{id}/credits`: exactly one of "Set credits to" and "Add
/// credits" (negative takes away).
pub(crate) async fn credits(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CreditsFields>,
) -> Response {
    answer(&ctx, async {
        let (set, add) = (form.set.trim(), form.add.trim());
        let change = match (set.is_empty(), add.is_empty()) {
            (false, true) => parse_amount(set, 0).map(CreditChange::Set),
            (true, false) => parse_add(add).map(CreditChange::Add),
            _ => Err("Fill in one of Set credits to and Add credits.".to_owned()),
        };
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                let sent = CreditsForm {
                    set: set.to_owned(),
                    add: add.to_owned(),
                    error: Some(e),
                };
                return credits_refused(&ctx, &id, sent, StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        };
        let last_admin = Change::Credits(change);
        if let Err(e) = refuse_last_admin(&ctx.service, &ctx.admin_scope, &id, last_admin).await {
            return refused_change(&ctx, &id, refusal(e)?).await;
        }
        match crate::credits::apply(&ctx.service, &id, change).await {
            Ok(_) => {
                ctx.see_other(&format!("/ui/keys/{id}"), "Credits updated.")
                    .await
            }
            Err(e) => {
                refusal(e)?;
                let reason =
                    "The key has no credits (its usage is unlimited): use Set credits to first.";
                let sent = CreditsForm {
                    set: set.to_owned(),
                    add: add.to_owned(),
                    error: Some(reason.to_owned()),
                };
                credits_refused(&ctx, &id, sent, StatusCode::CONFLICT).await
            }
        }
    })
    .await
}

/// The detail page with the credits form as sent and its problem.
async fn credits_refused(
    ctx: &Ctx,
    id: &str,
    credits_form: CreditsForm,
    status: StatusCode,
) -> Result<Response> {
    let key = ctx.service.get(id).await?;
    let extras = Extras {
        credits_form,
        ..Extras::of(&key)
    };
    detail_page(ctx, &key, extras, status).await
}

fn parse_add(text: &str) -> std::result::Result<i64, String> {
    let max = i64::try_from(keygate::MAX_CREDITS).unwrap_or(i64::MAX);
    text.parse::<i64>()
        .ok()
        .filter(|n| (-max..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from -{max} to {max}"))
}

/// `POST /ui/keys/{id}/delete`: refused for the last admin key; then the
/// list says so.
pub(crate) async fn delete(ctx: Ctx, Path(id): Path<String>) -> Response {
    answer(&ctx, async {
        if let Err(e) = refuse_last_admin(&ctx.service, &ctx.admin_scope, &id, Change::Delete).await
        {
            return refused_change(&ctx, &id, refusal(e)?).await;
        }
        let key = ctx.service.delete(&id).await?;
        tracing::info!(key_id = %key.key_id, actor = %ctx.admin.key_id, "dashboard: key deleted");
        ctx.see_other("/ui/keys", "Key deleted.").await
    })
    .await
}
