//! `keygate serve`: the management API, `/healthz` and `/readyz`, push
//! invalidation, graceful shutdown,
//! connection timeouts and the connection cap (`serve/server.rs`, with
//! `serve/conn.rs` and `serve/io.rs`).

mod conn;
mod dashboard;
mod io;
mod limits;
pub(crate) mod policy;
mod server;
mod telemetry;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keygate::{ApiKeyService, CacheConfig, ServiceBuilder, PEPPER_ENV};
use keygate_axum::AppConfig;
use keygate_redis::RedisChangeFeed;
use keygate_sqlx::{PgChangeListener, SqlRepository};
use serde_json::json;
use tokio::net::TcpListener;

use crate::cli::{GlobalArgs, Invalidation, ServeArgs};
use crate::store;
use limits::{CapSource, Limits};

/// Environment variable that turns production mode on when set to `production`.
const ENV_VAR: &str = "KEYGATE_ENV";

pub(crate) async fn run(global: &GlobalArgs, args: ServeArgs) -> Result<()> {
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

    // Gateway mode: an invalid policy stops the server before it starts.
    let gateway = args
        .policy
        .as_deref()
        .map(policy::Gateway::load)
        .transpose()?;

    let repo = store::open_repository(global).await?;
    tracing::info!(database = %store::redact(&global.database_url), "database ready (migrations applied)");
    // Before the service is built: it takes its metric handles then.
    let metrics = telemetry::Metrics::install()?;
    // Verification cache (--cache-ttl), last_used_at coalesced.
    let builder = ApiKeyService::builder(repo.clone()).pepper(pepper);
    let builder = match args.cache_ttl {
        0 => builder.without_cache(),
        ms => builder.cache(CacheConfig {
            ttl: Duration::from_millis(ms),
            ..CacheConfig::default()
        }),
    };
    let (builder, redis_feed) = with_rate_limiter(
        builder,
        args.redis_url.as_deref(),
        args.redis_cluster,
        args.invalidation,
    )
    .await?;
    let service = builder.build()?;
    push_invalidation(
        &repo,
        &service,
        redis_feed,
        args.invalidation,
        args.cache_ttl,
    );

    let draining = Arc::new(AtomicBool::new(false));
    let mut app = router(
        service.clone(),
        draining.clone(),
        args.metrics_bind.is_none(),
    );
    if let Some(gateway) = gateway {
        app = gateway.mount(app, &service);
        gateway.spawn_reload();
    }
    // GET /metrics: on a listener of its own with --metrics-bind (no key),
    // else on this one for admin keys.
    let metrics_app = match args.metrics_bind {
        Some(_) => Some(metrics.route(&service, &repo, true)),
        None => {
            app = app.merge(metrics.route(&service, &repo, false));
            None
        }
    };
    // The dashboard at /ui (sessions in the keys' database).
    let dashboard_on = match dashboard::mount(&args, &repo, &service).await? {
        Some(ui) => {
            app = app.merge(ui);
            true
        }
        None => false,
    };
    // Request ids, and the route template for the request counter.
    let app = telemetry::observe_requests(app);
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match args.metrics_bind {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} (--metrics-bind)"))?,
        ),
        None => None,
    };
    let signals = Signals::install()?;
    let limits = Limits::from_args(&args);
    log_limits(&limits);
    tracing::info!(%addr, production, "keygate listening");
    if dashboard_on {
        tracing::info!("dashboard at http://{addr}/ui");
    }
    // On stdout too, so scripts and tests can wait for it (port 0 included).
    let line = if global.json {
        format!("{}\n", json!({"listening": format!("http://{addr}")}))
    } else {
        format!("listening on http://{addr}\n")
    };
    crate::output::print(&line)?;
    let metrics_server = match (metrics_listener, metrics_app) {
        (Some(listener), Some(app)) => {
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "metrics listening (GET /metrics, no key)");
            // Second on stdout, after `listening on`.
            let line = if global.json {
                format!("{}\n", json!({"metrics": format!("http://{addr}")}))
            } else {
                format!("metrics on http://{addr}\n")
            };
            crate::output::print(&line)?;
            Some((listener, telemetry::observe_requests(app)))
        }
        _ => None,
    };

    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    if let Some((listener, app)) = metrics_server {
        let mut stop = stopping_tx.subscribe();
        tokio::spawn(server::serve(listener, app, limits, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    let server = server::serve(listener, app, limits, async move {
        signals.recv().await;
        draining.store(true, Ordering::Release);
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
/// this process. Says which at start (never the URL's password). With
/// Redis, also the change feed (when `--invalidation` allows it), already
/// set as the service's publisher.
async fn with_rate_limiter(
    builder: ServiceBuilder,
    redis_url: Option<&str>,
    cluster: bool,
    invalidation: Invalidation,
) -> Result<(ServiceBuilder, Option<RedisChangeFeed>)> {
    let Some(url) = redis_url.filter(|u| !u.trim().is_empty()) else {
        tracing::info!(
            rate_limits = "per instance",
            "rate limits are counted in this process (no --redis-url): exact for this instance; \
             instances sharing the database each admit up to a window's limit (credits are shared)"
        );
        return Ok((builder, None));
    };
    let shown = redact_redis(url);
    let builder_for = if cluster {
        keygate_redis::RedisRateLimiter::cluster_builder(redis_nodes(url))
    } else {
        keygate_redis::RedisRateLimiter::builder(url)
    };
    let limiter = builder_for
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot use --redis-url: {}", scrub(&e.to_string(), url)))?;
    match limiter.ping().await {
        Ok(()) => tracing::info!(
            rate_limits = "shared",
            redis = %shown,
            cluster,
            "rate limits are shared through Redis by every instance using it"
        ),
        Err(e) => tracing::warn!(
            rate_limits = "per instance until Redis answers",
            redis = %shown,
            error = %scrub(&e.to_string(), url),
            "Redis does not answer yet: rate limits are counted per instance until it does"
        ),
    }
    let feed = matches!(invalidation, Invalidation::Auto | Invalidation::Redis)
        .then(|| RedisChangeFeed::new(&limiter));
    let mut builder = builder.shared_rate_limiter(Arc::new(limiter));
    if let Some(feed) = &feed {
        builder = builder.change_publisher(Arc::new(feed.clone()));
    }
    Ok((builder, feed))
}

/// Starts the listeners that apply other instances' changes to this
/// one's cache at once (SPEC §9), and says which are on.
fn push_invalidation(
    repo: &SqlRepository,
    service: &ApiKeyService,
    redis_feed: Option<RedisChangeFeed>,
    invalidation: Invalidation,
    cache_ttl_ms: u64,
) {
    let mut channels = Vec::new();
    if let Some(pg) = repo.postgres() {
        if matches!(invalidation, Invalidation::Auto | Invalidation::Postgres) {
            PgChangeListener::new(pg.pool()).spawn(service.invalidator());
            channels.push("postgres");
        }
    }
    if let Some(feed) = redis_feed {
        feed.spawn_listener(service.invalidator());
        channels.push("redis");
    }
    if channels.is_empty() {
        if matches!(invalidation, Invalidation::Postgres | Invalidation::Redis) {
            tracing::warn!(
                ?invalidation,
                "--invalidation names a channel this instance does not have (PostgreSQL store, --redis-url): \
                 changes made elsewhere are seen by polling only"
            );
        }
        tracing::info!(
            cache_ttl_ms,
            "changes made by other instances are seen within the cache TTL (polling)"
        );
    } else {
        tracing::info!(
            push = channels.join("+"),
            cache_ttl_ms,
            "changes made by other instances are pushed to this one (the cache TTL stays the safety net)"
        );
    }
}

/// A Redis URL for logs: any user info and query (where a password can be)
/// masked, e.g. `redis://***@cache:6379/0`.
fn redact_redis(url: &str) -> String {
    redis_nodes(url)
        .map(redact_redis_node)
        .collect::<Vec<_>>()
        .join(",")
}

/// The nodes of a `--redis-url` (one, or a cluster's comma-separated list;
/// blanks skipped).
fn redis_nodes(url: &str) -> impl Iterator<Item = &str> {
    url.split(',').map(str::trim).filter(|n| !n.is_empty())
}

fn redact_redis_node(url: &str) -> String {
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
    for node in redis_nodes(url) {
        out = out.replace(node, &redact_redis_node(node));
        let userinfo = node
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
    }
    out
}

fn router(service: ApiKeyService, draining: Arc<AtomicBool>, metrics_here: bool) -> Router {
    let health = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Health {
            service: service.clone(),
            draining,
        });
    // Management routes (admin scope `keygate:admin` required, except for
    // /verify), /openapi.json and /docs, with keygate-axum's defaults.
    // One log line per request comes from the server (`server.rs`), which
    // sees the final status (a body timeout's 408 included).
    let config = AppConfig::default().document_health_routes();
    let config = if metrics_here {
        config.document_metrics_route()
    } else {
        config
    };
    keygate_axum::app(service, config).merge(health)
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

#[derive(Clone)]
struct Health {
    service: ApiKeyService,
    /// Set once SIGTERM/SIGINT arrived.
    draining: Arc<AtomicBool>,
}

/// Liveness: 200 while the process serves requests, whatever the store.
async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Readiness: 200 when the store answers and the server is not shutting
/// down, 503 with the reason otherwise (a load balancer then sends
/// requests elsewhere). While the database is known to be down the answer
/// is immediate.
async fn readyz(State(health): State<Health>) -> Response {
    let unavailable = |status: &str, detail: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": status, "detail": detail})),
        )
            .into_response()
    };
    if health.draining.load(Ordering::Acquire) {
        return unavailable(
            "draining",
            "shutting down: finishing in-flight requests".into(),
        );
    }
    match health.service.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            unavailable("unavailable", format!("store unreachable: {e}"))
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
        // Cluster nodes: each one's password.
        let nodes = "redis://:pw-one@a:7000, redis://:pw-two@b:7001";
        assert_eq!(redact_redis(nodes), "redis://***@a:7000,redis://***@b:7001");
        let said = scrub("pw-one and pw-two refused", nodes);
        assert_eq!(said, "*** and *** refused");
        // A trailing comma is no empty node (replacing "" would garble the text).
        assert_eq!(
            scrub("pw-one refused", "redis://:pw-one@a:7000,"),
            "*** refused"
        );
    }
}
