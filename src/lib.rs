//! Runnable examples of keygate live in `examples/`:
//!
//! - `cargo run --example scopes` — the service alone, scoped verification.
//! - `cargo run --example axum_scopes` — an axum app with a protected route
//!   and the management router.
