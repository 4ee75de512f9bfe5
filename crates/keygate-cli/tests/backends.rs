//! The same command sequence on PostgreSQL and MySQL/MariaDB, each in a
//! fresh database. Skipped (with a note) when a server is not reachable,
//! unless CI=true, where a missing server is a failure.

#[path = "support/fresh.rs"]
mod fresh;
mod support;

use fresh::{with_fresh_database, Backend, Fresh, MYSQL_URL, POSTGRES_URL};
use support::{http, names, Env, Server};

fn command_sequence(env: &Env, _: &Fresh) {
    assert_eq!(env.json(&["migrate"]), serde_json::json!({"status": "ok"}));
    let (admin, admin_key) = env.create("admin", &["--scopes", "keygate:admin"]);
    let (reader, reader_key) = env.create("reader", &["--scopes", "read"]);
    env.create("writer", &["--scopes", "read,write", "--inactive"]);

    assert_eq!(names(&env.json(&["list"])), ["writer", "reader", "admin"]);
    let page = env.json(&[
        "search",
        "--scopes-contain-any",
        "read",
        "--order-by",
        "name",
        "--asc",
    ]);
    assert_eq!(names(&page["items"]), ["reader", "writer"]);
    assert_eq!(page["total"], 2);
    assert_eq!(env.json(&["count", "--active"])["total"], 2);
    assert_eq!(env.json(&["count", "--name-contains", "RITE"])["total"], 1);

    env.json(&["verify", &admin_key, "--scopes", "keygate:admin"]);
    let reader_id = reader["id"].as_str().unwrap();
    env.json(&["verify", &reader_key, "--scopes", "read"]);
    assert!(env.json(&["get", reader_id])["last_used_at"].is_string());
    assert_eq!(env.json(&["count", "--used"])["total"], 2);

    env.json(&["deactivate", reader_id]);
    let (_, err) = env.fails(&["verify", &reader_key], 1);
    assert_eq!(err, "keygate: API key inactive\n");
    let updated = env.json(&[
        "update",
        reader_id,
        "--active",
        "--scopes",
        "read,api:write",
    ]);
    assert_eq!(updated["scopes"], serde_json::json!(["read", "api:write"]));
    let owned = env.json(&[
        "update",
        reader_id,
        "--owner-id",
        "team-1",
        "--meta",
        r#"{"plan":"pro"}"#,
    ]);
    assert_eq!(owned["meta"], serde_json::json!({"plan": "pro"}));
    assert_eq!(env.json(&["count", "--owner-id", "team-1"])["total"], 1);
    let key_id = reader["key_id"].as_str().unwrap();
    assert_eq!(env.json(&["get", key_id])["id"], reader_id);
    let rotated = env.json(&["--actor", "alice", "rotate", reader_id, "--grace", "1h"]);
    let new_key = rotated["api_key"].as_str().unwrap();
    env.json(&["verify", new_key]);
    env.json(&["verify", &reader_key]);
    // The last admin key is kept unless --force (its look-up by scope runs
    // in this store).
    let admin_id = admin["id"].as_str().unwrap();
    let (_, err) = env.fails(&["delete", admin_id], 1);
    assert!(err.contains("last active admin key"), "{err}");
    env.json(&["delete", admin_id, "--force"]);
    // As over HTTP: a deleted key is invalid (its key id is unknown).
    let (_, err) = env.fails(&["verify", &admin_key], 1);
    assert!(
        err.starts_with("keygate: API key invalid (no key with key id "),
        "{err}"
    );
    let events = env.json(&["events", reader_id]);
    let actions: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["create", "deactivate", "update", "update", "rotate"]
    );
    assert_eq!(events["items"][4]["actor"], "alice");
    assert_eq!(
        env.json(&["events", admin["id"].as_str().unwrap()])["total"],
        2
    );
    assert_eq!(env.json(&["events", "--action", "create"])["total"], 3);
    // A table for people works the same on every backend.
    assert!(env.ok(&["list"]).starts_with("ID"));
}

