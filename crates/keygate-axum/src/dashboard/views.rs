//! The pages' templates (askama, HTML-escaped) and the small view models
//! they read.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use keygate::ApiKey;
use serde::{Deserialize, Serialize};

use super::assets;
use super::forms::KeyForm;

/// A one-time message for the next page: `Saved.` (a status) or `Your
/// session has ended.` (an alert).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Flash {
    pub(crate) alert: bool,
    pub(crate) text: String,
}

impl Flash {
    pub(crate) fn status(text: &str) -> Self {
        Self {
            alert: false,
            text: text.to_owned(),
        }
    }

    pub(crate) fn alert(text: &str) -> Self {
        Self {
            alert: true,
            text: text.to_owned(),
        }
    }
}

/// What the layout around every page needs.
pub(crate) struct Chrome {
    pub(crate) title: String,
    pub(crate) csrf: String,
    /// The signed-in admin key's name (or key id); `None` on the sign-in page.
    pub(crate) admin: Option<String>,
    pub(crate) flash: Option<Flash>,
    pub(crate) css: &'static str,
    pub(crate) js: &'static str,
}

impl Chrome {
    pub(crate) fn new(title: impl Into<String>, csrf: String, admin: Option<&ApiKey>) -> Self {
        Self {
            title: title.into(),
            csrf,
            admin: admin.map(|k| k.name.clone().unwrap_or_else(|| k.key_id.clone())),
            flash: None,
            css: assets::css_url(),
            js: assets::js_url(),
        }
    }

    pub(crate) fn with_flash(mut self, flash: Option<Flash>) -> Self {
        self.flash = flash;
        self
    }
}

/// Renders a template with a status; a template that fails to render
/// (a bug) is a bare 500.
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
pub(crate) struct ErrorPage {
    pub(crate) chrome: Chrome,
    pub(crate) heading: String,
    pub(crate) message: String,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub(crate) struct LoginPage {
    pub(crate) chrome: Chrome,
    pub(crate) alert: Option<String>,
}

/// One row of the key list.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) key_id: String,
    pub(crate) owner: String,
    pub(crate) scopes: String,
    pub(crate) status: &'static str,
    pub(crate) expires: When,
    pub(crate) last_used: When,
    pub(crate) created: When,
}

impl Row {
    pub(crate) fn of(key: &ApiKey, now: DateTime<Utc>) -> Self {
        Self {
            id: key.id.clone(),
            name: display_name(key),
            key_id: key.key_id.clone(),
            owner: key.owner_id.clone().unwrap_or_default(),
            scopes: key.scopes.as_slice().join(" "),
            status: status(key, now),
            expires: When::of(key.expires_at, "never"),
            last_used: When::of(key.last_used_at, "never"),
            created: When::of(Some(key.created_at), ""),
        }
    }
}

/// A time as shown (`2030-01-01 00:00 UTC`) and as machine-readable RFC 3339.
pub(crate) struct When {
    pub(crate) text: String,
    pub(crate) iso: Option<String>,
}

impl When {
    pub(crate) fn of(t: Option<DateTime<Utc>>, none: &str) -> Self {
        match t {
            Some(t) => Self {
                text: t.format("%Y-%m-%d %H:%M UTC").to_string(),
                iso: Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            },
            None => Self {
                text: none.to_owned(),
                iso: None,
            },
        }
    }
}

/// `active`, `inactive` or `expired` (an expired key reads expired,
/// whatever its flag).
pub(crate) fn status(key: &ApiKey, now: DateTime<Utc>) -> &'static str {
    if key.is_expired_at(now) {
        "expired"
    } else if key.is_active {
        "active"
    } else {
        "inactive"
    }
}

/// The key's name, or its key id for a key without one.
pub(crate) fn display_name(key: &ApiKey) -> String {
    key.name.clone().unwrap_or_else(|| key.key_id.clone())
}

/// A column header of the list: sortable ones link to the other order.
pub(crate) struct Column {
    pub(crate) label: &'static str,
    pub(crate) href: Option<String>,
    pub(crate) aria_sort: Option<&'static str>,
}

/// The search form's values, as sent.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct Search {
    pub(crate) q: String,
    pub(crate) owner: String,
    pub(crate) scope: String,
    pub(crate) status: String,
    pub(crate) sort: String,
    pub(crate) dir: String,
    pub(crate) page: String,
}

