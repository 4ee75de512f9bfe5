//! # keygate-redis
//!
//! Rate limits that hold across every instance of a service: the windows of
//! a key ([`keygate::RateLimit`]) are counted in Redis by
//! [`RedisRateLimiter`], a [`keygate::SharedRateLimiter`]. Each check is one
//! server-side Lua script, so it is atomic and exact however many instances
//! share the Redis: a window of 100 admits exactly 100 requests in total.
//! [`acquire_batch`](keygate::SharedRateLimiter::acquire_batch) decides
//! many requests of one key in one script call (one round trip), in order,
//! exactly as if they came one by one; a single acquire is a batch of one.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use keygate::{ApiKeyService, InMemoryRepository, NewApiKey, RateLimit};
//! use keygate_redis::RedisRateLimiter;
//!
//! // Never fails because Redis is down: the limiter connects when it can,
//! // and until then the service limits in process.
//! let limiter = RedisRateLimiter::builder("redis://127.0.0.1:6379")
//!     .prefix("myapp:rl:")
//!     .connect()
//!     .await?;
//! let service = ApiKeyService::builder(InMemoryRepository::new())
//!     .shared_rate_limiter(Arc::new(limiter))
//!     .build()?;
//! let (_, key) = service
//!     .create(NewApiKey::named("client").rate_limited(RateLimit::new("minute", 100, Duration::from_secs(60))))
//!     .await?;
//! service.verify(key.expose(), &["" ; 0]).await?;
//! # Ok(()) }
//! ```
//!
//! When Redis fails or is slower than the service's timeout (100 ms by
//! default, see [`ServiceBuilder::shared_rate_limiter_timing`]), the
//! service limits each instance in process and logs a warning; it tries
//! Redis again after the retry period, and [`ApiKeyService::rate_limiting_degraded`]
//! tells which mode it is in. Requests are never let through unchecked.
//!
//! ## Keys
//!
//! Window `i` (position in the key's list) of length `window_ms` of the key
//! with entity id `id` is counted at `{prefix}{<id>}:<i>:<window_ms>`
//! ([`RedisRateLimiter::window_key`]), default prefix `keygate:rl:`. The
//! `{id}` hash tag puts all windows of a key in one Redis Cluster slot, as
//! one script may only touch keys of one slot. Each counter expires when its
//! window closes, so Redis holds only open windows.
//!
//! ## Redis Cluster
//!
//! With feature `cluster` (default), [`RedisRateLimiter::cluster_builder`]
//! takes one or more nodes of a cluster; redis-rs's cluster connection
//! learns the slots from them, follows `MOVED`/`ASK`, loads the scripts on
//! every primary and reconnects to nodes that come back. Each check still
//! touches one key's windows only, all in its hash slot: one atomic script
//! on one node. [`RedisChangeFeed`] publishes through the cluster and
//! subscribes through the first given node that answers (a cluster's
//! nodes pass every publish on to each other).
//!
//! ## Why redis-rs
//!
//! This crate uses [`redis`] (redis-rs), not `fred` or `deadpool-redis`:
//!
//! - Its [`redis::aio::ConnectionManager`] is one multiplexed connection
//!   that reconnects by itself: every concurrent check is pipelined on the
//!   same socket, with no pool to check a connection out of on the hot path.
//!   `deadpool-redis` is a pool of redis-rs connections: one socket per
//!   request in flight and a checkout per call, which buys nothing for
//!   short non-blocking scripts, and it adds a crate.
//! - [`redis::Script`] sends `EVALSHA` and loads the script on `NOSCRIPT`
//!   (first use, or a Redis restarted empty) by itself.
//! - It is the most used Rust Redis client, kept by the redis-rs
//!   organisation with Redis Inc.'s support. `fred` is a capable rival
//!   (also multiplexed, reconnecting, cluster-aware), but a larger
//!   dependency tree and API for features (pub/sub, client tracking, pools
//!   of multiplexed connections) a rate limiter does not use.
//!
//! [`ServiceBuilder::shared_rate_limiter_timing`]: keygate::ServiceBuilder::shared_rate_limiter_timing
//! [`ApiKeyService::rate_limiting_degraded`]: keygate::ApiKeyService::rate_limiting_degraded
#![forbid(unsafe_code)]

