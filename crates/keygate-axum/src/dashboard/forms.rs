//! The create and edit forms: their text values, their parsing into the
//! core's inputs, and the problems to show next to each field.

use keygate::{ApiKey, ApiKeyUpdate, Credits, FieldError, NewApiKey};
use serde::Deserialize;

use super::fields::{
    format_rate_limits, non_empty, parse_credits, parse_expires, parse_meta, parse_rate_limits,
    parse_refill, parse_scopes,
};

/// The form's fields (names as in the HTML) and their labels.
const LABELS: [(&str, &str); 9] = [
    ("name", "Name"),
    ("description", "Description"),
    ("scopes", "Scopes"),
    ("expires", "Expires"),
    ("owner", "Owner"),
    ("meta", "Metadata (JSON)"),
    ("rate_limits", "Rate limits"),
    ("credits", "Credits"),
    ("refill", "Refill"),
];

/// The key form as sent (create: every field; edit: all but credits and
/// refill), with the problems found in it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct KeyForm {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) scopes: String,
    pub(crate) expires: String,
    pub(crate) owner: String,
    pub(crate) meta: String,
    pub(crate) rate_limits: String,
    pub(crate) credits: String,
    pub(crate) refill: String,
    #[serde(skip)]
    errors: Vec<(&'static str, String)>,
}

/// One line of the error summary: a link to the field and the problem.
pub(crate) struct Problem {
    pub(crate) field: &'static str,
    pub(crate) label: &'static str,
    pub(crate) message: String,
}

impl KeyForm {
    /// The edit form of `key`, filled with its values.
    pub(crate) fn of(key: &ApiKey) -> Self {
        Self {
            name: key.name.clone().unwrap_or_default(),
            description: key.description.clone().unwrap_or_default(),
            scopes: key.scopes.as_slice().join(" "),
            expires: key
                .expires_at
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            owner: key.owner_id.clone().unwrap_or_default(),
            meta: key
                .meta
                .as_ref()
                .and_then(|m| serde_json::to_string_pretty(m).ok())
                .unwrap_or_default(),
            rate_limits: key
                .rate_limits
                .as_deref()
                .map(format_rate_limits)
                .unwrap_or_default(),
            credits: String::new(),
            refill: String::new(),
            errors: Vec::new(),
        }
    }

    /// The problem with `field`, if any.
    pub(crate) fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    /// The ids an input's `aria-describedby` names: its hint, if it has
    /// one, and its error, if it has one.
    pub(crate) fn described_by(&self, field: &str, hint: bool) -> String {
        let mut ids = Vec::new();
        if hint {
            ids.push(format!("hint-{field}"));
        }
        if self.error(field).is_some() {
            ids.push(format!("err-{field}"));
        }
        ids.join(" ")
    }

    /// Every problem, in the form's order.
    pub(crate) fn problems(&self) -> Vec<Problem> {
        LABELS
            .iter()
            .filter_map(|(field, label)| {
                self.error(field).map(|m| Problem {
                    field,
                    label,
                    message: m.to_owned(),
                })
            })
            .collect()
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        // One message per field: the first found.
        if self.error(field).is_none() {
            self.errors.push((field, message.into()));
        }
    }

    /// Adds the core's validation problems, each to the field it names.
    pub(crate) fn add_core_errors(&mut self, errors: &[FieldError]) {
        for e in errors {
            let field = form_field(&e.field);
            self.add(field, e.message.clone());
        }
    }

    /// The new key the form describes, or `None` with its problems noted.
    pub(crate) fn read_new_key(&mut self) -> Option<NewApiKey> {
        if self.name.trim().is_empty() {
            self.add("name", "Enter a name (1 to 128 characters).");
        }
        let expires_at = self.parsed(|f| parse_expires(&f.expires), "expires");
        let meta = self.parsed(|f| parse_meta(&f.meta), "meta");
        let rate_limits = self.parsed(|f| parse_rate_limits(&f.rate_limits), "rate_limits");
        let credits = self.parsed(|f| parse_credits(&f.credits), "credits");
        let refill = self.parsed(|f| parse_refill(&f.refill), "refill");
        let credits = match (credits.flatten(), refill.flatten()) {
            (Some(n), Some((amount, interval))) => Some(Credits::new(n).refilled(amount, interval)),
            (Some(n), None) => Some(Credits::new(n)),
            (None, Some(_)) => {
                self.add("refill", "Give the starting credits too.");
                None
            }
            (None, None) => None,
        };
        if self.has_errors() {
            return None;
        }
        Some(NewApiKey {
            name: Some(self.name.trim().to_owned()),
            description: non_empty(&self.description),
            expires_at: expires_at.flatten(),
            scopes: parse_scopes(&self.scopes),
            owner_id: non_empty(&self.owner),
            meta: meta.flatten(),
            rate_limits: rate_limits.flatten(),
            credits,
            ..NewApiKey::default()
        })
    }

