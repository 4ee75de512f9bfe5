//! What a new operator meets first: dates and durations for expiries,
//! range errors in plain words, host names for `serve --bind`, a database
//! that is not running, `delete` asking first on a terminal, a list table
//! that fits the terminal, and the same words as HTTP for a deleted key.
// libc calls (signals, limits, terminals) on the child processes under test.
#![allow(unsafe_code)]

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use support::{http, Env, Server};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .with_timezone(&Utc)
}

#[test]
fn expiries_take_a_date_or_a_duration_from_now() {
    let env = Env::new();
    let (e, _) = env.create("dated", &["--expires-at", "2030-01-01"]);
    assert_eq!(e["expires_at"], "2030-01-01T00:00:00Z");
    let (e, _) = env.create("rfc", &["--expires-at", "2030-01-31T12:00:00+02:00"]);
    assert_eq!(e["expires_at"], "2030-01-31T10:00:00Z");

    let before = Utc::now();
    let (e, _) = env.create("month", &["--expires-in", "30d"]);
    let at = time(&e["expires_at"]);
    let expected = before + chrono::TimeDelta::days(30);
    assert!(
        (at - expected).num_seconds().abs() < 60,
        "{at} vs {expected}"
    );
    for (text, seconds) in [("12h", 12 * 3600), ("90m", 90 * 60), ("1w", 7 * 86_400)] {
        let e = env.json(&["update", e["id"].as_str().unwrap(), "--expires-in", text]);
        let delta = (time(&e["expires_at"]) - Utc::now()).num_seconds();
        assert!((delta - seconds).abs() < 60, "{text}: {delta}");
    }

    // Refused in plain words (exit 2), never "premature end of input".
    for (args, says) in [
        (
            &["create", "--name", "x", "--expires-at", "in 30 days"][..],
            "use --expires-in",
        ),
        (
            &[
                "create",
                "--name",
                "x",
                "--expires-at",
                "2030-01-01T00:00:00",
            ],
            "no time zone",
        ),
        (&["create", "--name", "x", "--expires-in", "30"], "30d"),
        (
            &["create", "--name", "x", "--expires-in", "soon"],
            "30d, 12h",
        ),
        (
            &[
                "create",
                "--name",
                "x",
                "--expires-at",
                "2030-01-01",
                "--expires-in",
                "30d",
            ],
            "cannot be used with",
        ),
        (
            &[
                "update",
                "0123456789abcdef0123456789abcdef",
                "--expires-in",
                "1d",
                "--clear-expires",
            ],
            "cannot be used with",
        ),
    ] {
        let (out, err) = env.fails(args, 2);
        assert!(out.is_empty(), "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("premature"), "{args:?}: {err}");
    }
    // Only the keys above were created.
    assert_eq!(env.json(&["count"])["total"], 3);
}

#[test]
fn ranges_are_refused_in_plain_words() {
    let env = Env::new();
    for args in [
        &["list", "--limit", "0"][..],
        &["search", "--limit", "0"],
        &["events", "--limit", "0"],
        &["serve", "--max-connections", "0"],
    ] {
        let (_, err) = env.fails(args, 2);
        assert!(err.contains("must be at least 1"), "{args:?}: {err}");
        assert!(!err.contains("18446744073709551615"), "{args:?}: {err}");
    }
    let (_, err) = env.fails(&["serve", "--header-timeout", "0"], 2);
    assert!(err.contains("must be 1 to 86400 seconds (1 day)"), "{err}");
    let (_, err) = env.fails(&["create", "--name", "x", "--credits", "-1"], 2);
    assert!(err.contains("must be 0 to 1000000000000000"), "{err}");
}

#[test]
fn serve_binds_a_host_name() {
    let env = Env::new();
    let mut child = std::process::Command::new(support::BIN)
        .env_remove("RUST_LOG")
        .env("DATABASE_URL", &env.db_url)
        .env("API_KEY_PEPPER", support::PEPPER)
        .args(["serve", "--bind", "localhost:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
}

#[test]
fn a_database_that_is_not_running_is_reported_at_once() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    for url in [
        format!("postgres://app:s3cret@127.0.0.1:{port}/keys"),
        format!("mysql://app:s3cret@127.0.0.1:{port}/keys"),
    ] {
        for args in [&["list"][..], &["migrate"], &["create", "--name", "x"]] {
            let started = Instant::now();
            let out = env
                .cmd()
                .env("DATABASE_URL", &url)
                .args(args)
                .output()
                .unwrap();
            let took = started.elapsed();
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            let shown = url.replace("s3cret", "***");
            assert_eq!(
                err,
                format!("keygate: connection refused: is the database running at {shown}?\n")
            );
            // Not the pool's 5-second acquire timeout.
            assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
        }
    }
}

#[test]
fn a_deleted_key_is_invalid_in_the_cli_as_over_http() {
    let env = Env::new();
    let (entity, key) = env.create("gone", &["--scopes", "read"]);
    env.ok(&["delete", entity["id"].as_str().unwrap()]);
    let server = Server::start(&env, |_| {});
    let reply = http(
        &server.addr,
        "POST",
        "/api-keys/verify",
        None,
        Some(&json!({ "api_key": key })),
    );
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["detail"], "API key invalid");
    let (_, err) = env.fails(&["verify", &key], 1);
    assert!(
        err.starts_with("keygate: API key invalid (no key with key id "),
        "{err}"
    );
    assert!(!err.contains("not found"), "{err}");
}

#[test]
fn the_list_aligns_wide_names_and_keeps_json_as_it_was() {
    let env = Env::new();
    for name in ["billing-service", "計費サービス", "🚀 launch", "café"] {
        env.create(name, &["--owner-id", "team-7"]);
    }
    let table = env.ok(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "one line per key when piped: {table}");
    // OWNER starts at the same display column on every line.
    let owner_col = |line: &str| {
        let at = line
            .find("team-7")
            .or_else(|| line.find("OWNER"))
            .unwrap_or_else(|| panic!("{line}"));
        unicode_width::UnicodeWidthStr::width(&line[..at])
    };
    let cols: Vec<usize> = lines.iter().map(|l| owner_col(l)).collect();
    assert!(cols.windows(2).all(|w| w[0] == w[1]), "{cols:?}\n{table}");

    let items = env.json(&["list"]);
    let first = &items[0];
    let mut fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let mut expected = [
        "id",
        "key_id",
        "name",
        "description",
        "is_active",
        "created_at",
        "last_used_at",
        "expires_at",
        "scopes",
        "owner_id",
        "meta",
        "previous_secret_expires_at",
        "rate_limits",
        "credits",
    ];
    expected.sort_unstable();
    assert_eq!(fields, expected);
    assert_eq!(first["name"], "café");
}

#[cfg(target_os = "linux")]
mod on_a_terminal {
    //! Commands run with a pseudo-terminal as stdin, stdout and stderr.

    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::process::Command;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::support::{self, Env};

    /// Runs `cmd` on a new 80-column pseudo-terminal; once its output
    /// contains `prompt`, types `answer`. Returns (exit code, output with
    /// `\r\n` as `\n`).
    fn run(mut cmd: Command, prompt: Option<(&str, &str)>) -> (Option<i32>, String) {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 50,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the integers.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        let mut child = cmd.spawn().unwrap();
        drop(cmd); // the parent's copies of the slave side
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let mut reader = master.try_clone().unwrap();
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the child's side is closed: the end.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut master = master;
        if let Some((prompt, answer)) = prompt {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !String::from_utf8_lossy(&output.lock().unwrap()).contains(prompt) {
                assert!(Instant::now() < deadline, "no prompt: {:?}", output.lock());
                std::thread::sleep(Duration::from_millis(20));
            }
            master.write_all(answer.as_bytes()).unwrap();
        }
        let status = child.wait().unwrap();
        drop(master);
        let _ = drain.join();
        let text = String::from_utf8_lossy(&output.lock().unwrap()).replace("\r\n", "\n");
        (status.code(), text)
    }

    fn keygate(env: &Env, args: &[&str]) -> Command {
        let mut cmd = Command::new(support::BIN);
        for var in ["RUST_LOG", "COLUMNS", "CLICOLOR_FORCE", "KEYGATE_ACTOR"] {
            cmd.env_remove(var);
        }
        cmd.env("DATABASE_URL", &env.db_url)
            .env("API_KEY_PEPPER", support::PEPPER)
            .env("NO_COLOR", "1")
            .args(args);
        cmd
    }

    #[test]
    fn delete_asks_first_and_keeps_the_key_unless_told_yes() {
        let env = Env::new();
        let id = env.create_id("billing-service", &[]);
        let question = "for good? It cannot be undone. [y/N] ";

        for answer in ["n\n", "\n", "whatever\n"] {
            let (code, out) = run(keygate(&env, &["delete", &id]), Some((question, answer)));
            assert_eq!(code, Some(1), "{answer:?}: {out}");
            assert!(
                out.contains(&format!(
                    "Delete API key {id} (name \"billing-service\", key id "
                )),
                "{out}"
            );
            assert!(
                out.contains(&format!("keygate: not deleted: API key {id} is kept")),
                "{out}"
            );
            assert_eq!(env.json(&["get", &id])["id"], id.as_str());
        }

        let (code, out) = run(keygate(&env, &["delete", &id]), Some((question, "y\n")));
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("API key deleted:"), "{out}");
        env.fails(&["get", &id], 1);

        // --yes: no question.
        let id = env.create_id("second", &[]);
        let (code, out) = run(keygate(&env, &["delete", &id, "--yes"]), None);
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains("[y/N]"), "{out}");

        // stdin not a terminal (a script): no question, as before.
        let id = env.create_id("third", &[]);
        let deleted = env.json(&["delete", &id]);
        assert_eq!(deleted["id"], id.as_str());
    }

    #[test]
    fn the_list_fits_the_terminal() {
        let env = Env::new();
        for name in ["billing-service", "計費サービス", "🚀 launch"] {
            env.create(
                name,
                &[
                    "--scopes",
                    "read,write",
                    "--expires-at",
                    "2030-01-01T00:00:00Z",
                ],
            );
        }
        let piped = env.ok(&["list"]);
        let widest = piped
            .lines()
            .map(unicode_width::UnicodeWidthStr::width)
            .max()
            .unwrap();
        assert!(widest > 120, "piped rows are whole: {piped}");

        let (code, out) = run(keygate(&env, &["list"]), None);
        assert_eq!(code, Some(0), "{out}");
        for line in out.lines() {
            assert!(
                unicode_width::UnicodeWidthStr::width(line) <= 80,
                "{line:?} is wider than the terminal:\n{out}"
            );
        }
        // Every key's id and name are there; what was left out is said.
        for id in env.json(&["list"]).as_array().unwrap() {
            assert!(out.contains(id["id"].as_str().unwrap()), "{out}");
        }
        assert!(out.contains("計費サービス") && out.contains("🚀"), "{out}");
        let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("KEY ID, CREATED, LAST USED, LIMITS, OWNER, EXPIRES left out to fit the terminal: widen it, or use --json"),
            "{out}"
        );
    }
}
