//! Logs go to stderr through `tracing`. One-shot commands log nothing unless
//! `RUST_LOG` asks (so stderr stays empty on success); `serve` logs at
//! `info` by default.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the subscriber. `serve` is `Some(format)`.
pub(crate) fn init(serve: Option<LogFormat>) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (from_env, serve) {
        (Some(directives), _) => EnvFilter::new(directives),
        // sqlx logs every statement at info: keep that for RUST_LOG=sqlx=info.
        (None, Some(_)) => EnvFilter::new("info,sqlx=warn"),
        (None, None) => return,
    };
    // Colour only for a person watching a terminal.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    // Another subscriber can only exist in tests; ignoring that is harmless.
    let _ = match serve {
        Some(LogFormat::Json) => builder.json().try_init(),
        _ => builder.try_init(),
    };
}
