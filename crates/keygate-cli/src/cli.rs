//! The command line, as clap types. Every flag carries a short help line
//! (`-h`) and a longer explanation (`--help`).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use keygate::{AuditAction, Meta, OrderBy, RateLimit, RefillInterval, MAX_COST, MAX_CREDITS};

const AFTER_HELP: &str = "\
Getting started:
  export $(keygate pepper)                               # API_KEY_PEPPER for this shell
  keygate create --name admin --scopes keygate:admin     # first admin key (shown once)
  keygate serve                                          # HTTP API on 127.0.0.1:8000

Everyday use:
  keygate create --name ci --scopes read,write --expires-in 90d  # or --expires-at 2030-01-01
  keygate list                                           # newest first, as a table
  keygate search --active --scopes-contain-all write --order-by last_used_at
  printf %s \"$KEY\" | keygate verify - --scopes write     # key kept out of shell history
  keygate deactivate ID                                  # refused from now on
  keygate --json get ID                                  # JSON for scripts
  keygate create --name acme --owner-id team-7 --meta '{\"plan\":\"pro\"}'
  keygate search --owner-id team-7                       # every key of one owner

Usage limits:
  keygate create --name metered --rate-limit burst=10/1s --rate-limit hourly=1000/1h
  keygate create --name trial --credits 1000 --refill 1000/daily
  keygate credits ID --add 500                           # atomic, also while in use
  printf %s \"$KEY\" | keygate verify - --cost 5           # takes 5; shows the credits and windows left
  keygate update ID --clear-rate-limits --clear-credits  # unlimited again
  keygate search --credits-below 100                     # keys running out

A leaked key, traced and replaced:
  keygate get ak_v1-7a74caa323a5410d-…                   # its entity (only the key id is used)
  printf %s \"$LEAKED\" | keygate get -                    # the same, out of shell history
  keygate rotate ID --grace 1h                           # new key; the old one works for 1 hour
  keygate events ID                                      # who changed what, oldest first
  keygate --actor alice deactivate ID                    # recorded as made by alice

Every command that opens the database applies pending migrations first, so a
fresh SQLite file is ready to use. Keys verify only with the pepper they were
created with: set API_KEY_PEPPER before creating keys you intend to keep.

Output: tables for people (colour only on a terminal, never with NO_COLOR);
--json prints one JSON document on stdout. A plaintext key is printed only by
`create` and `rotate` (and by `generate`, whose key is stored nowhere); a hash
never.

Audit: every change (create, update, delete, activate, deactivate, rotate,
credits) is recorded with its actor (`--actor`, default `cli`); `keygate events` shows
the log.

Admin keys: `deactivate`, `delete`, and `update` with --inactive or with
--scopes lacking keygate:admin refuse to take the last active admin key out of
service (nobody could manage keys over HTTP any more): exit 1, nothing
changed. Add --force to do it anyway; the CLI itself needs no key.

Logs: none unless RUST_LOG asks (e.g. RUST_LOG=warn); `serve` logs at info.

Exit status: 0 on success, 1 when the operation fails (not found, invalid key,
validation, database unreachable, ...) with a one-line reason on stderr,
2 on a usage error.";

