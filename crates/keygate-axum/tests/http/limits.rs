//! SPEC §12 over HTTP: rate limits and credits on protected routes and on
//! `/verify`, their 429s and headers, setting and clearing them through
//! the management routes, `POST /api-keys/{id}/credits`, the filters, and
//! a race between adding credits and using them.
//!
//! On the in-memory store (its `consume_credits` is the reference) with a
//! `ManualClock` at 2030-05-17T12:00:00Z: windows, refills and every
//! `Retry-After` are exact, and the clock moves only when a test says so.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::routing::get;
use axum::Router;
use keygate::{ApiKeyFilter, ApiKeyService, InMemoryRepository, ManualClock, Pepper, MAX_CREDITS};
use keygate_axum::{AppConfig, KeyVerifier, RequireScopes, Scoped, DEFAULT_ADMIN_SCOPE};
use serde_json::{json, Value};

use crate::audit::actions;
use crate::management::assert_entity;
use crate::support::{key, Call, Reply, PEPPER};

const START: &str = "2030-05-17T12:00:00Z";

/// The full app plus `/read` (scope `read`, cost 1), `/own` (the same,
/// its handler setting `RateLimit-Limit: 7`), `/export` (scope
/// `read`, cost 5) and `/typed` (`Scoped<Expensive>`, cost 5), over an
/// in-memory store and a manual clock.
struct App {
    service: ApiKeyService,
    clock: Arc<ManualClock>,
    router: Router,
    admin: String,
    admin_key_id: String,
}

keygate_axum::required_scopes!(Expensive = ["read"], cost = 5);

impl App {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::at(START.parse().unwrap()));
        let service = ApiKeyService::builder(InMemoryRepository::new())
            .pepper(Pepper::new(PEPPER).unwrap())
            .fast_hashing()
            .clock(clock.clone())
            .build()
            .unwrap();
        let (admin_entity, admin) = key(&service, "admin", &[DEFAULT_ADMIN_SCOPE]).await;
        async fn ok() -> &'static str {
            "ok"
        }
        async fn typed(Scoped(_, _): Scoped<Expensive>) -> &'static str {
            "typed"
        }
        // A handler that describes a limit of its own.
        async fn own() -> ([(&'static str, &'static str); 1], &'static str) {
            ([("ratelimit-limit", "7")], "own")
        }
        let protected = Router::new()
            .route("/read", get(ok))
            .route("/own", get(own))
            .route_layer(RequireScopes::new(service.clone(), ["read"]))
            .merge(
                Router::new()
                    .route("/export", get(ok))
                    .route_layer(RequireScopes::new(service.clone(), ["read"]).cost(5)),
            )
            .merge(
                Router::new()
                    .route("/typed", get(typed))
                    .with_state(KeyVerifier::new(service.clone())),
            );
        let router = keygate_axum::app(service.clone(), AppConfig::default()).merge(protected);
        Self {
            service,
            clock,
            router,
            admin,
            admin_key_id: admin_entity.key_id,
        }
    }

    fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    fn admin(&self, method: Method, uri: &str) -> Call {
        Call::new(method, uri).bearer(&self.admin)
    }

    /// Creates a key over HTTP with scope `read` and `limits` (the fields
    /// `rate_limits` and `credits`); returns its entity and plaintext.
    async fn create(&self, name: &str, limits: Value) -> (Value, String) {
        let mut body = json!({"name": name, "scopes": ["read"]});
        for (field, value) in limits.as_object().unwrap() {
            body[field] = value.clone();
        }
        let reply = self
            .admin(Method::POST, "/api-keys")
            .json(body)
            .send(&self.router)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let plain = reply.json["api_key"].as_str().unwrap().to_owned();
        (reply.json["entity"].clone(), plain)
    }

    async fn entity(&self, id: &Value) -> Value {
        let reply = self
            .admin(Method::GET, &format!("/api-keys/{}", id.as_str().unwrap()))
            .send(&self.router)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json
    }

    async fn remaining(&self, id: &Value) -> Value {
        self.entity(id).await["credits"]["remaining"].clone()
    }

    async fn call(&self, path: &str, key: &str) -> Reply {
        Call::get(path).bearer(key).send(&self.router).await
    }

    /// `POST /api-keys/verify` with `extra` fields (`cost`…).
    async fn verify(&self, key: &str, extra: Value) -> Reply {
        let mut body = json!({"api_key": key, "required_scopes": ["read"]});
        for (field, value) in extra.as_object().unwrap() {
            body[field] = value.clone();
        }
        Call::post("/api-keys/verify")
            .json(body)
            .send(&self.router)
            .await
    }

    async fn credits(&self, id: &str, body: Value) -> Reply {
        self.admin(Method::POST, &format!("/api-keys/{id}/credits"))
            .json(body)
            .send(&self.router)
            .await
    }

    async fn key_count(&self) -> u64 {
        self.service.count(&ApiKeyFilter::default()).await.unwrap()
    }
}

