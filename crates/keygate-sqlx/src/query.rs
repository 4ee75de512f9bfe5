//! The statements every backend shares, built once with a [`SqlBuilder`]
//! over a [`Dialect`]. Values are always bound parameters; only column
//! names and fixed SQL fragments are pushed as text.
//!
//! The search semantics are those of [`ApiKeyFilter::matches`] and
//! [`ApiKeyFilter::compare`]: strict bounds, NULL as the smallest value,
//! ties broken by id in the same direction, names compared by bytes.

use chrono::{DateTime, Utc};
use keygate::{
    ApiKey, ApiKeyFilter, AuditEvent, Credits, Meta, OrderBy, RateLimit, RefillInterval, ScopeSet,
    StoreError,
};
use sqlx::error::BoxDynError;
use sqlx::{
    Arguments, ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Row,
    Type,
};

use crate::codec::{
    like_pattern, limits_from_json, object_from_json, scopes_from_json, sorted_uses,
};
use crate::error::store_error;

/// The names of `Dialect::COLUMNS`, in order: every dialect (and its
/// legacy list) selects them in this order, so rows are read by position
/// (no name look-up per column on the verification path).
pub(crate) const COLUMN_NAMES: [&str; 21] = [
    "id",
    "key_id",
    "name",
    "description",
    "is_active",
    "created_at",
    "last_used_at",
    "expires_at",
    "scopes",
    "key_hash",
    "key_secret_first",
    "key_secret_last",
    "owner_id",
    "meta",
    "previous_key_hash",
    "previous_secret_expires_at",
    "rate_limits",
    "credits_remaining",
    "credits_refill_amount",
    "credits_refill_interval",
    "credits_last_refill_at",
];

/// The credits columns, in the order of [`COLUMN_NAMES`] (from index
/// [`CREDITS_AT`]) and of every select [`decode_credits`] reads.
pub(crate) const CREDITS_COLUMNS: [&str; 4] = [
    "credits_remaining",
    "credits_refill_amount",
    "credits_refill_interval",
    "credits_last_refill_at",
];

/// Where [`CREDITS_COLUMNS`] start in [`COLUMN_NAMES`].
const CREDITS_AT: usize = 17;

/// The column names of a select list (`a, b AS c, NULL::text AS d`).
#[cfg(test)]
pub(crate) fn selected_names(list: &str) -> Vec<&str> {
    list.split(',')
        .map(|item| item.split_whitespace().last().unwrap_or_default())
        .collect()
}

/// A decoding failure, naming the column.
pub(crate) fn column_error(names: &[&str], index: usize, e: sqlx::Error) -> StoreError {
    match store_error(e) {
        StoreError::Corrupt(m) => {
            StoreError::Corrupt(format!("column {}: {m}", names.get(index).unwrap_or(&"?")))
        }
        other => other,
    }
}

/// Reads a row of `Dialect::COLUMNS` into an [`ApiKey`].
pub(crate) fn decode_row<D: Dialect>(row: &<D::DB as Database>::Row) -> Result<ApiKey, StoreError>
where
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> bool: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
{
    let err = |i: usize| move |e| column_error(&COLUMN_NAMES, i, e);
    let text = |i: usize| row.try_get::<String, _>(i).map_err(err(i));
    let opt_text = |i: usize| row.try_get::<Option<String>, _>(i).map_err(err(i));
    let time = |i: usize| D::time(row, i).map_err(|e| column_error(&COLUMN_NAMES, i, e));
    Ok(ApiKey {
        id: text(0)?,
        key_id: text(1)?,
        name: opt_text(2)?,
        description: opt_text(3)?,
        is_active: row.try_get::<bool, _>(4).map_err(err(4))?,
        created_at: time(5)?.ok_or_else(|| StoreError::Corrupt("created_at is NULL".into()))?,
        last_used_at: time(6)?,
        expires_at: time(7)?,
        scopes: scopes_from_json(&text(8)?)?,
        key_hash: text(9)?,
        key_secret_first: text(10)?,
        key_secret_last: text(11)?,
        owner_id: opt_text(12)?,
        meta: opt_text(13)?.as_deref().map(object_from_json).transpose()?,
        previous_key_hash: opt_text(14)?,
        previous_secret_expires_at: time(15)?,
        rate_limits: opt_text(16)?.as_deref().map(limits_from_json).transpose()?,
        credits: decode_credits::<D>(row, CREDITS_AT)?,
    })
}