mod changes;
pub use changes::RedisChangeFeed;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use keygate::{LimiterError, RateDecision, RateLimit, SharedRateLimiter, WindowUsage};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
use redis::{Client, RedisError, RedisResult, Script};

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "keygate:rl:";
/// Default limit on establishing a connection to Redis.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_millis(250);
/// Default limit on waiting for one answer from Redis.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Decides a batch of requests in order, each all-or-nothing over every
/// window (see [`keygate::SharedRateLimiter::acquire_batch`]); a single
/// acquire is a batch of one.
///
/// `KEYS[i]`: window `i`'s counter; `ARGV[2i-1]`, `ARGV[2i]`: window `i`'s
/// limit and length in ms; `ARGV[2n+1..]`: the requests' costs (`n` =
/// `#KEYS`).
///
/// Each counter is read once (`GET`, `PTTL`). A counter without an expiry,
/// or that is not a number, was not written by this script: it counts as
/// no open window. Then each request, in memory: it needs room for
/// `max(cost, 1)` in every window, else it takes nothing and is refused by
/// the full window that frees last (the last such one on a tie); else it
/// takes `cost` from every window. Then each counter is written once: a
/// window that was not open opens now with what the batch took
/// (`SET … PX`, even 0, like `LocalRateLimiter`), an open one gets it
/// (`INCRBY`, nothing when 0).
///
/// Returns `{pttl_1 … pttl_n}` then, per request, `{status, used_1 …
/// used_n}` after it: status 0 is admitted, `i` is refused by window `i`.
const ACQUIRE_LUA: &str = r"
local n = #KEYS
local limit, used, ttl, fresh = {}, {}, {}, {}
local out = {}
for i = 1, n do
  limit[i] = tonumber(ARGV[2 * i - 1])
  local u = tonumber(redis.call('GET', KEYS[i]))
  local t = redis.call('PTTL', KEYS[i])
  if u == nil or t < 0 then
    fresh[i] = true
    u = 0
    t = tonumber(ARGV[2 * i])
  elseif t < 1 then
    t = 1
  end
  used[i], ttl[i] = u, t
  out[i] = t
end
local k = n
local taken = 0
for j = 2 * n + 1, #ARGV do
  local cost = tonumber(ARGV[j])
  local need = math.max(cost, 1)
  local refuse, refuse_ttl = 0, 0
  for i = 1, n do
    if used[i] + need > limit[i] and ttl[i] >= refuse_ttl then
      refuse, refuse_ttl = i, ttl[i]
    end
  end
  if refuse == 0 and cost > 0 then
    taken = taken + cost
    for i = 1, n do
      used[i] = used[i] + cost
    end
  end
  k = k + 1
  out[k] = refuse
  for i = 1, n do
    k = k + 1
    out[k] = used[i]
  end
end
for i = 1, n do
  if fresh[i] then
    redis.call('SET', KEYS[i], taken, 'PX', ARGV[2 * i])
  elseif taken > 0 then
    redis.call('INCRBY', KEYS[i], taken)
  end
end
return out
";

/// Gives `ARGV[1]` back to every counter in `KEYS` that exists (an open
/// window), never below zero; creates nothing. `DECRBY` keeps the expiry.
const RELEASE_LUA: &str = r"
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local u = tonumber(redis.call('GET', KEYS[i]))
  if u ~= nil and u > 0 then
    redis.call('DECRBY', KEYS[i], math.min(u, cost))
  end
end
return 0
";

/// Rate-limit windows counted in Redis, exact across every instance that
/// shares it. Cheap to clone (clones share the connection).
///
/// Create it with [`connect`](Self::connect) or [`builder`](Self::builder).
/// It never fails because Redis is unreachable: until Redis answers, each
/// call returns an error at once (the service then limits in process), and
/// then it works without a restart.
#[derive(Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// Made on first success; empty while Redis has never answered.
    connection: tokio::sync::OnceCell<Connection>,
    /// One client per URL given: where the change feed may subscribe (the
    /// first that answers; any node of a cluster hears every publish).
    nodes: Vec<Client>,
    prefix: String,
    /// `redis://host:port/db` (`redis-cluster://host:port,…` for a
    /// cluster), the password masked.
    server: String,
    /// Masked out of every error message.
    password: Option<String>,
    acquire: Script,
    release: Script,
}

/// Where the connection comes from.
enum Backend {
    /// One Redis server: one multiplexed connection that reconnects.
    Single {
        client: Client,
        config: ConnectionManagerConfig,
    },
    /// A Redis Cluster: redis-rs's cluster connection, which follows the
    /// slots and reconnects to the nodes.
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster::ClusterClient),
}