#[derive(Template)]
#[template(path = "dashboard/keys.html")]
pub(crate) struct ListPage {
    pub(crate) chrome: Chrome,
    pub(crate) search: Search,
    pub(crate) alert: Option<String>,
    pub(crate) columns: Vec<Column>,
    pub(crate) rows: Vec<Row>,
    pub(crate) page: u64,
    pub(crate) pages: u64,
    pub(crate) total: u64,
    pub(crate) previous: Option<String>,
    pub(crate) next: Option<String>,
}

impl ListPage {
    pub(crate) fn status_selected(&self, value: &str) -> bool {
        self.search.status == value || (value == "all" && self.search.status.is_empty())
    }
}

#[derive(Template)]
#[template(path = "dashboard/new.html")]
pub(crate) struct NewPage {
    pub(crate) chrome: Chrome,
    pub(crate) form: KeyForm,
}

#[derive(Template)]
#[template(path = "dashboard/created.html")]
pub(crate) struct CreatedPage<'a> {
    pub(crate) chrome: Chrome,
    pub(crate) heading: &'static str,
    pub(crate) name: String,
    /// The plaintext key: shown in this page only.
    pub(crate) key: &'a str,
    pub(crate) detail_url: String,
}

/// One line of the Usage section: a rate-limit window.
pub(crate) struct WindowView {
    pub(crate) name: String,
    pub(crate) limit: u64,
    pub(crate) window: String,
    /// Room left now, or `?` when the shared limiter cannot tell.
    pub(crate) remaining: String,
    /// Time until the open window closes, `not open`, or `?`.
    pub(crate) resets: String,
}

/// One row of the audit table.
pub(crate) struct EventRow {
    pub(crate) at: When,
    pub(crate) action: &'static str,
    pub(crate) actor: String,
    pub(crate) changes: Vec<String>,
}

impl EventRow {
    pub(crate) fn of(event: &keygate::AuditEvent) -> Self {
        let compact = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "none".to_owned(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let changes = event
            .changes
            .iter()
            .map(
                |(field, change)| match change.as_array().map(Vec::as_slice) {
                    Some([old, new]) => format!("{field}: {} → {}", compact(old), compact(new)),
                    _ => format!("{field}: {}", compact(change)),
                },
            )
            .collect();
        Self {
            at: When::of(Some(event.at), ""),
            action: event.action.as_str(),
            actor: event.actor.clone(),
            changes,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/detail.html")]
pub(crate) struct DetailPage {
    pub(crate) chrome: Chrome,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) key_id: String,
    pub(crate) status: &'static str,
    pub(crate) is_active: bool,
    pub(crate) owner: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) description: String,
    pub(crate) expires: When,
    pub(crate) created: When,
    pub(crate) last_used: When,
    pub(crate) grace_until: Option<When>,
    pub(crate) meta: String,
    pub(crate) credits: String,
    pub(crate) refill: String,
    pub(crate) windows: Vec<WindowView>,
    pub(crate) windows_note: &'static str,
    pub(crate) events: Vec<EventRow>,
    pub(crate) events_nav: EventsNav,
    /// A refused change (the last admin key) or another problem.
    pub(crate) alert: Option<String>,
    pub(crate) form: KeyForm,
    pub(crate) credits_form: CreditsForm,
    pub(crate) grace: String,
    pub(crate) grace_error: Option<String>,
}

/// Which of a key's audit events the detail page shows, and links to the
/// pages before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventsNav {
    /// Position (from 1, oldest first) of the first event shown.
    pub(crate) first: u64,
    /// Position of the last event shown.
    pub(crate) last: u64,
    /// Events of the key in all.
    pub(crate) total: u64,
    /// Link to the page of older events, if any.
    pub(crate) older: Option<String>,
    /// Link to the page of newer events, if any.
    pub(crate) newer: Option<String>,
}

/// The credits form's values and problem.
#[derive(Debug, Default, Clone)]
pub(crate) struct CreditsForm {
    pub(crate) set: String,
    pub(crate) add: String,
    pub(crate) error: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/delete.html")]
pub(crate) struct DeletePage {
    pub(crate) chrome: Chrome,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) key_id: String,
}
