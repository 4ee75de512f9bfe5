//! `keygate serve`: the management API, `/healthz`, graceful shutdown,
//! connection timeouts and the connection cap (`serve/server.rs`, with
//! `serve/conn.rs` and `serve/io.rs`).

mod conn;
mod io;
mod limits;
mod server;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keygate::{ApiKeyService, ServiceBuilder, PEPPER_ENV};
use keygate_axum::AppConfig;
use serde_json::json;
use tokio::net::TcpListener;

use crate::cli::{GlobalArgs, ServeArgs};
use crate::store;
use limits::{CapSource, Limits};

/// Environment variable that turns production mode on when set to `production`.
const ENV_VAR: &str = "KEYGATE_ENV";

pub async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
    let production = args.production
        || std::env::var(ENV_VAR).is_ok_and(|v| v.eq_ignore_ascii_case("production"));
    let pepper = store::pepper(global)?;
    if pepper.is_placeholder() {
        if production {
            bail!(
                "refusing to start in production with the built-in placeholder pepper: \
                 set {PEPPER_ENV} to a secret (generate one with `keygate pepper`)"
            );
        }
        tracing::warn!(
            "!!! {PEPPER_ENV} is not set: keys are hashed with the PUBLIC placeholder pepper. \
             Fine for a try-out, NOT for production (`--production` or {ENV_VAR}=production refuse it). \
             Keys created now will not verify once you set a real pepper."
        );
    }

    let repo = store::open_repository(global).await?;
    tracing::info!(database = %store::redact(&global.database_url), "database ready (migrations applied)");
    // Verification cache on, last_used_at coalesced: the library defaults.
    let builder = ApiKeyService::builder(repo.clone()).pepper(pepper);
    let service = with_rate_limiter(builder, args.redis_url.as_deref())
        .await?
        .build()?;

    let app = router(service.clone());
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    let signals = Signals::install()?;
    let limits = Limits::from_args(&args);
    log_limits(&limits);
    tracing::info!(%addr, production, "keygate listening");
    // On stdout too, so scripts and tests can wait for it (port 0 included).
    let line = if global.json {
        format!("{}\n", json!({"listening": format!("http://{addr}")}))
    } else {
        format!("listening on http://{addr}\n")
    };
    crate::output::print(&line)?;

    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = server::serve(listener, app, limits, async move {
        signals.recv().await;
        let _ = stopping_tx.send(true);
    });
    // In-flight requests get `--shutdown-timeout` to finish; a client that
    // never completes its request must not keep the process (and the flush)
    // hostage.
    let grace = Duration::from_secs(args.shutdown_timeout);
    let grace_over = async {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => {}
        () = grace_over => tracing::warn!(
            "requests still running {}s after the signal: stopping without them",
            grace.as_secs()
        ),
    }

    // Persist the uses the finished requests recorded.
    let flushed = service.flush().await;
    repo.close().await;
    let written = flushed.context("cannot write pending last_used_at values")?;
    tracing::info!(written, "pending last_used_at values written; bye");
    Ok(())
}

/// Rate-limit counters: shared through Redis with `--redis-url`, else in
/// this process. Says which at start (never the URL's password).
async fn with_rate_limiter(
    builder: ServiceBuilder,
    redis_url: Option<&str>,
) -> Result<ServiceBuilder> {
    let Some(url) = redis_url.filter(|u| !u.trim().is_empty()) else {
        tracing::info!(
            rate_limits = "per instance",
            "rate limits are counted in this process (no --redis-url): exact for this instance; \
             instances sharing the database each admit up to a window's limit (credits are shared)"
        );
        return Ok(builder);
    };
    let shown = redact_redis(url);
    let limiter = keygate_redis::RedisRateLimiter::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot use --redis-url: {}", scrub(&e.to_string(), url)))?;
    match limiter.ping().await {
        Ok(()) => tracing::info!(
            rate_limits = "shared",
            redis = %shown,
            "rate limits are shared through Redis by every instance using it"
        ),
        Err(e) => tracing::warn!(
            rate_limits = "per instance until Redis answers",
            redis = %shown,
            error = %scrub(&e.to_string(), url),
            "Redis does not answer yet: rate limits are counted per instance until it does"
        ),
    }
    Ok(builder.shared_rate_limiter(Arc::new(limiter)))
}

/// A Redis URL for logs: any user info and query (where a password can be)
/// masked, e.g. `redis://***@cache:6379/0`.
fn redact_redis(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    format!("{scheme}://{host}{path}{query}")
}

/// `text` with the password of `url`, if it has one, replaced: error
/// messages of other crates may quote the URL.
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_redis(url));
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo);
    if let Some(userinfo) = userinfo {
        let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
        if !password.is_empty() {
            out = out.replace(password, "***");
        }
    }
    out
}

fn router(service: ApiKeyService) -> Router {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .with_state(service.clone());
    // Management routes (admin scope `keygate:admin` required, except for
    // /verify), /openapi.json and /docs, with keygate-axum's defaults.
    // One log line per request comes from the server (`server.rs`), which
    // sees the final status (a body timeout's 408 included).
    keygate_axum::app(service, AppConfig::default()).merge(health)
}

fn log_limits(limits: &Limits) {
    let source = match limits.cap_source {
        CapSource::Flag => "--max-connections".to_owned(),
        CapSource::OpenFileLimit(soft) => format!("open-file limit {soft}"),
        CapSource::Fallback => "built-in default".to_owned(),
    };
    tracing::info!(
        header_timeout_s = limits.header_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        max_connections = limits.max_connections,
        from = source,
        "connection limits"
    );
    if let Some(derived) = limits.derived_cap() {
        if limits.max_connections > derived {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_file_limit_allows = derived,
                "--max-connections is above what the open-file limit leaves room for: \
                 accept may fail with EMFILE (the server then closes idle connections and retries)"
            );
        }
    }
}

/// 200 when the store answers, 503 otherwise.
async fn healthz(State(service): State<ApiKeyService>) -> Response {
    match service.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": "store unreachable"})),
            )
                .into_response()
        }
    }
}

/// SIGINT (Ctrl-C) and SIGTERM handlers. Installed before the address is
/// printed, so a signal sent as soon as the server is up is never fatal.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the first signal.
    async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => tracing::info!("SIGINT received: finishing in-flight requests"),
            _ = self.terminate.recv() => tracing::info!("SIGTERM received: finishing in-flight requests"),
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("Ctrl-C received: finishing in-flight requests");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_redis, scrub};

    #[test]
    fn redis_passwords_never_reach_the_logs() {
        assert_eq!(
            redact_redis("redis://:s3cret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            redact_redis("rediss://app:s3cret@cache"),
            "rediss://***@cache"
        );
        assert_eq!(
            redact_redis("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_redis("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?***"
        );
        assert_eq!(redact_redis("s3cret"), "(unparsable URL)");
        let url = "redis://app:s3cret@cache:6379";
        let said = scrub(&format!("failed for {url}: auth s3cret refused"), url);
        assert!(!said.contains("s3cret"), "{said}");
        assert!(said.contains("cache:6379"), "{said}");
    }
}
