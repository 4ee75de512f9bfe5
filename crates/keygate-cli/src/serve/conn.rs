//! One connection of `keygate serve`: its task ([`connection`]), where it is
//! in its request cycle ([`ConnState`]), and the deadlines of those phases
//! ([`supervise`]).
//!
//! # Per-connection timeouts
//!
//! Every connection carries a [`ConnState`]: the phase of its request cycle
//! and when that phase began. Its I/O ([`Tracked`]), the service
//! ([`ConnService`]) and the request and response bodies
//! ([`DeadlineBody`](super::io::DeadlineBody),
//! [`TrackedBody`](super::io::TrackedBody)) move it along:
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

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

use super::io::{ConnService, Tracked};
use super::limits::Limits;
use super::server::Shared;

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

/// The task of one accepted connection, until it is closed.
pub(super) async fn connection(
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
pub(super) const FRESH: u8 = 0;
pub(super) const IDLE: u8 = 1;
pub(super) const HEAD: u8 = 2;
pub(super) const BODY: u8 = 3;
pub(super) const HANDLING: u8 = 4;
pub(super) const WRITING: u8 = 5;

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
pub(super) struct ConnState {
    phase: AtomicU8,
    since: AtomicU64,
    /// Bytes of a next request arrived while this one was being handled.
    pipelined: AtomicBool,
    /// The body of the current request missed its deadline: answer 408.
    pub(super) body_timed_out: AtomicBool,
    /// Notified to close the connection (eviction).
    pub(super) evict: Notify,
}

impl ConnState {
    pub(super) fn new() -> Self {
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

    /// A connection in `phase` since `since` (tests).
    #[cfg(test)]
    pub(super) fn at(phase: u8, since: u64) -> Self {
        let state = Self::new();
        state.phase.store(phase, Relaxed);
        state.since.store(since, Relaxed);
        state
    }

    fn enter(&self, phase: u8) {
        self.since.store(now_ms(), Relaxed);
        self.phase.store(phase, Relaxed);
    }

    /// Bytes arrived from the client.
    pub(super) fn on_read(&self) {
        match self.phase() {
            IDLE => self.enter(HEAD),
            HANDLING | WRITING => self.pipelined.store(true, Relaxed),
            _ => {}
        }
    }

    /// The client accepted bytes of the response.
    pub(super) fn on_write(&self) {
        if self.phase() == WRITING {
            self.since.store(now_ms(), Relaxed);
        }
    }

    /// A complete request head was parsed.
    pub(super) fn request_started(&self, has_body: bool) {
        self.pipelined.store(false, Relaxed);
        self.body_timed_out.store(false, Relaxed);
        self.enter(if has_body { BODY } else { HANDLING });
    }

    /// The request body is complete, failed, or was dropped unread.
    pub(super) fn body_finished(&self) {
        if self
            .phase
            .compare_exchange(BODY, HANDLING, Relaxed, Relaxed)
            .is_ok()
        {
            self.since.store(now_ms(), Relaxed);
        }
    }

    /// The handler produced its response.
    pub(super) fn responding(&self) {
        self.enter(WRITING);
    }

    /// The response was handed to the socket entirely.
    pub(super) fn request_done(&self) {
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
    pub(super) fn eviction_rank(&self) -> Option<(u8, u64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(phase: u8, since: u64) -> Arc<ConnState> {
        Arc::new(ConnState::at(phase, since))
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
