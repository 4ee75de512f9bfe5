//! Changes: insert, update and delete, each one transaction that also
//! appends its audit event. The row a change applies to is read and locked
//! inside the transaction, so concurrent changes never undo each other.
//! And `consume_credits`, the one write of the verification path.

use chrono::{DateTime, Utc};
use keygate::{ApiKey, Audit, CreditUse, KeyChange, RefillInterval, StoreError};
use sqlx::{ColumnIndex, Database, Decode, Executor, Pool, Row, Type};

use crate::error::{store_error, write_error};
use crate::events::{announce, insert_event};
use crate::query::{decode_credits, fetch_key, Dialect, SqlBuilder, Value, CREDITS_COLUMNS};

/// Every column of a key but `id`, with the key's values.
fn columns(key: &ApiKey) -> [(&'static str, Value<'_>); 20] {
    let credits = key.credits.as_ref();
    [
        ("name", Value::Text(key.name.as_deref())),
        ("description", Value::Text(key.description.as_deref())),
        ("is_active", Value::Bool(key.is_active)),
        ("expires_at", Value::Time(key.expires_at)),
        ("created_at", Value::Time(Some(key.created_at))),
        ("last_used_at", Value::Time(key.last_used_at)),
        ("key_id", Value::Text(Some(&key.key_id))),
        ("key_hash", Value::Text(Some(&key.key_hash))),
        ("key_secret_first", Value::Text(Some(&key.key_secret_first))),
        ("key_secret_last", Value::Text(Some(&key.key_secret_last))),
        ("scopes", Value::Scopes(&key.scopes)),
        ("owner_id", Value::Text(key.owner_id.as_deref())),
        ("meta", Value::Object(key.meta.as_ref())),
        (
            "previous_key_hash",
            Value::Text(key.previous_key_hash.as_deref()),
        ),
        (
            "previous_secret_expires_at",
            Value::Time(key.previous_secret_expires_at),
        ),
        ("rate_limits", Value::RateLimits(key.rate_limits.as_deref())),
        (
            "credits_remaining",
            Value::Count(credits.map(|c| c.remaining)),
        ),
        (
            "credits_refill_amount",
            Value::Count(credits.and_then(|c| c.refill_amount)),
        ),
        (
            "credits_refill_interval",
            Value::Text(
                credits
                    .and_then(|c| c.refill_interval)
                    .map(RefillInterval::as_str),
            ),
        ),
        (
            "credits_last_refill_at",
            Value::Time(credits.and_then(|c| c.last_refill_at)),
        ),
    ]
}

/// The columns whose values differ between `old` and `new`, with the new
/// values: what an UPDATE writes (and nothing else). The credits columns
/// go together: a row without credits (`credits_remaining` NULL) may hold
/// leftovers in the others, which read as nothing and must not come back
/// to life when credits are set.
fn changed_columns<'a>(old: &ApiKey, new: &'a ApiKey) -> Vec<(&'static str, Value<'a>)> {
    let credits_changed = old.credits != new.credits;
    let before = columns(old);
    columns(new)
        .into_iter()
        .zip(before)
        .filter(|((column, after), (_, before))| {
            after != before || (credits_changed && CREDITS_COLUMNS.contains(column))
        })
        .map(|(changed, _)| changed)
        .collect()
}

/// Inserts a whole row and its `create` event, in one transaction; a taken
/// id, key id or hash is a conflict and stores neither.
pub(crate) async fn insert<D: Dialect>(
    pool: &Pool<D::DB>,
    key: &ApiKey,
    audit: &Audit,
) -> Result<(), StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
{
    let mut tx = pool.begin().await.map_err(store_error)?;
    let mut qb = SqlBuilder::new("INSERT INTO api_keys (id");
    let columns = columns(key);
    for (column, _) in &columns {
        qb.push(", ").push(column);
    }
    qb.push(") VALUES (");
    D::bind(&mut qb, Value::Text(Some(&key.id)));
    for (_, value) in columns {
        qb.push(", ");
        D::bind(&mut qb, value);
    }
    qb.push(")");
    let (sql, args) = qb.into_parts()?;
    sqlx::query_with(&sql, args)
        .execute(&mut *tx)
        .await
        .map_err(|e| write_error(e, &key.key_id))?;
    if let Some(event) = audit.event(None, Some(key)) {
        insert_event::<D>(&mut *tx, &event).await?;
    }
    tx.commit().await.map_err(store_error)
}

