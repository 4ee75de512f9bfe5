//! The text form of a rate-limit window, `NAME=LIMIT/WINDOW` (`burst=10/1s`,
//! `hourly=1000/1h`, `api=100/60`), read by [`RateLimit`]'s `FromStr` and
//! written by its `Display`: the one syntax of the CLI's `--rate-limit` and
//! the dashboard's rate-limit field.
//!
//! WINDOW is one or more number + unit pairs (`ms`, `s`, `m`, `h`, `d`:
//! `90s`, `5m`, `1h30m`, `1500ms`) or a plain number of seconds (`60`).
//! Spaces around NAME, LIMIT and WINDOW are ignored.

use std::fmt;
use std::str::FromStr;

use crate::limits::{RateLimit, MAX_WINDOW_LIMIT, MAX_WINDOW_MS, MIN_WINDOW_MS};
use crate::scope::is_valid_scope;

/// Why a text is not a rate-limit window (`NAME=LIMIT/WINDOW`).
///
/// Each variant holding text holds the offending part, trimmed. The
/// message says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseRateLimitError {
    /// No `=` after the window's name.
    MissingEquals,
    /// No `/` between the limit and the window.
    MissingSlash,
    /// Nothing before the `=`.
    MissingName,
    /// The name is not like a scope (`^[a-z][a-z0-9:_-]*$`, at most 64 bytes).
    BadName(String),
    /// The limit is not a whole number from 1 to [`MAX_WINDOW_LIMIT`].
    BadLimit(String),
    /// The window is not a duration.
    BadWindow(String),
    /// The window is a duration outside 1 s to 1 day.
    WindowOutOfRange(String),
}

const FORM: &str = "expected NAME=LIMIT/WINDOW such as burst=10/1s or hourly=1000/1h";

impl fmt::Display for ParseRateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingEquals => write!(f, "{FORM} (no '=' after the window's name)"),
            Self::MissingSlash => write!(f, "{FORM} (no '/' between the limit and the window)"),
            Self::MissingName => write!(f, "{FORM} (the window's name is missing)"),
            Self::BadName(name) => write!(
                f,
                "window name {name:?} must start with a lowercase letter, then lowercase \
                 letters, digits, ':', '_' or '-' (at most 64 characters)"
            ),
            Self::BadLimit(limit) => {
                // A number out of range is shown as such (`limit 0`), anything
                // else quoted (`limit "ten"`).
                match limit.parse::<u64>() {
                    Ok(n) => write!(f, "limit {n}")?,
                    Err(_) => write!(f, "limit {limit:?}")?,
                }
                write!(f, " must be a whole number from 1 to {MAX_WINDOW_LIMIT}")
            }
            Self::BadWindow(window) => write!(
                f,
                "window {window:?} is not a duration: expected e.g. 1s, 60s, 5m, 1h, 1d, \
                 1h30m or a number of seconds"
            ),
            Self::WindowOutOfRange(window) => write!(f, "window {window:?} must be 1s to 1d"),
        }
    }
}

impl std::error::Error for ParseRateLimitError {}

/// Reads `NAME=LIMIT/WINDOW` and checks each part as [`RateLimit`]s are
/// checked when a key is saved: NAME like a scope, LIMIT 1 to
/// [`MAX_WINDOW_LIMIT`], WINDOW 1 s to 1 day. (Whether names repeat across
/// a key's windows is the service's check.)
///
/// ```
/// use keygate::RateLimit;
/// let l: RateLimit = "hourly=1000/1h".parse().unwrap();
/// assert_eq!((l.name.as_str(), l.limit, l.window_ms), ("hourly", 1000, 3_600_000));
/// assert_eq!("api=100/90".parse::<RateLimit>().unwrap().to_string(), "api=100/90s");
/// let err = "b=10/2d".parse::<RateLimit>().unwrap_err();
/// assert_eq!(err.to_string(), r#"window "2d" must be 1s to 1d"#);
/// ```
impl FromStr for RateLimit {
    type Err = ParseRateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, rest) = text
            .split_once('=')
            .ok_or(ParseRateLimitError::MissingEquals)?;
        let (limit, window) = rest
            .split_once('/')
            .ok_or(ParseRateLimitError::MissingSlash)?;
        let (name, limit, window) = (name.trim(), limit.trim(), window.trim());
        if name.is_empty() {
            return Err(ParseRateLimitError::MissingName);
        }
        if !is_valid_scope(name) {
            return Err(ParseRateLimitError::BadName(name.to_owned()));
        }
        let limit_value = limit
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_WINDOW_LIMIT).contains(n))
            .ok_or_else(|| ParseRateLimitError::BadLimit(limit.to_owned()))?;
        let window_ms =
            window_ms(window).ok_or_else(|| ParseRateLimitError::BadWindow(window.to_owned()))?;
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&window_ms) {
            return Err(ParseRateLimitError::WindowOutOfRange(window.to_owned()));
        }
        Ok(RateLimit {
            name: name.to_owned(),
            limit: limit_value,
            window_ms,
        })
    }
}