/// Manage API keys: issue them, store only their hashes, verify them with scopes.
#[derive(Debug, Parser)]
#[command(name = "keygate", version, after_long_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
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
    /// is_active, created_at, last_used_at, expires_at, scopes, owner_id, meta,
    /// previous_secret_expires_at, rate_limits, credits`; RFC 3339 UTC timestamps, `null` when
    /// absent); `create` and `rotate` print `{"api_key", "entity"}`, `search`
    /// and `events` print `{"items", "total", "limit", "offset"}`. Errors
    /// still go to stderr as one line.
    #[arg(long, global = true)]
    pub json: bool,

    /// Who the audit log records as making the changes [default: cli]; with `events`, a filter
    ///
    /// Every change a command makes (create, update, delete, activate,
    /// deactivate, rotate) is recorded in the audit log with this name.
    /// 1 to 128 characters, no control characters. With `keygate events`,
    /// `--actor NAME` on the command line instead shows only the changes
    /// made by NAME (KEYGATE_ACTOR is then ignored). Not used by `serve`:
    /// over HTTP, the admin key's key id is recorded.
    #[arg(
        long,
        env = "KEYGATE_ACTOR",
        default_value = "cli",
        hide_default_value = true,
        value_name = "NAME",
        value_parser = parse_actor,
        global = true
    )]
    pub actor: String,

    /// True when `--actor` was given on the command line (not from the
    /// environment or the default); set by `main` after parsing.
    #[arg(skip)]
    pub actor_on_command_line: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a key and print it (the plaintext key is shown only this once)
    ///
    /// Only a hash of the secret is stored: copy the key from this output, it
    /// cannot be shown again. `--scopes keygate:admin` makes a key that may
    /// use the management API of `keygate serve`.
    Create(CreateArgs),
    /// List keys, newest first
    List(PageArgs),
    /// Show one key by its id, its key id, or a whole key
    ///
    /// `keygate get ID` (entity id, 32 hex characters), `keygate get KEY_ID`
    /// or `keygate get --key-id KEY_ID` (the public key id, 16 hex
    /// characters), or `keygate get ak_v1-<key id>-<secret>`: a leaked key
    /// leads to its entity in one step. Only the key id of a whole key is
    /// used; its secret is neither checked nor printed.
    Get(GetArgs),
    /// Change a key's name, description, scopes, expiry, owner, meta or status
    ///
    /// `--inactive`, or `--scopes` without `keygate:admin`, on the last active
    /// admin key (the only active, unexpired key holding `keygate:admin`) is
    /// refused unless `--force`.
    Update(UpdateArgs),
    /// Delete a key for good (prints what was deleted)
    ///
    /// On a terminal, asks for confirmation first (`--yes` skips it); with
    /// stdin not a terminal (a script, a pipe) it never asks. The last
    /// active admin key (the only active, unexpired key holding
    /// `keygate:admin`) is not deleted unless `--force`.
    Delete(DeleteArgs),
    /// Activate a key (idempotent)
    Activate(IdArg),
    /// Deactivate a key: it is refused from now on (idempotent)
    ///
    /// The last active admin key (the only active, unexpired key holding
    /// `keygate:admin`) is not deactivated unless `--force`.
    Deactivate(ForceIdArgs),
    /// Give a key a new secret and print it (shown only this once)
    ///
    /// Same entity: id, key id, scopes, owner, meta and history are kept;
    /// only the secret changes. With `--grace`, the previous secret keeps
    /// verifying for that long (so clients can switch over), then is
    /// refused; without, it is refused at once. Rotating again ends any
    /// earlier grace at once.
    Rotate(RotateArgs),
    /// Add to or set a key's remaining credits, atomically
    ///
    /// `--add N` adds N (a negative N takes away, never below 0) to a key
    /// that has credits; `--set N` makes N remain (a refill, if the key has
    /// one, is kept; a key without credits gets N, without refill). Either
    /// is applied in the store in one step, so requests using credits at
    /// the same time lose none of theirs and none of these. Recorded in the
    /// audit log as an update.
    Credits(CreditsArgs),
    /// Show the audit log: every change to keys, with who made it
    ///
    /// With ID, that key's events, oldest first (also for a deleted key);
    /// without, the whole log, newest first. Each event lists the fields it
    /// changed as `field: old → new`; never a secret, hash or plaintext key.
    /// `--actor NAME` shows only the changes made by NAME (`cli`, a name
    /// given with `--actor`, or an admin key's key id for changes made over
    /// HTTP); KEYGATE_ACTOR is not used as a filter.
    Events(EventsArgs),
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
    /// deactivate, rotate, events, search, count) and `GET /audit` (a key
    /// with the `keygate:admin` scope is required for all of them),
    /// `POST /api-keys/verify` (open), `GET /openapi.json`,
    /// `GET /docs`, `GET /healthz` (liveness: 200 while serving) and
    /// `GET /readyz` (200 when the database answers, 503 while it is down
    /// or the server is shutting down). Migrates the database on start.
    /// Changes made by other instances are pushed in (PostgreSQL NOTIFY,
    /// Redis pub/sub; see --invalidation). On SIGINT/SIGTERM, in-flight
    /// requests finish and pending `last_used_at` values are written before
    /// exiting 0. With `--policy FILE`, also `/auth` for reverse proxies
    /// (gateway mode).
    Serve(ServeArgs),
    /// Gateway policies for `serve --policy`: `keygate policy check FILE`
    Policy(PolicyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check a policy file: exit 0 with a summary, or 1 with `FILE:LINE: reason`
    ///
    /// Checks what `serve --policy` checks at start and on SIGHUP: TOML
    /// syntax, unknown fields, `default` ("deny" or "allow"), methods
    /// (uppercase HTTP tokens), path patterns (start with `/`, `*` = one
    /// segment, `**` only last, no empty or dot segments), scopes
    /// (`^[a-z][a-z0-9:_-]*$`) and costs (0 to 1000). No database.
    Check(PolicyCheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PolicyCheckArgs {
    /// The policy file (TOML)
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
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
    /// Expiry: a date (2030-01-31, midnight UTC) or an RFC 3339 time (must be in the future)
    ///
    /// `2030-01-31` means 2030-01-31T00:00:00Z; a time needs its offset:
    /// `2030-01-31T12:00:00Z` or `2030-01-31T12:00:00+02:00`. For a time
    /// from now, use --expires-in.
    #[arg(long, value_name = "DATE|RFC3339", value_parser = parse_expiry, conflicts_with = "expires_in")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Expiry as a time from now: 30d, 12h, 90m, 1w, 1h30m
    ///
    /// Units: `s`, `m` (minutes), `h`, `d`, `w` (weeks); combinable
    /// (`1w 2d`, `1h30m`). The expiry is now plus this, stored as a time.
    #[arg(long, value_name = "DURATION", value_parser = parse_expires_in)]
    pub expires_in: Option<Duration>,
    /// Create the key deactivated (activate it later with `keygate activate`)
    #[arg(long)]
    pub inactive: bool,
    /// Who the key belongs to: your application's user, team or customer id
    ///
    /// Free text, 1 to 256 characters; find an owner's keys with `keygate
    /// search --owner-id ID`.
    #[arg(long, value_name = "ID")]
    pub owner_id: Option<String>,
    /// Your application's data on the key, as a JSON object
    ///
    /// E.g. `--meta '{"plan":"pro","region":"eu"}'`. Must be a JSON object
    /// (at most 8 KiB); it is returned with the key, also on verify.
    #[arg(long, value_name = "JSON", value_parser = parse_meta)]
    pub meta: Option<Meta>,
    /// A rate-limit window, NAME=LIMIT/WINDOW, e.g. burst=10/1s (repeatable)
    ///
    /// At most LIMIT requests per WINDOW: `--rate-limit burst=10/1s
    /// --rate-limit hourly=1000/1h`. A request must fit in every window of
    /// the key, else it is refused (HTTP 429 with Retry-After). WINDOW is
    /// 1s to 1d: a number with a unit (`ms`, `s`, `m`, `h`, `d`, combinable
    /// as `1h30m`) or a plain number of seconds. NAME is like a scope (`^[a-z][a-z0-9:_-]*$`)
    /// and unique per key; at most 8 windows. `keygate serve` counts each
    /// window per instance unless the instances share Redis (`serve
    /// --redis-url`).
    #[arg(long = "rate-limit", value_name = "NAME=LIMIT/WINDOW", value_parser = RateLimit::from_str)]
    pub rate_limits: Vec<RateLimit>,
    /// Usage credits: each verification takes one (or its cost); none left → refused
    ///
    /// 0 to 10^15. When they are used up, verifications are refused (HTTP
    /// 429 `API key usage exceeded`) until a refill (`--refill`) or
    /// `keygate credits ID --add N`.
    #[arg(long, value_name = "N", value_parser = credits_value, allow_negative_numbers = true)]
    pub credits: Option<u64>,
    /// Refill the credits to N at the start of every hour, day or month (UTC)
    ///
    /// `N/hourly`, `N/daily` or `N/monthly`, e.g. `--refill 1000/daily`:
    /// at each midnight UTC the remaining credits become 1000 (unused ones
    /// do not carry over). The first refill is at the next boundary.
    /// Requires --credits (the balance until then).
    #[arg(long, value_name = "N/INTERVAL", value_parser = parse_refill, requires = "credits")]
    pub refill: Option<Refill>,
}

#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// Maximum number of keys to print
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub limit: u64,
    /// Number of keys to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// The key's entity id (32 hex characters, the `id` column; not the key id)
    pub id: String,
}

/// The entity id of a key that `delete` or `deactivate` takes out of service.
#[derive(Debug, Args)]
pub(crate) struct ForceIdArgs {
    /// The key's entity id (32 hex characters, the `id` column; not the key id)
    pub id: String,
    /// Go ahead even if this is the last active admin key
    ///
    /// Without it, the only active, unexpired key holding `keygate:admin`
    /// (the scope the management API of `keygate serve` requires) is kept:
    /// the command exits 1 and changes nothing, since nobody could manage
    /// keys over HTTP afterwards. The CLI itself needs no key: `keygate
    /// create --scopes keygate:admin` makes a new admin key at any time.
    #[arg(long)]
    pub force: bool,
}

/// `delete`: the entity id, `--force` and `--yes`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The key's entity id (32 hex characters, the `id` column; not the key id)
    pub id: String,
    /// Go ahead even if this is the last active admin key
    ///
    /// As for `deactivate --force`: without it, the only active, unexpired
    /// key holding `keygate:admin` is kept (exit 1, nothing changed).
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation
    ///
    /// On a terminal, `delete` names the key (id, name, key id) and asks
    /// whether to delete it for good, `[y/N]`; anything but `y` or `yes`
    /// keeps it (exit 1). With stdin not a terminal (scripts, pipes, CI) it
    /// never asks, with or without --yes.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("which").required(true))]
pub(crate) struct GetArgs {
    /// Entity id, key id, or a whole key; `-` reads it from stdin
    ///
    /// 32 hex characters: the entity id. 16 hex characters: the public key
    /// id. `ak_v1-<key id>-<secret>`: a whole key, of which only the key id
    /// is used (the secret is not checked). Reading from stdin keeps a
    /// leaked key out of shell history: `printf %s "$KEY" | keygate get -`.
    #[arg(value_name = "ID_OR_KEY_ID", group = "which")]
    pub id: Option<String>,
    /// Look the key up by its public key id (16 hex characters)
    #[arg(long, value_name = "KEY_ID", group = "which")]
    pub key_id: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("change").required(true).multiple(true))]