/// The connection every call uses (cheap to clone: both kinds are
/// handles on shared, multiplexed connections).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Options of a [`RedisRateLimiter`]; from [`RedisRateLimiter::builder`].
#[derive(Clone)]
pub struct RedisRateLimiterBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    connection_timeout: Duration,
    response_timeout: Duration,
}

impl fmt::Debug for RedisRateLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| mask_url(u)).collect();
        f.debug_struct("RedisRateLimiterBuilder")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl RedisRateLimiterBuilder {
    /// Prefix of every key (default [`DEFAULT_PREFIX`]); lets several
    /// services share one Redis. Must not contain `{` or `}` (the key's
    /// cluster hash tag follows it).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one attempt to connect may take (default
    /// [`DEFAULT_CONNECTION_TIMEOUT`]). A refused connection fails at once.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for one answer (default [`DEFAULT_RESPONSE_TIMEOUT`]).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Checks the options and creates the limiter, connecting if Redis
    /// answers (else it logs a warning and connects on a later call).
    ///
    /// Errors: a malformed URL (`redis://[user][:password@]host[:port][/db]`,
    /// `rediss://…` for TLS, `unix://path`) or prefix. Must run within a
    /// Tokio runtime.
    pub async fn connect(self) -> Result<RedisRateLimiter, LimiterError> {
        if self.prefix.contains(['{', '}']) {
            return Err(LimiterError(format!(
                "Redis key prefix {:?} must not contain '{{' or '}}'",
                self.prefix
            )));
        }
        if self.urls.is_empty() {
            return Err(LimiterError("no Redis URL given".to_owned()));
        }
        let nodes = self
            .urls
            .iter()
            .map(|url| {
                Client::open(url.as_str()).map_err(|e| {
                    LimiterError(format!(
                        "invalid Redis URL {}: {}",
                        mask_url(url),
                        mask(&e.to_string(), url_password(url).as_deref())
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let password = nodes[0]
            .get_connection_info()
            .redis
            .password
            .clone()
            .filter(|p| !p.is_empty());
        let tcp = TcpSettings::default()
            .set_nodelay(true)
            .set_keepalive(TcpKeepalive::new().with_time(Duration::from_secs(30)));
        let (backend, server) = if self.cluster {
            self.cluster_backend(&nodes, tcp, password.as_deref())?
        } else {
            // No reconnection retries inside the manager: while Redis is
            // down, each call fails at once (the service then limits in
            // process) and the next one tries to connect again.
            let config = ConnectionManagerConfig::new()
                .set_number_of_retries(0)
                .set_connection_timeout(self.connection_timeout)
                .set_response_timeout(self.response_timeout)
                .set_tcp_settings(tcp);
            let client = nodes[0].clone();
            let server = describe(client.get_connection_info());
            (Backend::Single { client, config }, server)
        };
        let limiter = RedisRateLimiter {
            inner: Arc::new(Inner {
                backend,
                connection: tokio::sync::OnceCell::new(),
                nodes,
                prefix: self.prefix,
                server,
                password,
                acquire: Script::new(ACQUIRE_LUA),
                release: Script::new(RELEASE_LUA),
            }),
        };
        if let Err(e) = limiter.connection().await {
            tracing::warn!(
                server = %limiter.inner.server,
                error = %e,
                "Redis rate limiter not connected yet: it will connect when Redis answers"
            );
        }
        Ok(limiter)
    }

    #[cfg(feature = "cluster")]
    fn cluster_backend(
        &self,
        nodes: &[Client],
        tcp: TcpSettings,
        password: Option<&str>,
    ) -> Result<(Backend, String), LimiterError> {
        let infos: Vec<redis::ConnectionInfo> = nodes
            .iter()
            .map(|n| n.get_connection_info().clone())
            .collect();
        let server = format!(
            "redis-cluster://{}",
            infos
                .iter()
                .map(|i| i.addr.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        // Few, short retries (a MOVED during resharding is one): a call
        // must end well within the service's timeout (100 ms), after
        // which the service limits in process.
        let client = redis::cluster::ClusterClientBuilder::new(infos)
            .connection_timeout(self.connection_timeout)
            .response_timeout(self.response_timeout)
            .retries(2)
            .min_retry_wait(1)
            .max_retry_wait(20)
            .retry_wait_formula(5, 2)
            .tcp_settings(tcp)
            .build()
            .map_err(|e| {
                LimiterError(format!(
                    "invalid Redis Cluster nodes {server}: {}",
                    mask(&e.to_string(), password)
                ))
            })?;
        Ok((Backend::Cluster(client), server))
    }

    #[cfg(not(feature = "cluster"))]
    fn cluster_backend(
        &self,
        _: &[Client],
        _: TcpSettings,
        _: Option<&str>,
    ) -> Result<(Backend, String), LimiterError> {
        unreachable!("cluster builders exist only with the cluster feature")
    }
}

impl RedisRateLimiter {
    /// Options for a limiter on the Redis at `url`
    /// (`redis://[user][:password@]host[:port][/db]`; `rediss://…` for TLS,
    /// with feature `tls`, on by default: the server's certificate is
    /// checked against the system's roots, or the CA file that
    /// `SSL_CERT_FILE` names).
    pub fn builder(url: &str) -> RedisRateLimiterBuilder {
        RedisRateLimiterBuilder {
            urls: vec![url.to_owned()],
            cluster: false,
            prefix: DEFAULT_PREFIX.to_owned(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
    }

    /// Options for a limiter on a Redis Cluster, reached first through
    /// `nodes` (URLs as for [`builder`](Self::builder), the same password
    /// and TLS mode on each; one node is enough, more let it start when
    /// some are down). The cluster connection learns the slots from them,
    /// follows `MOVED`/`ASK` and reconnects to nodes that come back. A
    /// key's windows share one hash slot (see "Keys" above), so every
    /// check stays one atomic script call on one node.
    #[cfg(feature = "cluster")]
    pub fn cluster_builder<I, S>(nodes: I) -> RedisRateLimiterBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisRateLimiterBuilder {
            urls: nodes.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::builder("")
        }
    }

    /// A limiter on the Redis at `url` with the default options (see
    /// [`RedisRateLimiterBuilder::connect`]).
    pub async fn connect(url: &str) -> Result<Self, LimiterError> {
        Self::builder(url).connect().await
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis key counting window `index` (its position in the key's
    /// list) of length `window_ms` of key `id`:
    /// `{prefix}{<id>}:<index>:<window_ms>`.
    pub fn window_key(&self, id: &str, index: usize, window_ms: u64) -> String {
        format!("{}{{{id}}}:{index}:{window_ms}", self.inner.prefix)
    }

    /// Checks that Redis answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), LimiterError> {
        self.run("ping", connection_lost, |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
    }

    /// The connection, made now if it never was.
    async fn connection(&self) -> Result<Connection, LimiterError> {
        let inner = &self.inner;
        inner
            .connection
            .get_or_try_init(|| async {
                match &inner.backend {
                    Backend::Single { client, config } => {
                        ConnectionManager::new_with_config(client.clone(), config.clone())
                            .await
                            .map(Connection::Single)
                    }
                    #[cfg(feature = "cluster")]
                    Backend::Cluster(client) => {
                        client.get_async_connection().await.map(Connection::Cluster)
                    }
                }
            })
            .await
            .cloned()
            .map_err(|e| self.error("connect", &e))
    }

    /// Whether this limiter talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        match self.inner.backend {
            Backend::Single { .. } => false,
            #[cfg(feature = "cluster")]
            Backend::Cluster(_) => true,
        }
    }

    /// Runs `call` on the connection, and once more on a new connection
    /// when the first attempt found it broken and `again(error)` allows.
    ///
    /// The manager starts reconnecting when a call finds the connection
    /// broken, but that call still fails: without the second attempt, the
    /// first call after Redis is back (or after an idle connection was
    /// dropped) would fail, and the service would limit in process for its
    /// whole retry period.
    async fn run<T, F, Fut>(
        &self,
        what: &str,
        again: fn(&RedisError) -> bool,
        call: F,
    ) -> Result<T, LimiterError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let connection = self.connection().await?;
        let result = match call(connection.clone()).await {
            Err(e) if again(&e) => call(connection).await,
            other => other,
        };
        result.map_err(|e| self.error(what, &e))
    }

    fn error(&self, what: &str, e: &RedisError) -> LimiterError {
        LimiterError(format!(
            "redis {what} ({}): {}",
            self.inner.server,
            mask(&e.to_string(), self.inner.password.as_deref())
        ))
    }

    fn keys(&self, id: &str, limits: &[RateLimit]) -> Vec<String> {
        limits
            .iter()
            .enumerate()
            .map(|(i, l)| self.window_key(id, i, l.window_ms))
            .collect()
    }

    fn unexpected(&self, reply: &[i64]) -> LimiterError {
        LimiterError(format!(
            "redis acquire ({}): unexpected script reply {reply:?}",
            self.inner.server
        ))
    }

    /// The decisions in a reply of [`ACQUIRE_LUA`] for `requests` requests.
    fn decide(
        &self,
        limits: &[RateLimit],
        requests: usize,
        reply: &[i64],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        let n = limits.len();
        if reply.len() != n + requests * (n + 1) {
            return Err(self.unexpected(reply));
        }
        let (ttls, decisions) = reply.split_at(n);
        let window = |i: usize, used: i64| {
            let l = &limits[i];
            WindowUsage {
                name: l.name.clone(),
                limit: l.limit,
                remaining: l.limit.saturating_sub(u64::try_from(used).unwrap_or(0)),
                reset_ms: u64::try_from(ttls[i]).unwrap_or(0).max(1),
            }
        };
        decisions
            .chunks_exact(n + 1)
            .map(|d| match (d[0], &d[1..]) {
                (0, used) => Ok(RateDecision::Allowed(
                    used.iter()
                        .enumerate()
                        .map(|(i, &u)| window(i, u))
                        .collect(),
                )),
                (status, used) => {
                    let i = usize::try_from(status)
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .filter(|&i| i < n)
                        .ok_or_else(|| self.unexpected(reply))?;
                    Ok(RateDecision::Limited {
                        window: window(i, used[i]),
                    })
                }
            })
            .collect()
    }

    /// Decides `costs` in one script call; `limits` and `costs` not empty.
    async fn acquire_all(
        &self,
        id: &str,
        limits: &[RateLimit],
        costs: &[u64],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        let mut invocation = self.inner.acquire.prepare_invoke();
        for key in self.keys(id, limits) {
            invocation.key(key);
        }
        for l in limits {
            invocation.arg(l.limit).arg(l.window_ms);
        }
        for &cost in costs {
            invocation.arg(cost);
        }
        let invocation = &invocation;
        let reply: Vec<i64> = self
            .run("acquire", connection_lost, |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        self.decide(limits, costs.len(), &reply)
    }
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("server", &self.inner.server)
            .field("prefix", &self.inner.prefix)
            .field("cluster", &self.is_cluster())
            .field("connected", &self.inner.connection.initialized())
            .finish()
    }
}

#[async_trait]
impl SharedRateLimiter for RedisRateLimiter {
    async fn acquire(
        &self,
        id: &str,
        limits: &[RateLimit],
        cost: u64,
    ) -> Result<RateDecision, LimiterError> {
        if limits.is_empty() {
            return Ok(RateDecision::Allowed(Vec::new()));
        }
        // A batch of one: the same script, one decision (checked by decide).
        self.acquire_all(id, limits, &[cost])
            .await?
            .pop()
            .ok_or_else(|| self.unexpected(&[]))
    }

    /// One script call (one round trip) for the whole batch, decided in
    /// order inside it; nothing is sent for an empty batch or no windows.
    ///
    /// Like [`acquire`](Self::acquire), sent once more when the connection
    /// broke (which may count the batch twice: refuses more, never admits
    /// more).
    async fn acquire_batch(
        &self,
        id: &str,
        limits: &[RateLimit],
        costs: &[u64],
    ) -> Result<Vec<RateDecision>, LimiterError> {
        if costs.is_empty() {
            return Ok(Vec::new());
        }
        if limits.is_empty() {
            return Ok(vec![RateDecision::Allowed(Vec::new()); costs.len()]);
        }
        self.acquire_all(id, limits, costs).await
    }

    async fn release(&self, id: &str, limits: &[RateLimit], cost: u64) -> Result<(), LimiterError> {
        if limits.is_empty() || cost == 0 {
            return Ok(());
        }
        let mut invocation = self.inner.release.prepare_invoke();
        for key in self.keys(id, limits) {
            invocation.key(key);
        }
        invocation.arg(cost);
        let invocation = &invocation;
        // Sent twice, a refund would give back twice: only when the first
        // certainly never left (the connection was refused).
        self.run(
            "release",
            RedisError::is_connection_refusal,
            |mut c| async move { invocation.invoke_async::<()>(&mut c).await },
        )
        .await
    }

    /// `GET` and `PTTL` of each window's counter, in one pipeline: reads
    /// only, so a window that is not open stays closed. A counter the
    /// script did not write (no expiry, not a number) is a window not open,
    /// as the script sees it.
    async fn peek(
        &self,
        id: &str,
        limits: &[RateLimit],
    ) -> Result<Option<Vec<WindowUsage>>, LimiterError> {
        if limits.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut pipe = redis::pipe();
        for key in self.keys(id, limits) {
            pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        }
        let pipe = &pipe;
        let reply: Vec<redis::Value> = self
            .run("peek", connection_lost, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        if reply.len() != 2 * limits.len() {
            return Err(LimiterError(format!(
                "redis peek ({}): unexpected reply of {} values",
                self.inner.server,
                reply.len()
            )));
        }
        let windows = limits
            .iter()
            .zip(reply.chunks(2))
            .map(|(l, pair)| {
                let used = redis::from_redis_value::<Option<u64>>(&pair[0])
                    .ok()
                    .flatten();
                let ttl = redis::from_redis_value::<i64>(&pair[1]).unwrap_or(-2);
                match used {
                    Some(used) if ttl >= 0 => WindowUsage {
                        name: l.name.clone(),
                        limit: l.limit,
                        remaining: l.limit.saturating_sub(used),
                        reset_ms: u64::try_from(ttl).unwrap_or(0).max(1),
                    },
                    _ => WindowUsage {
                        name: l.name.clone(),
                        limit: l.limit,
                        remaining: l.limit,
                        reset_ms: 0,
                    },
                }
            })
            .collect();
        Ok(Some(windows))
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// The connection broke (refused, reset, closed): the manager reconnects.
///
/// An acquire sent again after its connection broke may be counted twice
/// if the first one reached Redis before the break: that refuses more,
/// never admits more, and only for the rest of that window.
fn connection_lost(e: &RedisError) -> bool {
    e.is_io_error() && e.is_unrecoverable_error()
}

/// `redis://[user:***@]host:port/db`: where the limiter connects, without
/// the password.
fn describe(info: &redis::ConnectionInfo) -> String {
    let auth = match (&info.redis.username, &info.redis.password) {
        (Some(user), Some(_)) => format!("{user}:***@"),
        (Some(user), None) => format!("{user}@"),
        (None, Some(_)) => ":***@".to_owned(),
        (None, None) => String::new(),
    };
    match &info.addr {
        redis::ConnectionAddr::Unix(path) => {
            format!("unix://{auth}{}?db={}", path.display(), info.redis.db)
        }
        #[cfg(feature = "tls")]
        addr @ redis::ConnectionAddr::TcpTls { .. } => {
            format!("rediss://{auth}{addr}/{}", info.redis.db)
        }
        addr => format!("redis://{auth}{addr}/{}", info.redis.db),
    }
}

/// The password of a URL as written, percent-decoding aside, if any.
fn url_password(url: &str) -> Option<String> {
    let (start, end) = userinfo_span(url)?;
    let (_, password) = url[start..end].split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

/// The byte range of a URL's `user:password` (before the last `@` of the
/// authority), if there is one.
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')?;
    Some((start, start + at))
}

/// `url` with its password replaced by `***`.
fn mask_url(url: &str) -> String {
    match userinfo_span(url) {
        Some((start, end)) => {
            let user = url[start..end]
                .split_once(':')
                .map_or(&url[start..end], |(u, _)| u);
            let masked = if url[start..end].contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}{masked}{}", &url[..start], &url[end..])
        }
        None => url.to_owned(),
    }
}

/// `message` with every occurrence of `password` replaced by `***`.
fn mask(message: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => message.replace(p, "***"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("redis://user:s3cret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(mask_url("redis://:s3cret@host"), "redis://:***@host");
        assert_eq!(mask_url("redis://user@host"), "redis://user@host");
        assert_eq!(mask_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(mask_url("redis://a:p@ss@host/0"), "redis://a:***@host/0");
        assert_eq!(mask_url("no url"), "no url");
        assert_eq!(
            url_password("redis://a:p@ss@host/0").as_deref(),
            Some("p@ss")
        );
        assert_eq!(url_password("redis://a@host/0"), None);
        assert_eq!(mask("bad s3cret here", Some("s3cret")), "bad *** here");
    }

    #[test]
    fn servers_are_described_without_passwords() {
        let client = Client::open("redis://bob:s3cret@example.com:6380/3").unwrap();
        assert_eq!(
            describe(client.get_connection_info()),
            "redis://bob:***@example.com:6380/3"
        );
        let client = Client::open("redis://localhost").unwrap();
        assert_eq!(
            describe(client.get_connection_info()),
            "redis://localhost:6379/0"
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_servers_are_described_as_rediss() {
        let client = Client::open("rediss://:s3cret@cache.example.com:6380/1").unwrap();
        assert_eq!(
            describe(client.get_connection_info()),
            "rediss://:***@cache.example.com:6380/1"
        );
    }
}
