//! Shared test setup: a limiter with a fresh key prefix on the shared Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`), and Redis servers of
//! the test's own (`/usr/bin/redis-server` on a free port) for tests that
//! stop and start one.
//!
//! Without a Redis server (or the `redis-server` binary) the test prints
//! `SKIPPED …` and passes, unless `CI=true`, where it fails (the convention
//! of `keygate-sqlx`'s tests). The shared server is never flushed or
//! stopped: every test writes only under its own random prefix, and every
//! key it writes expires within two minutes.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keygate_redis::RedisRateLimiter;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;

pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub(crate) const REDIS_SERVER: &str = "/usr/bin/redis-server";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Skips (prints why) or, under CI, fails loudly.
pub(crate) fn unavailable<T>(suite: &str, what: &str, error: impl Display) -> Option<T> {
    if ci() {
        panic!("{suite} suite: {what}: {error} (CI=true: a missing server is an error)");
    }
    // Written to the real stderr: the test harness hides println! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {suite} suite: {what}: {error} (set CI=true to make this an error)"
    );
    None
}

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| REDIS_URL.to_owned())
}

/// Where `url` points, without its password (for messages).
pub(crate) fn shown(url: &str) -> String {
    match redis::Client::open(url) {
        Ok(c) => format!("redis://{}", c.get_connection_info().addr),
        Err(_) => "a malformed REDIS_URL".to_owned(),
    }
}

/// A key prefix no other test (or run) uses.
pub(crate) fn unique_prefix() -> String {
    format!("keygate:test:{}:", uuid::Uuid::new_v4().simple())
}

/// A random entity id (32 hex characters, like keygate's).
pub(crate) fn entity_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A limiter with a fresh prefix on the shared Redis, and a connection of
/// its own to look at (and tamper with) the counters.
pub(crate) struct Shared {
    pub limiter: RedisRateLimiter,
    pub raw: MultiplexedConnection,
    pub url: String,
}

impl Shared {
    /// Another limiter (another connection) with the same prefix.
    pub(crate) async fn another(&self) -> RedisRateLimiter {
        RedisRateLimiter::builder(&self.url)
            .prefix(self.limiter.prefix())
            .connect()
            .await
            .expect("second limiter")
    }

    pub(crate) async fn get(&self, key: &str) -> Option<i64> {
        self.raw.clone().get(key).await.expect("GET")
    }

    pub(crate) async fn exists(&self, key: &str) -> bool {
        self.raw.clone().exists(key).await.expect("EXISTS")
    }

    pub(crate) async fn pttl(&self, key: &str) -> i64 {
        self.raw.clone().pttl(key).await.expect("PTTL")
    }

    pub(crate) async fn del(&self, key: &str) {
        let _: () = self.raw.clone().del(key).await.expect("DEL");
    }

    /// Makes `key`'s window close now: expiry in 1 ms, then waits until
    /// Redis no longer has it.
    pub(crate) async fn expire_now(&self, key: &str) {
        let _: () = self.raw.clone().pexpire(key, 1).await.expect("PEXPIRE");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.exists(key).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} did not expire"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A limiter on the shared Redis, or `None` (skipped) without one.
pub(crate) async fn shared() -> Option<Shared> {
    let url = redis_url();
    let raw = match connect_raw(&url).await {
        Ok(raw) => raw,
        Err(e) => return unavailable("redis", &format!("cannot connect to {}", shown(&url)), e),
    };
    let limiter = RedisRateLimiter::builder(&url)
        .prefix(unique_prefix())
        .connect()
        .await
        .expect("limiter");
    limiter
        .ping()
        .await
        .expect("the limiter reaches the Redis the test reached");
    Some(Shared { limiter, raw, url })
}

/// A plain connection that has answered PING.
pub(crate) async fn connect_raw(url: &str) -> Result<MultiplexedConnection, String> {
    let attempt = async {
        let client = redis::Client::open(url)?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut c).await?;
        Ok::<_, redis::RedisError>(c)
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// A port nothing listens on (just released by the OS).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A `redis-server` of this test's own, killed when dropped.
pub(crate) struct OwnRedis {
    pub port: u16,
    password: Option<String>,
    child: Option<Child>,
}

impl OwnRedis {
    /// Does not start it: see [`start`](Self::start).
    pub(crate) fn new(port: u16, password: Option<&str>) -> Self {
        Self {
            port,
            password: password.map(str::to_owned),
            child: None,
        }
    }

    /// The URL (with the password, if any).
    pub(crate) fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server and waits until it answers; `None` (skipped)
    /// without the binary.
    pub(crate) async fn start(&mut self) -> Option<()> {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            command.args(["--requirepass", p]);
        }
        let child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return unavailable("redis-server", &format!("cannot run {REDIS_SERVER}"), e),
        };
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if connect_raw(&self.url()).await.is_ok() {
                return Some(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (SIGKILL: no clean shutdown) and waits for it to exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