/// `[Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset]`.
fn limit_headers(reply: &Reply) -> [Option<&str>; 4] {
    [
        reply.header("retry-after"),
        reply.header("ratelimit-limit"),
        reply.header("ratelimit-remaining"),
        reply.header("ratelimit-reset"),
    ]
}

#[track_caller]
fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn a_full_window_is_429_with_retry_after_and_ratelimit_headers() {
    let app = App::new().await;
    let (_, plain) = app
        .create(
            "burst",
            json!({"rate_limits": [{"name": "burst", "limit": 2, "window_ms": 10_000}]}),
        )
        .await;
    let first = app.call("/read", &plain).await;
    assert_ok(&first);
    assert_eq!(
        limit_headers(&first),
        [None, Some("2"), Some("1"), Some("10")]
    );
    let second = app.call("/read", &plain).await;
    assert_eq!(
        limit_headers(&second),
        [None, Some("2"), Some("0"), Some("10")]
    );

    let refused = app.call("/read", &plain).await;
    refused.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(
        limit_headers(&refused),
        [Some("10"), Some("2"), Some("0"), Some("10")]
    );
    assert_eq!(refused.header("www-authenticate"), None);
    // The same refusal from /verify, headers included.
    let verify = app.verify(&plain, json!({})).await;
    verify.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(
        limit_headers(&verify),
        [Some("10"), Some("2"), Some("0"), Some("10")]
    );

    // Whole seconds, rounded up: 7.5 s left is 8, 1 ms left is 1.
    app.advance(2_500);
    let refused = app.call("/read", &plain).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limit_headers(&refused),
        [Some("8"), Some("2"), Some("0"), Some("8")]
    );
    app.advance(7_499);
    let refused = app.call("/read", &plain).await;
    assert_eq!(
        limit_headers(&refused),
        [Some("1"), Some("2"), Some("0"), Some("1")]
    );
    // The window closes; a new one opens with the next request.
    app.advance(1);
    let again = app.call("/read", &plain).await;
    assert_ok(&again);
    assert_eq!(
        limit_headers(&again),
        [None, Some("2"), Some("1"), Some("10")]
    );
}

#[tokio::test]
async fn successes_describe_the_tightest_window_and_only_for_rate_limited_keys() {
    let app = App::new().await;
    // No limits, or credits only: no RateLimit-* headers at all.
    let (_, unlimited) = app.create("free", json!({})).await;
    let (_, metered) = app
        .create("metered", json!({"credits": {"remaining": 5}}))
        .await;
    for plain in [&unlimited, &metered] {
        let reply = app.call("/read", plain).await;
        assert_ok(&reply);
        assert_eq!(limit_headers(&reply), [None; 4], "{:?}", reply.headers);
    }

    // The window with the least room left: the short one here.
    let (_, two) = app
        .create(
            "two",
            json!({"rate_limits": [
                {"name": "second", "limit": 3, "window_ms": 1_000},
                {"name": "minute", "limit": 100, "window_ms": 60_000},
            ]}),
        )
        .await;
    let reply = app.call("/read", &two).await;
    assert_eq!(
        limit_headers(&reply),
        [None, Some("3"), Some("2"), Some("1")]
    );
    app.advance(400);
    let reply = app.call("/read", &two).await;
    assert_eq!(
        limit_headers(&reply),
        [None, Some("3"), Some("1"), Some("1")]
    );

    // Equal room: the window that reopens last.
    let (_, tie) = app
        .create(
            "tie",
            json!({"rate_limits": [
                {"name": "a", "limit": 5, "window_ms": 10_000},
                {"name": "b", "limit": 5, "window_ms": 20_000},
            ]}),
        )
        .await;
    let reply = app.call("/read", &tie).await;
    assert_eq!(
        limit_headers(&reply),
        [None, Some("5"), Some("4"), Some("20")]
    );
    app.advance(2_500);
    let reply = app.call("/read", &tie).await;
    // 17.5 s left rounds up to 18.
    assert_eq!(
        limit_headers(&reply),
        [None, Some("5"), Some("3"), Some("18")]
    );

    // The management routes too, for an admin key with a rate limit.
    let (_, admin) = app
        .create(
            "limited admin",
            json!({
                "scopes": [DEFAULT_ADMIN_SCOPE],
                "rate_limits": [{"name": "admin", "limit": 3, "window_ms": 60_000}],
            }),
        )
        .await;
    let listed = Call::get("/api-keys")
        .bearer(&admin)
        .send(&app.router)
        .await;
    assert_ok(&listed);
    assert_eq!(
        limit_headers(&listed),
        [None, Some("3"), Some("2"), Some("60")]
    );
}

