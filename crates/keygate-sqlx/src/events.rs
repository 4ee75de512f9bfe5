//! The audit log's statements: append an event, read and count events.

use keygate::{AuditEvent, EventFilter, StoreError};
use sqlx::{ColumnIndex, Database, Decode, Executor, FromRow, Row, Type};

use crate::codec::object_from_json;
use crate::error::store_error;
use crate::query::{column_error, fetch_all, fetch_count, Dialect, SqlBuilder, Value};

/// Announces, where the database can ([`Dialect::NOTIFY`]), that the key
/// with this key id changed. Inside the change's transaction: the
/// announcement is delivered when it commits, and never for a rollback.
pub(crate) async fn announce<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    key_id: &str,
) -> Result<(), StoreError> {
    let Some(statement) = D::NOTIFY else {
        return Ok(());
    };
    let mut qb = SqlBuilder::new(statement);
    D::bind(&mut qb, Value::Text(Some(key_id)));
    qb.push(")");
    let (sql, args) = qb.into_parts()?;
    sqlx::query_with(&sql, args)
        .execute(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// Reads a row of `Dialect::EVENT_COLUMNS` into an [`AuditEvent`].
pub(crate) fn decode_event<D: Dialect>(
    row: &<D::DB as Database>::Row,
) -> Result<AuditEvent, StoreError>
where
    usize: ColumnIndex<<D::DB as Database>::Row>,
    for<'r> String: Decode<'r, D::DB> + Type<D::DB>,
{
    const NAMES: [&str; 7] = [
        "id",
        "at",
        "action",
        "key_id",
        "entity_id",
        "actor",
        "changes",
    ];
    let text = |i: usize| {
        row.try_get::<String, _>(i)
            .map_err(|e| column_error(&NAMES, i, e))
    };
    let action = text(2)?;
    Ok(AuditEvent {
        id: text(0)?,
        at: D::time(row, 1)
            .map_err(|e| column_error(&NAMES, 1, e))?
            .ok_or_else(|| StoreError::Corrupt("event time is NULL".into()))?,
        action: action
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("unknown audit action {action:?}")))?,
        key_id: text(3)?,
        entity_id: text(4)?,
        actor: text(5)?,
        changes: object_from_json(&text(6)?)?,
    })
}

/// Appends one audit event.
pub(crate) async fn insert_event<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    let mut qb = SqlBuilder::new(
        "INSERT INTO api_key_events (id, at, action, key_id, entity_id, actor, changes) VALUES (",
    );
    D::bind(&mut qb, Value::Text(Some(&event.id)));
    qb.push(", ");
    D::bind(&mut qb, Value::Time(Some(event.at)));
    qb.push(", ");
    D::bind(&mut qb, Value::Text(Some(event.action.as_str())));
    qb.push(", ");
    D::bind(&mut qb, Value::Text(Some(&event.key_id)));
    qb.push(", ");
    D::bind(&mut qb, Value::Text(Some(&event.entity_id)));
    qb.push(", ");
    D::bind(&mut qb, Value::Text(Some(&event.actor)));
    qb.push(", ");
    D::bind(&mut qb, Value::Object(Some(&event.changes)));
    qb.push(")");
    let (sql, args) = qb.into_parts()?;
    sqlx::query_with(&sql, args)
        .execute(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// One page of the events matching a filter, in its order.
pub(crate) async fn events<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    filter: &EventFilter,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT {} FROM api_key_events", D::EVENT_COLUMNS));
    push_event_where::<D>(&mut qb, filter);
    let dir = if filter.newest_first { " DESC" } else { " ASC" };
    qb.push(" ORDER BY at").push(dir).push(", id").push(dir);
    D::page(&mut qb, filter.limit, filter.offset);
    let (sql, args) = qb.into_parts()?;
    fetch_all::<D, _>(db, (&sql, args), D::decode_event).await
}

/// How many events match a filter, paging aside.
pub(crate) async fn count_events<'c, D: Dialect>(
    db: impl Executor<'c, Database = D::DB>,
    filter: &EventFilter,
) -> Result<u64, StoreError>
where
    (i64,): for<'r> FromRow<'r, <D::DB as Database>::Row>,
{
    let mut qb = SqlBuilder::new("SELECT COUNT(*) FROM api_key_events");
    push_event_where::<D>(&mut qb, filter);
    let (sql, args) = qb.into_parts()?;
    fetch_count::<D>(db, (&sql, args)).await
}

fn push_event_where<D: Dialect>(qb: &mut SqlBuilder<'_, D::DB>, f: &EventFilter) {
    let mut first = true;
    let mut next = |qb: &mut SqlBuilder<'_, D::DB>| {
        qb.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(id) = &f.entity_id {
        next(qb);
        D::text_eq(qb, "entity_id", id.clone());
    }
    if let Some(key_id) = &f.key_id {
        next(qb);
        D::text_eq(qb, "key_id", key_id.clone());
    }
    if let Some(action) = f.action {
        next(qb);
        qb.push("action = ");
        D::bind(qb, Value::Text(Some(action.as_str())));
    }
    if let Some(actor) = &f.actor {
        next(qb);
        D::text_eq(qb, "actor", actor.clone());
    }
    if let Some(since) = f.since {
        next(qb);
        qb.push("at >= ");
        D::bind(qb, Value::Time(Some(since)));
    }
}
