//! The pages a signed-in admin reads: the list, the new-key form, a key's
//! detail and the delete confirmation.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use keygate::{format_window_ms, ApiKey, ApiKeyFilter, EventFilter, OrderBy, WindowUsage};

use super::error::UiError;
use super::fields::{format_countdown, parse_scopes};
use super::forms::KeyForm;
use super::session::Ctx;
use super::views::{
    display_name, render, status, Column, CreditsForm, DeletePage, DetailPage, EventRow, EventsNav,
    ListPage, NewPage, Row, Search, When, WindowView,
};
use super::PAGE_SIZE;

/// Audit events per page of a key's detail page, oldest first on a page;
/// the first page holds the latest ones.
const EVENTS_SHOWN: u64 = 100;

/// `GET /ui`: the list (the middleware sends strangers to sign in).
pub(crate) async fn home() -> Redirect {
    Redirect::to("/ui/keys")
}

/// The sortable columns: label, `sort` value, store column.
const SORTABLE: [(&str, &str, OrderBy); 4] = [
    ("Name", "name", OrderBy::Name),
    ("Expires", "expires", OrderBy::ExpiresAt),
    ("Last used", "last_used", OrderBy::LastUsedAt),
    ("Created", "created", OrderBy::CreatedAt),
];

/// The order a column starts in: names A→Z, times newest first.
fn default_descending(sort: &str) -> bool {
    sort != "name"
}

/// `GET /ui/keys?q=&owner=&scope=&status=&sort=&dir=&page=`.
pub(crate) async fn list(ctx: Ctx, Query(search): Query<Search>) -> Response {
    match list_page(&ctx, search).await {
        Ok(page) => page,
        Err(e) => ctx.error(e),
    }
}