pub(crate) struct UpdateArgs {
    /// The key's entity id (32 hex characters)
    pub id: String,
    /// New name (1 to 128 characters)
    #[arg(long, group = "change")]
    pub name: Option<String>,
    /// New description (at most 1024 characters)
    #[arg(long, conflicts_with = "clear_description", group = "change")]
    pub description: Option<String>,
    /// Remove the description
    #[arg(long, group = "change")]
    pub clear_description: bool,
    /// Replace the scopes, comma-separated
    ///
    /// Replaces the whole list: `--scopes read,write`. `--scopes ''` removes
    /// every scope.
    #[arg(long, value_delimiter = ',', value_name = "A,B", group = "change")]
    pub scopes: Option<Vec<String>>,
    /// New expiry: a date (2030-01-31, midnight UTC) or an RFC 3339 time (must be in the future)
    #[arg(
        long,
        value_name = "DATE|RFC3339",
        value_parser = parse_expiry,
        conflicts_with_all = ["clear_expires", "expires_in"],
        group = "change"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// New expiry as a time from now: 30d, 12h, 90m, 1w, 1h30m
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_expires_in,
        conflicts_with = "clear_expires",
        group = "change"
    )]
    pub expires_in: Option<Duration>,
    /// Remove the expiry: the key no longer expires
    #[arg(long, group = "change")]
    pub clear_expires: bool,
    /// Activate the key
    #[arg(long, conflicts_with = "inactive", group = "change")]
    pub active: bool,
    /// Deactivate the key
    #[arg(long, group = "change")]
    pub inactive: bool,
    /// New owner: your application's user, team or customer id (1 to 256 characters)
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "clear_owner",
        group = "change"
    )]
    pub owner_id: Option<String>,
    /// Remove the owner
    #[arg(long, group = "change")]
    pub clear_owner: bool,
    /// Replace the application data with this JSON object
    ///
    /// Replaces the whole object (no merge): `--meta '{"plan":"team"}'`.
    /// Must be a JSON object of at most 8 KiB.
    #[arg(long, value_name = "JSON", value_parser = parse_meta, conflicts_with = "clear_meta", group = "change")]
    pub meta: Option<Meta>,
    /// Remove the application data
    #[arg(long, group = "change")]
    pub clear_meta: bool,
    /// Replace the rate-limit windows: NAME=LIMIT/WINDOW, e.g. burst=10/1s (repeatable)
    ///
    /// The windows given replace all of the key's windows (give every one
    /// you want to keep). Same syntax as `create --rate-limit`: WINDOW is 1s
    /// to 1d (`30s`, `5m`, `1h`, `1d`, or a plain number of seconds).
    #[arg(
        long = "rate-limit",
        value_name = "NAME=LIMIT/WINDOW",
        value_parser = RateLimit::from_str,
        conflicts_with = "clear_rate_limits",
        group = "change"
    )]
    pub rate_limits: Vec<RateLimit>,
    /// Remove every rate-limit window: no rate limit
    #[arg(long, group = "change")]
    pub clear_rate_limits: bool,
    /// Replace the credits: N remain, and the refill is only what --refill says
    ///
    /// Replaces the whole credit setting: without `--refill`, a refill the
    /// key had is removed. To change only the balance and keep the refill,
    /// use `keygate credits ID --set N` (or `--add N`), which is also
    /// atomic against requests using credits at the same time.
    #[arg(
        long,
        value_name = "N",
        value_parser = credits_value,
        allow_negative_numbers = true,
        conflicts_with = "clear_credits",
        group = "change"
    )]
    pub credits: Option<u64>,
    /// With --credits: refill to N at the start of every hour, day or month (UTC)
    ///
    /// `N/hourly`, `N/daily` or `N/monthly`. Requires --credits, since the
    /// credits are replaced as a whole.
    #[arg(long, value_name = "N/INTERVAL", value_parser = parse_refill, requires = "credits")]
    pub refill: Option<Refill>,
    /// Remove the credits: usage becomes unlimited
    #[arg(long, group = "change")]
    pub clear_credits: bool,
    /// Go ahead even if this takes the last active admin key out of service
    ///
    /// Without it, `--inactive`, or `--scopes` without `keygate:admin`, on
    /// the only active, unexpired key holding `keygate:admin` (the scope the
    /// management API of `keygate serve` requires) is refused: exit 1,
    /// nothing changed, since nobody could manage keys over HTTP afterwards.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The key's entity id (32 hex characters)
    pub id: String,
    /// How long the previous secret keeps working [default: 0]
    ///
    /// A number with a unit: `90s`, `15m`, `1h`, `2d`, or combined (`1h30m`);
    /// `0` (the default) refuses the previous secret at once. At most 30
    /// days.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "0",
        hide_default_value = true,
        value_parser = parse_grace
    )]
    pub grace: Duration,
}

