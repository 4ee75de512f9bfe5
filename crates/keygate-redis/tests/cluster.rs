//! Redis Cluster (`RedisRateLimiter::cluster_builder`), on a cluster of the
//! test's own (three `redis-server` primaries on free ports): windows exact
//! across limiters seeded at different nodes, keys spread over the nodes,
//! a cluster down at start, a node killed and started again.

#![cfg(feature = "cluster")]

#[path = "support/cluster.rs"]
mod own_cluster;
mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use keygate::{RateDecision, RateLimit, SharedRateLimiter};
use keygate_redis::RedisRateLimiter;
use own_cluster::OwnCluster;
use support::{entity_id, unavailable, unique_prefix};

const LIMIT: u64 = 10;

fn minute() -> Vec<RateLimit> {
    vec![
        RateLimit::new("minute", LIMIT, Duration::from_secs(60)),
        RateLimit::new("hour", 1_000, Duration::from_secs(3600)),
    ]
}

fn cluster() -> Option<OwnCluster> {
    match OwnCluster::start() {
        Ok(c) => Some(c),
        Err(e) => unavailable(
            "redis cluster",
            "cannot start a cluster of the test's own",
            e,
        ),
    }
}

async fn limiter(nodes: &[String], prefix: &str) -> RedisRateLimiter {
    RedisRateLimiter::cluster_builder(nodes.iter().cloned())
        .prefix(prefix)
        .connect()
        .await
        .expect("cluster limiter")
}

fn admitted(decision: &RateDecision) -> bool {
    matches!(decision, RateDecision::Allowed(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn windows_are_exact_across_limiters_seeded_at_different_nodes() {
    let Some(cluster) = cluster() else { return };
    let urls = cluster.urls();
    let prefix = unique_prefix();
    // Each knows one node only; the cluster tells them the rest.
    let a = limiter(&urls[..1], &prefix).await;
    let b = limiter(&urls[2..], &prefix).await;
    assert!(a.is_cluster() && b.is_cluster());
    a.ping().await.expect("every node answers");
    let debug = format!("{a:?}");
    assert!(debug.contains("redis-cluster://127.0.0.1:"), "{debug}");

    // 30 keys, 24 concurrent checks each, alternating between a and b.
    let ids: Vec<String> = (0..30).map(|_| entity_id()).collect();
    let checks = ids.iter().flat_map(|id| {
        let (a, b) = (&a, &b);
        (0..24).map(move |i| async move {
            let limiter = if i % 2 == 0 { a } else { b };
            let decision = limiter.acquire(id, &minute(), 1).await.expect("acquire");
            (id.as_str(), admitted(&decision))
        })
    });
    let results = join_all(checks).await;
    for id in &ids {
        let ok = results.iter().filter(|(i, ok)| *i == id && *ok).count();
        assert_eq!(ok, LIMIT as usize, "key {id}");
    }
    // The keys' windows live on every node, not one.
    for node in 0..3 {
        assert!(cluster.dbsize(node) > 0, "node {node} holds no window");
    }

    // A batch decided in order, in one script call; seen from the other
    // limiter; a release given back.
    let id = entity_id();
    let batch = a
        .acquire_batch(&id, &minute(), &[3, 3, 3, 3])
        .await
        .expect("batch");
    let pattern: Vec<bool> = batch.iter().map(admitted).collect();
    assert_eq!(pattern, [true, true, true, false]);
    let seen = b.peek(&id, &minute()).await.unwrap().expect("windows");
    assert_eq!((seen[0].remaining, seen[1].remaining), (1, 991));
    b.release(&id, &minute(), 3).await.expect("release");
    let seen = a.peek(&id, &minute()).await.unwrap().expect("windows");
    assert_eq!((seen[0].remaining, seen[1].remaining), (4, 994));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_at_start_and_a_killed_node_are_recovered_without_a_new_limiter() {
    let mut cluster = OwnCluster::new();
    let prefix = unique_prefix();
    let limiter = limiter(&cluster.urls(), &prefix).await;
    let id = entity_id();
    let start = Instant::now();
    assert!(
        limiter.acquire(&id, &minute(), 1).await.is_err(),
        "no cluster yet"
    );
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );

    if let Err(e) = cluster.form() {
        unavailable::<()>(
            "redis cluster",
            "cannot start a cluster of the test's own",
            e,
        );
        return;
    }
    let RateDecision::Allowed(w) = limiter.acquire(&id, &minute(), 2).await.expect("formed") else {
        panic!("a fresh window")
    };
    assert_eq!(w[0].remaining, LIMIT - 2);

    // One primary dies (no replica takes over): the cluster stops serving,
    // the limiter fails (the service would limit in process) ...
    let ids: Vec<String> = (0..12).map(|_| entity_id()).collect();
    let limits = minute();
    cluster.kill(1);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let results = join_all(ids.iter().map(|id| limiter.acquire(id, &limits, 1))).await;
        if results.iter().all(Result::is_err) {
            break;
        }
        assert!(Instant::now() < deadline, "still served without node 1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and serves again once the node is back, with the same limiter.
    cluster.start_node(1).expect("node 1 again");
    cluster
        .wait_ok(Duration::from_secs(20))
        .expect("cluster ok again");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let results = join_all(ids.iter().map(|id| limiter.acquire(id, &limits, 1))).await;
        if results.iter().all(Result::is_ok) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: {:?}",
            results.iter().filter_map(|r| r.as_ref().err()).next()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Keys never seen (their windows on every node) are counted again.
    let fresh: Vec<String> = (0..12).map(|_| entity_id()).collect();
    for id in &fresh {
        let decision = limiter.acquire(id, &limits, 1).await.expect("served");
        assert!(admitted(&decision), "{decision:?}");
    }
    limiter.ping().await.expect("every node answers");
}

#[tokio::test]
async fn cluster_nodes_are_checked_and_passwords_never_show() {
    let e = RedisRateLimiter::cluster_builder(Vec::<String>::new())
        .connect()
        .await
        .expect_err("no node");
    assert!(e.to_string().contains("no Redis URL"), "{e}");
    let e = RedisRateLimiter::cluster_builder(["redis://:s3cret@127.0.0.1:1", "not a url"])
        .connect()
        .await
        .expect_err("a malformed node");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = RedisRateLimiter::cluster_builder([
        "redis://:s3cret@127.0.0.1:1",
        "redis://:other@127.0.0.1:2",
    ])
    .connect()
    .await
    .expect_err("different passwords");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = RedisRateLimiter::cluster_builder(["unix:///tmp/redis.sock"])
        .connect()
        .await
        .expect_err("a cluster is reached over TCP");
    assert!(e.to_string().contains("Cluster"), "{e}");
    let limiter = RedisRateLimiter::cluster_builder(["redis://:s3cret@127.0.0.1:1"])
        .connect()
        .await
        .expect("created; nothing listens yet");
    let e = limiter
        .acquire(&entity_id(), &minute(), 1)
        .await
        .expect_err("down");
    let text = format!("{e} {limiter:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("redis-cluster://127.0.0.1:1"), "{text}");
}