async fn list_page(ctx: &Ctx, mut search: Search) -> Result<Response, UiError> {
    let now = keygate::now_micros();
    let sort = SORTABLE
        .iter()
        .find(|(_, value, _)| *value == search.sort)
        .map_or("created", |(_, value, _)| *value);
    search.sort = sort.to_owned();
    let descending = match search.dir.as_str() {
        "asc" => false,
        "desc" => true,
        _ => default_descending(sort),
    };
    search.dir = if descending { "desc" } else { "asc" }.to_owned();
    let scopes = parse_scopes(&search.scope);
    let bad_scope = scopes.iter().find(|s| !keygate::is_valid_scope(s));
    let (alert, status_code) = match bad_scope {
        Some(s) => (
            Some(format!(
                "Scope: {s:?} is not a scope (a lowercase letter, then lowercase letters, digits, ':', '_' or '-')."
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        None => (None, StatusCode::OK),
    };
    let mut filter = ApiKeyFilter {
        name_contains: Some(search.q.trim().to_owned()).filter(|q| !q.is_empty()),
        owner_id: Some(search.owner.trim().to_owned()).filter(|o| !o.is_empty()),
        scopes_contain_all: if alert.is_some() { Vec::new() } else { scopes },
        order_by: SORTABLE
            .iter()
            .find(|(_, value, _)| *value == sort)
            .map_or(OrderBy::CreatedAt, |(_, _, column)| *column),
        order_desc: descending,
        ..ApiKeyFilter::default()
    };
    // As the Status column shows them: expired first, whatever the flag.
    match search.status.as_str() {
        "active" | "inactive" => {
            filter.is_active = Some(search.status == "active");
            filter.unexpired_at = Some(now);
        }
        // Stored times have microsecond precision; `expires_at <= now`.
        "expired" => filter.expires_before = Some(now + chrono::TimeDelta::microseconds(1)),
        _ => search.status = "all".to_owned(),
    }
    let (rows, total, page, pages) = if alert.is_some() {
        (Vec::new(), 0, 1, 1)
    } else {
        let total = ctx.service.count(&filter).await?;
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = search
            .page
            .trim()
            .parse::<u64>()
            .unwrap_or(1)
            .clamp(1, pages);
        filter.offset = (page - 1) * PAGE_SIZE;
        filter.limit = Some(PAGE_SIZE);
        let keys = ctx.service.find(&filter).await?;
        let rows = keys.iter().map(|k| Row::of(k, now)).collect();
        (rows, total, page, pages)
    };
    search.page = page.to_string();
    let columns = columns(&search, descending);
    let previous = (page > 1).then(|| list_url(&search, &[("page", &(page - 1).to_string())]));
    let next = (page < pages).then(|| list_url(&search, &[("page", &(page + 1).to_string())]));
    let page = ListPage {
        chrome: ctx.chrome("API keys").await?,
        search,
        alert,
        columns,
        rows,
        page,
        pages,
        total,
        previous,
        next,
    };
    Ok(render(status_code, &page))
}

fn columns(search: &Search, descending: bool) -> Vec<Column> {
    let plain = |label| Column {
        label,
        href: None,
        aria_sort: None,
    };
    let sortable = |label: &'static str| {
        let Some((_, value, _)) = SORTABLE.iter().find(|(l, _, _)| *l == label) else {
            return plain(label);
        };
        let active = search.sort == *value;
        let next_descending = if active {
            !descending
        } else {
            default_descending(value)
        };
        let dir = if next_descending { "desc" } else { "asc" };
        Column {
            label,
            // A new order starts on the first page.
            href: Some(list_url(
                search,
                &[("sort", value), ("dir", dir), ("page", "")],
            )),
            aria_sort: active.then_some(if descending {
                "descending"
            } else {
                "ascending"
            }),
        }
    };
    vec![
        sortable("Name"),
        plain("Key id"),
        plain("Owner"),
        plain("Scopes"),
        plain("Status"),
        sortable("Expires"),
        sortable("Last used"),
        sortable("Created"),
    ]
}

/// `/ui/keys?…` with the search's values, `changes` applied (an empty
/// value drops the parameter), defaults left out.
fn list_url(search: &Search, changes: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("q", search.q.as_str()),
        ("owner", search.owner.as_str()),
        ("scope", search.scope.as_str()),
        ("status", search.status.as_str()),
        ("sort", search.sort.as_str()),
        ("dir", search.dir.as_str()),
        ("page", search.page.as_str()),
    ];
    for (name, value) in changes {
        if let Some(p) = params.iter_mut().find(|(n, _)| n == name) {
            p.1 = value;
        }
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        let default = matches!((name, value), ("status", "all") | ("page", "1"));
        if !value.is_empty() && !default {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        "/ui/keys".to_owned()
    } else {
        format!("/ui/keys?{query}")
    }
}

/// `GET /ui/keys/new`.
pub(crate) async fn new_key(ctx: Ctx) -> Response {
    let page = async {
        Ok::<_, UiError>(NewPage {
            chrome: ctx.chrome("New key").await?,
            form: KeyForm::default(),
        })
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => ctx.error(e),
    }
}

/// `GET /ui/keys/{id}`.
/// `GET /ui/keys/{id}?events=N`: the key, its forms, and page `N` of its
/// audit events (1, the default, is the latest).
pub(crate) async fn detail(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Response {
    let shown = async {
        let key = ctx.service.get(&id).await?;
        let mut extras = Extras::of(&key);
        // Anything but a page number shows the first page, as the list does.
        extras.events_page = query.events.trim().parse().unwrap_or(1);
        detail_page(&ctx, &key, extras, StatusCode::OK).await
    };
    shown.await.unwrap_or_else(|e| ctx.error(e))
}

/// What the detail page shows besides the key: the forms as sent (after a
/// refused change) and a message.
pub(crate) struct Extras {
    pub(crate) form: KeyForm,
    pub(crate) credits_form: CreditsForm,
    pub(crate) grace: String,
    pub(crate) grace_error: Option<String>,
    pub(crate) alert: Option<String>,
    /// The page of audit events shown (1: the latest).
    pub(crate) events_page: u64,
}

/// The detail page's query string.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct DetailQuery {
    events: String,
}

impl Extras {
    pub(crate) fn of(key: &ApiKey) -> Self {
        Self {
            form: KeyForm::of(key),
            credits_form: CreditsForm::default(),
            grace: "3600".to_owned(),
            grace_error: None,
            alert: None,
            events_page: 1,
        }
    }
}

/// The detail page of `key`, with `extras`, answered with `status`.
pub(crate) async fn detail_page(
    ctx: &Ctx,
    key: &ApiKey,
    extras: Extras,
    status_code: StatusCode,
) -> Result<Response, UiError> {
    let now = keygate::now_micros();
    let mut events = EventFilter::for_key(&key.id);
    let total = ctx.service.count_events(&events).await?;
    let (offset, events_nav) = events_nav(&key.id, total, extras.events_page);
    events.offset = offset;
    // The last page (oldest events) may be short.
    events.limit = Some((events_nav.last - offset).max(1));
    let events = ctx.service.events(&events).await?;
    let credits = key.credits.as_ref().map(|c| c.at(now));
    let state = ctx.service.rate_limit_state(key).await;
    let page = DetailPage {
        chrome: ctx.chrome(display_name(key)).await?,
        id: key.id.clone(),
        name: display_name(key),
        key_id: key.key_id.clone(),
        status: status(key, now),
        is_active: key.is_active,
        owner: key.owner_id.clone().unwrap_or_default(),
        scopes: key.scopes.as_slice().to_vec(),
        description: key.description.clone().unwrap_or_default(),
        expires: When::of(key.expires_at, "never"),
        created: When::of(Some(key.created_at), ""),
        last_used: When::of(key.last_used_at, "never"),
        grace_until: key
            .previous_secret_expires_at
            .filter(|t| *t > now)
            .map(|t| When::of(Some(t), "")),
        meta: key
            .meta
            .as_ref()
            .and_then(|m| serde_json::to_string_pretty(m).ok())
            .unwrap_or_default(),
        credits: credits
            .as_ref()
            .map_or("unlimited".to_owned(), |c| c.remaining.to_string()),
        refill: credits
            .as_ref()
            .and_then(|c| c.refill())
            .map_or("none".to_owned(), |(n, i)| format!("{n}/{}", i.as_str())),
        windows: windows(key, state.as_deref()),
        windows_note: match state {
            Some(_) => "As requests find them now; a window opens at the first request after the last one closed.",
            None => "The shared rate limiter did not answer: live counters are not shown.",
        },
        events: events.iter().map(EventRow::of).collect(),
        events_nav,
        alert: extras.alert,
        form: extras.form,
        credits_form: extras.credits_form,
        grace: extras.grace,
        grace_error: extras.grace_error,
    };
    Ok(render(status_code, &page))
}

/// Where page `page` (clamped to the pages there are; 1 is the latest) of
/// `total` events starts, and its navigation. Pages are counted from the
/// newest event, so the first holds the latest `EVENTS_SHOWN` and the last
/// may hold fewer.
fn events_nav(id: &str, total: u64, page: u64) -> (u64, EventsNav) {
    let pages = total.div_ceil(EVENTS_SHOWN).max(1);
    let page = page.clamp(1, pages);
    let last = total - (page - 1) * EVENTS_SHOWN;
    let offset = last.saturating_sub(EVENTS_SHOWN);
    let link = |page: u64| format!("/ui/keys/{id}?events={page}#audit-h");
    let nav = EventsNav {
        first: offset + 1,
        last,
        total,
        older: (page < pages).then(|| link(page + 1)),
        newer: (page > 1).then(|| link(page - 1)),
    };
    (offset, nav)
}

/// The key's windows with their live state (`state`, in the same order),
/// when known.
fn windows(key: &ApiKey, state: Option<&[WindowUsage]>) -> Vec<WindowView> {
    let limits = key.rate_limits.as_deref().unwrap_or_default();
    limits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let now = state.and_then(|s| s.get(i));
            WindowView {
                name: l.name.clone(),
                limit: l.limit,
                window: format_window_ms(l.window_ms),
                remaining: now.map_or("?".to_owned(), |w| w.remaining.to_string()),
                resets: match now {
                    None => "?".to_owned(),
                    Some(w) if w.reset_ms == 0 => "not open".to_owned(),
                    Some(w) => format_countdown(w.reset_ms),
                },
            }
        })
        .collect()
}

