//! Whether `api_keys` has keygate's columns yet. A database the Python
//! library wrote, or one keygate migrated before usage limits, is readable
//! (and its keys verify) before `migrate()`; the columns it lacks read as
//! NULL. Changes (and taking credits) need the migrated schema.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keygate::StoreError;
use sqlx::{Database, Executor, FromRow, Pool};

use crate::error::store_error;
use crate::query::Dialect;

const UNKNOWN: u8 = 0;
/// The Python library's table: none of keygate's columns.
const LEGACY: u8 = 1;
/// keygate's table before the usage-limits migration.
const PRE_LIMITS: u8 = 2;
const CURRENT: u8 = 3;

/// How long reads trust an outdated state before asking again: another
/// process may migrate meanwhile, and until this one notices, it reads the
/// new columns as NULL (a metered key as unlimited).
const RECHECK_OUTDATED: Duration = Duration::from_secs(1);

/// Shared by the clones of one repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema(Arc<State>);

#[derive(Debug, Default)]
struct State {
    state: AtomicU8,
    /// When the database was last asked, in milliseconds since [`epoch`].
    probed_at_ms: AtomicU64,
}

/// A fixed instant of this process, for [`State::probed_at_ms`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Schema {
    /// After `migrate()`: keygate's columns are there.
    pub(crate) fn migrated(&self) {
        self.0.state.store(CURRENT, Ordering::Relaxed);
    }

    /// The select list for reading keys.
    pub(crate) async fn columns<D: Dialect>(
        &self,
        pool: &Pool<D::DB>,
    ) -> Result<&'static str, StoreError>
    where
        (i64, i64): for<'r> FromRow<'r, <D::DB as Database>::Row>,
        for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    {
        Ok(match self.state::<D>(pool, false).await? {
            LEGACY => D::LEGACY_COLUMNS,
            PRE_LIMITS => D::PRE_LIMITS_COLUMNS,
            _ => D::COLUMNS,
        })
    }

    /// Refuses a change on a table keygate has not migrated (asking the
    /// database again, in case another process migrated it meanwhile).
    pub(crate) async fn writable<D: Dialect>(&self, pool: &Pool<D::DB>) -> Result<(), StoreError>
    where
        (i64, i64): for<'r> FromRow<'r, <D::DB as Database>::Row>,
        for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    {
        if matches!(self.state::<D>(pool, true).await?, LEGACY | PRE_LIMITS) {
            return Err(StoreError::InvalidConfig(
                "the api_keys table has not been migrated to keygate's schema: \
                 run `keygate migrate` (or SqlRepository::migrate) first"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn state<D: Dialect>(&self, pool: &Pool<D::DB>, recheck: bool) -> Result<u8, StoreError>
    where
        (i64, i64): for<'r> FromRow<'r, <D::DB as Database>::Row>,
        for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    {
        let known = self.0.state.load(Ordering::Relaxed);
        let fresh = || {
            now_ms().saturating_sub(self.0.probed_at_ms.load(Ordering::Relaxed))
                < RECHECK_OUTDATED.as_millis() as u64
        };
        if known == CURRENT || (known != UNKNOWN && !recheck && fresh()) {
            return Ok(known);
        }
        let (columns, markers): (i64, i64) = sqlx::query_as(D::SCHEMA_PROBE)
            .fetch_one(pool)
            .await
            .map_err(store_error)?;
        let state = match (columns, markers) {
            // No table yet: the statement itself will say so.
            (0, _) => return Ok(UNKNOWN),
            (_, 0) => LEGACY,
            (_, 1) => PRE_LIMITS,
            _ => CURRENT,
        };
        self.0.probed_at_ms.store(now_ms(), Ordering::Relaxed);
        self.0.state.store(state, Ordering::Relaxed);
        Ok(state)
    }
}
