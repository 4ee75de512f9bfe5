//! Connecting: bad URLs are errors; a Redis that is down at start is not,
//! calls fail fast until it answers and then work; passwords never show.

mod support;

use std::time::{Duration, Instant};

use keygate::{RateDecision, RateLimit, SharedRateLimiter};
use keygate_redis::{RedisRateLimiter, DEFAULT_PREFIX};
use support::{entity_id, free_port, OwnRedis};

const PASSWORD: &str = "s3cret-Pa55word";

fn minute(limit: u64) -> Vec<RateLimit> {
    vec![RateLimit::new("minute", limit, Duration::from_secs(60))]
}

#[tokio::test]
async fn malformed_urls_and_prefixes_are_errors() {
    for url in [
        "",
        "not a url",
        "http://127.0.0.1:6379",
        "redis://",
        &format!("redis://:{PASSWORD}@127.0.0.1:6379/not-a-db"),
        &format!("redis://:{PASSWORD}@127.0.0.1:6379/?protocol=9"),
    ] {
        let e = RedisRateLimiter::connect(url)
            .await
            .expect_err("malformed URL");
        assert!(!e.to_string().contains(PASSWORD), "{e}");
    }
    let e = RedisRateLimiter::builder("redis://127.0.0.1:1")
        .prefix("app:{x}:")
        .connect()
        .await
        .expect_err("a brace in the prefix breaks the hash tag");
    assert!(e.to_string().contains("prefix"), "{e}");
}

#[tokio::test]
async fn redis_down_at_start_is_not_fatal_and_is_used_once_up() {
    let mut server = OwnRedis::new(free_port(), Some(PASSWORD));
    let url = server.url();
    let limiter = RedisRateLimiter::connect(&url)
        .await
        .expect("created without Redis");
    assert_eq!(limiter.name(), "redis");
    assert_eq!(limiter.prefix(), DEFAULT_PREFIX);
    let debug = format!("{limiter:?}");
    assert!(!debug.contains(PASSWORD), "{debug}");
    assert!(
        debug.contains(&format!("127.0.0.1:{}", server.port)),
        "{debug}"
    );
    let builder = format!("{:?}", RedisRateLimiter::builder(&url));
    assert!(!builder.contains(PASSWORD), "{builder}");

    // Refused: an error, at once (the service's timeout is 100 ms).
    let id = entity_id();
    for _ in 0..3 {
        let start = Instant::now();
        let e = limiter
            .acquire(&id, &minute(5), 1)
            .await
            .expect_err("no Redis");
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        assert!(!e.to_string().contains(PASSWORD), "{e}");
        assert!(limiter.ping().await.is_err());
    }
    assert!(limiter.release(&id, &minute(5), 1).await.is_err());

    if server.start().await.is_none() {
        return;
    }
    // The same limiter, no restart.
    limiter.ping().await.expect("Redis is up");
    let RateDecision::Allowed(w) = limiter.acquire(&id, &minute(5), 2).await.unwrap() else {
        panic!("fresh window")
    };
    assert_eq!(w[0].remaining, 3);

    // Killed and back again: errors meanwhile, then it reconnects.
    server.kill();
    let start = Instant::now();
    assert!(limiter.acquire(&id, &minute(5), 1).await.is_err());
    assert!(limiter.acquire(&id, &minute(5), 1).await.is_err());
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    server.start().await.expect("restarted");
    let RateDecision::Allowed(w) = limiter
        .acquire(&id, &minute(5), 1)
        .await
        .expect("reconnected at the first call")
    else {
        panic!("a fresh Redis has no counters")
    };
    assert_eq!(w[0].remaining, 4);
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_it() {
    let mut server = OwnRedis::new(free_port(), Some(PASSWORD));
    if server.start().await.is_none() {
        return;
    }
    let wrong = "Wr0ng-pa55word";
    let limiter = RedisRateLimiter::connect(&format!("redis://:{wrong}@127.0.0.1:{}", server.port))
        .await
        .expect("created; the password is checked on use");
    let e = limiter
        .acquire(&entity_id(), &minute(5), 1)
        .await
        .expect_err("wrong password");
    let text = format!("{e} {e:?} {limiter:?}");
    assert!(!text.contains(wrong), "{text}");
    let right = RedisRateLimiter::connect(&server.url()).await.unwrap();
    right.ping().await.expect("right password");
}