#[tokio::test]
async fn a_handler_that_sets_its_own_ratelimit_limit_keeps_its_headers() {
    let app = App::new().await;
    let (_, limited) = app
        .create(
            "limited",
            json!({"rate_limits": [{"name": "minute", "limit": 10, "window_ms": 60_000}]}),
        )
        .await;
    let own = app.call("/own", &limited).await;
    assert_ok(&own);
    assert_eq!(limit_headers(&own), [None, Some("7"), None, None]);
    // The request was still counted: the next one on another route says so.
    let read = app.call("/read", &limited).await;
    assert_eq!(
        limit_headers(&read),
        [None, Some("10"), Some("8"), Some("60")]
    );
}

#[tokio::test]
async fn a_route_cost_is_taken_per_request_and_a_refused_one_takes_nothing() {
    let app = App::new().await;
    let window =
        |limit: u64| json!({"rate_limits": [{"name": "w", "limit": limit, "window_ms": 60_000}]});
    let (_, ten) = app.create("ten", window(10)).await;
    let first = app.call("/export", &ten).await;
    assert_ok(&first);
    assert_eq!(first.header("ratelimit-remaining"), Some("5"));
    let second = app.call("/export", &ten).await;
    assert_ok(&second);
    assert_eq!(second.header("ratelimit-remaining"), Some("0"));
    app.call("/export", &ten)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    // The window is full for a cost of 1 too.
    app.call("/read", &ten)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");

    // 12: two exports leave 2, too little for a third, which takes nothing.
    let (_, twelve) = app.create("twelve", window(12)).await;
    for _ in 0..2 {
        assert_ok(&app.call("/export", &twelve).await);
    }
    let refused = app.call("/export", &twelve).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("ratelimit-remaining"), Some("0"));
    let cheap = app.call("/read", &twelve).await;
    assert_ok(&cheap);
    assert_eq!(cheap.header("ratelimit-remaining"), Some("1"));

    // The typed extractor takes its marker's cost.
    let (_, typed) = app.create("typed", window(10)).await;
    for _ in 0..2 {
        let reply = app.call("/typed", &typed).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (StatusCode::OK, "typed")
        );
    }
    let refused = app.call("/typed", &typed).await;
    refused.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(
        limit_headers(&refused),
        [Some("60"), Some("10"), Some("0"), Some("60")]
    );
}

#[test]
#[should_panic(expected = "above the maximum of 1000")]
fn a_route_cost_above_1000_is_refused_when_declared() {
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .fast_hashing()
        .build()
        .unwrap();
    let _ = RequireScopes::new(service, ["read"]).cost(1001);
}

#[tokio::test]
async fn verify_takes_the_cost_and_answers_the_usage() {
    let app = App::new().await;
    let (entity, plain) = app
        .create(
            "both",
            json!({
                "credits": {"remaining": 10},
                "rate_limits": [{"name": "burst", "limit": 5, "window_ms": 60_000}],
            }),
        )
        .await;
    let usage = |remaining: u64, room: u64, reset_ms: u64| {
        json!({"remaining": remaining, "rate_limits": [
            {"name": "burst", "limit": 5, "remaining": room, "reset_ms": reset_ms}
        ]})
    };

    let reply = app.verify(&plain, json!({"cost": 3})).await;
    assert_ok(&reply);
    let mut fields = reply.json.clone();
    let answered = fields.as_object_mut().unwrap().remove("usage").unwrap();
    assert_entity(&fields);
    assert_eq!(fields["id"], entity["id"]);
    assert_eq!(answered, usage(7, 2, 60_000));
    assert_eq!(fields["credits"]["remaining"], 7);
    // No headers on /verify's success: the usage is in the body.
    assert_eq!(limit_headers(&reply), [None; 4]);

    // Cost 0 checks and takes nothing.
    app.advance(1_000);
    let reply = app.verify(&plain, json!({"cost": 0})).await;
    assert_ok(&reply);
    assert_eq!(reply.json["usage"], usage(7, 2, 59_000));

    // 3 does not fit in the 2 left: refused, and no credit is taken.
    let refused = app.verify(&plain, json!({"cost": 3})).await;
    refused.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(
        limit_headers(&refused),
        [Some("59"), Some("5"), Some("0"), Some("59")]
    );
    assert_eq!(app.remaining(&entity["id"]).await, 7);

    // An integral number with a zero fraction is that integer.
    let reply = app.verify(&plain, json!({"cost": 2.0})).await;
    assert_ok(&reply);
    assert_eq!(reply.json["usage"], usage(5, 0, 59_000));
    // Cost 0 needs room for one more.
    let refused = app.verify(&plain, json!({"cost": 0})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);

    // Without limits: the usage says so; any cost up to 1000 passes.
    let (_, free) = app.create("free", json!({})).await;
    for cost in [json!({}), json!({"cost": 0}), json!({"cost": 1000})] {
        let reply = app.verify(&free, cost.clone()).await;
        assert_ok(&reply);
        assert_eq!(
            reply.json["usage"],
            json!({"remaining": null, "rate_limits": []}),
            "{cost}"
        );
    }
    // Without a cost, a request costs 1.
    let (_, three) = app
        .create("three", json!({"credits": {"remaining": 3}}))
        .await;
    let reply = app.verify(&three, json!({})).await;
    assert_eq!(reply.json["usage"]["remaining"], 2);

    for bad in [
        json!(1001),
        json!(-1),
        json!(2.5),
        json!("3"),
        json!(null),
        json!(1e30),
    ] {
        let reply = app.verify(&three, json!({ "cost": bad })).await;
        assert_eq!(reply.invalid_fields(), ["cost"], "{bad}");
        assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "cost"]));
    }
    // Every problem is named at once.
    let reply = Call::post("/api-keys/verify")
        .json(json!({"api_key": three, "required_scopes": ["Bad"], "cost": 5000}))
        .send(&app.router)
        .await;
    assert_eq!(reply.invalid_fields(), ["required_scopes.0", "cost"]);
    // None of the refusals took a credit.
    let reply = app.verify(&three, json!({"cost": 0})).await;
    assert_eq!(reply.json["usage"]["remaining"], 2);
}