#[derive(Debug, Args)]
#[command(group = ArgGroup::new("how").required(true))]
pub(crate) struct CreditsArgs {
    /// The key's entity id (32 hex characters) or key id (16 hex characters)
    #[arg(value_name = "ID_OR_KEY_ID")]
    pub id: String,
    /// Add N credits; a negative N takes them away (never below 0)
    ///
    /// The key must have credits: for a key with unlimited use, give it
    /// some with `--set N`.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = credits_delta,
        group = "how"
    )]
    pub add: Option<i64>,
    /// Make exactly N credits remain (0 to 10^15); a refill is kept
    #[arg(
        long,
        value_name = "N",
        value_parser = credits_value,
        allow_negative_numbers = true,
        group = "how"
    )]
    pub set: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only this key's events (entity id or key id), oldest first; also for a deleted key
    ///
    /// Without it, the whole audit log, newest first.
    pub id: Option<String>,
    /// Only events of this action
    #[arg(long, value_enum, value_name = "ACTION")]
    pub action: Option<AuditAction>,
    /// Only events at or after this time (a date, midnight UTC, or RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Maximum number of events to print
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub limit: u64,
    /// Number of matching events to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The plaintext key to check; `-` reads it from stdin
    ///
    /// Reading from stdin keeps the key out of your shell history and out of
    /// the process list: `printf %s "$KEY" | keygate verify -`.
    pub key: String,
    /// Scopes the key must all hold, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub scopes: Vec<String>,
    /// What this check takes from the key's rate limits and credits, 0 to 1000
    ///
    /// Default 1, as for one request (the `cost` of `POST /api-keys/verify`).
    /// 0 checks that one more request would pass and takes nothing. The
    /// check is all or nothing: a key without room for N is refused (exit 1)
    /// and nothing is taken. Rate-limit windows are counted by this process
    /// only (each run starts them afresh); credits are taken in the database.
    #[arg(
        long,
        default_value_t = 1,
        value_name = "N",
        value_parser = cost_value,
        allow_negative_numbers = true
    )]
    pub cost: u64,
}

