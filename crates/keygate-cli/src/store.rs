//! Opening the database and building the service from the global options.

use anyhow::{Context, Result};
use keygate::{ApiKeyService, Pepper, PEPPER_ENV};
use keygate_sqlx::SqlRepository;

use crate::cli::GlobalArgs;

/// The pepper from `--pepper` / `API_KEY_PEPPER`, else the placeholder.
/// Callers decide how to report the placeholder.
pub fn pepper(global: &GlobalArgs) -> Result<Pepper> {
    match global.pepper.as_deref() {
        Some(p) if !p.is_empty() => Ok(Pepper::new(p)?),
        _ => Ok(Pepper::placeholder()),
    }
}

/// Connects and applies pending migrations (idempotent), so a fresh SQLite
/// file or an empty database is usable by every command.
pub async fn open_repository(global: &GlobalArgs) -> Result<SqlRepository> {
    let shown = redact(&global.database_url);
    let repo = SqlRepository::connect(&global.database_url)
        .await
        .with_context(|| format!("cannot open database {shown}"))?;
    repo.migrate()
        .await
        .with_context(|| format!("cannot migrate database {shown}"))?;
    Ok(repo)
}

/// The service one-shot commands use: no verification cache (the process
/// lives for one operation). The caller flushes `last_used_at`, then closes
/// the returned repository (a cheap handle on the same pool) before exit.
pub async fn open_service(global: &GlobalArgs) -> Result<(ApiKeyService, SqlRepository)> {
    let pepper = pepper(global)?;
    if pepper.is_placeholder() {
        // Only through tracing (RUST_LOG=warn shows it): one-shot commands
        // keep stderr empty on success. `serve` warns loudly or refuses.
        tracing::warn!(
            "{PEPPER_ENV} is not set: using the built-in placeholder pepper, which is NOT safe for production"
        );
    }
    let repo = open_repository(global).await?;
    let service = ApiKeyService::builder(repo.clone())
        .pepper(pepper)
        .without_cache()
        .build()?;
    Ok((service, repo))
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
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
    use super::redact;

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
