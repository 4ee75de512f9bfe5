//! `keygate serve` under connection abuse, as a real process: thousands of
//! idle or half-sent connections with a 1024 open-file limit must not keep
//! valid requests out; idle connections, slow heads and slow bodies are cut
//! after their timeouts. Loopback only.
#![cfg(unix)]
// libc calls (signals, limits, terminals) on the child processes under test.
#![allow(unsafe_code)]

mod support;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, BIN, PEPPER};

/// Connections the "attacker" holds open.
const HELD: usize = 2000;
/// The server's open-file limit in the tests that need one.
const SERVER_NOFILE: u64 = 1024;
/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// `keygate serve` on a free loopback port, with extra flags and optionally
/// a lower open-file limit; stderr is drained into `logs` so the server can
/// never block on a full pipe.
struct Serve {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<String>>,
    drain: Option<JoinHandle<()>>,
}

impl Serve {
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    fn start(env: &Env, flags: &[&str], nofile: Option<u64>) -> Self {
        use std::io::BufRead;
        let mut cmd = Command::new(BIN);
        for var in [
            "RUST_LOG",
            "KEYGATE_ENV",
            "KEYGATE_LOG_FORMAT",
            "KEYGATE_ACTOR",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DATABASE_URL", &env.db_url)
            .env("API_KEY_PEPPER", PEPPER)
            .env("NO_COLOR", "1")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            // SAFETY: setrlimit(2) only, between fork and exec (async-signal-safe).
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn keygate serve");
        let logs = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        let drain = thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read stdout");
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = drain.join();
            panic!(
                "serve did not start: stdout={line:?} stderr={}",
                logs.lock().unwrap()
            );
        };
        Self {
            addr: addr.parse().expect("address"),
            child,
            logs,
            drain: Some(drain),
        }
    }

    /// SIGTERM, then waits (bounded) for the exit; returns (code, logs).
    fn stop(mut self) -> (Option<i32>, String) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the pid of a child we spawned and still own.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + BOUND;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            thread::sleep(Duration::from_millis(20));
        };
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let logs = self.logs.lock().unwrap().clone();
        (status.code(), logs)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises this process's open-file soft limit to its hard limit (the held
/// connections live here), and checks there is room for `needed` sockets.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
fn raise_own_nofile(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur as u64 >= needed,
        "this test needs an open-file limit of at least {needed} (hard limit is {})",
        limit.rlim_max
    );
}

/// One request on a fresh connection (`Connection: close`), every step
/// bounded; returns the status (None: no answer) and how long it took.
fn timed_request(addr: SocketAddr, path: &str, bearer: Option<&str>) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let status = (|| -> io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(key) = bearer {
            request.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        String::from_utf8_lossy(&raw)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("no HTTP response"))
    })();
    (status.ok(), started.elapsed())
}

/// Reads one response (head and `Content-Length` body) from a keep-alive
/// connection; returns (status, body).
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + BOUND;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
        assert!(Instant::now() < deadline, "no complete response: {text:?}");
        match stream.read(&mut chunk) {
            Ok(0) => panic!("connection closed before a complete response: {text:?}"),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}: {text:?}"),
        }
    }
}