/// The filters of `search` and `count`; all optional, combined with AND.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
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
    /// Owner is exactly this
    #[arg(long, value_name = "ID", help_heading = "Filters")]
    pub owner_id: Option<String>,
    /// Public key id is exactly this (16 hex characters, the middle part of a key)
    #[arg(long, value_name = "KEY_ID", help_heading = "Filters")]
    pub key_id: Option<String>,
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
    /// Expires strictly before this time (a date, midnight UTC, or RFC 3339; keys without expiry never match)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub expires_before: Option<DateTime<Utc>>,
    /// Expires strictly after this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub expires_after: Option<DateTime<Utc>>,
    /// Created strictly before this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub created_before: Option<DateTime<Utc>>,
    /// Created strictly after this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub created_after: Option<DateTime<Utc>>,
    /// Last used strictly before this time (RFC 3339; never-used keys never match)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub last_used_before: Option<DateTime<Utc>>,
    /// Last used strictly after this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, help_heading = "Filters")]
    pub last_used_after: Option<DateTime<Utc>>,
    /// Only keys with credits (metered use)
    #[arg(long, conflicts_with = "no_credits", help_heading = "Filters")]
    pub has_credits: bool,
    /// Only keys without credits (unlimited use)
    #[arg(long, help_heading = "Filters")]
    pub no_credits: bool,
    /// Only keys with fewer than N credits remaining (keys without credits never match)
    ///
    /// Counts the stored balance: a refill that is due but not yet applied
    /// by a use is not counted.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        help_heading = "Filters"
    )]
    pub credits_below: Option<u64>,
    /// Only keys with at least one rate-limit window
    #[arg(long, conflicts_with = "no_rate_limits", help_heading = "Filters")]
    pub has_rate_limits: bool,
    /// Only keys without rate limits
    #[arg(long, help_heading = "Filters")]
    pub no_rate_limits: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Column to sort by
    #[arg(long, value_enum, default_value_t = OrderBy::CreatedAt, value_name = "COL")]
    pub order_by: OrderBy,
    /// Sort ascending (oldest / smallest first)
    #[arg(long, conflicts_with = "desc")]
    pub asc: bool,
    /// Sort descending (the default)
    #[arg(long)]
    pub desc: bool,
    /// Maximum number of keys to print
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub limit: u64,
    /// Number of matching keys to skip (for paging)
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Name of the environment variable to print
    ///
    /// Services load every `API_KEY_*` variable as one key named after the
    /// variable, so `keygate generate >> .env` adds a ready-to-load key.
    #[arg(long, default_value = "API_KEY_DEFAULT", value_name = "NAME")]
    pub var: String,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on: IP:PORT or HOST:PORT
    ///
    /// Use `0.0.0.0:8000` to accept connections from other machines (put TLS
    /// in front). A host name (`localhost:8000`) is resolved once, at start:
    /// its first IPv4 address if it has one, else its first IPv6 address.
    /// Port 0 picks a free port; the address actually bound is printed on
    /// stdout as `listening on http://ADDR`.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR", value_parser = parse_bind)]
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
    /// Seconds a client has to send a complete request head
    ///
    /// Counted from the connection's accept for its first request, and from
    /// the first byte of each later request on a keep-alive connection. A
    /// slower client (e.g. a "slowloris" sending its headers a byte at a
    /// time) is disconnected without an answer. 10 s is plenty for any real
    /// client, which sends its head in one packet.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = timeout_seconds)]
    pub header_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request
    ///
    /// After a response, the connection is closed if no byte of a new request
    /// arrives within this time. The default is longer than the 60 s idle
    /// timeout of common load balancers and proxies, so they close their
    /// pooled connections first and never send a request into a closing one.
    /// When the connection limit is reached, idle connections are closed
    /// earlier (see --max-connections).
    #[arg(long, default_value_t = 75, value_name = "SECONDS", value_parser = timeout_seconds)]
    pub idle_timeout: u64,
    /// Seconds a request body may take to arrive, and a response to be read
    ///
    /// Counted from the end of the request head, for the whole body: a body
    /// still incomplete then is answered 408 {"detail": "..."} and the
    /// connection is closed. A client that reads none of its response for
    /// this long is disconnected too. Request bodies here are small JSON
    /// documents.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = timeout_seconds)]
    pub body_timeout: u64,
    /// Most connections open at once [default: from the open-file limit]
    ///
    /// Default: the open-file soft limit (`ulimit -n`) minus a reserve of
    /// 64 + 1/16 of it for the database pool, the listener and logs (896 for
    /// a limit of 1024). At the limit a new connection is still accepted, and
    /// room is made by closing the connections that have waited longest for
    /// a request head (idle new connections, slow heads), then the
    /// longest-idle keep-alive ones, then the slowest body or response
    /// transfers. A request being handled is never cut; only when all
    /// connections are inside a handler is a newcomer refused (503). Raise
    /// the open-file limit (e.g. systemd's LimitNOFILE) to serve more.
    #[arg(long, value_name = "N", value_parser = parse_max_connections)]
    pub max_connections: Option<u32>,
    /// Redis shared by every instance for rate-limit counters, e.g. redis://127.0.0.1:6379
    ///
    /// Without it, each `keygate serve` counts rate-limit windows on its
    /// own: exact per instance, so N instances admit up to N times a
    /// window's limit. With it, the windows hold across all instances that
    /// use the same Redis. If Redis does not answer (at start or later),
    /// the instance counts on its own until it answers again, with a
    /// warning; nothing is let through unchecked. Credits need no Redis:
    /// they are taken in the database. `redis://[:PASSWORD@]HOST[:PORT][/DB]`
    /// or `rediss://` for TLS (the server's certificate is checked against
    /// the system's roots, or the CA file named by `SSL_CERT_FILE`); the
    /// password is never logged.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// --redis-url names nodes of a Redis Cluster (comma-separated, e.g.
    /// redis://10.0.0.1:6379,redis://10.0.0.2:6379)
    ///
    /// One node is enough; the cluster tells the rest, and more let an
    /// instance start while some are down. Every node must have the same
    /// password and TLS mode. Each key's windows live in one hash slot, so
    /// every check stays one atomic script on one node; key changes are
    /// published and heard through any node.
    #[arg(long, env = "REDIS_CLUSTER", requires = "redis_url")]
    pub redis_cluster: bool,
    /// How changes made through other instances reach this one's cache
    ///
    /// `auto` (default): pushed, within milliseconds, by every channel
    /// available: PostgreSQL LISTEN/NOTIFY when the database is PostgreSQL
    /// (changes made by any process, the CLI included), Redis pub/sub when
    /// --redis-url is set (changes made through `keygate serve`). `postgres`
    /// or `redis`: only that one. `poll`: none. In every mode a cached key
    /// is re-read at least every --cache-ttl, the only path on SQLite and
    /// MySQL without Redis.
    #[arg(long, value_enum, default_value_t = Invalidation::Auto, env = "KEYGATE_INVALIDATION")]
    pub invalidation: Invalidation,
    /// Milliseconds a verified key is used from the cache before it is re-read
    ///
    /// The longest a change made elsewhere can go unseen when no push
    /// channel tells this instance (see --invalidation). Re-reading needs
    /// no new hash. 0 turns the cache off (every request reads the
    /// database).
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = cache_ttl_ms)]
    pub cache_ttl: u64,
    /// Log format on stderr
    ///
    /// The level comes from RUST_LOG (default `info`). Logs never contain a
    /// plaintext key or the pepper.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "KEYGATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Serve `GET /metrics` on this address (IP:PORT or HOST:PORT), without a key
    ///
    /// Prometheus text format: key verifications by outcome, their
    /// latency, cache hits and misses, the hashing queue, HTTP requests by
    /// method, route and status, store errors, whether the store is up and
    /// whether rate limits are shared. Without this flag `/metrics` is on the
    /// main listener for keys with the admin scope `keygate:admin`; with
    /// it, only here and open to whoever reaches the address (keep it on a
    /// private interface). The address actually bound is printed on stdout
    /// as `metrics on http://ADDR`, after the `listening on` line.
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    pub metrics_bind: Option<SocketAddr>,
    /// Gateway mode: answer `/auth` for nginx, Traefik and Caddy by this policy (TOML)
    ///
    /// `/auth` (any method) reads the key from the request's headers and
    /// the original method and URI from `X-Forwarded-Method` /
    /// `X-Forwarded-Uri` (Traefik, Caddy) or `X-Original-Method` /
    /// `X-Original-URI` (nginx), and answers 200 with `X-Keygate-Key-Id`,
    /// `X-Keygate-Entity-Id`, `X-Keygate-Owner-Id` and `X-Keygate-Scopes`
    /// when the first matching route's scopes are held (401, 403, 429 or
    /// 503 otherwise). An invalid file stops the server with its line and
    /// the reason. SIGHUP reloads the file; when the new one is invalid,
    /// the old policy stays in force and the reason is logged. Check a
    /// file with `keygate policy check FILE`; see examples/gateway/.
    #[arg(long, env = "KEYGATE_POLICY", value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    /// Do not serve the web dashboard at /ui
    ///
    /// By default `serve` answers `/ui`: sign in with a key holding
    /// `keygate:admin` to list, search, create, edit, rotate and delete keys
    /// in a browser. Sessions are stored in the keys' database (table
    /// `keygate_ui_sessions`), so any instance serves any session.
    #[arg(long)]
    pub no_dashboard: bool,
    /// Minutes without a request after which a dashboard session ends
    #[arg(long, value_name = "MINUTES", default_value_t = 30, value_parser = idle_minutes)]
    pub ui_idle_timeout: u64,
    /// Send the dashboard's session cookie without `Secure`
    ///
    /// The cookie is `Secure` by default: browsers keep it over HTTPS and
    /// from http://127.0.0.1 or http://localhost, but drop it over plain
    /// HTTP on any other address, where signing in then fails. Use this
    /// only for plain HTTP on a trusted network; put TLS in front otherwise.
    #[arg(long)]
    pub ui_insecure_cookies: bool,
}

