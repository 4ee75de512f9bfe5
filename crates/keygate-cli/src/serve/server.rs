//! The HTTP/1 server of `keygate serve`: hyper driven directly (`axum::serve`
//! has no header or idle timeouts and no connection cap), with the router of
//! `keygate_axum::app` as the service.
//!
//! It comes in three parts: this module accepts connections and keeps them
//! under the cap; `conn.rs` drives each connection through the phases of its
//! request cycle (FRESH, HEAD, IDLE, BODY, HANDLING, WRITING) and their
//! deadlines; `io.rs` holds the wrappers (socket,
//! service, request and response bodies) through which hyper moves a
//! connection from one phase to the next.
//!
//! # The connection cap
//!
//! At most `max_connections` connections are open (by default the open-file
//! soft limit minus a reserve for the database pool and the rest, see
//! `limits.rs`), so `accept` never meets EMFILE and a new client always gets
//! in: when a new connection arrives at the cap, the server still accepts it
//! and closes the connections that are doing the least useful thing to make
//! room, in this order:
//!
//! 1. those still waiting for a complete request head (FRESH, HEAD), the
//!    ones waiting longest first: idle new connections and slowloris heads;
//! 2. then idle keep-alive connections, the longest-idle first (a client
//!    reconnects; closing an idle keep-alive connection is ordinary HTTP);
//! 3. then the slowest transfers (BODY, WRITING), the longest-running first.
//!
//! A connection whose handler is running is never closed. A fresh client's
//! connection is the newest, so it is the last candidate of its class: an
//! attacker has to open a cap's worth of connections between its connect
//! and its request head (microseconds) to push it out. The evictions come in
//! batches of 1/64th of the cap (at least one), so the scan for the oldest
//! costs O(1) per accepted connection on average. Only when every
//! connection is inside a handler is the newcomer refused (a best-effort
//! 503 and close).
//!
//! `accept` errors never end the server: a connection error is skipped; a
//! resource error (EMFILE, ENFILE, ENOBUFS, ENOMEM: open files used by
//! something else, or a `--max-connections` above the limit) closes a batch
//! of connections as above, then the loop sleeps 10 ms, doubling up to
//! 500 ms while the errors last, and accepts again. Never a busy loop.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::conn::{connection, ConnState};
use super::limits::Limits;

