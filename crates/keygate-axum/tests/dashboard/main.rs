//! Tests of the dashboard (feature `dashboard`) through its router, with
//! SQLite for the keys and the sessions: sign-in and sessions, CSRF and
//! headers, and the key pages.

mod keys;
mod security;
mod session;
mod support;