    /// The change from `key` to what the edit form says (only the fields
    /// that differ, so the audit log shows real changes), or `None` with its
    /// problems noted.
    pub(crate) fn read_update(&mut self, key: &ApiKey) -> Option<ApiKeyUpdate> {
        if self.name.trim().is_empty() {
            self.add("name", "Enter a name (1 to 128 characters).");
        }
        let before = Self::of(key);
        let expires_at = self.parsed(|f| parse_expires(&f.expires), "expires");
        let meta = self.parsed(|f| parse_meta(&f.meta), "meta");
        let rate_limits = self.parsed(|f| parse_rate_limits(&f.rate_limits), "rate_limits");
        if self.has_errors() {
            return None;
        }
        let mut change = ApiKeyUpdate::default();
        let name = self.name.trim();
        if key.name.as_deref() != Some(name) {
            change.name = Some(name.to_owned());
        }
        let description = non_empty(&self.description);
        if description != key.description {
            change.description = Some(description);
        }
        let scopes = parse_scopes(&self.scopes);
        let mut sorted = scopes.clone();
        sorted.sort();
        sorted.dedup();
        let mut held: Vec<String> = key.scopes.as_slice().to_vec();
        held.sort();
        if sorted != held {
            change.scopes = Some(scopes);
        }
        // The date only: an expiry set elsewhere to 13:45 stays as it is
        // while its date is left alone.
        if self.expires.trim() != before.expires {
            match expires_at.flatten() {
                Some(t) => change.expires_at = Some(t),
                None => change.clear_expires = true,
            }
        }
        let owner = non_empty(&self.owner);
        if owner != key.owner_id {
            change.owner_id = Some(owner);
        }
        let meta = meta.flatten();
        if meta != key.meta {
            change.meta = Some(meta);
        }
        let rate_limits = rate_limits.flatten();
        if rate_limits != key.rate_limits {
            change.rate_limits = Some(rate_limits);
        }
        Some(change)
    }

    /// Runs a parser on this form, noting its problem under `field`.
    fn parsed<T>(
        &mut self,
        parse: impl FnOnce(&Self) -> Result<T, String>,
        field: &'static str,
    ) -> Option<T> {
        match parse(self) {
            Ok(v) => Some(v),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }
}

/// True when an update changes nothing.
pub(crate) fn is_empty(change: &ApiKeyUpdate) -> bool {
    change.name.is_none()
        && change.description.is_none()
        && change.is_active.is_none()
        && change.scopes.is_none()
        && change.expires_at.is_none()
        && !change.clear_expires
        && change.owner_id.is_none()
        && change.meta.is_none()
        && change.rate_limits.is_none()
        && change.credits.is_none()
}

/// The form field a core field error is about (`rate_limits[1].name` →
/// `rate_limits`).
fn form_field(core: &str) -> &'static str {
    let head = core.split(['.', '[']).next().unwrap_or("");
    match head {
        "name" => "name",
        "description" => "description",
        "scopes" => "scopes",
        "expires_at" => "expires",
        "owner_id" => "owner",
        "meta" => "meta",
        "rate_limits" => "rate_limits",
        "credits" if core.contains("refill") => "refill",
        "credits" => "credits",
        _ => "name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_form_problems_name_their_field() {
        let mut form = KeyForm {
            expires: "2001-01-01".into(),
            meta: "[1]".into(),
            refill: "10/daily".into(),
            ..KeyForm::default()
        };
        assert!(form.read_new_key().is_none());
        let fields: Vec<_> = form.problems().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["name", "expires", "meta", "refill"]);
        assert_eq!(form.described_by("meta", true), "hint-meta err-meta");
    }

    #[test]
    fn core_fields_map_to_form_fields() {
        assert_eq!(form_field("rate_limits[1].name"), "rate_limits");
        assert_eq!(form_field("credits.refill_amount"), "refill");
        assert_eq!(form_field("scopes.0"), "scopes");
    }
}
