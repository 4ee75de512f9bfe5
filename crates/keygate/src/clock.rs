//! Where the service reads the time: expiry, grace periods, audit times and
//! `last_used_at` all come from one [`Clock`], so tests can move time.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

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

/// The system clock (the default). The same time as `Utc::now()`, read on
/// every verification, so it skips `Utc::now()`'s calendar arithmetic
/// while the day is the one the thread saw last.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        today_now().unwrap_or_else(Utc::now)
    }
}

const SECS_PER_DAY: u64 = 86_400;

thread_local! {
    /// The last Unix day this thread read the time in, and its date.
    static TODAY: Cell<(u64, NaiveDate)> = const { Cell::new((u64::MAX, NaiveDate::MIN)) };
}

/// `Utc::now()` with the date of the thread's last reading when the day
/// is the same (Unix time has exactly 86 400 s a day): the date is worked
/// out once a day per thread instead of on every call. `None` before 1970
/// or during the thread's teardown.
fn today_now() -> Option<DateTime<Utc>> {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?;
    unix_to_utc(since)
}

/// The UTC time `since` the Unix epoch, through the thread's [`TODAY`].
fn unix_to_utc(since: Duration) -> Option<DateTime<Utc>> {
    let (day, second) = (
        since.as_secs() / SECS_PER_DAY,
        since.as_secs() % SECS_PER_DAY,
    );
    let date = match TODAY.try_with(Cell::get).ok()? {
        (seen, date) if seen == day => date,
        _ => {
            let midnight = i64::try_from(day * SECS_PER_DAY).ok()?;
            let date = DateTime::from_timestamp(midnight, 0)?.date_naive();
            TODAY.try_with(|today| today.set((day, date))).ok()?;
            date
        }
    };
    // Both below their bounds: `second` < 86 400, nanoseconds < 10^9.
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(second).ok()?,
        since.subsec_nanos(),
    )?;
    Some(NaiveDateTime::new(date, time).and_utc())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_the_same_time_as_utc_now() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(before <= now && now <= Utc::now(), "{before} {now}");
    }

    #[test]
    fn the_kept_date_gives_way_at_each_midnight() {
        // Seconds around midnights that end a month, a leap day, a year and
        // a century, read in order (the thread's date is reused within a
        // day, renewed at the next) and out of order (a day read again).
        let midnights: [u64; 5] = [
            0,
            951_782_400,   // 2000-02-29
            1_709_164_800, // 2024-02-29
            1_735_689_600, // 2025-01-01
            4_107_542_400, // 2100-03-01
        ];
        let mut seconds: Vec<u64> = midnights
            .iter()
            .flat_map(|m| [m.saturating_sub(1), *m, m + 1, m + SECS_PER_DAY - 1])
            .collect();
        seconds.extend(seconds.clone().into_iter().rev());
        for s in seconds {
            for nanos in [0, 1, 999_999_999] {
                let since = Duration::new(s, nanos);
                let expected = DateTime::from_timestamp(s as i64, nanos).unwrap();
                assert_eq!(unix_to_utc(since), Some(expected), "{s}.{nanos}");
            }
        }
    }
}