#[test]
fn every_command_on_postgres() {
    with_fresh_database(
        Backend::Postgres,
        "KEYGATE_TEST_POSTGRES_URL",
        POSTGRES_URL,
        command_sequence,
    );
}

#[test]
fn every_command_on_mysql() {
    with_fresh_database(
        Backend::MySql,
        "KEYGATE_TEST_MYSQL_URL",
        MYSQL_URL,
        command_sequence,
    );
}

#[test]
fn serve_on_postgres_reports_the_store_in_readyz_not_healthz() {
    with_fresh_database(
        Backend::Postgres,
        "KEYGATE_TEST_POSTGRES_URL",
        POSTGRES_URL,
        |env, fresh| {
            // No key is used here, so nothing is pending at shutdown (a
            // pending last_used_at that cannot be written makes serve exit 1).
            let server = Server::start(env, |_| {});
            for path in ["/healthz", "/readyz"] {
                assert_eq!(http(&server.addr, "GET", path, None, None).status, 200);
            }

            fresh.drop_under_running_clients();
            let down = http(&server.addr, "GET", "/readyz", None, None);
            assert_eq!(down.status, 503, "{down:?}");
            assert_eq!(down.json()["status"], "unavailable");
            // Liveness does not depend on the store.
            assert_eq!(
                http(&server.addr, "GET", "/healthz", None, None).status,
                200
            );

            let (code, logs) = server.stop(libc::SIGTERM);
            assert_eq!(code, Some(0), "{logs}");
        },
    );
}

/// One raw HTTP/1.1 exchange: status, headers (as sent), body.
fn exchange(addr: &str, request: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head[9..12].parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// The `keygate_session=…` pair of a response's `Set-Cookie`.
fn session_cookie(headers: &str) -> String {
    let line = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .unwrap_or_else(|| panic!("no cookie in {headers}"));
    line.split(';').next().unwrap().to_owned()
}

/// The dashboard keeps its sessions in the keys' database on PostgreSQL and
/// MySQL too: sign in with a form (CSRF token from the login page), then
/// the list answers on the session cookie alone.
fn dashboard_sign_in(env: &Env, _: &Fresh) {
    let (_, admin_key) = env.create("admin", &["--scopes", "keygate:admin"]);
    let server = Server::start(env, |_| {});
    let addr = &server.addr;
    let (status, headers, body) = exchange(
        addr,
        "GET /ui/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{headers}{body}");
    let cookie = session_cookie(&headers);
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf field")
        .to_owned();
    let form = format!("api_key={admin_key}&csrf={csrf}");
    let (status, headers, body) = exchange(
        addr,
        &format!(
            "POST /ui/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 303, "{headers}{body}");
    assert!(headers.contains("location: /ui/keys"), "{headers}");
    let signed_in = session_cookie(&headers);
    assert_ne!(signed_in, cookie, "a new session id at sign-in");
    let (status, headers, body) = exchange(
        addr,
        &format!(
            "GET /ui/keys HTTP/1.1\r\nHost: t\r\nConnection: close\r\nCookie: {signed_in}\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{headers}{body}");
    assert!(
        body.contains("<h1>API keys</h1>") && body.contains("Page 1 of 1 · 1 keys"),
        "{body}"
    );
    let (code, logs) = server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{logs}");
}

#[test]
fn dashboard_sessions_on_postgres() {
    with_fresh_database(
        Backend::Postgres,
        "KEYGATE_TEST_POSTGRES_URL",
        POSTGRES_URL,
        dashboard_sign_in,
    );
}

#[test]
fn dashboard_sessions_on_mysql() {
    with_fresh_database(
        Backend::MySql,
        "KEYGATE_TEST_MYSQL_URL",
        MYSQL_URL,
        dashboard_sign_in,
    );
}
