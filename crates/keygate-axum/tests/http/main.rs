//! HTTP tests of keygate-axum, one binary: SPEC §6 row by row, against the
//! SQLite store.

mod docs;
mod management;
mod protection;
mod security;
mod support;