/// Reads [`CREDITS_COLUMNS`], selected in that order from index `first`:
/// `None` when `credits_remaining` is NULL (unlimited; the other columns
/// then mean nothing and are not read). A negative count or an unknown
/// refill interval is [`StoreError::Corrupt`], naming the column.
pub(crate) fn decode_credits<D: Dialect>(
    row: &<D::DB as Database>::Row,
    first: usize,
) -> Result<Option<Credits>, StoreError>
where
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
    for<'r> i64: Decode<'r, D::DB> + Type<D::DB>,
{
    let corrupt = |k: usize, problem: String| {
        StoreError::Corrupt(format!("column {}: {problem}", CREDITS_COLUMNS[k]))
    };
    let err = |k: usize| move |e| column_error(&CREDITS_COLUMNS, k, e);
    let count = |k: usize| -> Result<Option<u64>, StoreError> {
        row.try_get::<Option<i64>, _>(first + k)
            .map_err(err(k))?
            .map(|n| u64::try_from(n).map_err(|_| corrupt(k, format!("negative count {n}"))))
            .transpose()
    };
    let Some(remaining) = count(0)? else {
        return Ok(None);
    };
    let refill_interval = row
        .try_get::<Option<String>, _>(first + 2)
        .map_err(err(2))?
        .map(|text| text.parse::<RefillInterval>().map_err(|e| corrupt(2, e)))
        .transpose()?;
    Ok(Some(Credits {
        remaining,
        refill_amount: count(1)?,
        refill_interval,
        last_refill_at: D::time(row, first + 3).map_err(err(3))?,
    }))
}

/// A statement being built: SQL text and the arguments bound to its
/// placeholders.
///
/// Not sqlx's `QueryBuilder`, which generic code can fill but not run:
/// `build()` borrows the builder for its arguments' lifetime, and for a
/// driver unknown to the function the compiler must assume that dropping
/// the builder afterwards uses those arguments (E0597). Kept apart here,
/// the text outlives the arguments, which the run consumes.
pub(crate) struct SqlBuilder<'a, DB: Database> {
    sql: String,
    /// The first failure to encode a value, reported when the statement
    /// runs (as `Query::bind` does) instead of a panic.
    args: Result<DB::Arguments<'a>, BoxDynError>,
}

impl<'a, DB: Database> SqlBuilder<'a, DB> {
    /// Starts a statement with a fixed fragment.
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: Ok(Default::default()),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, DB> + Type<DB>,
    {
        if let Ok(args) = &mut self.args {
            match args.add(value) {
                // Writing to a String cannot fail.
                Ok(()) => _ = args.format_placeholder(&mut self.sql),
                Err(e) => self.args = Err(e),
            }
        }
        self
    }

    /// Appends a placeholder bound to a count (credits), as the signed
    /// 64-bit integer every backend stores; a count that does not fit is
    /// reported when the statement runs.
    pub(crate) fn push_count(&mut self, value: Option<u64>) -> &mut Self
    where
        Option<i64>: 'a + Encode<'a, DB> + Type<DB>,
    {
        match value.map(i64::try_from).transpose() {
            Ok(v) => self.push_bind(v),
            Err(_) => {
                if self.args.is_ok() {
                    self.args = Err(format!(
                        "the count {} is too large to store (at most {})",
                        value.unwrap_or_default(),
                        i64::MAX
                    )
                    .into());
                }
                self
            }
        }
    }

    /// The arguments alone, for a fixed statement whose numbered
    /// placeholders (`$1`, `$2`…) follow the order of binding; the
    /// placeholders written to this builder's text are not used.
    pub(crate) fn into_args(self) -> Result<DB::Arguments<'a>, StoreError> {
        self.into_parts().map(|(_, args)| args)
    }

    /// The text and the arguments, for `sqlx::query_with`.
    pub(crate) fn into_parts(self) -> Result<(String, DB::Arguments<'a>), StoreError> {
        let args = self.args.map_err(|e| store_error(sqlx::Error::Encode(e)))?;
        Ok((self.sql, args))
    }
}

