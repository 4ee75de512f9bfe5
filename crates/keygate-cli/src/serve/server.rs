//! The HTTP/1 server of `keygate serve`: hyper driven directly (`axum::serve`
//! has no header or idle timeouts and no connection cap), with the router of
//! `keygate_axum::app` as the service.
//!
//! # Per-connection timeouts
//!
//! Every connection carries a [`ConnState`]: the phase of its request cycle
//! and when that phase began. Its I/O ([`Tracked`]), the service
//! ([`ConnService`]) and the request and response bodies ([`DeadlineBody`],
//! [`TrackedBody`]) move it along:
//!
//! ```text
//! accept ─▶ FRESH ─head─▶ BODY ─body complete─▶ HANDLING ─response─▶ WRITING ─written─▶ IDLE
//!                  └─head without a body─────▶ HANDLING
//! IDLE ─first byte of the next request─▶ HEAD ─head─▶ BODY or HANDLING …
//! ```
//!
//! The task driving the connection ([`supervise`]) re-computes the deadline
//! of the current phase each time hyper has made progress (all transitions
//! happen inside hyper's poll, on the same task) and drops the connection
//! when it passes:
//!
//! | phase | deadline |
//! |---|---|
//! | FRESH (no complete head yet) | accept + `--header-timeout` |
//! | HEAD (later request, partly received) | its first byte + `--header-timeout` |
//! | IDLE (keep-alive, waiting) | last response + `--idle-timeout` |
//! | BODY | none here: the body itself fails after `--body-timeout` and the request is answered 408 |
//! | HANDLING (the handler runs) | none, as before (SIGTERM's `--shutdown-timeout` bounds it at exit) |
//! | WRITING | last byte the client accepted + `--body-timeout` |
//!
//! hyper's own `header_read_timeout` is not used: its clock starts as soon
//! as a connection waits for a head, idle keep-alive time included, so it
//! cannot tell a slow head from an idle connection. (One blind spot here: a
//! pipelined head that arrives in the same read as the end of the previous
//! body gets the idle timeout instead of the header timeout; it is still
//! bounded, and evictable as an idle connection.)
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
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{BoxError, Json, Router};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Sleep;
use tower_service::Service as _;

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
pub async fn serve(
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
struct Shared {
    router: Router,
    limits: Limits,
    http: http1::Builder,
    /// The open connections by id (an evicted one leaves at once, before its
    /// task has closed it).
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
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

// ---------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------

type Conn = http1::Connection<TokioIo<Tracked>, ConnService>;

/// Why a connection ended.
enum End {
    /// hyper is done with it (client closed, `Connection: close`, error).
    Closed(hyper::Result<()>),
    /// The deadline of this phase passed.
    TimedOut(u8),
    /// Closed to make room at the cap.
    Evicted,
    /// The server is stopping and no request was in flight.
    Stopped,
}

async fn connection(
    shared: Arc<Shared>,
    id: u64,
    stream: TcpStream,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    // Leaves the registry when the task ends, a panicking handler included.
    let _registered = Registered {
        shared: shared.clone(),
        id,
    };
    let _ = stream.set_nodelay(true);
    let service = ConnService {
        router: shared.router.clone(),
        state: state.clone(),
        body_timeout: shared.limits.body_timeout,
    };
    let io = TokioIo::new(Tracked {
        stream,
        state: state.clone(),
    });
    let end = {
        let conn = pin!(shared.http.serve_connection(io, service));
        supervise(conn, &state, &shared.limits, &mut stop).await
        // The connection and its socket are dropped here.
    };
    match end {
        End::Closed(Ok(())) | End::Stopped => {}
        End::Closed(Err(e)) => tracing::debug!(error = %e, "connection error"),
        End::TimedOut(phase) => {
            tracing::debug!(phase = phase_name(phase), "connection timed out: closed");
        }
        End::Evicted => tracing::debug!("connection closed to make room (connection limit)"),
    }
}

/// A connection's entry in [`Shared::conns`], removed on drop (if an
/// eviction has not removed it already).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
    }
}

