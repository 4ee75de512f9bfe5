//! How sqlx failures become [`StoreError`]s. The one rule that matters: a
//! store failure is never reported as "not found".

use keygate::StoreError;

/// Maps any sqlx error to the store error the service and HTTP layer act on.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(format!("database unavailable: {e}")),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::Conflict(conflict_message(db.message(), db.constraint(), None))
            } else if unavailable_code(db.code().as_deref()) {
                StoreError::Unavailable(format!("database unavailable: {}", db.message()))
            } else {
                StoreError::Other(format!("database error: {}", db.message()))
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// Like [`store_error`], but a unique violation names the duplicate key id.
pub(crate) fn write_error(e: sqlx::Error, key_id: &str) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
            conflict_message(db.message(), db.constraint(), Some(key_id)),
        ),
        other => store_error(other),
    }
}

/// Which unique constraint failed, from the constraint name (PostgreSQL) or
/// the message (SQLite: `UNIQUE constraint failed: api_keys.key_id`, MySQL:
/// `Duplicate entry '…' for key 'ix_api_keys_key_id'`).
fn conflict_message(message: &str, constraint: Option<&str>, key_id: Option<&str>) -> String {
    let hint = constraint.unwrap_or(message);
    if hint.contains("key_id") {
        match key_id {
            Some(k) => format!("an API key with key_id {k} exists"),
            None => "an API key with this key_id exists".to_owned(),
        }
    } else if hint.contains("key_hash") {
        // Never echo the hash itself.
        "an API key with the same key hash exists".to_owned()
    } else {
        "an API key with this id exists".to_owned()
    }
}

/// Server-side codes that mean "cannot serve now" rather than "bad request".
fn unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // SQLite reports (extended) result codes as numbers.
    if let Ok(n) = code.parse::<u32>() {
        let sqlite_primary = n & 0xff;
        return matches!(sqlite_primary, 5 | 6 | 10 | 14) // BUSY, LOCKED, IOERR, CANTOPEN
            || matches!(n, 1040 | 1053 | 1205 | 2002 | 2003 | 2006 | 2013 | 3024);
        // MySQL
    }
    // PostgreSQL SQLSTATE: connection exception, insufficient resources,
    // operator intervention (shutdown, statement timeout).
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_the_constraint() {
        let m = conflict_message(
            "UNIQUE constraint failed: api_keys.key_id",
            None,
            Some("ab"),
        );
        assert_eq!(m, "an API key with key_id ab exists");
        let m = conflict_message("duplicate", Some("api_keys_key_hash_key"), Some("ab"));
        assert!(m.contains("key hash"));
        let m = conflict_message("Duplicate entry 'x' for key 'PRIMARY'", None, None);
        assert!(m.contains(" id "));
    }

    #[test]
    fn pool_failures_are_unavailable() {
        assert!(matches!(
            store_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(unavailable_code(Some("5")));
        assert!(unavailable_code(Some("517")));
        assert!(unavailable_code(Some("57P01")));
        assert!(!unavailable_code(Some("23505")));
        assert!(!unavailable_code(Some("19")));
    }
}
