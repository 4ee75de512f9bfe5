//! Coalesced `last_used_at` writes: at most one per key per interval, done
//! by a background task, never on the request path.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::entity::ApiKey;
use crate::error::StoreError;
use crate::repository::Repository;

/// How often pending uses are written, at most.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub(crate) struct TouchQueue {
    interval: Duration,
    /// `interval` for comparing with differences of timestamps (saturated).
    interval_delta: TimeDelta,
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Held from drain to write: a flush that starts while another is
    /// writing waits for it, so "flushed" means "in the store".
    writing: tokio::sync::Mutex<()>,
    flusher: OnceLock<()>,
}

impl TouchQueue {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            interval_delta: TimeDelta::from_std(interval).unwrap_or(TimeDelta::MAX),
            pending: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
            flusher: OnceLock::new(),
        }
    }

    /// Zero interval: every use is written before verify returns.
    pub(crate) fn writes_through(&self) -> bool {
        self.interval.is_zero()
    }

    /// True when this use should be recorded: the stored value is older than
    /// the interval (with a zero interval, always).
    pub(crate) fn is_due(&self, key: &ApiKey, now: DateTime<Utc>) -> bool {
        key.last_used_at
            .is_none_or(|t| self.interval.is_zero() || elapsed(t, now) >= self.interval_delta)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        // The map is always consistent between statements; ignore poison.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a use; a later use of the same key replaces an earlier one.
    pub(crate) fn enqueue(&self, id: &str, at: DateTime<Utc>) {
        let mut pending = self.lock();
        let slot = pending.entry(id.to_owned()).or_insert(at);
        if *slot < at {
            *slot = at;
        }
    }

    /// Runs `start` once, the first time a flusher is needed.
    pub(crate) fn start_flusher_once(&self, start: impl FnOnce()) {
        self.flusher.get_or_init(start);
    }

    /// Writes every pending use, after any write already in progress has
    /// finished. On failure they are put back (unless a newer use arrived
    /// meanwhile), so nothing is lost.
    pub(crate) async fn flush(&self, repo: &dyn Repository) -> Result<usize, StoreError> {
        let _writing = self.writing.lock().await;
        let batch: Vec<(String, DateTime<Utc>)> = self.lock().drain().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        match repo.touch(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                let mut pending = self.lock();
                for (id, at) in batch {
                    pending.entry(id).or_insert(at);
                }
                Err(e)
            }
        }
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.lock().len()
    }
}

/// `now - then`, on every verification: within one day only the times of
/// day are subtracted (chrono's full subtraction works out both dates).
fn elapsed(then: DateTime<Utc>, now: DateTime<Utc>) -> TimeDelta {
    let (then, now) = (then.naive_utc(), now.naive_utc());
    if then.date() == now.date() {
        now.time().signed_duration_since(then.time())
    } else {
        now.signed_duration_since(then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_is_chrono_s_subtraction_within_a_day_and_across_days() {
        let at = |s: i64, nanos: u32| DateTime::from_timestamp(s, nanos).unwrap();
        let midnight = 1_735_689_600; // 2025-01-01
        let pairs = [
            (at(midnight + 10, 5), at(midnight + 70, 4)),
            (at(midnight + 70, 4), at(midnight + 10, 5)),
            (at(midnight - 30, 999_999_999), at(midnight + 30, 0)),
            (at(midnight - 86_400 * 40, 1), at(midnight + 86_399, 2)),
            (at(midnight + 5, 0), at(midnight + 5, 0)),
        ];
        for (then, now) in pairs {
            assert_eq!(elapsed(then, now), now - then, "{then} {now}");
        }
    }
}