/// Applies `change` to the row `id` as stored: the row is read and locked
/// inside the transaction, only the columns that differ are written, and
/// the event goes in with them. `None` when there is no such row.
pub(crate) async fn update<D: Dialect>(
    pool: &Pool<D::DB>,
    id: &str,
    change: &KeyChange,
    audit: &Audit,
) -> Result<Option<ApiKey>, StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
{
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await.map_err(store_error)?;
    let Some(old) = select_locked::<D>(&mut *tx, id).await? else {
        return Ok(None);
    };
    let new = change.apply_to(&old);
    let changed = changed_columns(&old, &new);
    if !changed.is_empty() {
        let mut qb = SqlBuilder::new("UPDATE api_keys SET ");
        for (i, (column, value)) in changed.into_iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push(column).push(" = ");
            D::bind(&mut qb, value);
        }
        qb.push(" WHERE id = ");
        D::bind(&mut qb, Value::Text(Some(id)));
        let (sql, args) = qb.into_parts()?;
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, &new.key_id))?;
    }
    if let Some(event) = audit.event(Some(&old), Some(&new)) {
        insert_event::<D>(&mut *tx, &event).await?;
        announce::<D>(&mut *tx, &old.key_id).await?;
    }
    tx.commit().await.map_err(store_error)?;
    Ok(Some(new))
}

/// Deletes the row `id` and appends its `delete` event, in one
/// transaction; returns the row as it was.
pub(crate) async fn delete<D: Dialect>(
    pool: &Pool<D::DB>,
    id: &str,
    audit: &Audit,
) -> Result<Option<ApiKey>, StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
{
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await.map_err(store_error)?;
    let Some(old) = select_locked::<D>(&mut *tx, id).await? else {
        return Ok(None);
    };
    let mut qb = SqlBuilder::new("DELETE FROM api_keys WHERE id = ");
    D::bind(&mut qb, Value::Text(Some(id)));
    let (sql, args) = qb.into_parts()?;
    sqlx::query_with(&sql, args)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    if let Some(event) = audit.event(Some(&old), None) {
        insert_event::<D>(&mut *tx, &event).await?;
    }
    announce::<D>(&mut *tx, &old.key_id).await?;
    tx.commit().await.map_err(store_error)?;
    Ok(Some(old))
}

/// The row `id`, locked until the transaction ends.
async fn select_locked<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    id: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT {} FROM api_keys WHERE id = ", D::COLUMNS));
    D::bind(&mut qb, Value::Text(Some(id)));
    qb.push(D::FOR_UPDATE);
    let (sql, args) = qb.into_parts()?;
    fetch_key::<D>(db, &sql, args).await
}

/// `consume_credits` in one statement (SQLite, PostgreSQL). `$1` id, `$2`
/// cost, `$3` credits needed (`max(cost, 1)`), `$4`–`$6` the start of the
/// hour, day and month of `now`. A cost too large for a BIGINT is bound as
/// NULL: every metered row is then refused.
///
/// `start` is the start of the row's refill interval (NULL without one, or
/// with an interval this version does not know); `due` is
/// `Credits::refill_due`: a refill is configured and the last one is
/// before `start`. The WHERE admits a metered row only when it has enough
/// credits *after* a due refill, so a refused call writes nothing (not
/// even the refill); it admits an unmetered row (`credits_remaining` NULL)
/// unchanged, whose RETURNING NULL says so. A row with an unknown refill
/// interval is refused (reading it fails as corrupt). Both backends
/// evaluate every SET expression on the row as it was, and lock the row
/// first: concurrent calls queue on it and each sees the previous one's
/// result (PostgreSQL re-checks the WHERE on the updated row).
const CONSUME_RETURNING: &str = "\
UPDATE api_keys SET
    credits_remaining = CASE
        WHEN credits_remaining IS NULL THEN NULL
        WHEN {due} THEN credits_refill_amount - $2
        ELSE credits_remaining - $2
    END,
    credits_last_refill_at = CASE
        WHEN credits_remaining IS NOT NULL AND {due} THEN {start}
        ELSE credits_last_refill_at
    END