#[tokio::test]
async fn used_up_credits_are_429_with_retry_after_only_when_a_refill_is_scheduled() {
    let app = App::new().await;
    let (_, plain) = app
        .create("two", json!({"credits": {"remaining": 2}}))
        .await;
    for _ in 0..2 {
        assert_ok(&app.call("/read", &plain).await);
    }
    let refused = app.call("/read", &plain).await;
    refused.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key usage exceeded");
    // No refill: nothing to wait for, so no Retry-After; no window either.
    assert_eq!(limit_headers(&refused), [None; 4]);
    let verify = app.verify(&plain, json!({})).await;
    verify.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key usage exceeded");
    assert_eq!(limit_headers(&verify), [None; 4]);

    // With a refill: until its next start (UTC), from 2030-05-17T12:00:00.
    for (interval, seconds) in [
        ("hourly", 3_600),
        ("daily", 12 * 3_600),
        ("monthly", (14 * 24 + 12) * 3_600),
    ] {
        let (_, plain) = app
            .create(
                interval,
                json!({"credits": {"remaining": 0, "refill_amount": 3, "refill_interval": interval}}),
            )
            .await;
        let refused = app.call("/read", &plain).await;
        refused.assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key usage exceeded");
        assert_eq!(
            refused.header("retry-after"),
            Some(seconds.to_string().as_str()),
            "{interval}"
        );
        assert_eq!(refused.header("ratelimit-limit"), None);
    }

    // Rounded up to whole seconds, then refilled on the boundary.
    let (entity, daily) = app
        .create(
            "daily",
            json!({"credits": {"remaining": 1, "refill_amount": 3, "refill_interval": "daily"}}),
        )
        .await;
    assert_eq!(
        entity["credits"],
        json!({"remaining": 1, "refill_amount": 3, "refill_interval": "daily",
               "last_refill_at": "2030-05-17T00:00:00Z"})
    );
    assert_ok(&app.call("/read", &daily).await);
    app.advance(30 * 60 * 1000 + 500);
    let refused = app.call("/read", &daily).await;
    assert_eq!(refused.header("retry-after"), Some("41400"));
    app.advance(41_399_499);
    let refused = app.call("/read", &daily).await;
    assert_eq!(refused.header("retry-after"), Some("1"));
    app.advance(1);
    let reply = app.verify(&daily, json!({})).await;
    assert_ok(&reply);
    assert_eq!(reply.json["usage"]["remaining"], 2);
    assert_eq!(
        reply.json["credits"]["last_refill_at"],
        "2030-05-18T00:00:00Z"
    );
}

/// A rate-limit refusal burns no credit, and a credit refusal gives its
/// window room back, over HTTP.
#[tokio::test]
async fn a_refusal_by_one_limit_takes_nothing_from_the_other() {
    let app = App::new().await;
    let (entity, plain) = app
        .create(
            "both",
            json!({
                "credits": {"remaining": 3},
                "rate_limits": [{"name": "burst", "limit": 2, "window_ms": 10_000}],
            }),
        )
        .await;
    let id = &entity["id"];
    for room in ["1", "0"] {
        let reply = app.call("/read", &plain).await;
        assert_ok(&reply);
        assert_eq!(reply.header("ratelimit-remaining"), Some(room));
    }
    app.call("/read", &plain)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(
        app.remaining(id).await,
        1,
        "a rate-limited request burns no credit"
    );

    app.advance(10_000);
    let reply = app.call("/read", &plain).await;
    assert_ok(&reply);
    assert_eq!(reply.header("ratelimit-remaining"), Some("1"));
    assert_eq!(app.remaining(id).await, 0);
    app.call("/read", &plain)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key usage exceeded");

    // Credits again: the window still has the room the refused request
    // gave back (one), and then none.
    assert_ok(&app.credits(id.as_str().unwrap(), json!({"set": 5})).await);
    let reply = app.call("/read", &plain).await;
    assert_ok(&reply);
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    app.call("/read", &plain)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key rate limit exceeded");
    assert_eq!(app.remaining(id).await, 4);
}

