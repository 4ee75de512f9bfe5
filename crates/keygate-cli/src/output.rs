//! What commands print: tables and views for people, stable JSON for
//! programs. Commands return a [`Report`]; only this module formats it.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, SecondsFormat, Utc};
use keygate::{
    format_window_ms, ApiKey, AuditEvent, Credits, PlainKey, RateLimit, Secret, Usage, WindowUsage,
};
use serde_json::{json, Value};

use crate::table::{sanitize, Cell, Rendered, Table};

/// The result of a command, before formatting.
pub(crate) enum Report {
    /// A new key: with `Rotated`, the only reports that carry a plaintext
    /// key of a stored key.
    Created { entity: ApiKey, key: PlainKey },
    /// A key with a new secret (`rotate`), printed once like `Created`.
    Rotated { entity: ApiKey, key: PlainKey },
    /// One key, with a headline for people (`get`, `update`, `verify`, ...).
    Entity {
        headline: Option<String>,
        entity: ApiKey,
    },
    /// `verify`: the key as this check left it, what the check cost, and
    /// what it left of the key's limits (the `usage` of `/verify`).
    Verified {
        entity: ApiKey,
        usage: Usage,
        cost: u64,
    },
    /// A page of `list`.
    List(Vec<ApiKey>),
    /// A page of `search` with the total number of matches.
    Page {
        items: Vec<ApiKey>,
        total: u64,
        limit: u64,
        offset: u64,
    },
    /// `count`.
    Count(u64),
    /// A page of `events` with the total number of matches.
    Events {
        items: Vec<AuditEvent>,
        total: u64,
        limit: u64,
        offset: u64,
    },
    /// `generate`: a key that is not stored anywhere.
    Generated { var: String, key: PlainKey },
    /// `pepper`.
    Pepper(Secret),
    /// `migrate`.
    Migrated,
    /// Nothing to print (`serve` prints as it goes).
    Nothing,
}

impl Report {
    /// Renders for stdout: tables fit the terminal when stdout is one.
    pub(crate) fn render(&self, json: bool) -> String {
        self.render_for(json, terminal_width())
    }

    /// Renders with tables fitted into `width` columns (`None`: one line
    /// per row, however wide).
    pub(crate) fn render_for(&self, json: bool, width: Option<usize>) -> String {
        if json {
            match self.to_json() {
                Some(v) => format!("{v}\n"),
                None => String::new(),
            }
        } else {
            self.to_text(width)
        }
    }

    fn to_json(&self) -> Option<Value> {
        Some(match self {
            Report::Created { entity, key } | Report::Rotated { entity, key } => {
                json!({"api_key": key.expose(), "entity": entity})
            }
            Report::Entity { entity, .. } => json!(entity),
            // As `POST /api-keys/verify` answers: the entity's fields and `usage`.
            Report::Verified { entity, usage, .. } => {
                let mut v = json!(entity);
                v["usage"] = json!(usage);
                v
            }
            Report::List(items) => json!(items),
            Report::Page {
                items,
                total,
                limit,
                offset,
            } => json!({"items": items, "total": total, "limit": limit, "offset": offset}),
            Report::Count(total) => json!({ "total": total }),
            Report::Events {
                items,
                total,
                limit,
                offset,
            } => json!({"items": items, "total": total, "limit": limit, "offset": offset}),
            Report::Generated { var, key } => json!({"name": var, "api_key": key.expose()}),
            Report::Pepper(p) => json!({ "pepper": p.expose() }),
            Report::Migrated => json!({"status": "ok"}),
            Report::Nothing => return None,
        })
    }

