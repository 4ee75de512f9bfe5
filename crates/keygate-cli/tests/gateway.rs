//! Gateway mode (`keygate serve --policy`) for real: nginx (`auth_request`)
//! and Caddy (forward auth) in front of examples/gateway/upstream.py, with
//! the configurations of examples/gateway/ (only their addresses changed);
//! SIGHUP reloads; `policy check`; a bad policy stopping `serve`.
//!
//! nginx, Caddy and python3 must be installed: without one, its test is
//! skipped with a note on stderr, except under CI (CI=true), where that is
//! a failure.
// libc calls (signals, limits, terminals) on the child processes under test.
#![allow(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, Response, Server};

/// True under CI (CI=true or CI=1): a missing tool fails the test.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// True when every tool is on PATH. Otherwise notes the skip on the real
/// stderr (the harness hides a passing test's output) and returns false;
/// under CI, panics instead.
fn installed(tools: &[&str]) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        let found = std::env::split_paths(&path).any(|dir| dir.join(tool).is_file());
        if !found {
            assert!(
                !ci(),
                "{tool} is not installed (CI=true: a missing tool is an error)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {tool} not installed (set CI=true to make this an error)"
            );
            return false;
        }
    }
    true
}

/// examples/gateway/: the configurations under test.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(examples().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `text` with each `from` (which must be there) replaced by `to`.
fn rewrite(name: &str, text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "examples/gateway/{name} no longer contains {from}"
        );
        out = out.replace(from, to);
    }
    out
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, whatever its outcome.
struct Proc {
    name: &'static str,
    child: Child,
    /// Where it logs, shown when it fails to start.
    log: Option<PathBuf>,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: Option<PathBuf>) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name, child, log }
    }

    /// Waits (at most 20 s) until `addr` accepts connections.
    fn wait_for(&mut self, addr: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(addr).is_ok() {
                return;
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = self
                    .log
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .unwrap_or_default();
                panic!(
                    "{} did not listen on {addr} ({exited:?}); its log:\n{log}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    /// SIGTERM first: nginx's master then stops its workers (SIGKILL would
    /// leave them running, listening); SIGKILL after 5 s.
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on the pid of a child we spawned and still own.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// examples/gateway/upstream.py on a free port; returns it and its address.
fn upstream() -> (Proc, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(examples().join("upstream.py"))
        .arg("0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proc = Proc::spawn("upstream.py", &mut cmd, None);
    let mut line = String::new();
    BufReader::new(proc.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("upstream.py said {line:?}"))
        .to_owned();
    (proc, addr)
}

/// One HTTP/1.1 request over a fresh connection, the target sent exactly
/// as given (no client normalizes it on the way).
fn send(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {target}: not HTTP: {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut response = Response {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    };
    if header(&response, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        response.body = dechunk(&response.body);
    }
    response
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The value of header `name` (case-insensitive), if present.
fn header(response: &Response, name: &str) -> Option<String> {
    response.headers.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A keygate with the example policy and a key of each kind.
struct World {
    env: Env,
    server: Server,
    policy: PathBuf,
    reader: Key,
    writer: Key,
    limited: Key,
    admin: Key,
}

struct Key {
    key: String,
    id: String,
    key_id: String,
}

fn world() -> World {
    let env = Env::new();
    let key = |name: &str, extra: &[&str]| {
        let (entity, key) = env.create(name, extra);
        Key {
            key,
            id: entity["id"].as_str().unwrap().to_owned(),
            key_id: entity["key_id"].as_str().unwrap().to_owned(),
        }
    };
    let reader = key("reader", &["--scopes", "read", "--owner-id", "team-7"]);
    let writer = key("writer", &["--scopes", "read,write"]);
    let limited = key(
        "limited",
        &["--scopes", "read", "--rate-limit", "burst=2/1m"],
    );
    let admin = key("admin", &["--scopes", "admin"]);
    let policy = env.dir.path().join("policy.toml");
    std::fs::write(&policy, example("policy.toml")).unwrap();
    let server = Server::start(&env, |cmd| {
        cmd.arg("--policy").arg(&policy);
    });
    World {
        env,
        server,
        policy,
        reader,
        writer,
        limited,
        admin,
    }
}

fn bearer(key: &Key) -> String {
    format!("Bearer {}", key.key)
}

/// What the upstream saw, from its echo; panics unless the proxy answered
/// 200 with it.
fn echoed(response: &Response, what: &str) -> Value {
    assert_eq!(response.status, 200, "{what}: {response:?}");
    let v: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", response.body));
    assert_eq!(v["upstream"], "echo", "{what}: {v}");
    v
}

/// Everything a proxy in front of keygate must get right.
fn check_proxy(proxy: &str, addr: &str, w: &World) {
    // A key with the route's scope: the upstream answers, and learns who.
    let ok = send(
        addr,
        "GET",
        "/reports/q1",
        &[("Authorization", &bearer(&w.reader))],
    );
    let seen = echoed(&ok, proxy);
    assert_eq!(seen["path"], "/reports/q1", "{proxy}: {seen}");
    let kg = &seen["keygate"];
    assert_eq!(
        kg["x-keygate-key-id"],
        w.reader.key_id.as_str(),
        "{proxy}: {seen}"
    );
    assert_eq!(
        kg["x-keygate-entity-id"],
        w.reader.id.as_str(),
        "{proxy}: {seen}"
    );
    assert_eq!(kg["x-keygate-owner-id"], "team-7", "{proxy}: {seen}");
    assert_eq!(kg["x-keygate-scopes"], "read", "{proxy}: {seen}");

    // Identity headers a client sends itself never reach the upstream; a
    // key without owner gives no owner header at all.
    let spoofed = send(
        addr,
        "GET",
        "/reports/q1",
        &[
            ("Authorization", &bearer(&w.writer)),
            ("X-Keygate-Key-Id", "spoofed"),
            ("X-Keygate-Owner-Id", "spoofed"),
            ("X-Keygate-Scopes", "admin"),
        ],
    );
    let seen = echoed(&spoofed, proxy);
    let kg = seen["keygate"].as_object().unwrap();
    assert_eq!(
        kg["x-keygate-key-id"],
        w.writer.key_id.as_str(),
        "{proxy}: {seen}"
    );
    assert_eq!(kg["x-keygate-scopes"], "read write", "{proxy}: {seen}");
    assert!(!kg.contains_key("x-keygate-owner-id"), "{proxy}: {seen}");

    // No key, a wrong key: 401 with the challenge.
    let missing = send(addr, "GET", "/reports/q1", &[]);
    assert_eq!(missing.status, 401, "{proxy}: {missing:?}");
    assert_eq!(
        header(&missing, "www-authenticate").as_deref(),
        Some("Bearer"),
        "{proxy}"
    );
    let (head, last) = w.reader.key.split_at(w.reader.key.len() - 1);
    let wrong = format!("{head}{}", if last == "a" { "b" } else { "a" });
    let invalid = send(
        addr,
        "GET",
        "/reports/q1",
        &[("Authorization", &format!("Bearer {wrong}"))],
    );
    assert_eq!(invalid.status, 401, "{proxy}: {invalid:?}");
    assert!(
        header(&invalid, "www-authenticate").is_some_and(|v| v.contains("invalid_token")),
        "{proxy}: {invalid:?}"
    );

    // The wrong scope: 403 with the insufficient_scope challenge.
    let scope = send(
        addr,
        "POST",
        "/reports/q1",
        &[("Authorization", &bearer(&w.reader))],
    );
    assert_eq!(scope.status, 403, "{proxy}: {scope:?}");
    assert!(
        header(&scope, "www-authenticate").is_some_and(|v| v.contains("insufficient_scope")),
        "{proxy}: {scope:?}"
    );
    // No route (default = "deny"): 403 whatever the key.
    let unmatched = send(
        addr,
        "GET",
        "/elsewhere",
        &[("Authorization", &bearer(&w.admin))],
    );
    assert_eq!(unmatched.status, 403, "{proxy}: {unmatched:?}");

    // A rate-limited key: 2 a minute, then 429 with Retry-After.
    for _ in 0..2 {
        let r = send(
            addr,
            "GET",
            "/reports/q2",
            &[("Authorization", &bearer(&w.limited))],
        );
        echoed(&r, proxy);
    }
    let limited = send(
        addr,
        "GET",
        "/reports/q2",
        &[("Authorization", &bearer(&w.limited))],
    );
    assert_eq!(limited.status, 429, "{proxy}: {limited:?}");
    let retry: u64 = header(&limited, "retry-after")
        .unwrap_or_else(|| panic!("{proxy}: no Retry-After: {limited:?}"))
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{proxy}: {retry}");
    assert_eq!(
        header(&limited, "ratelimit-limit").as_deref(),
        Some("2"),
        "{proxy}"
    );
    assert!(
        limited.body.contains("API key rate limit exceeded"),
        "{proxy}: {limited:?}"
    );

    // Path tricks: the reader may GET /reports/*, never /admin/**.
    for trick in [
        "/admin/x",
        "/reports/../admin/x",
        "//admin/x",
        "/reports//../admin/x",
        "/reports/%2e%2e/admin/x",
        "/reports/%2E%2E/admin/x",
        "/reports/.%2e/admin/x",
        "/reports%2F..%2Fadmin%2Fx",
        "/reports%2Fx",
        "/reports/..%2Fadmin/x",
        "/reports/..%5Cadmin/x",
        "/reports/..;/admin/x",
        "/reports/x/../../admin/x",
        "/REPORTS/x",
        "/Reports/x",
        "/reports/x%00/../../admin/x",
    ] {
        let r = send(addr, "GET", trick, &[("Authorization", &bearer(&w.reader))]);
        assert_ne!(r.status, 200, "{proxy} {trick}: {r:?}");
        assert!(
            !r.body.contains("\"upstream\""),
            "{proxy} {trick} reached the upstream: {r:?}"
        );
    }
    // `%252e` is decoded once, to a literal `%2e` segment, never a dot: the
    // admin key cannot climb out of /reports with it...
    let r = send(
        addr,
        "GET",
        "/reports/%252e%252e/admin/x",
        &[("Authorization", &bearer(&w.admin))],
    );
    assert_ne!(r.status, 200, "{proxy}: {r:?}");
    // ...and for the reader it is one more report name.
    let r = send(
        addr,
        "GET",
        "/reports/%252e%252e",
        &[("Authorization", &bearer(&w.reader))],
    );
    echoed(&r, proxy);
    // What normalizes to a report is a report.
    let r = send(
        addr,
        "GET",
        "/reports/./q1",
        &[("Authorization", &bearer(&w.reader))],
    );
    echoed(&r, proxy);
    let r = send(
        addr,
        "GET",
        "/reports/q1?next=/../admin",
        &[("Authorization", &bearer(&w.reader))],
    );
    echoed(&r, proxy);

    let logs = w.server.logs();
    for key in [&w.reader, &w.writer, &w.limited, &w.admin] {
        assert!(!logs.contains(&key.key), "a key reached the logs");
    }
}

#[test]
fn gateway_through_nginx_auth_request() {
    if !installed(&["nginx", "python3"]) {
        return;
    }
    let w = world();
    let (_upstream, upstream_addr) = upstream();
    let prefix = w.env.dir.path().join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let conf = rewrite(
        "nginx.conf",
        &example("nginx.conf"),
        &[
            ("127.0.0.1:8000", &w.server.addr),
            ("127.0.0.1:9000", &upstream_addr),
            ("127.0.0.1:8080", &listen),
        ],
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut nginx = Proc::spawn("nginx", &mut cmd, Some(prefix.join("error.log")));
    nginx.wait_for(&listen);
    check_proxy("nginx", &listen, &w);
}

#[test]
fn gateway_through_caddy_forward_auth() {
    if !installed(&["caddy", "python3"]) {
        return;
    }
    let w = world();
    let (_upstream, upstream_addr) = upstream();
    let home = w.env.dir.path().join("caddy");
    std::fs::create_dir_all(&home).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let conf = rewrite(
        "Caddyfile",
        &example("Caddyfile"),
        &[
            ("127.0.0.1:8000", &w.server.addr),
            ("127.0.0.1:9000", &upstream_addr),
            ("127.0.0.1:8081", &listen),
        ],
    );
    let conf_path = home.join("Caddyfile");
    std::fs::write(&conf_path, conf).unwrap();
    let log = home.join("caddy.log");
    let mut cmd = Command::new("caddy");
    cmd.arg("run")
        .arg("--config")
        .arg(&conf_path)
        .args(["--adapter", "caddyfile"])
        // Caddy's data and autosaved config stay in the test's directory.
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut caddy = Proc::spawn("caddy", &mut cmd, Some(log));
    caddy.wait_for(&listen);
    check_proxy("caddy", &listen, &w);
}

/// `/auth` as Traefik or Caddy call it, straight to keygate.
fn auth(w: &World, method: &str, uri: &str, key: &Key) -> Response {
    send(
        &w.server.addr,
        "GET",
        "/auth",
        &[
            ("X-Forwarded-Method", method),
            ("X-Forwarded-Uri", uri),
            ("Authorization", &bearer(key)),
        ],
    )
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gateway_sighup_reloads_the_policy_and_keeps_it_when_the_new_one_is_invalid() {
    let w = world();
    let ok = auth(&w, "GET", "/reports/q1", &w.reader);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(
        header(&ok, "x-keygate-key-id").as_deref(),
        Some(w.reader.key_id.as_str())
    );
    assert_eq!(ok.body, "");
    assert_eq!(auth(&w, "GET", "/new/x", &w.reader).status, 403);
    assert!(
        w.server.logs().contains("gateway mode"),
        "{}",
        w.server.logs()
    );

    // A new route, then SIGHUP: in force without a restart.
    let mut text = example("policy.toml");
    text.push_str("\n[[route]]\nmethods = [\"GET\"]\npath = \"/new/*\"\nscopes = [\"read\"]\n");
    std::fs::write(&w.policy, &text).unwrap();
    w.server.signal(libc::SIGHUP);
    eventually("the new route", || {
        auth(&w, "GET", "/new/x", &w.reader).status == 200
    });
    eventually("the reload log line", || {
        w.server.logs().contains("policy reloaded")
    });
    let logs = w.server.logs();
    assert!(logs.contains("routes=5"), "{logs}");

    // An invalid file: the previous policy stays, the log says where and why.
    let lines_before = text.lines().count();
    std::fs::write(
        &w.policy,
        format!("{text}\n[[route]]\npath = \"/x\"\nscopes = [\"Not A Scope\"]\n"),
    )
    .unwrap();
    w.server.signal(libc::SIGHUP);
    let line = lines_before + 4;
    eventually("the warning", || {
        w.server
            .logs()
            .contains(&format!("invalid policy at line {line}"))
    });
    let logs = w.server.logs();
    assert!(logs.contains("keeping the previous policy"), "{logs}");
    assert!(
        logs.contains("invalid scope \\\"Not A Scope\\\"")
            || logs.contains("invalid scope \"Not A Scope\""),
        "{logs}"
    );
    assert_eq!(
        auth(&w, "GET", "/new/x", &w.reader).status,
        200,
        "old policy kept"
    );
    assert_eq!(auth(&w, "GET", "/reports/q1", &w.reader).status, 200);

    // A file that is gone: the same.
    std::fs::remove_file(&w.policy).unwrap();
    w.server.signal(libc::SIGHUP);
    eventually("the read warning", || {
        w.server.logs().contains("cannot read the policy")
    });
    assert_eq!(auth(&w, "GET", "/new/x", &w.reader).status, 200);

    assert!(
        !w.server.logs().contains(&w.reader.key),
        "the key reached the logs"
    );
    let (code, _) = w.server.stop(libc::SIGTERM);
    assert_eq!(code, Some(0));
}

#[test]
fn gateway_serve_refuses_an_invalid_policy_with_its_line() {
    let env = Env::new();
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "default = \"deny\"\n\n[[route]]\npath = \"/reports/*\"\nscopes = [\"read\", \"Write\"]\n",
    )
    .unwrap();
    let bad_arg = bad.to_str().unwrap();
    let (stdout, stderr) = env.fails(&["serve", "--bind", "127.0.0.1:0", "--policy", bad_arg], 1);
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(stderr.contains("line 5"), "{stderr}");
    assert!(stderr.contains("invalid scope \"Write\""), "{stderr}");

    // Also from KEYGATE_POLICY; an unknown field names its line too.
    std::fs::write(&bad, "[[route]]\npath = \"/a\"\nscope = [\"read\"]\n").unwrap();
    let out = env
        .cmd()
        .env("KEYGATE_POLICY", &bad)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("unknown field `scope`"),
        "{stderr}"
    );

    let (_, stderr) = env.fails(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--policy",
            "/nonexistent/p.toml",
        ],
        1,
    );
    assert!(
        stderr.contains("cannot read policy /nonexistent/p.toml"),
        "{stderr}"
    );
}

#[test]
fn gateway_policy_check_exit_codes_and_messages() {
    let env = Env::new();
    let example_path = examples().join("policy.toml");
    let example_arg = example_path.to_str().unwrap();
    let out = env.ok(&["policy", "check", example_arg]);
    assert!(
        out.contains("valid: 4 routes, unmatched requests denied (403)"),
        "{out}"
    );
    assert!(
        out.contains("GET,HEAD /reports/* scopes=read cost=1"),
        "{out}"
    );
    let json = env.json(&["policy", "check", example_arg]);
    assert_eq!(json["valid"], true);
    assert_eq!(json["default"], "deny");
    assert_eq!(json["routes"][2]["cost"], 10);
    assert_eq!(json["routes"][3]["methods"], Value::Null);

    let bad = env.dir.path().join("bad.toml");
    let bad_arg = bad.to_str().unwrap().to_owned();
    for (text, line, says) in [
        (
            "default = \"open\"\n",
            1,
            "default must be \"deny\" or \"allow\"",
        ),
        (
            "[[route]]\npath = \"/a/**/b\"\n",
            2,
            "`**` may only be the last segment",
        ),
        (
            "[[route]]\npath = \"/a\"\nmethods = [\"get\"]\n",
            3,
            "methods are case-sensitive",
        ),
        (
            "[[route]]\npath = \"/a\"\ncost = 5000\n",
            3,
            "cost 5000 is out of range: 0 to 1000",
        ),
        (
            "[[route]]\npath = \"/a\"\nbogus = true\n",
            3,
            "unknown field `bogus`",
        ),
        ("[[route]\n", 1, ""),
    ] {
        std::fs::write(&bad, text).unwrap();
        let (stdout, stderr) = env.fails(&["policy", "check", &bad_arg], 1);
        assert!(stdout.is_empty(), "{stdout}");
        let want = format!("keygate: {bad_arg}:{line}: ");
        assert!(stderr.starts_with(&want), "{text:?}: {stderr}");
        assert!(stderr.contains(says), "{text:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let (_, stderr) = env.fails(&["policy", "check", "/nonexistent/p.toml"], 1);
    assert!(
        stderr.contains("cannot read /nonexistent/p.toml"),
        "{stderr}"
    );
    // A usage error is clap's: exit 2.
    env.fails(&["policy", "check"], 2);
}