#[tokio::test]
async fn create_and_patch_set_replace_and_clear_the_limits() {
    let app = App::new().await;
    let windows = json!([
        {"name": "second", "limit": 10, "window_ms": 1_000},
        {"name": "api:day", "limit": 10_000, "window_ms": 86_400_000},
    ]);
    let (entity, plain) = app
        .create(
            "limited",
            json!({"rate_limits": windows, "credits": {"remaining": 50, "refill_amount": 100, "refill_interval": "hourly"}}),
        )
        .await;
    assert_entity(&entity);
    assert_eq!(entity["rate_limits"], windows);
    assert_eq!(
        entity["credits"],
        json!({"remaining": 50, "refill_amount": 100, "refill_interval": "hourly",
               "last_refill_at": "2030-05-17T12:00:00Z"})
    );
    // last_refill_at is keygate's: a value sent is ignored.
    let (ignored, _) = app
        .create(
            "sent",
            json!({"credits": {"remaining": 1, "last_refill_at": "2001-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(ignored["credits"]["last_refill_at"], Value::Null);
    // Integers written with a zero fraction are integers, nested too.
    let (floats, _) = app
        .create(
            "floats",
            json!({"credits": {"remaining": 5.0}, "rate_limits": [{"name": "w", "limit": 10.0, "window_ms": 1e3}]}),
        )
        .await;
    assert_eq!(floats["credits"]["remaining"], 5);
    assert_eq!(
        floats["rate_limits"],
        json!([{"name": "w", "limit": 10, "window_ms": 1000}])
    );

    let uri = format!("/api-keys/{}", entity["id"].as_str().unwrap());
    let patch = |body: Value| app.admin(Method::PATCH, &uri).json(body).send(&app.router);
    // Other fields leave the limits alone.
    let reply = patch(json!({"description": "d"})).await;
    assert_ok(&reply);
    assert_eq!(reply.json["rate_limits"], windows);
    assert_eq!(reply.json["credits"]["remaining"], 50);
    // Replacing.
    let reply = patch(json!({
        "rate_limits": [{"name": "one", "limit": 1, "window_ms": 5_000}],
        "credits": {"remaining": 2},
    }))
    .await;
    assert_ok(&reply);
    assert_eq!(
        reply.json["rate_limits"],
        json!([{"name": "one", "limit": 1, "window_ms": 5_000}])
    );
    assert_eq!(
        reply.json["credits"],
        json!({"remaining": 2, "refill_amount": null, "refill_interval": null, "last_refill_at": null})
    );
    // Verification sees the change at once.
    assert_ok(&app.call("/read", &plain).await);
    assert_eq!(
        app.call("/read", &plain).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // null clears: unlimited again, no headers.
    let reply = patch(json!({"rate_limits": null, "credits": null})).await;
    assert_ok(&reply);
    assert_eq!(reply.json["rate_limits"], Value::Null);
    assert_eq!(reply.json["credits"], Value::Null);
    for _ in 0..3 {
        let reply = app.call("/read", &plain).await;
        assert_ok(&reply);
        assert_eq!(limit_headers(&reply), [None; 4]);
    }
    let reply = app.verify(&plain, json!({})).await;
    assert_eq!(
        reply.json["usage"],
        json!({"remaining": null, "rate_limits": []})
    );
}

/// Each bad limit is a 422 naming the field (as `a.0.b`, like every other
/// field of the API), on create and on PATCH, and nothing is stored.
#[tokio::test]
async fn bad_limits_are_422_naming_the_field_and_nothing_is_stored() {
    let app = App::new().await;
    let (target, _) = app
        .create(
            "target",
            json!({"rate_limits": [{"name": "w", "limit": 1, "window_ms": 1_000}], "credits": {"remaining": 1}}),
        )
        .await;
    let keys_before = app.key_count().await;
    let window = |name: &str, limit: Value, window_ms: Value| json!({"name": name, "limit": limit, "window_ms": window_ms});
    let nine: Vec<Value> = (0..9)
        .map(|i| window(&format!("w{i}"), json!(1), json!(1_000)))
        .collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"rate_limits": [window("s", json!(1), json!(999))]}),
            "rate_limits.0.window_ms",
        ),
        (
            json!({"rate_limits": [window("s", json!(1), json!(1_000)), window("d", json!(1), json!(86_400_001))]}),
            "rate_limits.1.window_ms",
        ),
        (
            json!({"rate_limits": [window("s", json!(0), json!(1_000))]}),
            "rate_limits.0.limit",
        ),
        (
            json!({"rate_limits": [window("s", json!(-1), json!(1_000))]}),
            "rate_limits.0.limit",
        ),
        (json!({"rate_limits": nine}), "rate_limits"),
        (json!({"rate_limits": []}), "rate_limits"),
        (
            json!({"rate_limits": [window("s", json!(1), json!(1_000)), window("s", json!(2), json!(2_000))]}),
            "rate_limits.1.name",
        ),
        (
            json!({"rate_limits": [window("Bad Name", json!(1), json!(1_000))]}),
            "rate_limits.0.name",
        ),
        (
            json!({"rate_limits": [{"name": "s", "limit": 1}]}),
            "rate_limits.0.window_ms",
        ),
        (
            json!({"rate_limits": [{"name": "s", "limit": 1, "window_ms": 1_000, "burst": 2}]}),
            "rate_limits.0.burst",
        ),
        (json!({"credits": {"remaining": -1}}), "credits.remaining"),
        (json!({"credits": {"remaining": -5.0}}), "credits.remaining"),
        (json!({"credits": {"remaining": 2.5}}), "credits.remaining"),
        (json!({"credits": {"remaining": "5"}}), "credits.remaining"),
        (
            json!({"credits": {"remaining": MAX_CREDITS + 1}}),
            "credits.remaining",
        ),
        (json!({"credits": {}}), "credits.remaining"),
        (
            json!({"credits": {"remaining": 1, "refill_amount": 5, "refill_interval": "weekly"}}),
            "credits.refill_interval",
        ),
        (
            json!({"credits": {"remaining": 1, "refill_amount": 5}}),
            "credits.refill_interval",
        ),
        (
            json!({"credits": {"remaining": 1, "refill_amount": 5, "refill_interval": null}}),
            "credits.refill_interval",
        ),
        (
            json!({"credits": {"remaining": 1, "refill_interval": "daily"}}),
            "credits.refill_amount",
        ),
        (
            json!({"credits": {"remaining": 1, "refill_amount": 0, "refill_interval": "daily"}}),
            "credits.refill_amount",
        ),
        (
            json!({"credits": {"remaining": 1, "extra": true}}),
            "credits.extra",
        ),
        (json!({"credits": 5}), "credits"),
    ];
    let patch_uri = format!("/api-keys/{}", target["id"].as_str().unwrap());
    for (fields, field) in &cases {
        let mut create = json!({"name": "bad"});
        for (k, v) in fields.as_object().unwrap() {
            create[k] = v.clone();
        }
        let reply = app
            .admin(Method::POST, "/api-keys")
            .json(create)
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), [*field], "create {fields}");
        let reply = app
            .admin(Method::PATCH, &patch_uri)
            .json(fields.clone())
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), [*field], "patch {fields}");
    }
    let reply = app
        .admin(Method::POST, "/api-keys")
        .json(json!({"name": "bad", "rate_limits": [window("s", json!(1), json!(1))]}))
        .send(&app.router)
        .await;
    assert_eq!(
        reply.json["detail"][0]["loc"],
        json!(["body", "rate_limits", 0, "window_ms"])
    );
    assert_eq!(
        app.key_count().await,
        keys_before,
        "a refused create stored a key"
    );
    assert_eq!(
        app.entity(&target["id"]).await,
        target,
        "a refused PATCH changed the key"
    );
}