/// 1 minute to 1 week.
fn idle_minutes(raw: &str) -> Result<u64, String> {
    whole_number(raw, 1, 10_080, "minutes (1 week)")
}

/// `serve --invalidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Invalidation {
    /// Every push channel available
    Auto,
    /// PostgreSQL LISTEN/NOTIFY only
    Postgres,
    /// Redis pub/sub only
    Redis,
    /// No push: the cache TTL alone
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

/// 0 (no cache) to 1 hour.
fn cache_ttl_ms(raw: &str) -> Result<u64, String> {
    whole_number(raw, 0, 3_600_000, "milliseconds (1 hour)")
}

/// 1 second to 1 day.
fn timeout_seconds(raw: &str) -> Result<u64, String> {
    whole_number(raw, 1, 86_400, "seconds (1 day)")
}

/// `verify --cost`: 0 to 1000 (`keygate::MAX_COST`).
fn cost_value(raw: &str) -> Result<u64, String> {
    whole_number(raw, 0, MAX_COST, "")
}

/// `--limit`: 1 or more.
fn at_least_one(raw: &str) -> Result<u64, String> {
    whole_number(raw, 1, u64::MAX, "")
}

/// `--max-connections`: 1 or more.
fn parse_max_connections(raw: &str) -> Result<u32, String> {
    let n = whole_number(raw, 1, u64::MAX, "")?;
    u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX))
}

/// A whole number from `min` to `max` (`max` = `u64::MAX`: no upper
/// bound), with an error in plain words: `must be at least 1`, `must be
/// 1 to 86400 seconds (1 day)`, not clap's `0 is not in 1..18446744073709551615`.
fn whole_number(raw: &str, min: u64, max: u64, unit: &str) -> Result<u64, String> {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    let range = if max == u64::MAX {
        format!("must be at least {min}{unit}")
    } else {
        format!("must be {min} to {max}{unit}")
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(range),
        Err(_) if raw.trim().starts_with('-') => Err(range),
        Err(_) => Err(format!("{range}: expected a whole number")),
    }
}

/// A signed whole number from `-max` to `max`, with an error in plain words.
fn whole_signed(raw: &str, max: i64) -> Result<i64, String> {
    let range = format!("must be -{max} to {max}");
    match raw.trim().parse::<i64>() {
        Ok(n) if (-max..=max).contains(&n) => Ok(n),
        Ok(_) => Err(range),
        Err(_) => Err(format!("{range}: expected a whole number")),
    }
}

