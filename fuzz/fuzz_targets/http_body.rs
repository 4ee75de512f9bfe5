//! The HTTP body path of keygate-axum, from outside the crate: the whole
//! `keygate_axum::app(...)` driven with `tower::ServiceExt::oneshot`, an
//! in-memory store, HMAC hashing.
//!
//! Input: the first byte picks the request (`byte % 8`; the seeds use the
//! ASCII digits `0`..`7`); when the next byte is `?`, the query string runs
//! up to the first `\n`; the rest is the body (sent as `application/json`).
//!
//! | byte | request (open app unless noted) |
//! |---|---|
//! | 0 | `POST /api-keys/search` |
//! | 1 | `PATCH /api-keys/{id}` of an existing key |
//! | 2 | `POST /api-keys/count` |
//! | 3 | `POST /api-keys` (the key created is deleted again) |
//! | 4 | `POST /api-keys/verify` |
//! | 5 | `POST /api-keys/{id}/rotate` of an existing key |
//! | 6 | `GET /api-keys` (only the query is used) |
//! | 7 | `GET /api-keys` on the admin-protected app, the rest as `Authorization` |
//!
//! Invariants checked: nothing panics; never a 5xx; every answer other than
//! 204 has a JSON body; a 2xx `PATCH` answers the key, with its own id.
#![no_main]

use std::cell::RefCell;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use keygate::{ApiKeyService, InMemoryRepository, NewApiKey, Pepper, Secret};
use keygate_axum::AppConfig;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Executions before the store (and its growing audit log) starts afresh.
const REBUILD_EVERY: u32 = 20_000;

/// The admin key of the protected app, so that a seed can present it.
const _ADMIN_KEY: &str = "ak_v1-00000000000000aa-AdminSecret0123456789";

struct World {
    rt: tokio::runtime::Runtime,
    service: ApiKeyService,
    open: Router,
    protected: Router,
    target_id: String,
    runs: u32,
}

fn build(rt: tokio::runtime::Runtime) -> World {
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .pepper(Pepper::new("fuzzing-pepper-not-a-secret").unwrap())
        .fast_hashing()
        .hash_threads(1)
        .build()
        .expect("service");
    let target_id = rt.block_on(async {
        let admin = NewApiKey {
            key_id: Some("00000000000000aa".into()),
            secret: Some(Secret::parse("AdminSecret0123456789").unwrap()),
            ..NewApiKey::named("admin").with_scopes(["keygate:admin"])
        };
        service.create(admin).await.expect("admin key");
        let target = NewApiKey {
            key_id: Some("0123456789abcdef".into()),
            secret: Some(Secret::parse("TargetSecret0123456789").unwrap()),
            ..NewApiKey::named("target")
                .with_scopes(["read", "write"])
                .owned_by("team-1")
        };
        let (entity, _) = service.create(target).await.expect("target key");
        entity.id
    });
    let open = keygate_axum::app(
        service.clone(),
        AppConfig::default()
            .open_without_authentication()
            .without_docs(),
    );
    let protected = keygate_axum::app(service.clone(), AppConfig::default().without_docs());
    World {
        rt,
        service,
        open,
        protected,
        target_id,
        runs: 0,
    }
}

/// `KEYGATE_FUZZ_VERBOSE=1` prints each request and its answer (for triage:
/// `cargo fuzz run http_body INPUT` replays one input).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("KEYGATE_FUZZ_VERBOSE").is_some())
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fn split(data: &[u8]) -> (u8, &str, &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return (0, "", &[]);
    };
    if rest.first() == Some(&b'?') {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let query = std::str::from_utf8(&rest[..end]).unwrap_or("");
        (selector, query, rest.get(end + 1..).unwrap_or(&[]))
    } else {
        (selector, "", rest)
    }
}

fn run_one(world: &mut World, data: &[u8]) {
    let (selector, query, body) = split(data);
    let id = world.target_id.clone();
    let (method, path, protected) = match selector % 8 {
        0 => (Method::POST, "/api-keys/search".to_owned(), false),
        1 => (Method::PATCH, format!("/api-keys/{id}"), false),
        2 => (Method::POST, "/api-keys/count".to_owned(), false),
        3 => (Method::POST, "/api-keys".to_owned(), false),
        4 => (Method::POST, "/api-keys/verify".to_owned(), false),
        5 => (Method::POST, format!("/api-keys/{id}/rotate"), false),
        6 => (Method::GET, "/api-keys".to_owned(), false),
        _ => (Method::GET, "/api-keys".to_owned(), true),
    };
    let uri = format!("{path}{query}");
    let mut request = Request::builder().method(method.clone()).uri(&uri);
    let body = if protected {
        // The rest is the Authorization header; skip what no client could send.
        match header::HeaderValue::from_bytes(body) {
            Ok(value) => request = request.header(header::AUTHORIZATION, value),
            Err(_) => return,
        }
        Body::empty()
    } else {
        request = request.header(header::CONTENT_TYPE, "application/json");
        Body::from(body.to_vec())
    };
    // A query string that is not a valid URI never reaches the server.
    let Ok(request) = request.body(body) else {
        return;
    };
    let router = if protected {
        world.protected.clone()
    } else {
        world.open.clone()
    };
    let service = world.service.clone();
    world.rt.block_on(async move {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let text = String::from_utf8_lossy(&bytes);
        if verbose() {
            eprintln!("{method} {uri} -> {status} {text}");
        }
        assert!(
            !status.is_server_error(),
            "{method} {uri} answered {status}: {text}"
        );
        if status == StatusCode::NO_CONTENT {
            return;
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{method} {uri} answered {status} with non-JSON ({e}): {text}")
        });
        if status.is_success() && method == Method::PATCH {
            assert_eq!(json["id"], serde_json::Value::from(id.as_str()), "{text}");
        }
        if status.is_success() && selector % 8 == 3 {
            // Keep the store small: drop the key just created.
            let created = json["entity"]["id"]
                .as_str()
                .expect("created id")
                .to_owned();
            service
                .delete(&created)
                .await
                .expect("delete the created key");
        }
    });
}

fuzz_target!(|data: &[u8]| {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let needs_build = slot.as_ref().is_none_or(|w| w.runs >= REBUILD_EVERY);
        if needs_build {
            let rt = match slot.take() {
                Some(old) => old.rt,
                None => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime"),
            };
            *slot = Some(build(rt));
        }
        let world = slot.as_mut().unwrap();
        world.runs += 1;
        run_one(world, data);
    });
});