#[tokio::test]
async fn the_credits_route_sets_and_adds_atomically_and_refuses_bad_input() {
    let app = App::new().await;
    let (entity, plain) = app.create("free", json!({})).await;
    let id = entity["id"].as_str().unwrap();
    let events_before = actions(&app.events(id).await).len();

    // Adding to unlimited usage: 409, JSON detail, nothing changes.
    app.credits(id, json!({"add": 5})).await.assert_detail(
        StatusCode::CONFLICT,
        "The key has no credits (its usage is unlimited): set them with `set` first",
    );
    assert_eq!(app.entity(&entity["id"]).await["credits"], Value::Null);
    assert_eq!(actions(&app.events(id).await).len(), events_before);

    let reply = app.credits(id, json!({"set": 10})).await;
    assert_ok(&reply);
    assert_entity(&reply.json);
    assert_eq!(
        reply.json["credits"],
        json!({"remaining": 10, "refill_amount": null, "refill_interval": null, "last_refill_at": null})
    );
    for (body, remaining) in [
        (json!({"add": 5}), 15),
        (json!({"add": -100}), 0),
        (json!({"add": 3}), 3),
        (json!({"add": 0}), 3),
        (json!({"set": 2.0}), 2),
    ] {
        let reply = app.credits(id, body.clone()).await;
        assert_ok(&reply);
        assert_eq!(reply.json["credits"]["remaining"], remaining, "{body}");
    }
    // Seen by verification at once.
    assert_ok(&app.call("/read", &plain).await);
    assert_ok(&app.call("/read", &plain).await);
    app.call("/read", &plain)
        .await
        .assert_detail(StatusCode::TOO_MANY_REQUESTS, "API key usage exceeded");
    assert_ok(&app.credits(id, json!({"add": 1})).await);
    assert_ok(&app.call("/read", &plain).await);

    // `set` keeps the refill settings.
    let (refilled, _) = app
        .create(
            "refilled",
            json!({"credits": {"remaining": 1, "refill_amount": 100, "refill_interval": "hourly"}}),
        )
        .await;
    let reply = app
        .credits(refilled["id"].as_str().unwrap(), json!({"set": 7}))
        .await;
    assert_eq!(
        reply.json["credits"],
        json!({"remaining": 7, "refill_amount": 100, "refill_interval": "hourly",
               "last_refill_at": "2030-05-17T12:00:00Z"})
    );

    for (body, field) in [
        (json!({"set": 1, "add": 1}), ""),
        (json!({}), ""),
        (json!({"set": null}), "set"),
        (json!({"add": null, "set": 1}), "add"),
        (json!({"set": -1}), "set"),
        (json!({"set": MAX_CREDITS + 1}), "set"),
        (json!({"add": MAX_CREDITS + 1}), "add"),
        (json!({"add": -(MAX_CREDITS as i64) - 1}), "add"),
        (json!({"add": 1.5}), "add"),
        (json!({"add": "1"}), "add"),
        (json!({"set": 1, "bogus": 1}), "bogus"),
    ] {
        let reply = app.credits(id, body.clone()).await;
        assert_eq!(reply.invalid_fields(), [field], "{body}");
    }
    assert_eq!(app.credits(id, json!([1])).await.invalid_fields(), [""]);
    assert_eq!(app.remaining(&entity["id"]).await, 0);

    app.credits("0123456789abcdef0123456789abcdef", json!({"set": 1}))
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");
    app.credits("0123456789abcdef0123456789abcdef", json!({"add": 1}))
        .await
        .assert_detail(StatusCode::NOT_FOUND, "API key not found");

    // Admin only.
    let uri = format!("/api-keys/{id}/credits");
    Call::post(&uri)
        .json(json!({"set": 100}))
        .send(&app.router)
        .await
        .assert_detail(StatusCode::UNAUTHORIZED, "API key missing");
    let refused = Call::post(&uri)
        .bearer(&plain)
        .json(json!({"set": 100}))
        .send(&app.router)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(app.remaining(&entity["id"]).await, 0);

    // Each change is an update by the admin key (`add: 0` changed
    // nothing, and uses are not changes); the refusals wrote nothing.
    let events = app.events(id).await;
    let log = actions(&events);
    assert_eq!(log.len(), events_before + 6, "{log:?}");
    let mut set_to: Vec<u64> = events["items"].as_array().unwrap()[events_before..]
        .iter()
        .map(|e| {
            assert_eq!(e["action"], "update", "{e}");
            assert_eq!(e["actor"], app.admin_key_id.as_str(), "{e}");
            e["changes"]["credits"][1]["remaining"].as_u64().unwrap()
        })
        .collect();
    set_to.sort_unstable();
    assert_eq!(set_to, [0, 1, 2, 3, 10, 15]);
}