/// A window's length in milliseconds (saturating: too long is `u64::MAX`),
/// or `None` when `text` is not a duration.
fn window_ms(text: &str) -> Option<u64> {
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    // All digits parse, unless too large: then the window is too long.
    let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    if !text.is_empty() && digits(text) == text.len() {
        return Some(number(text).saturating_mul(1_000));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    loop {
        let n = digits(rest);
        if n == 0 {
            return None;
        }
        let (value, after) = rest.split_at(n);
        let unit = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit);
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.saturating_add(number(value).saturating_mul(unit_ms));
        if after.is_empty() {
            return Some(total);
        }
        rest = after;
    }
}

/// Writes `NAME=LIMIT/WINDOW`, the window in its largest whole unit (see
/// [`format_window_ms`]); `FromStr` reads it back.
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}/", self.name, self.limit)?;
        write_window(f, self.window_ms)
    }
}

/// A window length as the rate-limit syntax writes it, in the largest unit
/// that divides it: `1s`, `90s`, `5m`, `90m`, `1h`, `1d`, and `1500ms`
/// off the whole seconds.
///
/// ```
/// assert_eq!(keygate::format_window_ms(60_000), "1m");
/// assert_eq!(keygate::format_window_ms(1_500), "1500ms");
/// ```
pub fn format_window_ms(ms: u64) -> String {
    struct Window(u64);
    impl fmt::Display for Window {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_window(f, self.0)
        }
    }
    Window(ms).to_string()
}

