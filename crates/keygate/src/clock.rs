//! Where the service reads the time: expiry, grace periods, audit times and
//! `last_used_at` all come from one [`Clock`], so tests can move time.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::entity::truncate_micros;

/// The service's source of the current time (UTC).
///
/// ```
/// use keygate::{Clock, SystemClock};
/// let now = SystemClock.now();
/// assert!(now <= chrono::Utc::now());
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time truncated to microseconds, the precision every
    /// store keeps.
    fn now_micros(&self) -> DateTime<Utc> {
        truncate_micros(self.now())
    }
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told to move: for tests of expiry and
/// grace periods without sleeping.
///
/// ```
/// use std::time::Duration;
/// use keygate::{Clock, ManualClock};
/// let clock = ManualClock::starting_now();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(61));
/// assert_eq!((clock.now() - before).num_seconds(), 61);
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// Stopped at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    /// Stopped at the current system time.
    pub fn starting_now() -> Self {
        Self::at(Utc::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
