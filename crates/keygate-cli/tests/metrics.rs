//! SPEC §14 on a real `keygate serve`: `GET /metrics` (admin key on the
//! main listener, or open on `--metrics-bind`), `x-request-id`, and the
//! log line of a refused request (key id and reason, never the secret).

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{http, Env, Server};

/// The series every scrape shows (SPEC §14).
const SPEC_NAMES: [&str; 7] = [
    "keygate_verifications_total",
    "keygate_verify_duration_seconds",
    "keygate_cache_hits_total",
    "keygate_cache_misses_total",
    "keygate_hash_queue_depth",
    "keygate_http_requests_total",
    "keygate_store_errors_total",
];

/// The value of `series` (name and labels exactly as rendered), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

fn verifications(text: &str, outcome: &str) -> f64 {
    sample(
        text,
        &format!("keygate_verifications_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or_else(|| panic!("no {outcome} series in:\n{text}"))
}

/// `POST /api-keys/verify` of `key`; returns the status.
fn verify(addr: &str, key: &str) -> u16 {
    http(
        addr,
        "POST",
        "/api-keys/verify",
        None,
        Some(&json!({"api_key": key})),
    )
    .status
}

/// A GET with extra header lines; returns (status, head, body).
fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// The value of header `name` in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Waits (at most 10 s) for a log line containing every one of `parts`.
fn log_line(server: &Server, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = server.logs();
        if let Some(line) = logs
            .lines()
            .find(|line| parts.iter().all(|p| line.contains(p)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} in:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The secret of a plaintext key `ak_v1-<key id>-<secret>`.
fn secret_of(key: &str) -> &str {
    key.rsplit('-').next().unwrap()
}

#[test]
fn metrics_count_verifications_and_need_the_admin_key() {
    let env = Env::new();
    let (_, admin) = env.create("admin", &["--scopes", "keygate:admin"]);
    let (reader_entity, reader) = env.create("reader", &["--scopes", "read"]);
    let server = Server::start(&env, |_| {});
    let addr = server.addr.clone();

    assert_eq!(verify(&addr, &reader), 200);
    // Right key id, wrong secret; then a key id nobody has.
    let key_id = reader_entity["key_id"].as_str().unwrap();
    let wrong = format!("ak_v1-{key_id}-{}", "W".repeat(64));
    assert_eq!(verify(&addr, &wrong), 401);
    let unknown = format!("ak_v1-0123456789abcdef-{}", "U".repeat(64));
    assert_eq!(verify(&addr, &unknown), 401);
    assert_eq!(http(&addr, "GET", "/no/such/path", None, None).status, 404);

    // Admin-protected like the management routes.
    let anonymous = http(&addr, "GET", "/metrics", None, None);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(
        http(&addr, "GET", "/metrics", Some(&reader), None).status,
        403
    );

    let scrape = http(&addr, "GET", "/metrics", Some(&admin), None);
    assert_eq!(scrape.status, 200, "{scrape:?}");
    assert!(
        header(&scrape.headers, "content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{}",
        scrape.headers
    );
    let text = &scrape.body;
    for name in SPEC_NAMES {
        assert!(text.contains(name), "{name} missing in:\n{text}");
    }
    assert!(text.contains("keygate_verify_duration_seconds_bucket{le="));
    assert_eq!(sample(text, "keygate_store_up"), Some(1.0), "{text}");
    assert_eq!(sample(text, "keygate_rate_limit_degraded"), Some(0.0));
    assert_eq!(sample(text, "keygate_hash_queue_depth"), Some(0.0));
    let ok = verifications(text, "ok");
    assert!(ok >= 1.0, "{text}");
    assert!(verifications(text, "invalid") >= 1.0, "{text}");
    assert!(verifications(text, "not_found") >= 1.0, "{text}");
    // The anonymous scrape: a refusal like any other.
    assert!(verifications(text, "missing") >= 1.0, "{text}");
    // Route templates, never raw paths; unknown paths share one label.
    let series = |route: &str, status: u16| {
        sample(
            text,
            &format!(
                "keygate_http_requests_total{{method=\"POST\",route=\"{route}\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(series("/api-keys/verify", 200), Some(1.0), "{text}");
    assert_eq!(series("/api-keys/verify", 401), Some(2.0), "{text}");
    assert!(text.contains(
        "keygate_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1"
    ));
    assert!(!text.contains("/no/such/path"), "{text}");

    // The counter moves with the next verification.
    assert_eq!(verify(&addr, &reader), 200);
    let again = http(&addr, "GET", "/metrics", Some(&admin), None).body;
    // The scrape above verified the admin key too.
    assert!(verifications(&again, "ok") >= ok + 2.0, "{again}");

    // Documented with the other routes.
    let doc = http(&addr, "GET", "/openapi.json", None, None).json();
    let op = &doc["paths"]["/metrics"]["get"];
    assert!(op["responses"]["200"]["content"]
        .as_object()
        .unwrap()
        .keys()
        .any(|t| t.starts_with("text/plain")));
    for status in ["401", "403"] {
        assert!(op["responses"].get(status).is_some(), "{op}");
    }
}

#[test]
fn with_metrics_bind_metrics_are_served_there_alone_and_open() {
    let env = Env::new();
    let (_, admin) = env.create("admin", &["--scopes", "keygate:admin"]);
    let mut server = Server::start(&env, |cmd| {
        cmd.args(["--metrics-bind", "127.0.0.1:0"]);
    });
    let line = server.stdout_line();
    let metrics_addr = line
        .trim()
        .strip_prefix("metrics on http://")
        .unwrap_or_else(|| panic!("second stdout line: {line:?}"))
        .to_owned();
    assert_ne!(metrics_addr, server.addr);

    assert_eq!(verify(&server.addr, &admin), 200);
    let scrape = http(&metrics_addr, "GET", "/metrics", None, None);
    assert_eq!(scrape.status, 200, "{scrape:?}");
    for name in SPEC_NAMES {
        assert!(scrape.body.contains(name), "{name} in:\n{}", scrape.body);
    }
    assert!(verifications(&scrape.body, "ok") >= 1.0);
    // Nothing else there; and no /metrics on the main listener, not even
    // for the admin key, nor in its OpenAPI document.
    assert_eq!(
        http(&metrics_addr, "GET", "/api-keys", None, None).status,
        404
    );
    let main = http(&server.addr, "GET", "/metrics", Some(&admin), None);
    assert_eq!(main.status, 404, "{main:?}");
    let doc = http(&server.addr, "GET", "/openapi.json", None, None).json();
    assert!(doc["paths"].get("/metrics").is_none());
}

#[test]
fn every_request_gets_a_request_id_echoed_and_logged() {
    let env = Env::new();
    let server = Server::start(&env, |_| {});

    let (status, head, _) = get_with(&server.addr, "/healthz", &[]);
    assert_eq!(status, 200);
    let generated = header(&head, "x-request-id").expect("generated x-request-id");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    log_line(
        &server,
        &["request", &format!("request_id=\"{generated}\"")],
    );

    let (status, head, _) = get_with(&server.addr, "/healthz", &[("X-Request-Id", "abc-123")]);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "x-request-id").as_deref(), Some("abc-123"));
    log_line(&server, &["request", "request_id=\"abc-123\""]);

    // Errors too, and an id unfit for a log line is replaced.
    let (status, head, _) = get_with(&server.addr, "/missing", &[("x-request-id", "a\"b")]);
    assert_eq!(status, 404);
    let replaced = header(&head, "x-request-id").unwrap();
    assert_eq!(replaced.len(), 36, "{replaced}");
}

#[test]
fn a_refused_key_is_logged_with_its_key_id_and_reason_never_its_secret() {
    let env = Env::new();
    let (reader_entity, reader) = env.create("reader", &["--scopes", "read"]);
    let key_id = reader_entity["key_id"].as_str().unwrap().to_owned();
    let server = Server::start(&env, |_| {});
    let addr = server.addr.clone();

    // A real key without the admin scope, on an admin route.
    let (status, _, _) = get_with(
        &addr,
        "/api-keys",
        &[
            ("Authorization", &format!("Bearer {reader}")),
            ("x-request-id", "refused-1"),
        ],
    );
    assert_eq!(status, 403);
    let line = log_line(&server, &["request_id=\"refused-1\""]);
    assert!(line.contains(&format!("key_id=\"{key_id}\"")), "{line}");
    assert!(line.contains("outcome=\"insufficient_scope\""), "{line}");
    assert!(line.contains("status=403"), "{line}");

    // The right key id with a wrong secret.
    let wrong_secret = "WrongSecret".repeat(6);
    let wrong = format!("ak_v1-{key_id}-{wrong_secret}");
    let (status, _, _) = get_with(
        &addr,
        "/api-keys",
        &[
            ("Authorization", &format!("Bearer {wrong}")),
            ("x-request-id", "refused-2"),
        ],
    );
    assert_eq!(status, 401);
    let line = log_line(&server, &["request_id=\"refused-2\""]);
    assert!(line.contains(&format!("key_id=\"{key_id}\"")), "{line}");
    assert!(line.contains("outcome=\"invalid\""), "{line}");

    // Not even parseable: the reason alone.
    let (status, _, _) = get_with(
        &addr,
        "/api-keys",
        &[
            ("Authorization", "Bearer not-a-key"),
            ("x-request-id", "refused-3"),
        ],
    );
    assert_eq!(status, 401);
    let line = log_line(&server, &["request_id=\"refused-3\""]);
    assert!(line.contains("outcome=\"invalid\""), "{line}");
    assert!(!line.contains("key_id"), "{line}");

    let logs = server.logs();
    for secret in [secret_of(&reader), &wrong_secret] {
        assert!(!logs.contains(secret), "a secret in the logs:\n{logs}");
    }
}

#[test]
fn json_logs_carry_the_same_fields() {
    let env = Env::new();
    let (reader_entity, reader) = env.create("reader", &["--scopes", "read"]);
    let server = Server::start(&env, |cmd| {
        cmd.args(["--log-format", "json"]);
    });
    let (status, _, _) = get_with(
        &server.addr,
        "/api-keys",
        &[
            ("Authorization", &format!("Bearer {reader}")),
            ("x-request-id", "json-1"),
        ],
    );
    assert_eq!(status, 403);
    let line = log_line(&server, &["json-1"]);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let fields = &v["fields"];
    assert_eq!(fields["message"], "request", "{line}");
    assert_eq!(fields["request_id"], "json-1");
    assert_eq!(fields["key_id"], reader_entity["key_id"]);
    assert_eq!(fields["outcome"], "insufficient_scope");
    assert_eq!(fields["status"], 403);
    assert!(fields["micros"].is_u64(), "{line}");
    assert!(!server.logs().contains(secret_of(&reader)));
}