/// A value bound to a placeholder; the [`Dialect`] chooses its stored type.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    /// Text, NULL for `None`.
    Text(Option<&'a str>),
    /// A boolean.
    Bool(bool),
    /// A time, NULL for `None`.
    Time(Option<DateTime<Utc>>),
    /// A scope list, stored as JSON.
    Scopes(&'a ScopeSet),
    /// A JSON object (`meta`, an event's `changes`), NULL for `None`.
    Object(Option<&'a Meta>),
    /// Rate-limit windows, stored as a JSON list, NULL for `None`.
    RateLimits(Option<&'a [RateLimit]>),
    /// A count of credits, stored as a signed 64-bit integer, NULL for
    /// `None` (bind with [`SqlBuilder::push_count`]).
    Count(Option<u64>),
}

/// What differs between the SQL dialects.
pub(crate) trait Dialect {
    /// The sqlx database. The bound on its arguments holds for every sqlx
    /// driver; stating it here spares each generic function below from
    /// repeating it.
    type DB: for<'q> Database<Arguments<'q>: IntoArguments<'q, Self::DB>>;

    /// The select list that [`decode_row`] reads.
    const COLUMNS: &'static str;
    /// [`Dialect::COLUMNS`] for a table the Python library wrote and
    /// keygate has not migrated yet: its columns, and NULL for keygate's.
    const LEGACY_COLUMNS: &'static str;
    /// [`Dialect::COLUMNS`] for a table keygate migrated before usage
    /// limits: NULL for the rate-limit and credits columns.
    const PRE_LIMITS_COLUMNS: &'static str;
    /// Two counts: the columns of `api_keys`, and those of them named
    /// `owner_id` or `rate_limits` (0 on a table keygate has not migrated,
    /// 1 before the usage-limits migration, 2 when up to date).
    const SCHEMA_PROBE: &'static str;
    /// The select list that [`decode_event`] reads.
    const EVENT_COLUMNS: &'static str;
    /// How a transaction that will write starts. SQLite takes the write
    /// lock at once (`BEGIN IMMEDIATE`): a deferred transaction that reads
    /// and then writes could fail when another writer got in between.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// Appended to the SELECT that reads the row a change applies to, to
    /// lock it until the transaction ends (` FOR UPDATE`; SQLite needs none,
    /// its write lock covers the database).
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    /// Whether `UPDATE … RETURNING` exists (SQLite 3.35+, PostgreSQL), and
    /// `$1`-style numbered placeholders with it: `consume_credits` is then
    /// one statement; without (MySQL, MariaDB), a short locking
    /// transaction.
    const UPDATE_RETURNING: bool = false;
    /// The start of a statement that announces a change to other
    /// instances, completed with the key id and `)`: PostgreSQL's
    /// `pg_notify` on [`crate::CHANGES_CHANNEL`]. `None` where the database
    /// has no such thing (SQLite, MySQL): other instances see changes by
    /// polling (their cache TTL).
    const NOTIFY: Option<&'static str> = None;

    /// Reads a row selected with [`Dialect::COLUMNS`] (with [`decode_row`]).
    fn decode(row: &<Self::DB as Database>::Row) -> Result<ApiKey, StoreError>;
    /// Reads a row selected with [`Dialect::EVENT_COLUMNS`] (with [`decode_event`]).
    fn decode_event(row: &<Self::DB as Database>::Row) -> Result<AuditEvent, StoreError>;
    /// Reads the time column at `index` (each backend stores times its own
    /// way).
    fn time(
        row: &<Self::DB as Database>::Row,
        index: usize,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error>;
    /// Pushes a placeholder bound to a value, in the stored representation.
    fn bind<'a>(qb: &mut SqlBuilder<'a, Self::DB>, value: Value<'a>);
    /// Pushes a condition: the row holds every scope of a non-empty list.
    fn scopes_all(qb: &mut SqlBuilder<'_, Self::DB>, scopes: &[String]);
    /// Pushes a condition: the row holds at least one scope of a non-empty list.
    fn scopes_any(qb: &mut SqlBuilder<'_, Self::DB>, scopes: &[String]);
    /// Pushes a condition: the lowercased name is `LIKE pattern ESCAPE '!'`.
    fn name_like(qb: &mut SqlBuilder<'_, Self::DB>, pattern: String);
    /// Pushes a condition: text `column` equals `value` byte for byte.
    fn text_eq(qb: &mut SqlBuilder<'_, Self::DB>, column: &'static str, value: String);
    /// The expression to sort by for a column (byte order for text).
    fn order_expr(column: OrderBy) -> &'static str;
    /// Explicit NULL placement, for backends whose default is not "NULL is
    /// smallest" (PostgreSQL).
    fn nulls_smallest(_desc: bool) -> &'static str {
        ""
    }
    /// Pushes `LIMIT … OFFSET …`.
    fn page(qb: &mut SqlBuilder<'_, Self::DB>, limit: Option<u64>, offset: u64);
}

/// The row whose unique `column` (`id` or `key_id`) equals `value`.
pub(crate) async fn select_by<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    columns: &str,
    column: &str,
    value: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT {columns} FROM api_keys WHERE {column} = "));
    D::bind(&mut qb, Value::Text(Some(value)));
    let (sql, args) = qb.into_parts()?;
    fetch_key::<D>(db, &sql, args).await
}

/// Runs a statement that returns at most one row, and decodes that row.
pub(crate) async fn fetch_key<'c, 'q, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    sql: &'q str,
    args: <D::DB as Database>::Arguments<'q>,
) -> Result<Option<ApiKey>, StoreError> {
    let row = sqlx::query_with(sql, args)
        .fetch_optional(db)
        .await
        .map_err(store_error)?;
    row.as_ref().map(D::decode).transpose()
}

/// One page of the rows matching a filter, in its order.
pub(crate) async fn find<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    columns: &str,
    filter: &ApiKeyFilter,
) -> Result<Vec<ApiKey>, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT {columns} FROM api_keys"));
    push_where::<D>(&mut qb, filter);
    push_order_and_page::<D>(&mut qb, filter);
    let (sql, args) = qb.into_parts()?;
    fetch_all::<D, _>(db, (&sql, args), D::decode).await
}

/// How many rows match a filter, paging aside.
pub(crate) async fn count<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    filter: &ApiKeyFilter,
) -> Result<u64, StoreError>
where
    (i64,): for<'r> FromRow<'r, <D::DB as Database>::Row>,
{
    let mut qb = SqlBuilder::new("SELECT COUNT(*) FROM api_keys");
    push_where::<D>(&mut qb, filter);
    let (sql, args) = qb.into_parts()?;
    fetch_count::<D>(db, (&sql, args)).await
}

/// Runs a query and decodes every row.
pub(crate) async fn fetch_all<'c, 'q, D: Dialect, T>(
    db: impl Executor<'c, Database = D::DB>,
    (sql, args): (&'q str, <D::DB as Database>::Arguments<'q>),
    decode: fn(&<D::DB as Database>::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query_with(sql, args)
        .fetch_all(db)
        .await
        .map_err(store_error)?;
    rows.iter().map(decode).collect()
}

/// Runs a `SELECT COUNT(*) …`.
pub(crate) async fn fetch_count<'c, 'q, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    (sql, args): (&'q str, <D::DB as Database>::Arguments<'q>),
) -> Result<u64, StoreError>
where
    (i64,): for<'r> FromRow<'r, <D::DB as Database>::Row>,
{
    let n: i64 = sqlx::query_scalar_with(sql, args)
        .fetch_one(db)
        .await
        .map_err(store_error)?;
    Ok(n.max(0) as u64)
}

/// Records uses: one UPDATE per key, in id order, in one transaction; a
/// time never replaces a later one.
pub(crate) async fn touch<D: Dialect>(
    pool: &Pool<D::DB>,
    uses: &[(String, DateTime<Utc>)],
) -> Result<(), StoreError>
where
    for<'c> &'c mut <D::DB as Database>::Connection: Executor<'c, Database = D::DB>,
{
    if uses.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(store_error)?;
    for (id, at) in sorted_uses(uses) {
        let at = Value::Time(Some(*at));
        let mut qb = SqlBuilder::new("UPDATE api_keys SET last_used_at = ");
        D::bind(&mut qb, at);
        qb.push(" WHERE id = ");
        D::bind(&mut qb, Value::Text(Some(id)));
        qb.push(" AND (last_used_at IS NULL OR last_used_at < ");
        D::bind(&mut qb, at);
        qb.push(")");
        let (sql, args) = qb.into_parts()?;
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
    }
    tx.commit().await.map_err(store_error)
}

/// A round trip to the database.
pub(crate) async fn ping<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
) -> Result<(), StoreError> {
    sqlx::query("SELECT 1")
        .execute(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Pushes ` WHERE …` (nothing when the filter has no criterion).
pub(crate) fn push_where<D: Dialect>(qb: &mut SqlBuilder<'_, D::DB>, f: &ApiKeyFilter) {
    let mut first = true;
    let mut next = |qb: &mut SqlBuilder<'_, D::DB>| {
        qb.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(active) = f.is_active {
        next(qb);
        qb.push("is_active = ");
        D::bind(qb, Value::Bool(active));
    }
    let bounds = [
        ("expires_at < ", f.expires_before),
        ("expires_at > ", f.expires_after),
        ("created_at < ", f.created_before),
        ("created_at > ", f.created_after),
        ("last_used_at < ", f.last_used_before),
        ("last_used_at > ", f.last_used_after),
    ];
    for (column_op, bound) in bounds {
        if let Some(t) = bound {
            next(qb);
            qb.push(column_op);
            D::bind(qb, Value::Time(Some(t)));
        }
    }
    if let Some(t) = f.unexpired_at {
        next(qb);
        qb.push("(expires_at IS NULL OR expires_at > ");
        D::bind(qb, Value::Time(Some(t)));
        qb.push(")");
    }
    if let Some(never) = f.never_used {
        next(qb);
        qb.push(if never {
            "last_used_at IS NULL"
        } else {
            "last_used_at IS NOT NULL"
        });
    }
    if !f.scopes_contain_all.is_empty() {
        next(qb);
        D::scopes_all(qb, &f.scopes_contain_all);
    }
    if !f.scopes_contain_any.is_empty() {
        next(qb);
        D::scopes_any(qb, &f.scopes_contain_any);
    }
    if let Some(needle) = &f.name_contains {
        next(qb);
        D::name_like(qb, like_pattern(needle));
    }
    if let Some(exact) = &f.name_exact {
        next(qb);
        D::text_eq(qb, "name", exact.clone());
    }
    if let Some(owner) = &f.owner_id {
        next(qb);
        D::text_eq(qb, "owner_id", owner.clone());
    }
    if let Some(key_id) = &f.key_id {
        next(qb);
        D::text_eq(qb, "key_id", key_id.clone());
    }
    if let Some(has) = f.has_credits {
        next(qb);
        qb.push(if has {
            "credits_remaining IS NOT NULL"
        } else {
            "credits_remaining IS NULL"
        });
    }
    if let Some(below) = f.credits_below {
        next(qb);
        if i64::try_from(below).is_ok() {
            qb.push("credits_remaining < ");
            D::bind(qb, Value::Count(Some(below)));
        } else {
            // Above every value a column can hold: every key with credits.
            qb.push("credits_remaining IS NOT NULL");
        }
    }
    if let Some(has) = f.has_rate_limits {
        next(qb);
        qb.push(if has {
            "rate_limits IS NOT NULL"
        } else {
            "rate_limits IS NULL"
        });
    }
}

/// Pushes ` ORDER BY <column> <dir>, id <dir>` and the page.
pub(crate) fn push_order_and_page<D: Dialect>(qb: &mut SqlBuilder<'_, D::DB>, f: &ApiKeyFilter) {
    let dir = if f.order_desc { " DESC" } else { " ASC" };
    qb.push(" ORDER BY ");
    if f.order_by != OrderBy::Id {
        qb.push(D::order_expr(f.order_by)).push(dir);
        if nullable(f.order_by) {
            qb.push(D::nulls_smallest(f.order_desc));
        }
        qb.push(", ");
    }
    qb.push("id").push(dir);
    D::page(qb, f.limit, f.offset);
}

fn nullable(column: OrderBy) -> bool {
    matches!(
        column,
        OrderBy::Name | OrderBy::ExpiresAt | OrderBy::LastUsedAt
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_columns_are_where_decode_row_reads_them() {
        assert_eq!(
            COLUMN_NAMES[CREDITS_AT..CREDITS_AT + CREDITS_COLUMNS.len()],
            CREDITS_COLUMNS
        );
        assert_eq!(COLUMN_NAMES[CREDITS_AT - 1], "rate_limits");
    }
}