/// A point in time: a date (`2030-01-31`: midnight UTC that day) or an
/// RFC 3339 time with its offset (`2030-01-31T12:00:00Z`, `…+02:00`).
fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    const HINT: &str =
        "expected a date such as 2030-01-31 (midnight UTC) or an RFC 3339 time such as 2030-01-31T12:00:00Z";
    let text = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        // Every day has a midnight in UTC.
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if chrono::NaiveDateTime::parse_from_str(text, format).is_ok() {
            return Err(format!(
                "{raw:?} has no time zone: add Z for UTC (e.g. 2030-01-31T12:00:00Z) or an offset such as +02:00"
            ));
        }
    }
    Err(HINT.to_owned())
}

/// `--expires-at`: as [`parse_time`], with a pointer to `--expires-in`
/// for times relative to now (`in 30 days`, `30d`).
fn parse_expiry(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_time(raw).map_err(|e| {
        if humantime::parse_duration(raw.trim().trim_start_matches("in ")).is_ok()
            || raw.trim().starts_with("in ")
            || raw.trim().starts_with('+')
        {
            format!("{e}; for a time from now, use --expires-in (e.g. --expires-in 30d)")
        } else {
            e
        }
    })
}

/// `--expires-in`: a positive duration from now, `30d`, `12h`, `90m`,
/// `1w`, `1h30m`, `2weeks` (humantime's syntax; `m` is minutes).
fn parse_expires_in(raw: &str) -> Result<Duration, String> {
    const HINT: &str = "expected a duration from now such as 30d, 12h, 90m or 1w";
    let text = raw.trim();
    // `--expires-in 30` is ambiguous: seconds? days? Ask for a unit.
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{HINT} (a unit is needed: {text}d, {text}h, {text}m or {text}s)"
        ));
    }
    let duration = humantime::parse_duration(text).map_err(|_| HINT.to_owned())?;
    if duration.is_zero() {
        return Err("must be more than 0 (the key would expire at once)".to_owned());
    }
    // Keeps `now + duration` representable, and within the year 9999.
    if duration > Duration::from_secs(8000 * 365 * 86_400) {
        return Err(format!("{HINT} (this one ends after the year 9999)"));
    }
    Ok(duration)
}

/// `--bind`: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` (a host name is
/// resolved now: its first IPv4 address, else its first IPv6 address).
fn parse_bind(raw: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    const HINT: &str =
        "expected IP:PORT or HOST:PORT such as 127.0.0.1:8000, 0.0.0.0:8000 or localhost:8000";
    let text = raw.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{HINT} (no port)"));
    };
    if host.is_empty() || host.contains(':') {
        return Err(HINT.to_owned());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} must be a number from 0 to 65535"))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host {host:?} ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host {host:?} has no address"))
}

/// Longest accepted `--actor`, in characters.
const ACTOR_MAX: usize = 128;

fn parse_actor(raw: &str) -> Result<String, String> {
    let n = raw.chars().count();
    if n == 0 || n > ACTOR_MAX {
        return Err(format!("must be 1 to {ACTOR_MAX} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(raw.to_owned())
}

/// A refill of `--refill N/INTERVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refill {
    pub amount: u64,
    pub interval: RefillInterval,
}

/// `--credits N` and `credits --set N`: 0 to 10^15.
fn credits_value(raw: &str) -> Result<u64, String> {
    whole_number(raw, 0, MAX_CREDITS, "(10^15)")
}

/// `credits --add N`: ±10^15.
fn credits_delta(raw: &str) -> Result<i64, String> {
    whole_signed(raw, i64::try_from(MAX_CREDITS).unwrap_or(i64::MAX))
}

/// `N/hourly`, `N/daily` or `N/monthly`.
fn parse_refill(raw: &str) -> Result<Refill, String> {
    const HINT: &str = "expected N/hourly, N/daily or N/monthly, e.g. 1000/daily";
    let Some((amount, interval)) = raw.split_once('/') else {
        return Err(HINT.to_owned());
    };
    let amount: u64 = amount
        .parse()
        .ok()
        .filter(|n| (1..=MAX_CREDITS).contains(n))
        .ok_or_else(|| {
            format!("refill amount {amount:?} must be a whole number from 1 to {MAX_CREDITS}")
        })?;
    let interval = interval.parse::<RefillInterval>().map_err(|_| {
        format!("refill interval {interval:?} is not one of hourly, daily, monthly")
    })?;
    Ok(Refill { amount, interval })
}

fn parse_meta(raw: &str) -> Result<Meta, String> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("must be a JSON object, e.g. '{\"plan\":\"pro\"}'".to_owned()),
        Err(e) => Err(format!("not valid JSON ({e})")),
    }
}

/// A grace period for `rotate`: a duration of at most 30 days.
fn parse_grace(raw: &str) -> Result<Duration, String> {
    let grace = parse_duration(raw)?;
    if grace > keygate::MAX_GRACE {
        return Err("must be at most 30 days (30d)".to_owned());
    }
    Ok(grace)
}

