//! Usage limits (SPEC §12): named rate-limit windows and credits with
//! refill, the values a key stores, their validation, and what a
//! verification reports about them.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::scope::is_valid_scope;

/// Most rate-limit windows one key may have.
pub const MAX_RATE_LIMITS: usize = 8;
/// Shortest window: one second.
pub const MIN_WINDOW_MS: u64 = 1_000;
/// Longest window: one day.
pub const MAX_WINDOW_MS: u64 = 86_400_000;
/// Largest `limit` of a window.
pub const MAX_WINDOW_LIMIT: u64 = 1_000_000_000;
/// Largest cost one request may declare.
pub const MAX_COST: u64 = 1_000;
/// Largest number of credits a key may hold (and largest refill): every
/// store keeps it exactly, and so does a JSON number in any language.
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;

/// One rate-limit window: at most `limit` units of cost per `window_ms`.
///
/// A window opens at the first request that finds none open and closes
/// `window_ms` later, so exactly `limit` units are admitted per window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Names the window in responses (`^[a-z][a-z0-9:_-]*$`, unique per key).
    pub name: String,
    /// Units of cost admitted per window (at least 1).
    pub limit: u64,
    /// Window length in milliseconds (1 s to 1 day).
    pub window_ms: u64,
}

impl RateLimit {
    /// A window of `limit` per `window`.
    pub fn new(name: impl Into<String>, limit: u64, window: Duration) -> Self {
        Self {
            name: name.into(),
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// When credits are refilled: at the start of each hour, day or month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    /// At minute 0 of every hour.
    Hourly,
    /// At midnight UTC.
    Daily,
    /// At midnight UTC on the first day of every month.
    Monthly,
}

impl RefillInterval {
    /// Every interval.
    pub const ALL: [RefillInterval; 3] = [Self::Hourly, Self::Daily, Self::Monthly];

    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hourly => "hourly",
            Self::Daily => "daily",
            Self::Monthly => "monthly",
        }
    }

    /// The start of the interval that contains `t`.
    ///
    /// ```
    /// use keygate::RefillInterval;
    /// let t: chrono::DateTime<chrono::Utc> = "2030-05-17T13:45:12Z".parse().unwrap();
    /// assert_eq!(RefillInterval::Hourly.start_of(t).to_rfc3339(), "2030-05-17T13:00:00+00:00");
    /// assert_eq!(RefillInterval::Monthly.start_of(t).to_rfc3339(), "2030-05-01T00:00:00+00:00");
    /// ```
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let (y, m, d, h) = match self {
            Self::Hourly => (t.year(), t.month(), t.day(), t.hour()),
            Self::Daily => (t.year(), t.month(), t.day(), 0),
            Self::Monthly => (t.year(), t.month(), 1, 0),
        };
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().unwrap_or(t)
    }

    /// The start of the interval after the one that contains `t`.
    pub fn next_after(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let start = self.start_of(t);
        match self {
            Self::Hourly => start + TimeDelta::hours(1),
            Self::Daily => start + TimeDelta::days(1),
            Self::Monthly => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                    .single()
                    .unwrap_or(start + TimeDelta::days(31))
            }
        }
    }
}

impl std::str::FromStr for RefillInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| format!("unknown refill interval {s:?}: use hourly, daily or monthly"))
    }
}

/// A key's usage credits: each request takes its cost from `remaining` and
/// is refused when too few are left. With a refill, `remaining` is set to
/// `refill_amount` at the start of every interval (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credits {
    /// Credits left (as stored: a refill due since is applied at the next
    /// use; [`Credits::at`] shows it applied).
    pub remaining: u64,
    /// What `remaining` is set to at each refill.
    #[serde(default)]
    pub refill_amount: Option<u64>,
    /// How often the refill happens.
    #[serde(default)]
    pub refill_interval: Option<RefillInterval>,
    /// Start of the interval of the last refill (read-only: set by keygate).
    #[serde(default)]
    pub last_refill_at: Option<DateTime<Utc>>,
}

