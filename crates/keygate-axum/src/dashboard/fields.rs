//! The text fields of the forms: scopes, dates, JSON, rate-limit windows,
//! credit amounts and refills, read and written back.

use chrono::{DateTime, NaiveDate, Utc};
use keygate::{Meta, RateLimit, RefillInterval, MAX_CREDITS};

/// The trimmed text, unless empty.
pub(crate) fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Scopes separated by spaces, commas or line breaks.
pub(crate) fn parse_scopes(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A date (`2030-01-31`, as `<input type=date>` sends it): the key stops
/// working at 00:00 UTC that day. Empty: never.
pub(crate) fn parse_expires(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| "Enter a date as YYYY-MM-DD, or leave it empty.".to_owned())?;
    let at = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    match at {
        Some(t) if t > Utc::now() => Ok(Some(t)),
        _ => Err("must be in the future".to_owned()),
    }
}

pub(crate) fn parse_meta(text: &str) -> Result<Option<Meta>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err("must be a JSON object, e.g. {\"plan\": \"pro\"}".to_owned()),
        Err(e) => Err(format!("is not valid JSON ({e})")),
    }
}

/// One window per line, in the core's syntax (`name=100/60s`, see
/// [`RateLimit`]'s `FromStr`). Empty: no rate limit.
pub(crate) fn parse_rate_limits(text: &str) -> Result<Option<Vec<RateLimit>>, String> {
    let mut limits = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let limit = line
            .parse::<RateLimit>()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        limits.push(limit);
    }
    Ok((!limits.is_empty()).then_some(limits))
}

/// Windows one per line, in the form [`parse_rate_limits`] reads.
pub(crate) fn format_rate_limits(limits: &[RateLimit]) -> String {
    limits
        .iter()
        .map(RateLimit::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A time left, rounded up to the second, in its two largest units that
/// are not zero: `59m 59s`, `2h`, `1d 3h`.
pub(crate) fn format_countdown(ms: u64) -> String {
    let mut left = ms.div_ceil(1000);
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= size || (unit == "s" && parts.is_empty()) {
            parts.push(format!("{}{unit}", left / size));
            left %= size;
        }
    }
    parts.truncate(2);
    parts.join(" ")
}

pub(crate) fn parse_credits(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse_amount(text, 0).map(Some)
}

/// A whole number from `min` to 10^15.
pub(crate) fn parse_amount(text: &str, min: u64) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=MAX_CREDITS).contains(n))
        .ok_or_else(|| format!("must be a whole number from {min} to {MAX_CREDITS}"))
}

pub(crate) fn parse_refill(text: &str) -> Result<Option<(u64, RefillInterval)>, String> {
    const HINT: &str = "write AMOUNT/INTERVAL, e.g. 1000/daily (hourly, daily or monthly)";
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (amount, interval) = text.split_once('/').ok_or(HINT)?;
    let amount = parse_amount(amount, 1).map_err(|e| format!("the amount {e}"))?;
    let interval = interval
        .trim()
        .parse::<RefillInterval>()
        .map_err(|_| HINT)?;
    Ok(Some((amount, interval)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdowns_show_the_two_largest_units() {
        for (ms, shown) in [
            (0, "0s"),
            (1, "1s"),
            (59_001, "1m"),
            (3_599_000, "59m 59s"),
            (3_600_000, "1h"),
            (90_061_000, "1d 1h"),
            (86_460_000, "1d 1m"),
        ] {
            assert_eq!(format_countdown(ms), shown, "{ms} ms");
        }
    }

    #[test]
    fn rate_limits_round_trip() {
        let limits = parse_rate_limits("burst=10/1s\n\n hourly = 1000/1h\nday=5/86400")
            .unwrap()
            .unwrap();
        assert_eq!(limits[0].window_ms, 1000);
        assert_eq!(limits[1].name, "hourly");
        assert_eq!(limits[2].window_ms, 86_400_000);
        assert_eq!(
            format_rate_limits(&limits),
            "burst=10/1s\nhourly=1000/1h\nday=5/1d"
        );
        // What the API may store off the whole seconds reads back too.
        let odd = [RateLimit {
            name: "odd".to_owned(),
            limit: 7,
            window_ms: 1_500,
        }];
        assert_eq!(format_rate_limits(&odd), "odd=7/1500ms");
        assert_eq!(
            parse_rate_limits(&format_rate_limits(&odd))
                .unwrap()
                .unwrap(),
            odd
        );
        assert_eq!(
            parse_rate_limits("a=1/1s\nb=1/3d").unwrap_err(),
            r#"line 2: window "3d" must be 1s to 1d"#
        );
        assert_eq!(parse_rate_limits("  \n").unwrap(), None);
        for bad in [
            "burst",
            "burst=10",
            "Burst=1/1s",
            "b=0/1s",
            "b=1/0s",
            "b=1/2d",
            "b=1/1x",
        ] {
            assert!(parse_rate_limits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(
            parse_scopes("read, write\napi:x,,"),
            ["read", "write", "api:x"]
        );
    }
}