/// hyper's read buffer, which bounds a request head: far above the JSON
/// 414/431 answers of the router (well under 64 KiB), so it only stops
/// absurd heads (with hyper's plain 431), and it bounds the memory a
/// connection can pin with a huge unfinished head.
const MAX_BUF_SIZE: usize = 128 * 1024;
/// Back-off after an `accept` error, doubled while the errors last.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one warning per this long about evictions, refusals and accept
/// errors (with the counts since the previous one).
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting (new connections are refused), lets the requests in flight
/// finish (their connections close after the response), closes the other
/// connections (idle, or a head still incomplete) at once, and returns when
/// all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_BUF_SIZE).header_read_timeout(None);
    let shared = Arc::new(Shared {
        router,
        limits,
        http,
        conns: Mutex::new(HashMap::new()),
    });
    // `stop` tells the connections to finish; each holds a `done` receiver,
    // so `done_tx.closed()` resolves when the last one has ended.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut pressure = Pressure::default();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                next_id += 1;
                shared.admit(next_id, stream, &stop_rx, &done_rx, &mut pressure);
            }
            // The client gave up before we accepted: nothing to do.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                let evicted = if is_out_of_resources(&e) {
                    shared.evict(shared.batch())
                } else {
                    0
                };
                pressure.accept_error(&e, evicted);
                pressure.report_if_due(&shared.limits);
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        }
        pressure.report_if_due(&shared.limits);
    }
    pressure.report(&shared.limits);
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// What every connection task shares.
pub(super) struct Shared {
    pub(super) router: Router,
    pub(super) limits: Limits,
    pub(super) http: http1::Builder,
    /// The open connections by id (an evicted one leaves at once, before its
    /// task has closed it).
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Shared {
    pub(super) fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many connections one eviction closes.
    fn batch(&self) -> usize {
        (self.limits.max_connections / 64).max(1)
    }

    fn evict(&self, n: usize) -> usize {
        evict(&mut self.conns(), n)
    }

    /// Registers and spawns a new connection, making room at the cap.
    fn admit(
        self: &Arc<Self>,
        id: u64,
        stream: TcpStream,
        stop: &watch::Receiver<bool>,
        done: &watch::Receiver<()>,
        pressure: &mut Pressure,
    ) {
        let state = Arc::new(ConnState::new());
        {
            let mut conns = self.conns();
            if conns.len() >= self.limits.max_connections {
                let evicted = evict(&mut conns, self.batch());
                pressure.evicted += evicted as u64;
                if evicted == 0 {
                    drop(conns);
                    pressure.refused += 1;
                    refuse(&stream);
                    return;
                }
            }
            conns.insert(id, state.clone());
        }
        tokio::spawn(connection(
            self.clone(),
            id,
            stream,
            state,
            stop.clone(),
            done.clone(),
        ));
    }
}

/// Closes up to `n` connections, in the order of [`ConnState::eviction_rank`];
/// returns how many.
fn evict(conns: &mut HashMap<u64, Arc<ConnState>>, n: usize) -> usize {
    let mut ranked: Vec<((u8, u64), u64)> = conns
        .iter()
        .filter_map(|(id, conn)| conn.eviction_rank().map(|rank| (rank, *id)))
        .collect();
    let n = n.min(ranked.len());
    if n == 0 {
        return 0;
    }
    if n < ranked.len() {
        ranked.select_nth_unstable(n - 1);
    }
    for (_, id) in &ranked[..n] {
        if let Some(conn) = conns.remove(id) {
            conn.evict.notify_one();
        }
    }
    n
}

/// Every connection is inside a handler: tell the newcomer, without
/// waiting for anything (a write into the fresh socket's empty buffer), and
/// close it.
fn refuse(stream: &TcpStream) {
    let body = json!({"detail": "too many connections, retry later"}).to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Out of file descriptors or kernel memory: closing connections helps.
fn is_out_of_resources(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Evictions, refusals and accept errors since the last warning.
#[derive(Default)]
struct Pressure {
    evicted: u64,
    refused: u64,
    accept_errors: u64,
    last_error: Option<String>,
    last_report: Option<Instant>,
}

impl Pressure {
    fn accept_error(&mut self, e: &io::Error, evicted: usize) {
        self.accept_errors += 1;
        self.evicted += evicted as u64;
        self.last_error = Some(e.to_string());
    }

    fn is_empty(&self) -> bool {
        self.evicted == 0 && self.refused == 0 && self.accept_errors == 0
    }

    fn report_if_due(&mut self, limits: &Limits) {
        if !self.is_empty()
            && self
                .last_report
                .is_none_or(|at| at.elapsed() >= REPORT_EVERY)
        {
            self.report(limits);
        }
    }

    fn report(&mut self, limits: &Limits) {
        if self.is_empty() {
            return;
        }
        if self.accept_errors > 0 {
            tracing::warn!(
                errors = self.accept_errors,
                last_error = self.last_error.as_deref().unwrap_or(""),
                evicted = self.evicted,
                "accept failed: backing off and closing idle connections to free file descriptors"
            );
        } else {
            tracing::warn!(
                max_connections = limits.max_connections,
                evicted = self.evicted,
                refused = self.refused,
                "connection limit reached: closed the connections waiting longest for a request"
            );
        }
        *self = Self {
            last_report: Some(Instant::now()),
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::{BODY, FRESH, HANDLING, HEAD, IDLE, WRITING};
    use super::*;

    fn conn(phase: u8, since: u64) -> Arc<ConnState> {
        Arc::new(ConnState::at(phase, since))
    }

    fn ids(conns: &HashMap<u64, Arc<ConnState>>) -> Vec<u64> {
        let mut ids: Vec<u64> = conns.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn eviction_takes_stalled_heads_then_idle_then_slow_transfers_never_handlers() {
        let mut conns: HashMap<u64, Arc<ConnState>> = [
            (1, conn(HANDLING, 1)),
            (2, conn(IDLE, 2)),
            (3, conn(FRESH, 50)),
            (4, conn(HEAD, 40)),
            (5, conn(BODY, 3)),
            (6, conn(WRITING, 4)),
            (7, conn(FRESH, 60)),
        ]
        .into_iter()
        .collect();
        // The two heads waiting longest: 4 (since 40), 3 (since 50).
        assert_eq!(evict(&mut conns, 2), 2);
        assert_eq!(ids(&conns), [1, 2, 5, 6, 7]);
        // The last head, then the idle keep-alive connection.
        assert_eq!(evict(&mut conns, 2), 2);
        assert_eq!(ids(&conns), [1, 5, 6]);
        // The slow transfers; never the running handler.
        assert_eq!(evict(&mut conns, 10), 2);
        assert_eq!(ids(&conns), [1]);
        assert_eq!(evict(&mut conns, 1), 0);
        assert_eq!(ids(&conns), [1]);
    }
}
