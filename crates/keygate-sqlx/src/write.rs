//! Changes: insert, update and delete, each one transaction that also
//! appends its audit event. The row a change applies to is read and locked
//! inside the transaction, so concurrent changes never undo each other.

use keygate::{ApiKey, Audit, KeyChange, StoreError};
use sqlx::{Database, Executor, Pool};

use crate::error::{store_error, write_error};
use crate::events::insert_event;
use crate::query::{fetch_key, Dialect, SqlBuilder, Value};

/// Every column of a key but `id`, with the key's values.
fn columns(key: &ApiKey) -> [(&'static str, Value<'_>); 15] {
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
    ]
}

/// The columns whose values differ between `old` and `new`, with the new
/// values: what an UPDATE writes (and nothing else).
fn changed_columns<'a>(old: &ApiKey, new: &'a ApiKey) -> Vec<(&'static str, Value<'a>)> {
    let before = columns(old);
    columns(new)
        .into_iter()
        .zip(before)
        .filter(|((_, after), (_, before))| after != before)
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
