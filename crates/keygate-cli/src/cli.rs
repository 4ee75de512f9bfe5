//! The command line, as clap types. Every flag carries a short help line
//! (`-h`) and a longer explanation (`--help`).

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Getting started:
  export $(keygate pepper)                               # API_KEY_PEPPER for this shell
  keygate create --name admin --scopes keygate:admin     # first admin key (shown once)
  keygate serve                                          # HTTP API on 127.0.0.1:8000

Everyday use:
  keygate create --name ci --scopes read,write --expires-at 2030-01-01T00:00:00Z
  keygate list                                           # newest first, as a table
  keygate search --active --scopes-contain-all write --order-by last_used_at
  printf %s \"$KEY\" | keygate verify - --scopes write     # key kept out of shell history
  keygate deactivate ID                                  # refused from now on
  keygate --json get ID                                  # JSON for scripts

Every command that opens the database applies pending migrations first, so a
fresh SQLite file is ready to use. Keys verify only with the pepper they were
created with: set API_KEY_PEPPER before creating keys you intend to keep.

Output: tables for people (colour only on a terminal, never with NO_COLOR);
--json prints one JSON document on stdout. A plaintext key is printed only by
`create` (and by `generate`, whose key is stored nowhere); a hash never.

Logs: none unless RUST_LOG asks (e.g. RUST_LOG=warn); `serve` logs at info.

Exit status: 0 on success, 1 when the operation fails (not found, invalid key,
validation, database unreachable, ...) with a one-line reason on stderr,
2 on a usage error.";

/// Manage API keys: issue them, store only their hashes, verify them with scopes.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, after_long_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database URL [default: sqlite://keygate.db]
    ///
    /// `sqlite://PATH` (the file is created if missing), `sqlite::memory:`
    /// (throw-away), `postgres://USER:PASS@HOST/DB` or `mysql://USER:PASS@HOST/DB`.
    /// Not used by `generate` and `pepper`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://keygate.db",
        hide_default_value = true,
        global = true
    )]
    pub database_url: String,

    /// Server-side secret mixed into every key hash
    ///
    /// Prefer the environment variable to the flag (command lines are visible
    /// to other users of the machine). Keys verify only with the pepper they
    /// were created with. Without one, a built-in placeholder is used: fine to
    /// try keygate, never for production (`serve --production` refuses it).
    /// Generate one with `keygate pepper`.
    #[arg(long, env = "API_KEY_PEPPER", hide_env_values = true, global = true)]
    pub pepper: Option<String>,

    /// Print machine-readable JSON on stdout
    ///
    /// Entities are printed as in the HTTP API (`id, key_id, name, description,
    /// is_active, created_at, last_used_at, expires_at, scopes`; RFC 3339 UTC
    /// timestamps, `null` when absent). Errors still go to stderr as one line.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a key and print it (the plaintext key is shown only this once)
    ///
    /// Only a hash of the secret is stored: copy the key from this output, it
    /// cannot be shown again. `--scopes keygate:admin` makes a key that may
    /// use the management API of `keygate serve`.
    Create(CreateArgs),
    /// List keys, newest first
    List(PageArgs),
    /// Show one key by its id
    Get(IdArg),
    /// Change a key's name, description, scopes, expiry or status
    Update(UpdateArgs),
    /// Delete a key for good (prints what was deleted)
    Delete(IdArg),
    /// Activate a key (idempotent)
    Activate(IdArg),
    /// Deactivate a key: it is refused from now on (idempotent)
    Deactivate(IdArg),
    /// Check a plaintext key, and optionally that it holds scopes
    ///
    /// Exit 0 and the key's entity when it is valid, active, unexpired and
    /// holds every scope given; exit 1 with the reason otherwise (`API key
    /// invalid`, `API key inactive`, `API key expired`, `API key missing
    /// required scopes ...`). A success records `last_used_at`.
    Verify(VerifyArgs),
    /// Find keys matching filters, with ordering and paging
    Search(SearchArgs),
    /// Count keys matching filters
    Count(FilterArgs),
    /// Print a fresh random key for a .env file (no database)
    Generate(GenerateArgs),
    /// Print a fresh random pepper for API_KEY_PEPPER (no database)
    Pepper,
    /// Create or upgrade the database schema, then exit
    Migrate,
    /// Run the HTTP API: management routes, verify, OpenAPI, docs, health
    ///
    /// Routes: `/api-keys` (create, list, get, update, delete, activate,
    /// deactivate, search, count; a key with the `keygate:admin` scope is
    /// required), `POST /api-keys/verify` (open), `GET /openapi.json`,
    /// `GET /docs`, `GET /healthz` (200 when the database answers, 503 when
    /// not). Migrates the database on start. On SIGINT/SIGTERM, in-flight
    /// requests finish and pending `last_used_at` values are written before
    /// exiting 0.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Human-readable name (1 to 128 characters)
    #[arg(long)]
    pub name: String,
    /// Free text (at most 1024 characters)
    #[arg(long)]
    pub description: Option<String>,
    /// Scopes granted to the key, comma-separated
    ///
    /// Each scope matches `^[a-z][a-z0-9:_-]*$`, e.g. `read,api:write`.
    /// `keygate:admin` lets the key use the management API of `keygate serve`.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub scopes: Vec<String>,
    /// Expiry as RFC 3339, e.g. 2030-01-31T00:00:00Z (must be in the future)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Create the key deactivated (activate it later with `keygate activate`)
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, Args)]
pub struct PageArgs {
    /// Maximum number of keys to print
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Number of keys to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The key's entity id (32 hex characters, the `id` column; not the key id)
    pub id: String,
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("change").required(true).multiple(true))]
pub struct UpdateArgs {
    /// The key's entity id (32 hex characters)
    pub id: String,
    /// New name (1 to 128 characters)
    #[arg(long, group = "change")]
    pub name: Option<String>,
    /// New description (at most 1024 characters)
    #[arg(long, group = "change")]
    pub description: Option<String>,
    /// Replace the scopes, comma-separated
    ///
    /// Replaces the whole list: `--scopes read,write`. `--scopes ''` removes
    /// every scope.
    #[arg(long, value_delimiter = ',', value_name = "A,B", group = "change")]
    pub scopes: Option<Vec<String>>,
    /// New expiry as RFC 3339 (must be in the future)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, conflicts_with = "clear_expires", group = "change")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Remove the expiry: the key no longer expires
    #[arg(long, group = "change")]
    pub clear_expires: bool,
    /// Activate the key
    #[arg(long, conflicts_with = "inactive", group = "change")]
    pub active: bool,
    /// Deactivate the key
    #[arg(long, group = "change")]
    pub inactive: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The plaintext key to check; `-` reads it from stdin
    ///
    /// Reading from stdin keeps the key out of your shell history and out of
    /// the process list: `printf %s "$KEY" | keygate verify -`.
    pub key: String,
    /// Scopes the key must all hold, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub scopes: Vec<String>,
}