fn write_window(f: &mut fmt::Formatter<'_>, ms: u64) -> fmt::Result {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms % size == 0 {
            return write!(f, "{}{unit}", ms / size);
        }
    }
    write!(f, "{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<(String, u64, u64), ParseRateLimitError> {
        text.parse::<RateLimit>()
            .map(|l| (l.name, l.limit, l.window_ms))
    }

    #[test]
    fn accepted_forms() {
        for (text, name, limit, window_ms) in [
            ("burst=10/1s", "burst", 10, 1_000),
            ("api:x=100/60s", "api:x", 100, 60_000),
            ("m=100/60", "m", 100, 60_000),
            ("m=5/5m", "m", 5, 300_000),
            ("h=1/1h", "h", 1, 3_600_000),
            ("h=1/1h30m", "h", 1, 5_400_000),
            ("d=1000000000/1d", "d", 1_000_000_000, 86_400_000),
            ("day=5/86400", "day", 5, 86_400_000),
            ("odd=7/1500ms", "odd", 7, 1_500),
            ("odd=7/1s500ms", "odd", 7, 1_500),
            ("min=1/1000ms", "min", 1, 1_000),
            ("max=1/23h59m60s", "max", 1, 86_400_000),
            (" hourly = 1000 / 1h ", "hourly", 1000, 3_600_000),
            ("a_b-c:9=+5/1s", "a_b-c:9", 5, 1_000),
        ] {
            assert_eq!(
                parse(text),
                Ok((name.to_owned(), limit, window_ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn each_error_says_what_is_wrong() {
        use ParseRateLimitError as E;
        let bad_name = |s: &str| E::BadName(s.into());
        let bad_limit = |s: &str| E::BadLimit(s.into());
        let bad_window = |s: &str| E::BadWindow(s.into());
        let too_long = |s: &str| E::WindowOutOfRange(s.into());
        for (text, error, says) in [
            ("", E::MissingEquals, "no '='"),
            ("burst", E::MissingEquals, "no '=' after the window's name"),
            ("burst=10", E::MissingSlash, "no '/' between"),
            ("=10/1s", E::MissingName, "name is missing"),
            (" =10/1s", E::MissingName, "NAME=LIMIT/WINDOW"),
            ("Burst=10/1s", bad_name("Burst"), "lowercase letter"),
            ("1b=10/1s", bad_name("1b"), "\"1b\""),
            ("b c=10/1s", bad_name("b c"), "must start with"),
            ("b=0/1s", bad_limit("0"), "limit 0 must be"),
            ("b=-1/1s", bad_limit("-1"), "limit \"-1\""),
            ("b=/1s", bad_limit(""), "limit \"\""),
            (
                "b=1000000001/1s",
                bad_limit("1000000001"),
                "1 to 1000000000",
            ),
            ("b=ten/1s", bad_limit("ten"), "whole number"),
            ("b=1.5/1s", bad_limit("1.5"), "whole number"),
            ("b=10/0", too_long("0"), "window \"0\" must be 1s to 1d"),
            ("b=10/0s", too_long("0s"), "1s to 1d"),
            ("b=10/999ms", too_long("999ms"), "1s to 1d"),
            ("b=10/1d1s", too_long("1d1s"), "1s to 1d"),
            ("b=10/2d", too_long("2d"), "window \"2d\" must be 1s to 1d"),
            ("b=10/86401", too_long("86401"), "1s to 1d"),
            (
                "b=10/99999999999999999999",
                too_long("99999999999999999999"),
                "1s to 1d",
            ),
            (
                "b=10/99999999999999999999d",
                too_long("99999999999999999999d"),
                "1s to 1d",
            ),
            ("b=10/", bad_window(""), "not a duration"),
            (
                "b=10/1x",
                bad_window("1x"),
                "window \"1x\" is not a duration",
            ),
            ("b=10/s", bad_window("s"), "not a duration"),
            ("b=10/1h30", bad_window("1h30"), "not a duration"),
            ("b=10/1 h", bad_window("1 h"), "not a duration"),
            ("b=10/1.5h", bad_window("1.5h"), "not a duration"),
            ("b=10/-1s", bad_window("-1s"), "not a duration"),
            ("b=10/1S", bad_window("1S"), "not a duration"),
            ("b=10/1s/2", bad_window("1s/2"), "not a duration"),
        ] {
            let err = text.parse::<RateLimit>().unwrap_err();
            assert_eq!(err, error, "{text}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn windows_are_shown_in_their_largest_whole_unit() {
        for (ms, text) in [
            (1_000, "1s"),
            (90_000, "90s"),
            (60_000, "1m"),
            (300_000, "5m"),
            (5_400_000, "90m"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (1_500, "1500ms"),
        ] {
            assert_eq!(format_window_ms(ms), text);
        }
        let l = RateLimit::new("burst", 10, std::time::Duration::from_secs(1));
        assert_eq!(l.to_string(), "burst=10/1s");
        assert_eq!(format!("{l:>3}"), "burst=10/1s");
    }

    proptest! {
        #[test]
        fn valid_limits_round_trip(
            name in "[a-z][a-z0-9:_-]{0,63}",
            limit in 1..=MAX_WINDOW_LIMIT,
            window_ms in prop_oneof![
                MIN_WINDOW_MS..=MAX_WINDOW_MS,
                (1..=86_400u64).prop_map(|s| s * 1_000),
                (1..=1_440u64).prop_map(|m| m * 60_000),
            ],
        ) {
            let l = RateLimit { name, limit, window_ms };
            prop_assert_eq!(l.to_string().parse::<RateLimit>(), Ok(l));
        }
    }
}
