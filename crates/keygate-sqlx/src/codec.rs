//! Stored value formats shared by the backends, compatible with the Python
//! library: scopes as JSON text (`["read", "write"]`), and on SQLite naive
//! UTC timestamps as text `YYYY-MM-DD HH:MM:SS.ffffff`.

use chrono::{DateTime, Utc};
use keygate::{Meta, RateLimit, ScopeSet, StoreError};

/// The SQLite timestamp format. Always six fractional digits, so comparing
/// the text compares the times.
#[cfg(feature = "sqlite")]
const NAIVE_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Scopes as the Python library writes them (`json.dumps`: `", "` between items).
pub(crate) fn scopes_to_json(scopes: &ScopeSet) -> String {
    let items: Vec<String> = scopes
        .iter()
        // Serializing a &str cannot fail.
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(", "))
}

/// A JSON array of strings, as a bound parameter for scope filters.
pub(crate) fn list_to_json(scopes: &[String]) -> String {
    serde_json::Value::from(scopes.to_vec()).to_string()
}

/// Reads a stored scope list. Scopes outside keygate's syntax (possible in
/// rows another tool wrote) load as they are; no route can require them.
pub(crate) fn scopes_from_json(text: &str) -> Result<ScopeSet, StoreError> {
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("scopes are not a JSON list of strings: {e}")))?;
    Ok(ScopeSet::from_stored(list))
}

/// Reads a stored JSON object (`meta`, an event's `changes`).
pub(crate) fn object_from_json(text: &str) -> Result<Meta, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("not a JSON object: {e}")))
}

/// A JSON object as stored text.
pub(crate) fn object_to_json(object: &Meta) -> String {
    // Serializing a map of JSON values cannot fail.
    serde_json::to_string(object).unwrap_or_default()
}

/// Rate-limit windows as stored JSON text
/// (`[{"name":"burst","limit":10,"window_ms":1000}]`).
pub(crate) fn limits_to_json(limits: &[RateLimit]) -> String {
    // Serializing strings and integers cannot fail.
    serde_json::to_string(limits).unwrap_or_default()
}

/// Reads stored rate-limit windows.
pub(crate) fn limits_from_json(text: &str) -> Result<Vec<RateLimit>, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Corrupt(format!(
            "column rate_limits: not a JSON list of rate-limit windows: {e}"
        ))
    })
}

/// UTC time as naive text, the SQLite storage format.
#[cfg(feature = "sqlite")]
pub(crate) fn time_to_text(t: DateTime<Utc>) -> String {
    t.naive_utc().format(NAIVE_FORMAT).to_string()
}

/// Reads a SQLite timestamp: naive UTC text with any number of fractional
/// digits, `T` or space as separator, or RFC 3339 with an offset.
#[cfg(feature = "sqlite")]
pub(crate) fn time_from_text(text: &str) -> Result<DateTime<Utc>, StoreError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(keygate::truncate_micros(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .map(|n| keygate::truncate_micros(n.and_utc()))
        .ok_or_else(|| StoreError::Corrupt(format!("unreadable timestamp {text:?}")))
}

/// Lowercases a `name_contains` needle and escapes `LIKE` metacharacters
/// with `!` (the `ESCAPE` character every backend uses), so `%`, `_` and
/// `\` match literally.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in keygate::fold_case(needle).chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Touches in id order, so two instances flushing overlapping batches lock
/// rows in the same order and cannot deadlock.
pub(crate) fn sorted_uses(uses: &[(String, DateTime<Utc>)]) -> Vec<&(String, DateTime<Utc>)> {
    let mut sorted: Vec<_> = uses.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
}

/// u64 paging values as the i64 the databases take.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn python_formats_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 7, 50, 17).unwrap();
        assert_eq!(time_to_text(t), "2026-11-28 07:50:17.000000");
        assert_eq!(time_from_text("2026-11-28 07:50:17.000000").unwrap(), t);
        assert_eq!(time_from_text("2026-11-28 07:50:17").unwrap(), t);
        assert_eq!(time_from_text("2026-11-28T07:50:17Z").unwrap(), t);
        assert_eq!(time_from_text("2026-11-28T09:50:17+02:00").unwrap(), t);
        assert!(time_from_text("yesterday").is_err());
        let scopes = ScopeSet::new(["read", "write"]).unwrap();
        assert_eq!(scopes_to_json(&scopes), r#"["read", "write"]"#);
        assert_eq!(scopes_to_json(&ScopeSet::default()), "[]");
        assert_eq!(scopes_from_json(r#"["read","write"]"#).unwrap(), scopes);
        assert!(scopes_from_json("{}").is_err());
    }

    #[test]
    fn legacy_scopes_load_and_junk_is_corrupt() {
        let scopes = scopes_from_json(r#"["Legacy", "read"]"#).unwrap();
        assert_eq!(scopes.as_slice(), ["Legacy", "read"]);
        assert!(matches!(
            scopes_from_json("{}"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn rate_limits_round_trip_and_junk_is_corrupt() {
        let limits = vec![
            RateLimit::new("burst", 10, std::time::Duration::from_secs(1)),
            RateLimit::new("day", 86_400, std::time::Duration::from_secs(86_400)),
        ];
        let text = limits_to_json(&limits);
        assert_eq!(
            text,
            r#"[{"name":"burst","limit":10,"window_ms":1000},{"name":"day","limit":86400,"window_ms":86400000}]"#
        );
        assert_eq!(limits_from_json(&text).unwrap(), limits);
        // PostgreSQL's jsonb hands it back reformatted.
        assert_eq!(
            limits_from_json(r#"[{"limit": 10, "name": "burst", "window_ms": 1000}]"#).unwrap(),
            limits[..1]
        );
        for junk in ["{}", "[1]", r#"[{"name":"x","limit":-1,"window_ms":1000}]"#] {
            assert!(
                matches!(limits_from_json(junk), Err(StoreError::Corrupt(m)) if m.contains("rate_limits")),
                "{junk}"
            );
        }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern(r"A%b_c\d!"), r"%a!%b!_c\d!!%");
    }
}