/// The filters of `search` and `count`; all optional, combined with AND.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only active keys
    #[arg(long, conflicts_with = "inactive", help_heading = "Filters")]
    pub active: bool,
    /// Only inactive keys
    #[arg(long, help_heading = "Filters")]
    pub inactive: bool,
    /// Only keys never used
    #[arg(long, conflicts_with = "used", help_heading = "Filters")]
    pub never_used: bool,
    /// Only keys used at least once
    #[arg(long, help_heading = "Filters")]
    pub used: bool,
    /// Name contains this text (case-insensitive; `%` and `_` are literal)
    #[arg(long, value_name = "TEXT", help_heading = "Filters")]
    pub name_contains: Option<String>,
    /// Name is exactly this
    #[arg(long, value_name = "NAME", help_heading = "Filters")]
    pub name_exact: Option<String>,
    /// Key holds every one of these scopes, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        help_heading = "Filters"
    )]
    pub scopes_contain_all: Vec<String>,
    /// Key holds at least one of these scopes, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "A,B",
        help_heading = "Filters"
    )]
    pub scopes_contain_any: Vec<String>,
    /// Expires strictly before this time (RFC 3339; keys without expiry never match)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub expires_before: Option<DateTime<Utc>>,
    /// Expires strictly after this time (RFC 3339)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub expires_after: Option<DateTime<Utc>>,
    /// Created strictly before this time (RFC 3339)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub created_before: Option<DateTime<Utc>>,
    /// Created strictly after this time (RFC 3339)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub created_after: Option<DateTime<Utc>>,
    /// Last used strictly before this time (RFC 3339; never-used keys never match)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub last_used_before: Option<DateTime<Utc>>,
    /// Last used strictly after this time (RFC 3339)
    #[arg(long, value_name = "RFC3339", value_parser = parse_time, help_heading = "Filters")]
    pub last_used_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Column to sort by
    #[arg(long, value_enum, default_value_t = OrderColumn::CreatedAt, value_name = "COL")]
    pub order_by: OrderColumn,
    /// Sort ascending (oldest / smallest first)
    #[arg(long, conflicts_with = "desc")]
    pub asc: bool,
    /// Sort descending (the default)
    #[arg(long)]
    pub desc: bool,
    /// Maximum number of keys to print
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Number of matching keys to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

/// Sort columns, named as in the database and the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum OrderColumn {
    Id,
    Name,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    IsActive,
    KeyId,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Name of the environment variable to print
    ///
    /// Services load every `API_KEY_*` variable as one key named after the
    /// variable, so `keygate generate >> .env` adds a ready-to-load key.
    #[arg(long, default_value = "API_KEY_DEFAULT", value_name = "NAME")]
    pub var: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    ///
    /// Use `0.0.0.0:8000` to accept connections from other machines (put TLS
    /// in front). Port 0 picks a free port; the address actually bound is
    /// printed on stdout as `listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR")]
    pub bind: SocketAddr,
    /// Refuse to start with the placeholder pepper
    ///
    /// Also on when KEYGATE_ENV=production.
    #[arg(long)]
    pub production: bool,
    /// Seconds in-flight requests may run after SIGINT/SIGTERM
    ///
    /// New connections are refused at once; requests already running get
    /// this long to finish, then the server stops without them. Pending
    /// `last_used_at` values are written either way.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_timeout: u64,
    /// Log format on stderr
    ///
    /// The level comes from RUST_LOG (default `info`). Logs never contain a
    /// plaintext key or the pepper.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "KEYGATE_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2030-01-31T00:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_must_be_rfc3339() {
        assert!(parse_time("2030-01-31T00:00:00+01:00").is_ok());
        assert!(parse_time("2030-01-31").is_err());
    }
}