impl App {
    async fn events(&self, id: &str) -> Value {
        let reply = self
            .admin(Method::GET, &format!("/api-keys/{id}/events?limit=100"))
            .send(&self.router)
            .await;
        assert_ok(&reply);
        reply.json
    }
}

#[tokio::test]
async fn search_and_count_filter_on_limits() {
    let app = App::new().await;
    let window = json!([{"name": "w", "limit": 1, "window_ms": 1_000}]);
    app.create("k1", json!({"credits": {"remaining": 5}})).await;
    app.create(
        "k2",
        json!({"credits": {"remaining": 50}, "rate_limits": window}),
    )
    .await;
    app.create("k3", json!({"rate_limits": window})).await;
    app.create("k4", json!({})).await;
    for (filter, expected) in [
        (json!({"has_credits": true}), vec!["k1", "k2"]),
        (json!({"has_credits": false}), vec!["admin", "k3", "k4"]),
        (json!({"credits_below": 10}), vec!["k1"]),
        (json!({"credits_below": 51}), vec!["k1", "k2"]),
        (json!({"credits_below": 0}), vec![]),
        (json!({"credits_below": i64::MAX}), vec!["k1", "k2"]),
        (json!({"has_rate_limits": true}), vec!["k2", "k3"]),
        (
            json!({"has_rate_limits": false, "has_credits": false}),
            vec!["admin", "k4"],
        ),
        (
            json!({"has_rate_limits": null}),
            vec!["admin", "k1", "k2", "k3", "k4"],
        ),
    ] {
        let mut body = filter.clone();
        body["order_by"] = json!("name");
        body["order_desc"] = json!(false);
        let reply = app
            .admin(Method::POST, "/api-keys/search")
            .json(body.clone())
            .send(&app.router)
            .await;
        assert_ok(&reply);
        let names: Vec<&str> = reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, expected, "{filter}");
        let count = app
            .admin(Method::POST, "/api-keys/count")
            .json(body)
            .send(&app.router)
            .await;
        assert_eq!(count.json, json!({"total": expected.len()}), "{filter}");
    }
    for uri in ["/api-keys/search", "/api-keys/count"] {
        for bad in [
            json!(-1),
            json!(9_223_372_036_854_775_808_u64),
            json!("1"),
            json!(1.5),
        ] {
            let reply = app
                .admin(Method::POST, uri)
                .json(json!({ "credits_below": bad }))
                .send(&app.router)
                .await;
            assert_eq!(reply.invalid_fields(), ["credits_below"], "{uri} {bad}");
        }
        let reply = app
            .admin(Method::POST, uri)
            .json(json!({"has_credits": "yes"}))
            .send(&app.router)
            .await;
        assert_eq!(reply.invalid_fields(), ["has_credits"]);
    }
}