/// Drives `conn` until it ends, its phase's deadline passes, or it is
/// evicted; starts hyper's graceful shutdown (finish the request in flight,
/// close when idle) when `stop` turns true.
async fn supervise(
    mut conn: Pin<&mut Conn>,
    state: &ConnState,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let mut evicted = pin!(state.evict.notified());
    let mut stop_signal = pin!(stop.wait_for(|stop| *stop));
    let mut stopping = false;
    let mut armed = state.deadline(limits).unwrap_or(u64::MAX);
    let mut timer = pin!(tokio::time::sleep_until(instant_at(armed)));
    poll_fn(move |cx| loop {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(End::Closed(result));
        }
        if evicted.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::Evicted);
        }
        if !stopping && stop_signal.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
            continue; // let hyper act on it (an idle connection closes now)
        }
        // Shutting down: a connection without a request in flight (idle, or
        // a head still incomplete) is closed now rather than at its deadline.
        if stopping && matches!(state.phase(), FRESH | HEAD | IDLE) {
            return Poll::Ready(End::Stopped);
        }
        // Every phase change happens inside `conn.poll` on this task, so the
        // deadline computed here is the current one.
        let Some(deadline) = state.deadline(limits) else {
            return Poll::Pending;
        };
        if deadline != armed {
            timer.as_mut().reset(instant_at(deadline));
            armed = deadline;
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(End::TimedOut(state.phase()));
        }
        return Poll::Pending;
    })
    .await
}

// Phases of a connection (see the module documentation).
const FRESH: u8 = 0;
const IDLE: u8 = 1;
const HEAD: u8 = 2;
const BODY: u8 = 3;
const HANDLING: u8 = 4;
const WRITING: u8 = 5;

fn phase_name(phase: u8) -> &'static str {
    match phase {
        FRESH => "waiting for the first request head",
        IDLE => "idle keep-alive",
        HEAD => "waiting for the rest of a request head",
        BODY => "reading a request body",
        HANDLING => "handling a request",
        _ => "writing a response",
    }
}

/// Where a connection is in its request cycle, and since when (in
/// milliseconds of [`now_ms`]). Written by its own task, read by the accept
/// loop to pick connections to evict.
struct ConnState {
    phase: AtomicU8,
    since: AtomicU64,
    /// Bytes of a next request arrived while this one was being handled.
    pipelined: AtomicBool,
    /// The body of the current request missed its deadline: answer 408.
    body_timed_out: AtomicBool,
    /// Notified to close the connection (eviction).
    evict: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(FRESH),
            since: AtomicU64::new(now_ms()),
            pipelined: AtomicBool::new(false),
            body_timed_out: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(Relaxed)
    }

    fn enter(&self, phase: u8) {
        self.since.store(now_ms(), Relaxed);
        self.phase.store(phase, Relaxed);
    }

    /// Bytes arrived from the client.
    fn on_read(&self) {
        match self.phase() {
            IDLE => self.enter(HEAD),
            HANDLING | WRITING => self.pipelined.store(true, Relaxed),
            _ => {}
        }
    }

    /// The client accepted bytes of the response.
    fn on_write(&self) {
        if self.phase() == WRITING {
            self.since.store(now_ms(), Relaxed);
        }
    }

    /// A complete request head was parsed.
    fn request_started(&self, has_body: bool) {
        self.pipelined.store(false, Relaxed);
        self.body_timed_out.store(false, Relaxed);
        self.enter(if has_body { BODY } else { HANDLING });
    }

    /// The request body is complete, failed, or was dropped unread.
    fn body_finished(&self) {
        if self
            .phase
            .compare_exchange(BODY, HANDLING, Relaxed, Relaxed)
            .is_ok()
        {
            self.since.store(now_ms(), Relaxed);
        }
    }

    /// The handler produced its response.
    fn responding(&self) {
        self.enter(WRITING);
    }

    /// The response was handed to the socket entirely.
    fn request_done(&self) {
        // A pipelined next request already started: the header timeout
        // applies, not the idle one.
        let next = if self.pipelined.swap(false, Relaxed) {
            HEAD
        } else {
            IDLE
        };
        self.enter(next);
    }

    /// When the connection must be closed, if its phase has a deadline.
    fn deadline(&self, limits: &Limits) -> Option<u64> {
        let since = self.since.load(Relaxed);
        let timeout = match self.phase() {
            FRESH | HEAD => limits.header_timeout,
            IDLE => limits.idle_timeout,
            WRITING => limits.body_timeout,
            _ => return None,
        };
        Some(since.saturating_add(millis(timeout)))
    }

    /// Eviction order: lower first; `None`: never (a handler is running).
    fn eviction_rank(&self) -> Option<(u8, u64)> {
        let since = self.since.load(Relaxed);
        match self.phase() {
            FRESH | HEAD => Some((0, since)),
            IDLE => Some((1, since)),
            BODY | WRITING => Some((2, since)),
            _ => None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The server's clock: milliseconds since its first use.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    millis(epoch().elapsed())
}

fn instant_at(ms: u64) -> tokio::time::Instant {
    // Far enough for "never" without overflowing `Instant`.
    let ms = ms.min(millis(Duration::from_secs(10 * 365 * 86_400)));
    tokio::time::Instant::from_std(epoch() + Duration::from_millis(ms))
}

/// The socket, noting reads and writes in the connection's state.
struct Tracked {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, seen from hyper: tracks the phases, puts the body deadline
/// on request bodies, answers 408 when it passed, logs one line per request.
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let state = self.state.clone();
        let has_body = !request.body().is_end_stream();
        state.request_started(has_body);
        let request = if has_body {
            let deadline = Box::pin(tokio::time::sleep(self.body_timeout));
            let state = state.clone();
            request.map(move |inner| {
                Body::new(DeadlineBody {
                    inner,
                    deadline,
                    state,
                    done: false,
                })
            })
        } else {
            request.map(Body::new)
        };
        // The path only: a query string may carry a key.
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut router = self.router.clone();
        let body_timeout = self.body_timeout;
        Box::pin(async move {
            poll_fn(|cx| tower_service::Service::<Request<Body>>::poll_ready(&mut router, cx))
                .await
                .unwrap_or_else(|never| match never {});
            let mut response = router
                .call(request)
                .await
                .unwrap_or_else(|never| match never {});
            if state.body_timed_out.load(Relaxed) {
                response = body_timeout_response(body_timeout);
            }
            tracing::info!(
                %method,
                path,
                status = response.status().as_u16(),
                micros = started.elapsed().as_micros() as u64,
                "request"
            );
            state.responding();
            Ok(response.map(|inner| TrackedBody { inner, state }))
        })
    }
}

