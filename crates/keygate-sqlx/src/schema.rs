//! Whether `api_keys` has keygate's columns yet. A database the Python
//! library wrote is readable (and its keys verify) before `migrate()`;
//! changes need the migrated schema.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use keygate::StoreError;
use sqlx::{Database, Executor, FromRow, Pool};

use crate::error::store_error;
use crate::query::Dialect;

const UNKNOWN: u8 = 0;
const LEGACY: u8 = 1;
const CURRENT: u8 = 2;

/// Shared by the clones of one repository.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema(Arc<AtomicU8>);

impl Schema {
    /// After `migrate()`: keygate's columns are there.
    pub(crate) fn migrated(&self) {
        self.0.store(CURRENT, Ordering::Relaxed);
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
        if self.state::<D>(pool, true).await? == LEGACY {
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
        let known = self.0.load(Ordering::Relaxed);
        if known == CURRENT || (known == LEGACY && !recheck) {
            return Ok(known);
        }
        let (columns, owner_id): (i64, i64) = sqlx::query_as(D::SCHEMA_PROBE)
            .fetch_one(pool)
            .await
            .map_err(store_error)?;
        let state = match (columns, owner_id) {
            // No table yet: the statement itself will say so.
            (0, _) => return Ok(UNKNOWN),
            (_, 0) => LEGACY,
            _ => CURRENT,
        };
        self.0.store(state, Ordering::Relaxed);
        Ok(state)
    }
}
