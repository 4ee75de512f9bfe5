//! The WHERE / ORDER BY / LIMIT clauses of a search, built once from an
//! [`ApiKeyFilter`] for every backend. Values are always bound parameters;
//! only column names and fixed SQL fragments are pushed as text.
//!
//! The semantics are those of [`ApiKeyFilter::matches`] and
//! [`ApiKeyFilter::compare`]: strict bounds, NULL as the smallest value,
//! ties broken by id in the same direction, names compared by bytes.

use chrono::{DateTime, Utc};
use keygate::{ApiKeyFilter, OrderBy};
use sqlx::{Database, QueryBuilder};

use crate::codec::like_pattern;

/// What differs between the SQL dialects.
pub(crate) trait Dialect {
    /// The sqlx database.
    type DB: Database;

    /// Pushes a placeholder bound to a boolean.
    fn bind_bool(qb: &mut QueryBuilder<'_, Self::DB>, v: bool);
    /// Pushes a placeholder bound to a time, in the stored representation.
    fn bind_time(qb: &mut QueryBuilder<'_, Self::DB>, v: DateTime<Utc>);
    /// Pushes a condition: the row holds every scope of a non-empty list.
    fn scopes_all(qb: &mut QueryBuilder<'_, Self::DB>, scopes: &[String]);
    /// Pushes a condition: the row holds at least one scope of a non-empty list.
    fn scopes_any(qb: &mut QueryBuilder<'_, Self::DB>, scopes: &[String]);
    /// Pushes a condition: the lowercased name is `LIKE pattern ESCAPE '!'`.
    fn name_like(qb: &mut QueryBuilder<'_, Self::DB>, pattern: String);
    /// Pushes a condition: the name equals `name` byte for byte.
    fn name_eq(qb: &mut QueryBuilder<'_, Self::DB>, name: String);
    /// The expression to sort by for a column (byte order for text).
    fn order_expr(column: OrderBy) -> &'static str;
    /// Explicit NULL placement, for backends whose default is not "NULL is
    /// smallest" (PostgreSQL).
    fn nulls_smallest(_desc: bool) -> &'static str {
        ""
    }
    /// Pushes `LIMIT … OFFSET …`.
    fn page(qb: &mut QueryBuilder<'_, Self::DB>, limit: Option<u64>, offset: u64);
}

/// Pushes ` WHERE …` (nothing when the filter has no criterion).
pub(crate) fn push_where<D: Dialect>(qb: &mut QueryBuilder<'_, D::DB>, f: &ApiKeyFilter) {
    let mut first = true;
    let mut next = |qb: &mut QueryBuilder<'_, D::DB>| {
        qb.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(active) = f.is_active {
        next(qb);
        qb.push("is_active = ");
        D::bind_bool(qb, active);
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
            D::bind_time(qb, t);
        }
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
        D::name_eq(qb, exact.clone());
    }
}

/// Pushes ` ORDER BY <column> <dir>, id <dir>` and the page.
pub(crate) fn push_order_and_page<D: Dialect>(qb: &mut QueryBuilder<'_, D::DB>, f: &ApiKeyFilter) {
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
