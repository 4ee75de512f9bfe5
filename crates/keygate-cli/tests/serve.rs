//! `keygate serve` as a real process: HTTP API, health, SIGTERM with a
//! clean exit and persisted `last_used_at`, production refusal.

mod support;

use serde_json::json;
use support::{http, Env, Server, PEPPER};

#[test]
fn serve_drives_the_management_api_and_flushes_on_sigterm() {
    let env = Env::new();
    let (admin_entity, admin) = env.create("admin", &["--scopes", "keygate:admin"]);
    let server = Server::start(&env, |_| {});
    let addr = server.addr.clone();

    let health = http(&addr, "GET", "/healthz", None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));

    // Admin-protected: no key, wrong key, key without the admin scope.
    let denied = http(&addr, "GET", "/api-keys", None, None);
    assert_eq!(denied.status, 401, "{denied:?}");
    assert_eq!(denied.json()["detail"], "API key missing");

    // Create a scoped key over HTTP with the admin key.
    let created = http(
        &addr,
        "POST",
        "/api-keys",
        Some(&admin),
        Some(&json!({"name": "reader", "scopes": ["read"]})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let reader = created.json()["api_key"].as_str().unwrap().to_owned();
    let reader_id = created.json()["entity"]["id"].as_str().unwrap().to_owned();

    let forbidden = http(&addr, "GET", "/api-keys", Some(&reader), None);
    assert_eq!(forbidden.status, 403, "{forbidden:?}");

    let listed = http(&addr, "GET", "/api-keys", Some(&admin), None);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json().as_array().unwrap().len(), 2);

    let verified = http(
        &addr,
        "POST",
        "/api-keys/verify",
        None,
        Some(&json!({"api_key": reader, "required_scopes": ["read"]})),
    );
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.json()["id"], reader_id.as_str());
    let missing = http(
        &addr,
        "POST",
        "/api-keys/verify",
        None,
        Some(&json!({"api_key": reader, "required_scopes": ["read", "write"]})),
    );
    assert_eq!(missing.status, 403);

    // A key created through the CLI on the same file is seen at once.
    let (cli_entity, _) = env.create("from-cli", &[]);
    let got = http(
        &addr,
        "GET",
        &format!("/api-keys/{}", cli_entity["id"].as_str().unwrap()),
        Some(&admin),
        None,
    );
    assert_eq!(got.status, 200);

    let openapi = http(&addr, "GET", "/openapi.json", None, None);
    assert_eq!(openapi.status, 200);
    assert!(openapi.json()["paths"]["/api-keys/verify"].is_object());
    let mut docs = http(&addr, "GET", "/docs", None, None);
    if (300..400).contains(&docs.status) {
        let location = docs
            .headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("location: ")
                    .or_else(|| l.strip_prefix("Location: "))
            })
            .expect("redirect location")
            .to_owned();
        docs = http(&addr, "GET", &location, None, None);
    }
    assert_eq!(docs.status, 200, "{docs:?}");

    let (code, logs) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "clean exit: {logs}");
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(
        logs.contains("pending last_used_at values written"),
        "{logs}"
    );
    for secret in [admin.as_str(), reader.as_str(), PEPPER] {
        assert!(!logs.contains(secret), "a secret reached the logs: {logs}");
    }

    // The uses recorded by the server were written before it exited.
    let reader_row = env.json(&["get", &reader_id]);
    assert!(reader_row["last_used_at"].is_string(), "{reader_row}");
    let admin_row = env.json(&["get", admin_entity["id"].as_str().unwrap()]);
    assert!(admin_row["last_used_at"].is_string(), "{admin_row}");
}

#[test]
fn sigint_also_stops_cleanly_and_logs_can_be_json() {
    let env = Env::new();
    let server = Server::start(&env, |cmd| {
        cmd.args(["--log-format", "json"]);
    });
    assert_eq!(
        http(&server.addr, "GET", "/healthz?x=1", None, None).status,
        200
    );
    let (code, logs) = server.stop(libc::SIGINT);
    assert_eq!(code, Some(0));
    assert!(logs.contains("SIGINT"), "{logs}");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    assert!(
        !logs.contains("x=1"),
        "query strings are not logged: {logs}"
    );
}

#[test]
fn a_request_in_flight_at_sigterm_is_answered_before_exit() {
    use std::io::{Read, Write};
    let env = Env::new();
    let (entity, key) = env.create("slow", &["--scopes", "read"]);
    let server = Server::start(&env, |_| {});

    // Headers and half the body now, the rest after the signal: the server
    // is inside the request when it is told to stop.
    let body = json!({"api_key": key, "required_scopes": ["read"]}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    // A first, complete request on the same keep-alive connection proves
    // the server has accepted it before the signal.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut warm = [0u8; 256];
    let mut head = String::new();
    while !head.ends_with("{\"status\":\"ok\"}") {
        let n = stream.read(&mut warm).unwrap();
        assert!(n > 0, "connection closed: {head}");
        head.push_str(&String::from_utf8_lossy(&warm[..n]));
    }
    write!(
        stream,
        "POST /api-keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(300));
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let (code, logs) = server.wait();
    assert_eq!(code, Some(0), "{logs}");
    let row = env.json(&["get", entity["id"].as_str().unwrap()]);
    assert!(
        row["last_used_at"].is_string(),
        "use written at shutdown: {row}"
    );
}

#[test]
fn a_request_that_never_completes_does_not_block_shutdown() {
    use std::io::Write;
    let env = Env::new();
    let server = Server::start(&env, |cmd| {
        cmd.args(["--shutdown-timeout", "1"]);
    });
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(b"POST /api-keys/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let started = std::time::Instant::now();
    let (code, logs) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{logs}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(logs.contains("stopping without them"), "{logs}");
}

#[test]
fn placeholder_pepper_warns_loudly_and_production_refuses_it() {
    let env = Env::new();
    let server = Server::start(&env, |cmd| {
        cmd.env_remove("API_KEY_PEPPER");
    });
    let (code, logs) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
    assert!(
        logs.contains("placeholder pepper") && logs.contains("WARN"),
        "{logs}"
    );

    let refusals = [
        support::bare_cmd()
            .env("DATABASE_URL", &env.db_url)
            .args(["serve", "--bind", "127.0.0.1:0", "--production"])
            .output()
            .unwrap(),
        support::bare_cmd()
            .env("DATABASE_URL", &env.db_url)
            .env("KEYGATE_ENV", "production")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()
            .unwrap(),
    ];
    for out in refusals {
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "never started listening");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to start") && err.contains("API_KEY_PEPPER"),
            "{err}"
        );
    }

    // With a real pepper, production mode starts.
    let server = Server::start(&env, |cmd| {
        cmd.arg("--production");
    });
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).status,
        200
    );
    let (code, _) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
}

#[test]
fn with_json_the_address_is_printed_as_json() {
    use std::io::BufRead;
    let env = Env::new();
    let mut child = std::process::Command::new(support::BIN)
        .env("DATABASE_URL", &env.db_url)
        .env("API_KEY_PEPPER", PEPPER)
        .args(["--json", "serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        v["listening"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{v}"
    );
}

#[test]
fn a_port_in_use_fails_with_exit_1() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.cmd().args(["serve", "--bind", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
}