/// 20 `add: 5` and 100 verifications of cost 1 against 100 credits, all
/// released at once, for 25 rounds (a fresh key each). 100 credits cover
/// every verification in any order, so each of them passes, and the store
/// must end at exactly 100 + 20 × 5 − 100: a lost `add` or a lost use
/// shows. (A credits route that read the key and then wrote `set` failed
/// this in tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn adding_credits_races_with_using_them_and_every_count_is_exact() {
    const ADDS: usize = 20;
    const USES: usize = 100;
    const ROUNDS: usize = 25;
    let app = App::new().await;
    for round in 0..ROUNDS {
        let (entity, plain) = app
            .create(
                &format!("raced {round}"),
                json!({"credits": {"remaining": 100}}),
            )
            .await;
        let id = entity["id"].as_str().unwrap().to_owned();
        let start = Arc::new(tokio::sync::Barrier::new(ADDS + USES));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..ADDS + USES {
            let (router, admin, plain, id, start) = (
                app.router.clone(),
                app.admin.clone(),
                plain.clone(),
                id.clone(),
                start.clone(),
            );
            tasks.spawn(async move {
                start.wait().await;
                let reply = if i < ADDS {
                    Call::post(&format!("/api-keys/{id}/credits"))
                        .bearer(&admin)
                        .json(json!({"add": 5}))
                        .send(&router)
                        .await
                } else {
                    Call::post("/api-keys/verify")
                        .json(json!({"api_key": plain, "cost": 1}))
                        .send(&router)
                        .await
                };
                (i < ADDS, reply)
            });
        }
        let (mut added, mut used) = (0, 0);
        let mut left_after_use: Vec<u64> = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (is_add, reply) = done.unwrap();
            assert_ok(&reply);
            if is_add {
                added += 1;
            } else {
                used += 1;
                left_after_use.push(reply.json["usage"]["remaining"].as_u64().unwrap());
            }
        }
        assert_eq!((added, used), (ADDS, USES), "round {round}");
        let expected = 100 + 5 * added as u64 - used as u64;
        assert_eq!(expected, 100);
        assert_eq!(
            app.remaining(&entity["id"]).await,
            expected,
            "round {round}"
        );
        // The n-th use in the store (n = 1..=100), after k adds, leaves
        // 100 + 5k - n: each use took exactly one credit at its own turn,
        // so the answers' remainders modulo 5 are each 20 times 0..=4.
        let mut residues = [0usize; 5];
        for left in &left_after_use {
            assert!(*left < 200, "round {round}: {left_after_use:?}");
            residues[(*left % 5) as usize] += 1;
        }
        assert_eq!(residues, [USES / 5; 5], "round {round}: {left_after_use:?}");
        // One audit event per add, none per use.
        let events = app.events(&id).await;
        let log = actions(&events);
        assert_eq!(log.iter().filter(|a| **a == "update").count(), ADDS);
        assert_eq!(log.len(), ADDS + 1, "round {round}: {log:?}");
        // The key still serves its 100 credits, exactly.
        let check = app.verify(&plain, json!({"cost": 0})).await;
        assert_eq!(check.json["usage"]["remaining"], 100, "round {round}");
    }
    assert_eq!(app.key_count().await, 1 + ROUNDS as u64);
}
