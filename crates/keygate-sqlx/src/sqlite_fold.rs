//! `keygate_lower(text)`: [`keygate::fold_case`] as an SQLite function, so
//! `name_contains` folds every Unicode letter on SQLite too (SQLite's own
//! `lower()` and `LIKE` fold ASCII only, and the ICU extension is not in
//! the bundled library). Registered on every connection of the pools this
//! crate opens; a pool built elsewhere registers it with
//! [`register_functions`](crate::SqliteRepository::register_functions).

use std::ffi::{c_char, c_int};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

/// The SQL name of the function.
pub(crate) const FOLD: &str = "keygate_lower";

/// The function body: NULL stays NULL; text (read as UTF-8, invalid bytes
/// replaced) comes back folded.
///
/// # Safety
/// Called by SQLite only, with `argc == 1` (the arity it was registered
/// with) values in `argv` and a live `ctx`.
unsafe extern "C" fn keygate_lower(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: registered with exactly one argument, so argv holds one value.
    let value = unsafe { *argv };
    debug_assert_eq!(argc, 1);
    // SAFETY: value and ctx are live for this call (SQLite's contract).
    unsafe {
        let text = ffi::sqlite3_value_text(value);
        if text.is_null() {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let len = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
        let bytes = std::slice::from_raw_parts(text, len);
        let folded = keygate::fold_case(&String::from_utf8_lossy(bytes));
        match c_int::try_from(folded.len()) {
            // TRANSIENT: SQLite copies the text before `folded` is dropped.
            Ok(n) => ffi::sqlite3_result_text(
                ctx,
                folded.as_ptr().cast::<c_char>(),
                n,
                ffi::SQLITE_TRANSIENT(),
            ),
            Err(_) => ffi::sqlite3_result_error_toobig(ctx),
        }
    }
}

/// Registers `keygate_lower` on one connection (idempotent).
pub(crate) async fn register(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's handle, held locked for the call;
    // the name is a NUL-terminated literal and the function a plain
    // `extern "C" fn` that lives as long as the program.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"keygate_lower".as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
            std::ptr::null_mut(),
            Some(keygate_lower),
            None,
            None,
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!("cannot register SQLite function {FOLD} (code {rc})").into(),
        ))
    }
}