/// `90s`, `15m`, `1h`, `2d`, `1h30m`, or `0`: one or more number + unit
/// (`s`, `m`, `h`, `d`) pairs.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    const HINT: &str = "expected a duration such as 90s, 15m, 1h, 2d or 0";
    let text = raw.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(HINT.to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(HINT.to_owned());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| HINT.to_owned())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let seconds = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "" => return Err(format!("{HINT} (missing unit)")),
            _ => return Err(HINT.to_owned()),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| HINT.to_owned())?;
    }
    Ok(Duration::from_secs(total))
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
    fn durations() {
        let secs = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("1h"), Ok(3600));
        assert_eq!(secs("2d"), Ok(172_800));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("0s"), Ok(0));
        assert!(parse_grace("30d").is_ok() && parse_grace("30d1s").is_err());
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "-1h",
            "1.5h",
            "1 h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_use_the_core_syntax() {
        let cli = Cli::try_parse_from([
            "keygate",
            "create",
            "--name",
            "x",
            "--rate-limit",
            "burst=10/1s",
            "--rate-limit",
            "h=1/1h30m",
        ])
        .unwrap();
        let Command::Create(args) = cli.command else {
            panic!("not create");
        };
        assert_eq!(
            args.rate_limits,
            [
                RateLimit::new("burst", 10, Duration::from_secs(1)),
                RateLimit::new("h", 1, Duration::from_secs(5_400)),
            ]
        );
        let err = Cli::try_parse_from([
            "keygate",
            "create",
            "--name",
            "x",
            "--rate-limit",
            "b=10/2d",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains(r#"window "2d" must be 1s to 1d"#), "{err}");
    }

    #[test]
    fn refills() {
        assert_eq!(
            parse_refill("1000/daily"),
            Ok(Refill {
                amount: 1000,
                interval: RefillInterval::Daily
            })
        );
        assert_eq!(
            parse_refill("5/monthly").map(|r| r.interval),
            Ok(RefillInterval::Monthly)
        );
        for bad in [
            "1000",
            "0/daily",
            "x/daily",
            "10/weekly",
            "10/Daily",
            "/daily",
        ] {
            assert!(parse_refill(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meta_must_be_an_object() {
        assert_eq!(parse_meta(r#"{"plan":"pro"}"#).unwrap()["plan"], "pro");
        for bad in ["[1]", "\"x\"", "3", "null", "{", ""] {
            let err = parse_meta(bad).unwrap_err();
            assert!(err.contains("JSON"), "{bad}: {err}");
        }
    }

    #[test]
    fn actors() {
        assert!(parse_actor("alice").is_ok());
        assert!(parse_actor("").is_err());
        assert!(parse_actor("a\nb").is_err());
        assert!(parse_actor(&"x".repeat(ACTOR_MAX + 1)).is_err());
    }

    #[test]
    fn times_are_dates_or_rfc3339() {
        let utc = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            utc("2030-01-31T00:00:00+01:00"),
            Ok("2030-01-30T23:00:00+00:00".to_owned())
        );
        // A date is midnight UTC that day.
        assert_eq!(
            utc("2030-01-01"),
            Ok("2030-01-01T00:00:00+00:00".to_owned())
        );
        let err = parse_time("2030-01-01T12:00:00").unwrap_err();
        assert!(err.contains("no time zone") && err.contains('Z'), "{err}");
        for bad in ["", "yesterday", "2030-13-01", "2030-02-30", "01/02/2030"] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains("2030-01-31"), "{bad}: {err}");
            assert!(!err.contains("premature"), "{bad}: {err}");
        }
        let err = parse_expiry("in 30 days").unwrap_err();
        assert!(err.contains("--expires-in"), "{err}");
        let err = parse_expiry("30d").unwrap_err();
        assert!(err.contains("--expires-in 30d"), "{err}");
    }

    #[test]
    fn expiries_from_now() {
        let secs = |s: &str| parse_expires_in(s).map(|d| d.as_secs());
        assert_eq!(secs("30d"), Ok(30 * 86_400));
        assert_eq!(secs("12h"), Ok(12 * 3600));
        assert_eq!(secs("90m"), Ok(90 * 60));
        assert_eq!(secs("1w"), Ok(7 * 86_400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2weeks"), Ok(14 * 86_400));
        for bad in ["", "0s", "30", "soon", "-1d", "100000y"] {
            assert!(parse_expires_in(bad).is_err(), "{bad}");
        }
        assert!(parse_expires_in("30").unwrap_err().contains("30d"));
    }

    #[test]
    fn ranges_are_said_in_plain_words() {
        assert_eq!(at_least_one("0"), Err("must be at least 1".to_owned()));
        assert_eq!(at_least_one("-3"), Err("must be at least 1".to_owned()));
        assert_eq!(
            at_least_one("ten"),
            Err("must be at least 1: expected a whole number".to_owned())
        );
        assert_eq!(at_least_one("50"), Ok(50));
        assert_eq!(
            timeout_seconds("0"),
            Err("must be 1 to 86400 seconds (1 day)".to_owned())
        );
        assert_eq!(
            parse_max_connections("0"),
            Err("must be at least 1".to_owned())
        );
        assert_eq!(parse_max_connections("4096"), Ok(4096));
        assert!(credits_value("1000000000000001")
            .unwrap_err()
            .starts_with("must be 0 to 1000000000000000"));
        assert_eq!(cost_value("0"), Ok(0));
        assert_eq!(cost_value("1000"), Ok(1000));
        assert_eq!(cost_value("1001"), Err("must be 0 to 1000".to_owned()));
        assert_eq!(cost_value("-1"), Err("must be 0 to 1000".to_owned()));
        assert_eq!(credits_delta("-5"), Ok(-5));
        assert!(credits_delta("2000000000000000").is_err());
    }

    #[test]
    fn bind_takes_an_address_or_a_host_name() {
        assert_eq!(
            parse_bind("0.0.0.0:8000"),
            Ok("0.0.0.0:8000".parse().unwrap())
        );
        assert_eq!(parse_bind("[::1]:8000"), Ok("[::1]:8000".parse().unwrap()));
        let local = parse_bind("localhost:8000").expect("localhost resolves");
        assert!(local.ip().is_loopback() && local.port() == 8000, "{local}");
        assert!(local.is_ipv4(), "IPv4 preferred: {local}");
        for bad in [
            "localhost",
            "not-an-address",
            ":8000",
            "localhost:http",
            "localhost:70000",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }
}