/// Waits for the server to close `stream` (sending nothing); returns how
/// long that took from `since` and any bytes the server sent first.
fn wait_closed(stream: &mut TcpStream, since: Instant, dribble: Option<u8>) -> (Duration, String) {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(byte) = dribble {
            if stream.write_all(&[byte]).is_err() {
                break;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break, // reset
        }
        assert!(
            since.elapsed() < BOUND,
            "the server did not close the connection within {BOUND:?}; received {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    (
        since.elapsed(),
        String::from_utf8_lossy(&received).into_owned(),
    )
}

/// The start of a request head that never ends (one more byte per round).
const PARTIAL_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// Connections that never make a request: even slots stay idle, odd slots
/// send a partial head and then one more byte of it per round. A slot whose
/// connection the server closed is reopened (a few per round), so the server
/// stays at its limit.
struct Attack {
    addr: SocketAddr,
    slots: Vec<Option<TcpStream>>,
    reopened: usize,
}

impl Attack {
    fn open(addr: SocketAddr, n: usize) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            // A SYN dropped on a full backlog is retried after 1 s; an
            // unresponsive server keeps it full: stop waiting at `deadline`.
            let conn = if Instant::now() < deadline {
                Self::connect(addr, i, Duration::from_secs(3))
            } else {
                None
            };
            slots.push(conn);
        }
        Self {
            addr,
            slots,
            reopened: 0,
        }
    }

    fn connect(addr: SocketAddr, slot: usize, wait: Duration) -> Option<TcpStream> {
        let stream = TcpStream::connect_timeout(&addr, wait).ok()?;
        if slot % 2 == 1 {
            stream.set_write_timeout(Some(wait)).ok()?;
            (&stream).write_all(PARTIAL_HEAD).ok()?;
        }
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    }

    fn opened(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Trickles a byte on every slow head, reopens up to `reopen` closed slots.
    fn round(&mut self, reopen: usize) {
        let mut budget = reopen;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let alive = slot.as_mut().is_some_and(|stream| {
                let mut buf = [0u8; 1024];
                match stream.read(&mut buf) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        i % 2 == 0 || stream.write(b"a").is_ok()
                    }
                    _ => false, // closed, reset, or answered
                }
            });
            if !alive && budget > 0 {
                budget -= 1;
                *slot = Self::connect(self.addr, i, Duration::from_millis(500));
                self.reopened += 1;
            }
        }
    }

    /// Runs rounds every 100 ms on a thread until `stop`; returns the attack.
    fn run(mut self, stop: Arc<AtomicBool>) -> JoinHandle<Self> {
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                self.round(50);
                thread::sleep(Duration::from_millis(100));
            }
            self
        })
    }
}

/// The fix's main claim: with a 1024 open-file limit, 2000 idle and
/// slowloris connections (re-opened as the server closes them) do not keep
/// valid requests out. Before it, the server stopped accepting at ~1020
/// connections and every later request timed out.
#[test]
fn valid_requests_are_served_while_2000_idle_and_slow_connections_are_held() {
    raise_own_nofile(HELD as u64 + 200);
    let env = Env::new();
    let (_, admin) = env.create("admin", &["--scopes", "keygate:admin"]);
    // Timeouts far beyond the test: only the connection cap makes room.
    let server = Serve::start(
        &env,
        &["--header-timeout", "600", "--idle-timeout", "600"],
        Some(SERVER_NOFILE),
    );
    let addr = server.addr;
    let (status, before) = timed_request(addr, "/healthz", None);
    assert_eq!(status, Some(200));

    let opening = Instant::now();
    let attack = Attack::open(addr, HELD);
    let opened = attack.opened();
    let opening = opening.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = attack.run(stop.clone());

    let mut timings = Vec::new();
    for round in 0..5 {
        for (path, bearer) in [("/healthz", None), ("/api-keys", Some(admin.as_str()))] {
            let (status, took) = timed_request(addr, path, bearer);
            timings.push(took);
            assert_eq!(
                status,
                Some(200),
                "round {round}: GET {path} with {HELD} connections held: no answer after {took:?}"
            );
            // Under 3 s: a SYN the kernel drops while the accept queue is
            // momentarily full is sent again after 1 s (CI saw 1.02 s once);
            // before the fix every request timed out.
            assert!(
                took < Duration::from_secs(3),
                "round {round}: GET {path} took {took:?} with {HELD} connections held"
            );
        }
        thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let attack = attacker.join().unwrap();
    let slowest = timings.iter().max().unwrap();
    eprintln!(
        "{opened} connections opened in {opening:?}, {} re-opened after the server closed them; \
         valid requests: before {before:?}, during: slowest {slowest:?}, all {timings:?}",
        attack.reopened
    );
    // Almost all at once (a SYN may be dropped when the backlog is full).
    assert!(opened >= HELD * 95 / 100, "{opened} connections opened");

    let (code, logs) = server.stop();
    drop(attack);
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("connection limit reached"), "{logs}");
    assert!(logs.contains("max_connections=896"), "{logs}");
    assert!(
        logs.contains("pending last_used_at values written"),
        "{logs}"
    );
}