WHERE id = $1
  AND (credits_remaining IS NULL
       OR ((credits_refill_interval IS NULL OR {start} IS NOT NULL)
           AND CASE WHEN {due} THEN credits_refill_amount ELSE credits_remaining END >= $3))
RETURNING credits_remaining";

const REFILL_START: &str = "(CASE credits_refill_interval \
    WHEN 'hourly' THEN $4 WHEN 'daily' THEN $5 WHEN 'monthly' THEN $6 END)";

const REFILL_DUE: &str = "(credits_refill_amount IS NOT NULL AND {start} IS NOT NULL \
    AND (credits_last_refill_at IS NULL OR credits_last_refill_at < {start}))";

/// [`CONSUME_RETURNING`] with its fragments in place.
fn consume_returning_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let due = REFILL_DUE.replace("{start}", REFILL_START);
        CONSUME_RETURNING
            .replace("{due}", &due)
            .replace("{start}", REFILL_START)
    })
}

/// Takes `cost` credits from the row `id` atomically, with the semantics
/// of `Credits::consume` (see `KeyStore::consume_credits`).
pub(crate) async fn consume_credits<D: Dialect>(
    pool: &Pool<D::DB>,
    id: &str,
    cost: u64,
    now: DateTime<Utc>,
) -> Result<CreditUse, StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
{
    if D::UPDATE_RETURNING {
        consume_returning::<D>(pool, id, Some(cost), Some(cost.max(1)), now).await
    } else {
        // MySQL, MariaDB (no `UPDATE … RETURNING`): a batch of one.
        let uses = consume_batch::<D>(pool, id, &[cost], now).await?;
        Ok(uses.into_iter().next().unwrap_or(CreditUse::Refused))
    }
}

/// One `UPDATE … RETURNING`: one round trip, the row locked only while
/// the statement runs.
///
/// Takes `take` when at least `need` credits are there (`None`: more than
/// any key holds, so a metered key refuses).
async fn consume_returning<D: Dialect>(
    pool: &Pool<D::DB>,
    id: &str,
    take: Option<u64>,
    need: Option<u64>,
    now: DateTime<Utc>,
) -> Result<CreditUse, StoreError>
where
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
{
    let fits = |n: Option<u64>| n.filter(|n| i64::try_from(*n).is_ok());
    let (take, need) = (fits(take), fits(need));
    let start = |interval: RefillInterval| Value::Time(Some(interval.start_of(now)));
    let mut args = SqlBuilder::<D::DB>::new(String::new());
    for value in [
        Value::Text(Some(id)),
        Value::Count(take),
        Value::Count(need),
        start(RefillInterval::Hourly),
        start(RefillInterval::Daily),
        start(RefillInterval::Monthly),
    ] {
        D::bind(&mut args, value);
    }
    let row = sqlx::query_with(consume_returning_sql(), args.into_args()?)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(CreditUse::Refused);
    };
    let remaining = row
        .try_get::<Option<i64>, _>(0)
        .map_err(|e| crate::query::column_error(&CREDITS_COLUMNS, 0, e))?;
    taken(remaining)
}

