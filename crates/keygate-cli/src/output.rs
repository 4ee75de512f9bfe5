//! What commands print: tables and views for people, stable JSON for
//! programs. Commands return a [`Report`]; only this module formats it.

use std::io::Write;

use anstyle::{AnsiColor, Style};
use chrono::{DateTime, SecondsFormat, Utc};
use keygate::{ApiKey, PlainKey, Secret};
use serde_json::{json, Value};

use crate::table::{sanitize, Cell, Table};

/// The result of a command, before formatting.
pub enum Report {
    /// A new key: the only report that carries a plaintext key of a stored key.
    Created { entity: ApiKey, key: PlainKey },
    /// One key, with a headline for people (`get`, `update`, `verify`, ...).
    Entity {
        headline: Option<String>,
        entity: ApiKey,
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
    /// Renders for stdout.
    pub fn render(&self, json: bool) -> String {
        if json {
            match self.to_json() {
                Some(v) => format!("{v}\n"),
                None => String::new(),
            }
        } else {
            self.to_text()
        }
    }

    fn to_json(&self) -> Option<Value> {
        Some(match self {
            Report::Created { entity, key } => json!({"api_key": key.expose(), "entity": entity}),
            Report::Entity { entity, .. } => json!(entity),
            Report::List(items) => json!(items),
            Report::Page {
                items,
                total,
                limit,
                offset,
            } => json!({"items": items, "total": total, "limit": limit, "offset": offset}),
            Report::Count(total) => json!({ "total": total }),
            Report::Generated { var, key } => json!({"name": var, "api_key": key.expose()}),
            Report::Pepper(p) => json!({ "pepper": p.expose() }),
            Report::Migrated => json!({"status": "ok"}),
            Report::Nothing => return None,
        })
    }

    fn to_text(&self) -> String {
        match self {
            Report::Created { entity, key } => {
                let bold = Style::new().bold();
                let key_style = Style::new().bold().fg_color(Some(AnsiColor::Yellow.into()));
                format!(
                    "{bold}API key created.{bold:#} Store it now: it is shown only this once and cannot be recovered.\n\n    {key_style}{}{key_style:#}\n\n{}",
                    key.expose(),
                    entity_view(entity)
                )
            }
            Report::Entity { headline, entity } => match headline {
                Some(h) => format!("{h}\n{}", entity_view(entity)),
                None => entity_view(entity),
            },
            Report::List(items) => keys_table(items),
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
                    keys_table(items),
                    offset + 1,
                    offset + n as u64
                ),
            },
            Report::Count(total) => format!("{total}\n"),
            Report::Generated { var, key } => format!("{var}={}\n", key.expose()),
            Report::Pepper(p) => format!("API_KEY_PEPPER={}\n", p.expose()),
            Report::Migrated => "database schema is up to date\n".to_owned(),
            Report::Nothing => String::new(),
        }
    }
}

/// Writes to stdout. Colour codes are stripped unless stdout is a terminal
/// and NO_COLOR is unset (anstream decides). A closed pipe is not an error.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = anstream::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
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
fn entity_view(e: &ApiKey) -> String {
    let dim = Style::new().dimmed();
    let label = |s: &str| Cell::styled(s, dim);
    let mut t = Table::default();
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
    t.render()
}

fn keys_table(items: &[ApiKey]) -> String {
    if items.is_empty() {
        return "no API keys\n".to_owned();
    }
    let mut t = Table::with_header([
        "ID",
        "KEY ID",
        "NAME",
        "STATUS",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
    ]);
    for e in items {
        t.row(vec![
            e.id.as_str().into(),
            e.key_id.as_str().into(),
            sanitize(e.name.as_deref().unwrap_or("-")).into(),
            active_cell(e),
            scopes(e).into(),
            time(Some(e.created_at), "-").into(),
            time(e.last_used_at, "never").into(),
            expiry_cell(e),
        ]);
    }
    t.render()
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
                let text = report.render(json);
                assert!(
                    !text.contains("HASH") && !text.contains("QQQQ") && !text.contains("ZZZZ"),
                    "{text}"
                );
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
            .render(true),
        )
        .unwrap();
        assert_eq!(v["total"], 7);
        assert_eq!(v["items"][0]["scopes"], json!(["read", "write"]));
        assert_eq!(v["items"][0]["last_used_at"], Value::Null);
    }
}