impl Credits {
    /// `remaining` credits and no refill.
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining,
            refill_amount: None,
            refill_interval: None,
            last_refill_at: None,
        }
    }

    /// The same, refilled to `amount` at the start of every `interval`.
    pub fn refilled(mut self, amount: u64, interval: RefillInterval) -> Self {
        self.refill_amount = Some(amount);
        self.refill_interval = Some(interval);
        self
    }

    /// The refill amount and interval, when both are set.
    pub fn refill(&self) -> Option<(u64, RefillInterval)> {
        self.refill_amount.zip(self.refill_interval)
    }

    /// The interval start of a refill due at `now`, if one is due: a refill
    /// is scheduled and the last one happened before the current interval.
    pub fn refill_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (_, interval) = self.refill()?;
        let start = interval.start_of(now);
        self.last_refill_at
            .is_none_or(|last| last < start)
            .then_some(start)
    }

    /// These credits as they stand at `now`: with a due refill applied.
    pub fn at(&self, now: DateTime<Utc>) -> Credits {
        let mut c = self.clone();
        if let (Some(start), Some((amount, _))) = (self.refill_due(now), self.refill()) {
            c.remaining = amount;
            c.last_refill_at = Some(start);
        }
        c
    }

    /// The next refill after `now`, when one is scheduled.
    pub fn next_refill(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.refill().map(|(_, i)| i.next_after(now))
    }

    /// The reference semantics of [`KeyStore::consume_credits`](crate::KeyStore::consume_credits):
    /// applies a due refill, then takes `cost` if at least `max(cost, 1)`
    /// remain. Returns whether the request is allowed; on refusal nothing
    /// changes (not even a due refill, which the next use applies).
    pub fn consume(&mut self, cost: u64, now: DateTime<Utc>) -> bool {
        let current = self.at(now);
        if current.remaining < cost.max(1) {
            return false;
        }
        *self = current;
        self.remaining -= cost;
        true
    }

    /// A copy ready to store from a config set at `now`: the current
    /// interval counts as refilled (so a daily refill set at noon first
    /// happens at the next midnight), or no refill time without a refill.
    pub fn configured_at(&self, now: DateTime<Utc>) -> Credits {
        let mut c = self.clone();
        c.last_refill_at = self.refill().map(|(_, i)| i.start_of(now));
        c
    }
}

/// What [`KeyStore::consume_credits`](crate::KeyStore::consume_credits) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditUse {
    /// The key has no credits (unlimited); nothing was taken.
    Unmetered,
    /// The cost was taken; this many are left.
    Taken {
        /// Credits left after this request.
        remaining: u64,
    },
    /// Too few credits (or no such key); nothing changed.
    Refused,
}

/// How `POST /api-keys/{id}/credits` changes a key's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditChange {
    /// `remaining` becomes this (the refill settings stay; a key without
    /// credits gets credits without refill).
    Set(u64),
    /// `remaining` grows (or, negative, shrinks: never below zero). The key
    /// must have credits.
    Add(i64),
}

impl CreditChange {
    /// Applies to the stored credits. `None` in, `None` out for `Add`.
    pub fn apply_to(self, credits: Option<&Credits>) -> Option<Credits> {
        match self {
            Self::Set(n) => Some(Credits {
                remaining: n,
                ..credits.cloned().unwrap_or_else(|| Credits::new(n))
            }),
            Self::Add(delta) => credits.map(|c| Credits {
                remaining: c.remaining.saturating_add_signed(delta).min(MAX_CREDITS),
                ..c.clone()
            }),
        }
    }
}

/// What a verification took from one rate-limit window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowUsage {
    /// The window's name.
    pub name: String,
    /// Its limit.
    pub limit: u64,
    /// Room left after this request.
    pub remaining: u64,
    /// Milliseconds until the window closes and its room is back.
    pub reset_ms: u64,
}

/// What a successful verification used (SPEC §12: the `usage` of `/verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Credits left after this request, or `None` without credits.
    pub remaining: Option<u64>,
    /// Each rate-limit window after this request (empty without limits).
    pub rate_limits: Vec<WindowUsage>,
}

impl Usage {
    /// The window with the least room (the one `RateLimit-*` headers
    /// describe), ties going to the one that resets last.
    pub fn tightest(&self) -> Option<&WindowUsage> {
        self.rate_limits
            .iter()
            .min_by_key(|w| (w.remaining, std::cmp::Reverse(w.reset_ms)))
    }
}

/// What a rate limiter decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateDecision {
    /// Every window had room; the cost was taken from each.
    Allowed(Vec<WindowUsage>),
    /// At least one window had no room; nothing was taken from any.
    Limited {
        /// The full window that frees last, with `remaining` as it stands.
        window: WindowUsage,
    },
}

/// Collects problems with a key's rate limits, named `field[i].x`.
pub(crate) fn check_rate_limits(limits: &[RateLimit], field: &str, errors: &mut Vec<FieldError>) {
    if limits.is_empty() || limits.len() > MAX_RATE_LIMITS {
        errors.push(FieldError::new(
            field,
            format!(
                "must hold 1 to {MAX_RATE_LIMITS} windows (got {}); use null for no limit",
                limits.len()
            ),
        ));
        return;
    }
    for (i, l) in limits.iter().enumerate() {
        if !is_valid_scope(&l.name) {
            errors.push(FieldError::new(
                format!("{field}[{i}].name"),
                "must match ^[a-z][a-z0-9:_-]*$",
            ));
        } else if limits[..i].iter().any(|o| o.name == l.name) {
            errors.push(FieldError::new(
                format!("{field}[{i}].name"),
                format!("duplicate window name {:?}", l.name),
            ));
        }
        if !(1..=MAX_WINDOW_LIMIT).contains(&l.limit) {
            errors.push(FieldError::new(
                format!("{field}[{i}].limit"),
                format!("must be 1 to {MAX_WINDOW_LIMIT}"),
            ));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&l.window_ms) {
            errors.push(FieldError::new(
                format!("{field}[{i}].window_ms"),
                format!("must be {MIN_WINDOW_MS} (1 s) to {MAX_WINDOW_MS} (1 day)"),
            ));
        }
    }
}