/// `GET /ui/keys/{id}/delete`: the confirmation.
pub(crate) async fn confirm_delete(ctx: Ctx, Path(id): Path<String>) -> Response {
    let shown = async {
        let key = ctx.service.get(&id).await?;
        let page = DeletePage {
            chrome: ctx.chrome("Delete key").await?,
            id: key.id.clone(),
            name: display_name(&key),
            key_id: key.key_id.clone(),
        };
        Ok::<_, UiError>(render(StatusCode::OK, &page))
    };
    shown.await.unwrap_or_else(|e| ctx.error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pages_count_back_from_the_latest() {
        let nav = |total, page| {
            let (offset, nav) = events_nav("k", total, page);
            (
                offset,
                nav.first,
                nav.last,
                nav.older.is_some(),
                nav.newer.is_some(),
            )
        };
        assert_eq!(nav(0, 1), (0, 1, 0, false, false));
        assert_eq!(nav(100, 1), (0, 1, 100, false, false));
        assert_eq!(nav(101, 1), (1, 2, 101, true, false));
        assert_eq!(nav(101, 2), (0, 1, 1, false, true));
        assert_eq!(nav(250, 2), (50, 51, 150, true, true));
        // Out of range: clamped.
        assert_eq!(nav(250, 0), nav(250, 1));
        assert_eq!(nav(250, u64::MAX), nav(250, 3));
        let (_, page) = events_nav("k", 250, 2);
        assert_eq!(page.older.as_deref(), Some("/ui/keys/k?events=3#audit-h"));
        assert_eq!(page.newer.as_deref(), Some("/ui/keys/k?events=1#audit-h"));
    }
}
