//! Shared set-up for the CLI tests: a temp dir per test with its own SQLite
//! file, a fixed pepper, and helpers to run `keygate` and read its output.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

pub(crate) const PEPPER: &str = "cli-test-pepper";

/// The binary under test (built by `cargo test`).
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_keygate");

/// One test's world: a directory holding the database file.
pub(crate) struct Env {
    pub dir: TempDir,
    pub db_url: String,
}

impl Env {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = format!("sqlite://{}", dir.path().join("keys.db").display());
        Self { dir, db_url }
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.dir.path().join("keys.db")
    }

    /// `keygate` with this world's database and pepper, no colour, no logs.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = bare_cmd();
        cmd.env("DATABASE_URL", &self.db_url)
            .env("API_KEY_PEPPER", PEPPER);
        cmd
    }

    /// Runs `args`, asserts exit 0 with an empty stderr, returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run keygate");
        assert_success(&out, args);
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs `--json args`, asserts success, parses stdout.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// Runs `args` expecting exit `code`; returns (stdout, stderr).
    pub(crate) fn fails(&self, args: &[&str], code: i32) -> (String, String) {
        let out = self.cmd().args(args).output().expect("run keygate");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: stdout={} stderr={}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Creates a key; returns (entity JSON, plaintext key).
    pub(crate) fn create(&self, name: &str, extra: &[&str]) -> (Value, String) {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        let key = v["api_key"].as_str().expect("api_key").to_owned();
        (v["entity"].clone(), key)
    }

    /// Creates a key and returns its entity id.
    pub(crate) fn create_id(&self, name: &str, extra: &[&str]) -> String {
        self.create(name, extra).0["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// `keygate` with a clean environment for the variables it reads.
pub(crate) fn bare_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "API_KEY_PEPPER",
        "RUST_LOG",
        "KEYGATE_ENV",
        "KEYGATE_LOG_FORMAT",
        "KEYGATE_ACTOR",
        "CLICOLOR_FORCE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

pub(crate) fn assert_success(out: &Output, what: impl std::fmt::Debug) {
    assert!(
        out.status.success(),
        "{what:?} failed ({:?}): stderr={}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{what:?}: stderr not empty: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names of a JSON array of entities, in order.
pub(crate) fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A response read by [`http`].
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client over `TcpStream` (one request per connection),
/// enough to drive `keygate serve` without an HTTP client dependency.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Response {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if let Some(key) = bearer {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Response {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A running `keygate serve` on a free loopback port. Its stderr (the
/// logs) is read as it comes, so a busy server never blocks on a full pipe.
pub(crate) struct Server {
    child: Child,
    pub addr: String,
    _stdout: BufReader<ChildStdout>,
    logs: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(env: &Env, configure: impl FnOnce(&mut std::process::Command)) -> Self {
        let mut cmd = std::process::Command::new(BIN);
        for var in [
            "RUST_LOG",
            "KEYGATE_ENV",
            "KEYGATE_LOG_FORMAT",
            "KEYGATE_ACTOR",
            "DATABASE_URL",
            "REDIS_URL",
        ] {
            cmd.env_remove(var);
        }
        // Port 0: the server binds a free port and prints the address, so
        // there is no race between picking a port and binding it.
        cmd.env("DATABASE_URL", &env.db_url)
            .env("API_KEY_PEPPER", PEPPER)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("spawn keygate serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let logs = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&logs);
        let drain = std::thread::spawn(move || {
            let mut line = Vec::new();
            while stderr.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = drain.join();
            let err = logs.lock().unwrap().clone();
            panic!("serve did not start: stdout={line:?} stderr={err}");
        };
        let addr = addr.to_owned();
        Self {
            child,
            addr,
            _stdout: stdout,
            logs,
            drain: Some(drain),
        }
    }

    /// The next line the server prints on stdout (the first one,
    /// `listening on`, was read by [`Server::start`]).
    pub(crate) fn stdout_line(&mut self) -> String {
        let mut line = String::new();
        self._stdout.read_line(&mut line).expect("read stdout");
        line
    }

    /// What the server has logged so far.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends `signal`, waits for the exit; returns (exit code, stderr).
    pub(crate) fn stop(self, signal: libc::c_int) -> (Option<i32>, String) {
        self.signal(signal);
        self.wait()
    }

    /// Sends `signal` to the server.
    #[allow(unsafe_code)] // kill(2): libc has no safe wrapper.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the pid of a child we spawned and still own.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits (at most 20 s) for the exit; returns (exit code, stderr).
    pub(crate) fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipe closes with the process: the drain ends.
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        (status.code(), self.logs())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