    fn to_text(&self, width: Option<usize>) -> String {
        match self {
            Report::Created { entity, key } => format!(
                "{}{}",
                new_key("API key created.", "Store it now", key),
                entity_view(entity, width)
            ),
            Report::Rotated { entity, key } => {
                let previous = match running_grace(entity) {
                    Some(until) => format!(
                        "The previous secret keeps working until {}, then is refused.",
                        time(Some(until), "-")
                    ),
                    None => "The previous secret is refused from now on.".to_owned(),
                };
                format!(
                    "{}{previous}\n\n{}",
                    new_key("API key rotated.", "Store the new key now", key),
                    entity_view(entity, width)
                )
            }
            Report::Entity { headline, entity } => match headline {
                Some(h) => format!("{h}\n{}", entity_view(entity, width)),
                None => entity_view(entity, width),
            },
            Report::Verified {
                entity,
                usage,
                cost,
            } => {
                let headline = match cost {
                    1 => "API key valid.".to_owned(),
                    0 => "API key valid (cost 0: nothing taken).".to_owned(),
                    n => format!("API key valid (cost {n})."),
                };
                format!(
                    "{headline}\n{}",
                    entity_view_with(entity, Some(usage), width)
                )
            }
            Report::List(items) => keys_table(items, width),
            Report::Page {
                items,
                total,
                offset,
                ..
            } => match items.len() {
                0 if *total == 0 => "no API keys match\n".to_owned(),
                0 => format!("no API keys on this page ({total} matching)\n"),
                n => format!(
                    "{}{}-{} of {total} matching\n",
                    keys_table(items, width),
                    offset + 1,
                    offset + n as u64
                ),
            },
            Report::Count(total) => format!("{total}\n"),
            Report::Events {
                items,
                total,
                offset,
                ..
            } => match items.len() {
                0 if *total == 0 => "no events match\n".to_owned(),
                0 => format!("no events on this page ({total} matching)\n"),
                n => format!(
                    "{}{}-{} of {total} events\n",
                    events_table(items, width),
                    offset + 1,
                    offset + n as u64
                ),
            },
            Report::Generated { var, key } => format!("{var}={}\n", key.expose()),
            Report::Pepper(p) => format!("API_KEY_PEPPER={}\n", p.expose()),
            Report::Migrated => "database schema is up to date\n".to_owned(),
            Report::Nothing => String::new(),
        }
    }
}

/// The width tables must fit: the terminal's when stdout is one (`COLUMNS`,
/// when set, wins, as for other terminal programs); `None` when stdout is
/// a pipe or a file, where each row stays on one line for `grep` and `cut`.
fn terminal_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    columns.or_else(|| terminal_size::terminal_size().map(|(w, _)| usize::from(w.0)))
}

/// The table, and a dim note naming the columns left out to fit, itself
/// wrapped to `width`.
fn with_hidden_note(rendered: Rendered, width: Option<usize>) -> String {
    if rendered.hidden.is_empty() {
        return rendered.text;
    }
    let dim = Style::new().dimmed();
    let note = format!(
        "({} left out to fit the terminal: widen it, or use --json)",
        rendered.hidden.join(", ")
    );
    let mut out = rendered.text;
    for line in wrap(&note, width.unwrap_or(usize::MAX)) {
        out.push_str(&format!("{dim}{line}{dim:#}\n"));
    }
    out
}

/// `text` in lines of at most `width` display columns, broken at blanks
/// (a word wider than `width` gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthStr;
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.width() + 1 + word.width() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes to stdout. Colour codes are stripped unless stdout is a terminal
/// and NO_COLOR is unset (anstream decides). A closed pipe is not an error.
pub(crate) fn print(text: &str) -> std::io::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The headline and the plaintext key of `create` and `rotate`, followed by
/// a blank line.
fn new_key(headline: &str, store: &str, key: &PlainKey) -> String {
    let bold = Style::new().bold();
    let key_style = Style::new().bold().fg_color(Some(AnsiColor::Yellow.into()));
    format!(
        "{bold}{headline}{bold:#} {store}: it is shown only this once and cannot be recovered.\n\n    {key_style}{}{key_style:#}\n\n",
        key.expose()
    )
}

/// Until when the previous secret still verifies, if it still does (the
/// JSON shows `null` once that time has passed; so does this).
fn running_grace(entity: &ApiKey) -> Option<DateTime<Utc>> {
    entity
        .previous_secret_expires_at
        .filter(|t| *t > Utc::now())
}