/// `KeyStore::consume_credits_batch`, on every backend: one transaction
/// (`BEGIN IMMEDIATE` on SQLite, the row locked with `FOR UPDATE`
/// elsewhere) reads the credits columns, decides each request in order with
/// `Credits::consume`, and writes the result once, only when something was
/// taken or refilled.
pub(crate) async fn consume_batch<D: Dialect>(
    pool: &Pool<D::DB>,
    id: &str,
    costs: &[u64],
    now: DateTime<Utc>,
) -> Result<Vec<CreditUse>, StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
    for<'c> &'c Pool<D::DB>: Executor<'c, Database = D::DB>,
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
{
    if costs.is_empty() {
        return Ok(Vec::new());
    }
    // The usual batch: one route's requests, all of one cost. When all of
    // them fit, one `UPDATE … RETURNING` takes them together; otherwise
    // the transaction below decides them one by one.
    let cost = costs[0];
    if D::UPDATE_RETURNING && costs.len() > 1 && costs.iter().all(|&c| c == cost) {
        let n = costs.len() as u64;
        let take = cost.checked_mul(n);
        let need = cost
            .checked_mul(n - 1)
            .and_then(|t| t.checked_add(cost.max(1)));
        match consume_returning::<D>(pool, id, take, need, now).await? {
            CreditUse::Taken { remaining: last } => {
                return Ok((0..n)
                    .map(|i| CreditUse::Taken {
                        remaining: last + cost * (n - 1 - i),
                    })
                    .collect());
            }
            CreditUse::Unmetered => return Ok(vec![CreditUse::Unmetered; costs.len()]),
            CreditUse::Refused => {}
        }
    }
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await.map_err(store_error)?;
    let mut qb = SqlBuilder::new(format!(
        "SELECT {} FROM api_keys WHERE id = ",
        CREDITS_COLUMNS.join(", ")
    ));
    D::bind(&mut qb, Value::Text(Some(id)));
    qb.push(D::FOR_UPDATE);
    let (sql, args) = qb.into_parts()?;
    let row = sqlx::query_with(&sql, args)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
    let stored = match row {
        None => None,
        Some(row) => Some(decode_credits::<D>(&row, 0)?),
    };
    let (before, mut credits) = match stored {
        None | Some(None) => {
            // Nothing to write: end the transaction (and the row lock) now.
            tx.rollback().await.map_err(store_error)?;
            let used = match stored {
                None => CreditUse::Refused,
                _ => CreditUse::Unmetered,
            };
            return Ok(vec![used; costs.len()]);
        }
        Some(Some(credits)) => (credits.clone(), credits),
    };
    let uses: Vec<CreditUse> = costs
        .iter()
        .map(|&cost| {
            if credits.consume(cost, now) {
                CreditUse::Taken {
                    remaining: credits.remaining,
                }
            } else {
                CreditUse::Refused
            }
        })
        .collect();
    if credits == before {
        tx.rollback().await.map_err(store_error)?;
        return Ok(uses);
    }
    let mut qb = SqlBuilder::new("UPDATE api_keys SET credits_remaining = ");
    D::bind(&mut qb, Value::Count(Some(credits.remaining)));
    qb.push(", credits_last_refill_at = ");
    D::bind(&mut qb, Value::Time(credits.last_refill_at));
    qb.push(" WHERE id = ");
    D::bind(&mut qb, Value::Text(Some(id)));
    let (sql, args) = qb.into_parts()?;
    sqlx::query_with(&sql, args)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(uses)
}

/// What a returned `credits_remaining` says: NULL, unmetered; else taken.
fn taken(remaining: Option<i64>) -> Result<CreditUse, StoreError> {
    match remaining {
        None => Ok(CreditUse::Unmetered),
        Some(n) => u64::try_from(n)
            .map(|remaining| CreditUse::Taken { remaining })
            .map_err(|_| {
                StoreError::Corrupt(format!("column credits_remaining: negative count {n}"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_statement_is_complete() {
        let sql = consume_returning_sql();
        assert!(!sql.contains('{'), "{sql}");
        for placeholder in ["$1", "$2", "$3", "$4", "$5", "$6"] {
            assert!(sql.contains(placeholder), "{placeholder}");
        }
        assert!(!sql.contains("$7"));
    }

    #[test]
    fn credits_columns_are_written_together() {
        let old = keygate::testing::key(Some("k"), &[]);
        let mut new = old.clone();
        new.credits = Some(keygate::Credits::new(3));
        let written: Vec<_> = changed_columns(&old, &new)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(written, CREDITS_COLUMNS);
        new.credits = None;
        new.name = Some("renamed".into());
        let written: Vec<_> = changed_columns(&old, &new)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(written, ["name"]);
    }
}
