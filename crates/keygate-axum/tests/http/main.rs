//! HTTP tests of keygate-axum, one binary: SPEC §6 row by row, against the
//! SQLite store; SPEC §12 (usage limits) against the in-memory store.

mod audit;
mod contract;
mod docs;
mod hardening;
mod last_admin;
mod limits;
mod management;
mod owners;
mod protection;
mod races;
mod rotation;
mod security;
mod support;