/// 408 `{"detail": …}`, and the connection is closed after it (the rest of
/// the body may still be on its way).
fn body_timeout_response(timeout: Duration) -> Response<Body> {
    let detail = format!("request body not received within {} s", timeout.as_secs());
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        Json(json!({ "detail": detail })),
    )
        .into_response()
}

#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails once its deadline has passed (the whole body,
/// not each chunk: a body trickling in byte by byte fails too).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    state: Arc<ConnState>,
    done: bool,
}

impl DeadlineBody {
    fn finish(&mut self) {
        self.done = true;
        self.state.body_finished();
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // What has arrived is delivered even past the deadline.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.state.body_timed_out.store(true, Relaxed);
                this.finish();
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        // Dropped unread: the handler goes on without it.
        self.state.body_finished();
    }
}

/// A response body; when hyper drops it (written, or the connection is
/// gone) the connection is idle again.
struct TrackedBody {
    inner: Body,
    state: Arc<ConnState>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.state.request_done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(phase: u8, since: u64) -> Arc<ConnState> {
        let state = ConnState::new();
        state.phase.store(phase, Relaxed);
        state.since.store(since, Relaxed);
        Arc::new(state)
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

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(30),
            max_connections: 100,
            cap_source: super::super::limits::CapSource::Flag,
        };
        let state = conn(FRESH, 1000);
        assert_eq!(state.deadline(&limits), Some(11_000));
        state.request_started(true);
        assert_eq!(state.phase(), BODY);
        assert_eq!(state.deadline(&limits), None);
        state.on_read(); // body bytes
        assert_eq!(state.phase(), BODY);
        state.body_finished();
        assert_eq!(state.phase(), HANDLING);
        assert_eq!(state.eviction_rank(), None);
        state.responding();
        let since = state.since.load(Relaxed);
        assert_eq!(state.deadline(&limits), Some(since + 30_000));
        state.request_done();
        assert_eq!(state.phase(), IDLE);
        let since = state.since.load(Relaxed);
        assert_eq!(state.deadline(&limits), Some(since + 75_000));
        state.on_read(); // the next request begins
        assert_eq!(state.phase(), HEAD);
        assert!(state.deadline(&limits).unwrap() <= now_ms() + 10_000);
        // Pipelined: the next head arrived while handling this one.
        state.request_started(false);
        state.on_read();
        state.responding();
        state.request_done();
        assert_eq!(state.phase(), HEAD);
    }
}