fn time(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(
        || none.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn active_cell(entity: &ApiKey) -> Cell {
    if entity.is_active {
        Cell::styled(
            "active",
            Style::new().fg_color(Some(AnsiColor::Green.into())),
        )
    } else {
        Cell::styled(
            "inactive",
            Style::new().fg_color(Some(AnsiColor::Red.into())),
        )
    }
}

fn expiry_cell(entity: &ApiKey) -> Cell {
    let text = time(entity.expires_at, "never");
    if entity.is_expired_at(Utc::now()) {
        Cell::styled(
            format!("{text} (expired)"),
            Style::new().fg_color(Some(AnsiColor::Red.into())),
        )
    } else {
        text.into()
    }
}

fn scopes(entity: &ApiKey) -> String {
    if entity.scopes.is_empty() {
        "-".to_owned()
    } else {
        entity.scopes.as_slice().join(",")
    }
}

/// One key as a two-column view. Shows neither the hash nor any part of the secret.
fn entity_view(e: &ApiKey, width: Option<usize>) -> String {
    entity_view_with(e, None, width)
}

/// [`entity_view`], with a `usage` row after `credits` when a verification
/// used limits of the key.
fn entity_view_with(e: &ApiKey, usage: Option<&Usage>, width: Option<usize>) -> String {
    let dim = Style::new().dimmed();
    let label = |s: &str| Cell::styled(s, dim);
    let mut t = Table::default().whole(&[0]);
    t.row(vec![label("id"), e.id.as_str().into()]);
    t.row(vec![label("key_id"), e.key_id.as_str().into()]);
    t.row(vec![label("name"), e.name.as_deref().unwrap_or("-").into()]);
    t.row(vec![
        label("description"),
        e.description.as_deref().unwrap_or("-").into(),
    ]);
    t.row(vec![label("status"), active_cell(e)]);
    t.row(vec![label("scopes"), scopes(e).into()]);
    t.row(vec![
        label("created_at"),
        time(Some(e.created_at), "-").into(),
    ]);
    t.row(vec![
        label("last_used_at"),
        time(e.last_used_at, "never").into(),
    ]);
    t.row(vec![label("expires_at"), expiry_cell(e)]);
    t.row(vec![
        label("owner_id"),
        e.owner_id.as_deref().unwrap_or("-").into(),
    ]);
    t.row(vec![
        label("meta"),
        e.meta
            .as_ref()
            .map_or_else(|| "-".to_owned(), |m| Value::Object(m.clone()).to_string())
            .into(),
    ]);
    t.row(vec![label("rate_limits"), rate_limits_detail(e).into()]);
    t.row(vec![label("credits"), credits_detail(e)]);
    if let Some(detail) = usage.and_then(usage_detail) {
        t.row(vec![label("usage"), detail]);
    }
    if let Some(until) = running_grace(e) {
        t.row(vec![
            label("previous_secret_expires_at"),
            Cell::styled(
                format!(
                    "{} (the previous secret still works)",
                    time(Some(until), "-")
                ),
                Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            ),
        ]);
    }
    t.render_within(width).text
}

fn keys_table(items: &[ApiKey], width: Option<usize>) -> String {
    if items.is_empty() {
        return "no API keys\n".to_owned();
    }
    // On a narrow terminal, KEY ID goes first (`get ID` shows it), then
    // the times, the limits, the owner, the expiry and the scopes; ID,
    // NAME and STATUS stay. IDs, statuses and times never wrap.
    let mut t = Table::with_header([
        "ID",
        "KEY ID",
        "NAME",
        "OWNER",
        "STATUS",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "LIMITS",
    ])
    .whole(&[0, 1, 4, 6, 7, 8])
    .optional(&[1, 6, 7, 9, 3, 8, 5]);
    for e in items {
        t.row(vec![
            e.id.as_str().into(),
            e.key_id.as_str().into(),
            sanitize(e.name.as_deref().unwrap_or("-")).into(),
            short(e.owner_id.as_deref().unwrap_or("-"), OWNER_WIDTH).into(),
            active_cell(e),
            scopes(e).into(),
            time(Some(e.created_at), "-").into(),
            time(e.last_used_at, "never").into(),
            expiry_cell(e),
            short(&limits_summary(e), LIMITS_WIDTH).into(),
        ]);
    }
    with_hidden_note(t.render_within(width), width)
}

/// Widest owner shown in the list table (the detail view shows it whole).
const OWNER_WIDTH: usize = 24;
/// Widest old or new value shown in the events table (JSON has them whole).
const VALUE_WIDTH: usize = 40;
/// Widest limits summary shown in the list table (the detail view shows all).
const LIMITS_WIDTH: usize = 32;

/// `10/1s`: one window without its name (the window as `--rate-limit`
/// takes it, in its largest whole unit).
fn window_short(l: &RateLimit) -> String {
    format!("{}/{}", l.limit, format_window_ms(l.window_ms))
}

/// The credits as they stand now (a due refill applied, as in the JSON).
fn credits_now(e: &ApiKey) -> Option<Credits> {
    e.credits.as_ref().map(|c| c.at(Utc::now()))
}

/// The list table's LIMITS column: `10/1s, 100/1m, 950 cr (daily)`, or `-`.
fn limits_summary(e: &ApiKey) -> String {
    let mut parts: Vec<String> = e.rate_limits.iter().flatten().map(window_short).collect();
    if let Some(c) = credits_now(e) {
        parts.push(credits_short(&c));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `950 cr`, or `950 cr (daily)` with a refill.
fn credits_short(c: &Credits) -> String {
    match c.refill() {
        Some((_, interval)) => format!("{} cr ({})", c.remaining, interval.as_str()),
        None => format!("{} cr", c.remaining),
    }
}

/// `burst 10/1s, hourly 1000/1h`.
fn named_windows(limits: &[RateLimit]) -> String {
    limits
        .iter()
        .map(|l| format!("{} {}", l.name, window_short(l)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The detail view's rate limits: `burst 10/1s, hourly 1000/1h`.
fn rate_limits_detail(e: &ApiKey) -> String {
    match e.rate_limits.as_deref() {
        None | Some([]) => "none".to_owned(),
        Some(limits) => named_windows(limits),
    }
}

/// The detail view's credits: `950 remaining, refilled to 1000 daily (next
/// 2030-01-02T00:00:00Z)`, red when none remain.
fn credits_detail(e: &ApiKey) -> Cell {
    let now = Utc::now();
    let Some(c) = credits_now(e) else {
        return "unlimited".into();
    };
    let mut text = format!("{} remaining", c.remaining);
    if let Some((amount, interval)) = c.refill() {
        text.push_str(&format!(
            ", refilled to {amount} {} (next {})",
            interval.as_str(),
            time(c.next_refill(now), "-")
        ));
    }
    if c.remaining == 0 {
        Cell::styled(text, Style::new().fg_color(Some(AnsiColor::Red.into())))
    } else {
        text.into()
    }
}

/// The `usage` row of `verify`: `2 credits remaining; burst 7 of 10
/// remaining, resets in 1m` (red when something is used up), or `None` for
/// a key without limits.
fn usage_detail(u: &Usage) -> Option<Cell> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(n) = u.remaining {
        let credits = if n == 1 { "credit" } else { "credits" };
        parts.push(format!("{n} {credits} remaining"));
    }
    parts.extend(u.rate_limits.iter().map(window_usage));
    if parts.is_empty() {
        return None;
    }
    let text = parts.join("; ");
    let used_up = u.remaining == Some(0) || u.rate_limits.iter().any(|w| w.remaining == 0);
    Some(if used_up {
        Cell::styled(text, Style::new().fg_color(Some(AnsiColor::Red.into())))
    } else {
        text.into()
    })
}

/// `burst 7 of 10 remaining, resets in 1m`.
fn window_usage(w: &WindowUsage) -> String {
    format!(
        "{} {} of {} remaining, resets in {}",
        w.name,
        w.remaining,
        w.limit,
        whole_seconds(w.reset_ms)
    )
}

/// `ms` rounded up to whole seconds, as `45s`, `1m`, `59m59s`, `1h30m`,
/// `1d` (`0s` for 0).
fn whole_seconds(ms: u64) -> String {
    let mut secs = ms.div_ceil(1000);
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// `text` cut to `max` terminal columns (display width: a CJK character
/// or an emoji takes two), with `…` when cut.
fn short(text: &str, max: usize) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if text.width() <= max {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        cut.push(c);
    }
    cut.push('…');
    cut
}

fn events_table(items: &[AuditEvent], width: Option<usize>) -> String {
    let mut t = Table::with_header(["TIME", "ACTION", "KEY ID", "ACTOR", "CHANGES"]).whole(&[0, 2]);
    for e in items {
        t.row(vec![
            time(Some(e.at), "-").into(),
            e.action.as_str().into(),
            e.key_id.as_str().into(),
            short(&e.actor, OWNER_WIDTH).into(),
            changes_summary(&e.changes).into(),
        ]);
    }
    t.render_within(width).text
}

/// `field: old → new; …`, each value shortened. A new secret shows as
/// `secret: replaced` (the log never holds the secret or its hash).
fn changes_summary(changes: &serde_json::Map<String, Value>) -> String {
    if changes.is_empty() {
        return "-".to_owned();
    }
    changes
        .iter()
        .map(|(field, pair)| {
            if field == "secret" {
                return "secret: replaced".to_owned();
            }
            let (old, new) = match pair.as_array().map(Vec::as_slice) {
                Some([old, new]) => (old, new),
                _ => return format!("{field}: {}", change_value(field, pair)),
            };
            format!(
                "{field}: {} → {}",
                change_value(field, old),
                change_value(field, new)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One old or new value of a change, as the entity view would show it.
fn change_value(field: &str, value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if field.ends_with("_at") => DateTime::parse_from_rfc3339(s)
            .map_or_else(|_| s.clone(), |t| time(Some(t.with_timezone(&Utc)), "-")),
        Value::String(s) => s.clone(),
        // As stored at the time (a refill due then is not applied here).
        Value::Object(_) if field == "credits" => {
            match serde_json::from_value::<Credits>(value.clone()) {
                Ok(c) => credits_short(&c),
                Err(_) => value.to_string(),
            }
        }
        Value::Array(_) if field == "rate_limits" => {
            match serde_json::from_value::<Vec<RateLimit>>(value.clone()) {
                Ok(limits) => named_windows(&limits),
                Err(_) => value.to_string(),
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    short(&text, VALUE_WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate::{new_entity_id, now_micros, ScopeSet};

    fn key() -> ApiKey {
        ApiKey {
            id: new_entity_id(),
            key_id: "0123456789abcdef".into(),
            name: Some("ci".into()),
            description: None,
            is_active: true,
            created_at: now_micros(),
            last_used_at: None,
            expires_at: None,
            scopes: ScopeSet::new(["read", "write"]).unwrap(),
            owner_id: Some("team-7".into()),
            meta: Some(json!({"plan": "pro"}).as_object().unwrap().clone()),
            previous_secret_expires_at: Some(Utc::now() + chrono::TimeDelta::hours(1)),
            rate_limits: None,
            credits: None,
            previous_key_hash: Some("$argon2id$OLDHASH".into()),
            key_hash: "$argon2id$HASH".into(),
            key_secret_first: "QQQQ".into(),
            key_secret_last: "ZZZZ".into(),
        }
    }

    #[test]
    fn neither_view_shows_hash_or_secret_parts() {
        let k = key();
        for json in [false, true] {
            for report in [
                Report::Entity {
                    headline: None,
                    entity: k.clone(),
                },
                Report::List(vec![k.clone()]),
            ] {
                let text = report.render_for(json, None);
                assert!(
                    !text.contains("HASH") && !text.contains("QQQQ") && !text.contains("ZZZZ"),
                    "{text}"
                );
                assert!(text.contains("team-7"), "{text}");
            }
        }
    }

    #[test]
    fn search_json_shape() {
        let v: Value = serde_json::from_str(
            &Report::Page {
                items: vec![key()],
                total: 7,
                limit: 1,
                offset: 2,
            }
            .render_for(true, None),
        )
        .unwrap();
        assert_eq!(v["total"], 7);
        assert_eq!(v["items"][0]["scopes"], json!(["read", "write"]));
        assert_eq!(v["items"][0]["last_used_at"], Value::Null);
    }

    #[test]
    fn the_entity_view_shows_owner_meta_and_a_running_grace() {
        let mut k = key();
        let text = Report::Entity {
            headline: None,
            entity: k.clone(),
        }
        .render_for(false, None);
        for expected in [
            "owner_id",
            "team-7",
            r#"{"plan":"pro"}"#,
            "previous_secret_expires_at",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        k.previous_secret_expires_at = Some(Utc::now() - chrono::TimeDelta::seconds(1));
        let text = Report::Entity {
            headline: None,
            entity: k,
        }
        .render_for(false, None);
        assert!(!text.contains("previous_secret"), "grace over: {text}");
    }

    /// `text` without its colour codes, as a pipe gets it.
    fn plain(text: &str) -> String {
        let mut out = Vec::new();
        let mut stream = anstream::StripStream::new(&mut out);
        stream.write_all(text.as_bytes()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn limits_show_in_the_view_the_table_and_the_json() {
        let mut k = key();
        let unlimited = plain(
            &Report::Entity {
                headline: None,
                entity: k.clone(),
            }
            .render_for(false, None),
        );
        let line = |text: &str, label: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{label} ")))
                .unwrap_or_else(|| panic!("no {label}: {text}"))
                .to_owned()
        };
        assert!(line(&unlimited, "rate_limits").ends_with(" none"));
        assert!(line(&unlimited, "credits").ends_with(" unlimited"));
        assert!(
            plain(&Report::List(vec![k.clone()]).render_for(false, None))
                .lines()
                .nth(1)
                .unwrap()
                .ends_with("  -")
        );

        k.rate_limits = Some(vec![
            RateLimit::new("burst", 10, std::time::Duration::from_secs(1)),
            RateLimit::new("minute", 100, std::time::Duration::from_secs(60)),
            RateLimit::new("odd", 7, std::time::Duration::from_millis(1500)),
        ]);
        k.credits = Some(
            Credits::new(950)
                .refilled(1000, keygate::RefillInterval::Daily)
                .configured_at(Utc::now()),
        );
        let view = plain(
            &Report::Entity {
                headline: None,
                entity: k.clone(),
            }
            .render_for(false, None),
        );
        assert!(line(&view, "rate_limits").ends_with(" burst 10/1s, minute 100/1m, odd 7/1500ms"));
        assert!(line(&view, "credits").contains(" 950 remaining, refilled to 1000 daily (next "));
        let table = plain(&Report::List(vec![k.clone()]).render_for(false, None));
        assert!(table.lines().next().unwrap().ends_with("LIMITS"), "{table}");
        assert!(
            table.contains("10/1s, 100/1m, 7/1500ms, 950 cr…"),
            "{table}"
        );

        k.rate_limits = None;
        let table = plain(&Report::List(vec![k.clone()]).render_for(false, None));
        assert!(table.contains("950 cr (daily)"), "{table}");

        let v: Value = serde_json::from_str(&Report::List(vec![k]).render_for(true, None)).unwrap();
        assert_eq!(v[0]["credits"]["remaining"], 950);
        assert_eq!(v[0]["credits"]["refill_interval"], "daily");
        assert_eq!(v[0]["rate_limits"], Value::Null);
    }

    #[test]
    fn the_key_table_fits_a_width_and_says_what_it_left_out() {
        use unicode_width::UnicodeWidthStr;
        let mut k = key();
        k.name = Some("計費サービス 🚀".into());
        let items = vec![k.clone(), key()];
        let whole = plain(&Report::List(items.clone()).render_for(false, None));
        assert_eq!(whole.lines().count(), 3, "{whole}");
        assert!(whole.lines().next().unwrap().contains("KEY ID"), "{whole}");
        for width in [60, 80, 100, 120] {
            let text = plain(&Report::List(items.clone()).render_for(false, Some(width)));
            for line in text.lines() {
                assert!(line.width() <= width, "{width}: {line:?}\n{text}");
            }
            assert!(
                text.contains(&k.id) && text.contains("計費サービス"),
                "{text}"
            );
            assert!(
                text.contains("left out to fit the terminal"),
                "{width}: {text}"
            );
        }
        assert_eq!(
            wrap("a bb ccc dddd", 6),
            ["a bb", "ccc", "dddd"].map(String::from)
        );
    }

    #[test]
    fn verify_shows_its_cost_and_usage() {
        let mut k = key();
        k.credits = Some(Credits::new(2));
        k.rate_limits = Some(vec![RateLimit::new(
            "burst",
            10,
            std::time::Duration::from_secs(60),
        )]);
        let usage = Usage {
            remaining: Some(2),
            rate_limits: vec![WindowUsage {
                name: "burst".into(),
                limit: 10,
                remaining: 7,
                reset_ms: 59_001,
            }],
        };
        let report = |cost| Report::Verified {
            entity: k.clone(),
            usage: usage.clone(),
            cost,
        };
        let text = plain(&report(3).render_for(false, None));
        assert!(text.starts_with("API key valid (cost 3).\n"), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with("usage ")
                && l.ends_with(" 2 credits remaining; burst 7 of 10 remaining, resets in 1m")),
            "{text}"
        );
        assert!(plain(&report(1).render_for(false, None)).starts_with("API key valid.\n"));
        assert!(plain(&report(0).render_for(false, None))
            .starts_with("API key valid (cost 0: nothing taken).\n"));

        let v: Value = serde_json::from_str(&report(3).render_for(true, None)).unwrap();
        assert_eq!(v["id"], json!(k.id));
        assert_eq!(
            v["usage"],
            json!({"remaining": 2, "rate_limits": [
                {"name": "burst", "limit": 10, "remaining": 7, "reset_ms": 59_001}
            ]})
        );

        // Without limits: no usage row; the JSON says so as /verify does.
        let plain_key = Report::Verified {
            entity: key(),
            usage: Usage::default(),
            cost: 1,
        };
        assert!(!plain(&plain_key.render_for(false, None)).contains("usage"));
        let v: Value = serde_json::from_str(&plain_key.render_for(true, None)).unwrap();
        assert_eq!(v["usage"], json!({"remaining": null, "rate_limits": []}));
    }

    #[test]
    fn resets_are_whole_seconds_rounded_up() {
        for (ms, text) in [
            (0, "0s"),
            (1, "1s"),
            (1_000, "1s"),
            (1_001, "2s"),
            (60_000, "1m"),
            (3_599_001, "1h"),
            (3_598_500, "59m59s"),
            (5_400_000, "1h30m"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(whole_seconds(ms), text, "{ms}");
        }
    }

    #[test]
    fn short_counts_display_columns() {
        assert_eq!(short("abcdef", 4), "abc…");
        assert_eq!(short("計費サービス", 7), "計費サ…");
        assert_eq!(short("計費", 4), "計費");
    }

    #[test]
    fn changes_are_summarised_field_by_field() {
        let changes = json!({
            "description": ["old", null],
            "expires_at": [null, "2099-01-01T00:00:00.123456Z"],
            "meta": [null, {"plan": "pro"}],
            "scopes": [["read"], ["read", "write"]],
            "secret": ["(hidden)", "(hidden)"],
            "name": ["a", "x".repeat(100)],
            "rate_limits": [null, [{"name": "burst", "limit": 10, "window_ms": 1000}]],
            "credits": [
                {"remaining": 5, "refill_amount": null, "refill_interval": null, "last_refill_at": null},
                {"remaining": 1000, "refill_amount": 1000, "refill_interval": "daily", "last_refill_at": "2030-01-01T00:00:00Z"}
            ],
        });
        let text = changes_summary(changes.as_object().unwrap());
        for part in [
            "description: old → -",
            "expires_at: - → 2099-01-01T00:00:00Z",
            r#"meta: - → {"plan":"pro"}"#,
            "scopes: read → read,write",
            "secret: replaced",
            "…",
            "rate_limits: - → burst 10/1s",
            "credits: 5 cr → 1000 cr (daily)",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(!text.contains("hidden"), "{text}");
        assert_eq!(changes_summary(&serde_json::Map::new()), "-");
    }
}
