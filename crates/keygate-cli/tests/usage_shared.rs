//! Usage limits across processes (SPEC §9, §12): two `keygate serve`
//! instances on one database, hammered with concurrent verifications.
//! Credits are taken in the database, so they are exact across instances;
//! rate-limit windows are exact per instance, or across instances when they
//! share Redis (`--redis-url`). Loopback only; every request loop is
//! bounded.
//!
//! PostgreSQL and Redis come from `KEYGATE_TEST_POSTGRES_URL` and
//! `KEYGATE_TEST_REDIS_URL` (defaults: 127.0.0.1:5432 database `test`,
//! 127.0.0.1:6379); when one is not reachable that test is skipped with a
//! note, unless CI=true, where it fails.

#[path = "support/fresh.rs"]
mod fresh;
#[path = "../../keygate-redis/tests/support/cluster.rs"]
mod own_cluster;
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use fresh::{skip_unreachable, with_fresh_database, Backend, POSTGRES_URL};
use serde_json::json;
use support::{bare_cmd, http, Env, Server};

/// Verifications fired at the instances in each round.
const REQUESTS: usize = 500;
/// Requests in flight at once.
const CONCURRENCY: usize = 48;
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// What one verification got.
#[derive(Debug)]
struct Outcome {
    server: usize,
    status: u16,
    detail: String,
    retry_after: Option<String>,
}

/// `POST /api-keys/verify {"api_key": key}` `REQUESTS` times, spread
/// round-robin over `addrs`, `CONCURRENCY` at a time.
fn fire(addrs: &[&str], key: &str) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(REQUESTS));
    let body = json!({ "api_key": key });
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REQUESTS {
                    break;
                }
                let server = i % addrs.len();
                let r = http(addrs[server], "POST", "/api-keys/verify", None, Some(&body));
                let detail = if r.status == 200 {
                    String::new()
                } else {
                    r.json()["detail"].as_str().unwrap_or_default().to_owned()
                };
                let retry_after = r.headers.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("retry-after")
                        .then(|| value.trim().to_owned())
                });
                outcomes.lock().unwrap().push(Outcome {
                    server,
                    status: r.status,
                    detail,
                    retry_after,
                });
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    assert_eq!(outcomes.len(), REQUESTS);
    outcomes
}

/// How many got each (status, detail), and how many successes each server
/// gave (for failure messages).
fn tally(outcomes: &[Outcome]) -> (BTreeMap<(u16, String), usize>, Vec<usize>) {
    let mut by_answer = BTreeMap::new();
    let mut admitted_by = vec![0; 2];
    for o in outcomes {
        *by_answer.entry((o.status, o.detail.clone())).or_insert(0) += 1;
        if o.status == 200 {
            admitted_by[o.server] += 1;
        }
    }
    (by_answer, admitted_by)
}

/// Exactly `admitted` successes, every other request a 429 with `refusal`.
fn assert_exactly(outcomes: &[Outcome], admitted: usize, refusal: &str) {
    let (by_answer, admitted_by) = tally(outcomes);
    let expected = BTreeMap::from([
        ((200, String::new()), admitted),
        ((429, refusal.to_owned()), REQUESTS - admitted),
    ]);
    assert_eq!(
        by_answer, expected,
        "successes per instance: {admitted_by:?}"
    );
}

/// Every 429 says when to come back: whole seconds, at least 1, at most
/// the window.
fn assert_retry_after(outcomes: &[Outcome], window_s: u64) {
    for o in outcomes.iter().filter(|o| o.status == 429) {
        let raw = o.retry_after.as_deref().unwrap_or_else(|| panic!("{o:?}"));
        let seconds: u64 = raw
            .parse()
            .unwrap_or_else(|_| panic!("not an integer: {o:?}"));
        assert!((1..=window_s).contains(&seconds), "{o:?}");
    }
}

/// Credits 50 and, on another key, a window of 100 per 60 s, through two
/// instances on `env`'s database configured by `configure`. Returns the
/// outcomes of the window round and both servers' logs.
fn two_instances(
    env: &Env,
    configure: impl Fn(&mut std::process::Command),
) -> (Vec<Outcome>, String) {
    let (metered, metered_key) = env.create("metered", &["--credits", "50"]);
    let (_, limited_key) = env.create("limited", &["--rate-limit", "api=100/60s"]);
    let a = Server::start(env, &configure);
    let b = Server::start(env, &configure);
    let addrs = [a.addr.as_str(), b.addr.as_str()];

    let credits = fire(&addrs, &metered_key);
    assert_exactly(&credits, 50, "API key usage exceeded");
    let id = metered["id"].as_str().unwrap();
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 0);

    let window = fire(&addrs, &limited_key);
    let (code_a, logs_a) = a.stop(libc::SIGTERM);
    let (code_b, logs_b) = b.stop(libc::SIGTERM);
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{logs_a}\n{logs_b}");
    let logs = format!("{logs_a}{logs_b}");
    for key in [&metered_key, &limited_key] {
        assert!(!logs.contains(key.as_str()), "a key reached the logs");
    }
    (window, logs)
}