/// `--max-connections` above what the open-file limit allows: accept meets
/// EMFILE; the server neither dies nor spins, frees descriptors and serves.
#[test]
fn accept_errors_from_the_open_file_limit_are_survived() {
    raise_own_nofile(HELD as u64 + 200);
    let env = Env::new();
    let server = Serve::start(
        &env,
        &[
            "--max-connections",
            "5000",
            "--header-timeout",
            "600",
            "--idle-timeout",
            "600",
        ],
        Some(SERVER_NOFILE),
    );
    let addr = server.addr;
    let attack = Attack::open(addr, HELD);
    for _ in 0..3 {
        let (status, took) = timed_request(addr, "/healthz", None);
        assert_eq!(status, Some(200), "no answer after {took:?}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
    let (code, logs) = server.stop();
    drop(attack);
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("above what the open-file limit"), "{logs}");
    assert!(logs.contains("accept failed"), "{logs}");
}

#[test]
fn idle_connections_are_closed_after_the_header_then_the_idle_timeout() {
    let env = Env::new();
    let server = Serve::start(
        &env,
        &["--header-timeout", "1", "--idle-timeout", "5"],
        None,
    );

    // A connection that never sends a byte: the header timeout (1 s).
    let since = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let (took, said) = wait_closed(&mut silent, since, None);
    assert!(said.is_empty(), "closed without an answer: {said:?}");
    assert!(took >= Duration::from_millis(800), "{took:?}");

    // A keep-alive connection may wait longer than the header timeout
    // between requests…
    let mut conn = TcpStream::connect(server.addr).unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(request).unwrap();
    assert_eq!(read_response(&mut conn).0, 200);
    thread::sleep(Duration::from_millis(2500));
    conn.write_all(request).unwrap();
    assert_eq!(read_response(&mut conn).0, 200);
    // …and is closed after the idle timeout (5 s).
    let (took, said) = wait_closed(&mut conn, Instant::now(), None);
    assert!(said.is_empty(), "{said:?}");
    assert!(took >= Duration::from_secs(4), "{took:?}");

    let (code, logs) = server.stop();
    assert_eq!(code, Some(0), "{logs}");
}

#[test]
fn a_head_sent_byte_by_byte_is_cut_after_the_header_timeout() {
    let env = Env::new();
    let server = Serve::start(
        &env,
        &["--header-timeout", "2", "--idle-timeout", "60"],
        None,
    );

    // The first request of a connection: from the accept.
    let since = Instant::now();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(PARTIAL_HEAD).unwrap();
    let (took, said) = wait_closed(&mut slow, since, Some(b'a'));
    assert!(said.is_empty(), "closed without an answer: {said:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    // A later request on a keep-alive connection: from its first byte, not
    // after the 60 s idle timeout.
    let mut conn = TcpStream::connect(server.addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut conn).0, 200);
    let since = Instant::now();
    conn.write_all(PARTIAL_HEAD).unwrap();
    let (took, said) = wait_closed(&mut conn, since, Some(b'a'));
    assert!(said.is_empty(), "{said:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");

    // Meanwhile the server answers as usual.
    assert_eq!(timed_request(server.addr, "/healthz", None).0, Some(200));
    let (code, logs) = server.stop();
    assert_eq!(code, Some(0), "{logs}");
}

#[test]
fn a_body_sent_byte_by_byte_gets_408_after_the_body_timeout() {
    let env = Env::new();
    let server = Serve::start(&env, &["--body-timeout", "2"], None);

    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(
        b"POST /api-keys/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{\"api_key\": \"",
    )
    .unwrap();
    // One byte every 100 ms, never idle for long: the deadline is for the
    // whole body, not between chunks.
    let since = Instant::now();
    let (took, said) = wait_closed(&mut slow, since, Some(b'a'));
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    let (head, body) = said
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {said:?}"));
    assert!(head.starts_with("HTTP/1.1 408"), "{said}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{said}"
    );
    let detail: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(
        detail["detail"]
            .as_str()
            .is_some_and(|d| d.contains("body")),
        "{detail}"
    );

    let (code, logs) = server.stop();
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("status=408"),
        "the request line logs the 408: {logs}"
    );
}

#[test]
fn serve_help_documents_the_limits() {
    let out = support::bare_cmd()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--header-timeout",
        "--idle-timeout",
        "--body-timeout",
        "--max-connections",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let out = support::bare_cmd()
        .args(["serve", "--header-timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
