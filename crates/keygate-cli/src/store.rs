//! Opening the database and building the service from the global options.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use keygate::{ApiKeyService, Pepper, PEPPER_ENV};
use keygate_sqlx::SqlRepository;

use crate::cli::GlobalArgs;

/// The pepper from `--pepper` / `API_KEY_PEPPER`, else the placeholder.
/// Callers decide how to report the placeholder.
pub(crate) fn pepper(global: &GlobalArgs) -> Result<Pepper> {
    match global.pepper.as_deref() {
        Some(p) if !p.is_empty() => Ok(Pepper::new(p)?),
        _ => Ok(Pepper::placeholder()),
    }
}

/// Connects and applies pending migrations (idempotent), so a fresh SQLite
/// file or an empty database is usable by every command.
pub(crate) async fn open_repository(global: &GlobalArgs) -> Result<SqlRepository> {
    let shown = redact(&global.database_url);
    let repo = SqlRepository::connect(&global.database_url)
        .await
        .with_context(|| format!("cannot open database {shown}"))?;
    repo.migrate()
        .await
        .with_context(|| format!("cannot migrate database {shown}"))?;
    Ok(repo)
}

/// [`open_repository`] for a one-shot command: a database server that
/// is not running is reported within a second (`connection refused: is
/// the database running at …?`) rather than after the pool's 5-second
/// acquire timeout as `pool timed out`. `serve` opens its database with
/// [`open_repository`] directly.
pub(crate) async fn open_command_repository(global: &GlobalArgs) -> Result<SqlRepository> {
    probe(&global.database_url).await?;
    open_repository(global).await
}

/// How long a one-shot command waits for a TCP connection to the database
/// server before saying it does not answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens (and drops) a TCP connection to the server of a PostgreSQL or
/// MySQL URL. SQLite, Unix sockets and URLs this cannot read are left to
/// the driver.
async fn probe(url: &str) -> Result<()> {
    let Some((host, port)) = server_address(url) else {
        return Ok(());
    };
    let shown = redact(url);
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => bail!("cannot resolve the database host {host:?} of {shown}: {e}"),
        };
    let mut refused = 0;
    for addr in &addrs {
        match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
            // Anything else (unreachable network, no answer in time): the
            // driver's own attempt reports it precisely.
            Ok(Err(_)) | Err(_) => {}
        }
    }
    if refused > 0 && refused == addrs.len() {
        bail!("connection refused: is the database running at {shown}?");
    }
    if addrs.is_empty() {
        bail!("cannot resolve the database host {host:?} of {shown}: no address");
    }
    let secs = PROBE_TIMEOUT.as_secs();
    bail!("no answer from {host}:{port} within {secs} s: is the database running at {shown}, and reachable from here?")
}

/// `(host, port)` of a `postgres://` or `mysql://` URL with a TCP host
/// (default ports 5432 and 3306); `None` for SQLite, a Unix socket (no
/// host, a path, `?host=`/`?socket=`), several hosts, or an unreadable URL.
fn server_address(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        _ => return None,
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query
        .split('&')
        .any(|p| p.starts_with("host=") || p.starts_with("socket="))
    {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.is_empty() || hostport.contains(',') || hostport.contains('%') {
        return None;
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

/// The service one-shot commands use: no verification cache (the process
/// lives for one operation). The caller flushes `last_used_at`, then closes
/// the returned repository (a cheap handle on the same pool) before exit.
pub(crate) async fn open_service(global: &GlobalArgs) -> Result<(ApiKeyService, SqlRepository)> {
    let pepper = pepper(global)?;
    if pepper.is_placeholder() {
        // Through tracing (RUST_LOG=warn shows it). Commands that write or
        // check a key (create, rotate, verify) also say it on stderr in
        // one line; the others keep stderr empty on success. `serve` warns
        // loudly or refuses.
        tracing::warn!(
            "{PEPPER_ENV} is not set: using the built-in placeholder pepper, which is NOT safe for production"
        );
    }
    let repo = open_command_repository(global).await?;
    let service = ApiKeyService::builder(repo.clone())
        .pepper(pepper)
        .without_cache()
        .build()?;
    Ok((service, repo))
}

/// The URL with any password replaced, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, server_address};

    #[test]
    fn server_addresses_of_database_urls() {
        let at = |url: &str| server_address(url);
        let pair = |h: &str, p: u16| Some((h.to_owned(), p));
        assert_eq!(at("postgres://app:pw@db:6543/keys"), pair("db", 6543));
        assert_eq!(at("postgresql://db/keys"), pair("db", 5432));
        assert_eq!(at("mysql://root@127.0.0.1/test"), pair("127.0.0.1", 3306));
        assert_eq!(at("mariadb://u:p@[::1]:3307/k"), pair("::1", 3307));
        assert_eq!(
            at("postgres://u:p:w@host:1/db?sslmode=require"),
            pair("host", 1)
        );
        for none in [
            "sqlite://keygate.db",
            "sqlite::memory:",
            "postgres:///keys",
            "postgres://%2Frun%2Fpostgresql/keys",
            "postgres://u@/keys?host=/run/postgresql",
            "mysql://u@localhost/k?socket=/run/mysqld/mysqld.sock",
            "postgres://a:1,b:2/keys",
            "postgres://db:port/keys",
            "redis://localhost",
        ] {
            assert_eq!(at(none), None, "{none}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/keys"),
            "postgres://app:***@db:5432/keys"
        );
        assert_eq!(redact("mysql://app@db/k"), "mysql://app@db/k");
        assert_eq!(redact("sqlite://keygate.db"), "sqlite://keygate.db");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