/// Collects problems with credits, named `field.x`.
pub(crate) fn check_credits(credits: &Credits, field: &str, errors: &mut Vec<FieldError>) {
    if credits.remaining > MAX_CREDITS {
        errors.push(FieldError::new(
            format!("{field}.remaining"),
            format!("must be 0 to {MAX_CREDITS}"),
        ));
    }
    match (credits.refill_amount, credits.refill_interval) {
        (Some(amount), Some(_)) if amount == 0 || amount > MAX_CREDITS => {
            errors.push(FieldError::new(
                format!("{field}.refill_amount"),
                format!("must be 1 to {MAX_CREDITS}"),
            ));
        }
        (Some(_), None) => errors.push(FieldError::new(
            format!("{field}.refill_interval"),
            "is required with refill_amount (hourly, daily or monthly)",
        )),
        (None, Some(_)) => errors.push(FieldError::new(
            format!("{field}.refill_amount"),
            "is required with refill_interval",
        )),
        _ => {}
    }
}

/// The problem with a request's cost, if any.
#[inline]
pub(crate) fn check_cost(cost: u64) -> Result<(), FieldError> {
    if cost > MAX_COST {
        Err(FieldError::new("cost", format!("must be 0 to {MAX_COST}")))
    } else {
        Ok(())
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn epoch_ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn interval_boundaries_are_utc() {
        let at = t("2030-12-31T23:59:59.999Z");
        assert_eq!(
            RefillInterval::Hourly.next_after(at),
            t("2031-01-01T00:00:00Z")
        );
        assert_eq!(
            RefillInterval::Monthly.next_after(at),
            t("2031-01-01T00:00:00Z")
        );
        assert_eq!(
            RefillInterval::Monthly.next_after(t("2031-01-31T12:00:00Z")),
            t("2031-02-01T00:00:00Z")
        );
        assert_eq!(
            RefillInterval::Daily.start_of(t("2031-02-28T00:00:00Z")),
            t("2031-02-28T00:00:00Z")
        );
    }

    #[test]
    fn consume_refills_at_the_boundary_and_refuses_atomically() {
        let noon = t("2030-05-17T12:00:00Z");
        let mut c = Credits::new(2)
            .refilled(5, RefillInterval::Daily)
            .configured_at(noon);
        assert!(c.consume(2, noon));
        assert_eq!(c.remaining, 0);
        assert!(!c.consume(1, noon), "empty");
        assert!(!c.consume(0, noon), "cost 0 checks that one would pass");
        let before = c.clone();
        assert!(!c.consume(1, t("2030-05-17T23:59:59Z")));
        assert_eq!(c, before, "a refusal changes nothing");
        let midnight = t("2030-05-18T00:00:00Z");
        assert_eq!(c.at(midnight).remaining, 5);
        assert!(c.consume(3, midnight));
        assert_eq!((c.remaining, c.last_refill_at), (2, Some(midnight)));
        assert!(c.consume(0, midnight));
        assert_eq!(c.remaining, 2, "cost 0 takes nothing");
    }

    #[test]
    fn credit_changes() {
        let c = Credits::new(10).refilled(100, RefillInterval::Hourly);
        assert_eq!(
            CreditChange::Set(3)
                .apply_to(Some(&c))
                .unwrap()
                .refill_amount,
            Some(100)
        );
        assert_eq!(CreditChange::Set(3).apply_to(None), Some(Credits::new(3)));
        assert_eq!(
            CreditChange::Add(-50).apply_to(Some(&c)).unwrap().remaining,
            0
        );
        assert_eq!(CreditChange::Add(5).apply_to(None), None);
    }

    #[test]
    fn bad_limits_name_the_field() {
        let ok = RateLimit::new("burst", 10, Duration::from_secs(1));
        let mut errors = Vec::new();
        check_rate_limits(std::slice::from_ref(&ok), "rate_limits", &mut errors);
        assert!(errors.is_empty());
        let bad = vec![
            ok.clone(),
            ok.clone(),
            RateLimit::new("Bad", 0, Duration::from_millis(999)),
            RateLimit::new("day", 1, Duration::from_secs(86_401)),
        ];
        check_rate_limits(&bad, "rate_limits", &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rate_limits[1].name",
                "rate_limits[2].name",
                "rate_limits[2].limit",
                "rate_limits[2].window_ms",
                "rate_limits[3].window_ms"
            ]
        );
        let mut errors = Vec::new();
        check_rate_limits(&vec![ok; 9], "rate_limits", &mut errors);
        assert_eq!(errors.len(), 1);
        let mut errors = Vec::new();
        check_credits(
            &Credits {
                refill_amount: Some(5),
                ..Credits::new(MAX_CREDITS + 1)
            },
            "credits",
            &mut errors,
        );
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["credits.remaining", "credits.refill_interval"]);
    }
}