#[test]
fn two_instances_on_one_sqlite_file_share_credits_exactly() {
    let env = Env::new();
    let (window, logs) = two_instances(&env, |_| {});
    // Without Redis each instance counts its own window: exactly 100 each
    // (each got 250 requests).
    assert_exactly(&window, 200, "API key rate limit exceeded");
    assert_eq!(tally(&window).1, [100, 100]);
    assert_retry_after(&window, 60);
    assert_eq!(
        logs.matches("rate limits are counted in this process")
            .count(),
        2,
        "{logs}"
    );
}

#[test]
fn two_instances_on_postgres_and_redis_share_credits_and_windows_exactly() {
    let redis_url = std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| REDIS_URL.into());
    if let Err(e) = redis_ping(&redis_url) {
        skip_unreachable(&redis_url, &e);
        return;
    }
    with_fresh_database(
        Backend::Postgres,
        "KEYGATE_TEST_POSTGRES_URL",
        POSTGRES_URL,
        |env, _| {
            let (window, logs) = two_instances(env, |cmd| {
                cmd.args(["--redis-url", &redis_url]);
            });
            assert_exactly(&window, 100, "API key rate limit exceeded");
            assert_retry_after(&window, 60);
            assert_eq!(
                logs.matches("rate limits are shared through Redis").count(),
                2,
                "{logs}"
            );
            assert!(!logs.contains("per instance until"), "{logs}");
        },
    );
}

#[test]
fn two_instances_on_a_redis_cluster_share_windows_exactly() {
    let cluster = match own_cluster::OwnCluster::start() {
        Ok(c) => c,
        Err(e) => return skip_unreachable("a Redis Cluster of the test's own", &e),
    };
    // Each instance is told of a different node; the cluster tells the rest.
    let urls = cluster.urls();
    let env = Env::new();
    let started = std::cell::Cell::new(0);
    let (window, logs) = two_instances(&env, |cmd| {
        let first = started.replace(started.get() + 1) * 2 % urls.len();
        cmd.args(["--redis-cluster", "--redis-url", &urls[first..].join(",")]);
    });
    assert_exactly(&window, 100, "API key rate limit exceeded");
    assert_retry_after(&window, 60);
    assert_eq!(
        logs.matches("rate limits are shared through Redis").count(),
        2,
        "{logs}"
    );
    assert!(logs.contains("cluster=true"), "{logs}");
    // The windows are in the cluster, on the node of the key's slot.
    let held: u64 = (0..3).map(|i| cluster.dbsize(i)).sum();
    assert!(held >= 1, "no window counter in the cluster");
}

#[test]
fn a_redis_that_does_not_answer_limits_per_instance_and_hides_its_password() {
    let env = Env::new();
    let (_, key) = env.create("limited", &["--rate-limit", "api=20/60s"]);
    // Nothing listens on port 1. From the environment variable this time.
    let server = Server::start(&env, |cmd| {
        cmd.env("REDIS_URL", "redis://:s3cret-pw@127.0.0.1:1/0");
    });
    let outcomes = fire(&[server.addr.as_str()], &key);
    let (code, logs) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{logs}");
    let (by_answer, _) = tally(&outcomes);
    assert_eq!(
        by_answer,
        BTreeMap::from([
            ((200, String::new()), 20),
            (
                (429, "API key rate limit exceeded".to_owned()),
                REQUESTS - 20
            ),
        ]),
        "never let through unchecked"
    );
    assert!(
        logs.contains("Redis does not answer yet: rate limits are counted per instance"),
        "{logs}"
    );
    assert!(logs.contains("redis://***@127.0.0.1:1/0"), "{logs}");
    assert!(
        !logs.contains("s3cret-pw"),
        "the password reached the logs: {logs}"
    );
}

#[test]
fn a_malformed_redis_url_stops_serve_without_showing_the_password() {
    let env = Env::new();
    let out = bare_cmd()
        .env("DATABASE_URL", &env.db_url)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(["--redis-url", "redis://:s3cret-pw@[not-a-host"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "never listened");
    assert!(err.contains("keygate: cannot use --redis-url: "), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}

/// `PING` over a plain socket: Ok when the server says `+PONG`.
fn redis_ping(url: &str) -> std::io::Result<()> {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addr = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:6379")
    };
    let mut stream = TcpStream::connect(&addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{addr} answered {:?}",
            String::from_utf8_lossy(&reply)
        )))
    }
}
