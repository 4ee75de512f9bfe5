//! Failing fast while a database server is down (SPEC §9, store failures).
//!
//! sqlx's pool retries a refused connection until its acquire timeout (5 s
//! by default), so without this every request would wait that long for its
//! 503. The gate watches the calls instead: when one is slow (50 ms) or
//! fails as unavailable, it *probes* the server with a connection of its
//! own (150 ms at most). A refused connection marks the store down; so
//! does any other failed probe (no connection within 150 ms, an error from
//! the server) unless calls kept completing meanwhile, which tells a busy
//! server from a gone one. Once down, the calls waiting are answered at
//! once with [`StoreError::Unavailable`], and so is every call until a
//! probe, every 100 ms, connects again. A slow call on a healthy server
//! only costs a probe (at most one per 250 ms).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::StoreError;
use tokio::sync::watch;
use tokio::time::Instant;

/// Connects to the server and disconnects; the error says why not.
pub(crate) type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), ProbeError>> + Send>> + Send + Sync>;

/// Why a probe did not connect.
#[derive(Debug, Clone)]
pub(crate) struct ProbeError {
    /// The server refused the connection: nothing listens there.
    pub refused: bool,
    pub reason: String,
}

impl ProbeError {
    pub(crate) fn from_sqlx(e: &sqlx::Error) -> Self {
        let refused =
            matches!(e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
        Self {
            refused,
            reason: e.to_string(),
        }
    }
}

/// Timings of a [`Gate`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateTiming {
    /// A call slower than this makes the gate probe.
    pub slow_call: Duration,
    /// A probe that has not connected by then failed.
    pub probe_timeout: Duration,
    /// While up, probes are at least this far apart.
    pub probe_every: Duration,
    /// While down, probes are this far apart.
    pub retry_every: Duration,
}

impl Default for GateTiming {
    fn default() -> Self {
        Self {
            slow_call: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(150),
            probe_every: Duration::from_millis(250),
            retry_every: Duration::from_millis(100),
        }
    }
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gate {
    shared: Arc<Shared>,
}

struct Shared {
    /// `None` while up; why it is down otherwise.
    down: watch::Sender<Option<String>>,
    probe: Probe,
    timing: GateTiming,
    probing: AtomicBool,
    last_probe: Mutex<Option<Instant>>,
    /// Calls the server answered (successfully or with an error of its own).
    answered: AtomicU64,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("down", &*self.shared.down.borrow())
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub(crate) fn new(probe: Probe, timing: GateTiming) -> Self {
        Self {
            shared: Arc::new(Shared {
                down: watch::Sender::new(None),
                probe,
                timing,
                probing: AtomicBool::new(false),
                last_probe: Mutex::new(None),
                answered: AtomicU64::new(0),
            }),
        }
    }

    /// Why the store is down, if it is.
    pub(crate) fn down(&self) -> Option<String> {
        self.shared.down.borrow().clone()
    }

    /// Runs a store call, unless the store is known to be down; answers
    /// [`StoreError::Unavailable`] as soon as it is found down.
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if let Some(reason) = self.down() {
            return Err(unavailable(&reason));
        }
        let mut call = pin!(call);
        let slow = tokio::time::sleep(self.shared.timing.slow_call);
        tokio::select! {
            biased;
            done = &mut call => return self.after(done),
            () = slow => {}
        }
        let mut state = self.shared.down.subscribe();
        self.probe_soon();
        tokio::select! {
            biased;
            done = &mut call => self.after(done),
            reason = state.wait_for(Option::is_some) => {
                let reason = reason.map_or_else(|_| "store closed".to_owned(), |r| r.clone().unwrap_or_default());
                Err(unavailable(&reason))
            }
        }
    }

    fn after<T>(&self, done: Result<T, StoreError>) -> Result<T, StoreError> {
        if matches!(done, Err(StoreError::Unavailable(_))) {
            self.probe_soon();
        } else {
            self.shared.answered.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    /// Starts a probe unless one runs or ran within `probe_every`.
    fn probe_soon(&self) {
        let now = Instant::now();
        {
            let mut last = self
                .shared
                .last_probe
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < self.shared.timing.probe_every) {
                return;
            }
            if self.shared.probing.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(now);
        }
        let gate = self.clone();
        tokio::spawn(async move {
            let answered = gate.shared.answered.load(Ordering::Relaxed);
            let result = gate.probe_once().await;
            gate.shared.probing.store(false, Ordering::Release);
            let Err(e) = result else {
                return;
            };
            if e.refused || gate.shared.answered.load(Ordering::Relaxed) == answered {
                gate.mark_down(e.reason);
            } else {
                // A busy server: calls completed while the probe failed.
                tracing::debug!(reason = %e.reason, "database probe failed while calls complete: not down");
            }
        });
    }

    async fn probe_once(&self) -> Result<(), ProbeError> {
        let timing = self.shared.timing;
        match tokio::time::timeout(timing.probe_timeout, (self.shared.probe)()).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError {
                refused: false,
                reason: format!(
                    "no connection within {} ms",
                    timing.probe_timeout.as_millis()
                ),
            }),
        }
    }

    /// Marks the store down and probes until it connects again.
    fn mark_down(&self, reason: String) {
        let was_up = self
            .shared
            .down
            .send_replace(Some(reason.clone()))
            .is_none();
        if !was_up {
            return;
        }
        tracing::warn!(
            %reason,
            "database unreachable: answering 503 at once until it is back (checking every {} ms)",
            self.shared.timing.retry_every.as_millis()
        );
        let gate = self.clone();
        tokio::spawn(async move {
            let since = Instant::now();
            loop {
                tokio::time::sleep(gate.shared.timing.retry_every).await;
                // Nobody can use the store any more: stop.
                if Arc::strong_count(&gate.shared) == 1 {
                    return;
                }
                if gate.probe_once().await.is_ok() {
                    gate.shared.down.send_replace(None);
                    tracing::info!(
                        down_ms = since.elapsed().as_millis() as u64,
                        "database reachable again"
                    );
                    return;
                }
            }
        });
    }
}

fn unavailable(reason: &str) -> StoreError {
    StoreError::Unavailable(format!("database unavailable: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A probe whose answer the test sets, counting its calls.
    fn switch() -> (Probe, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let up = Arc::new(AtomicBool::new(true));
        let calls = Arc::new(AtomicUsize::new(0));
        let probe: Probe = {
            let (up, calls) = (up.clone(), calls.clone());
            Arc::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                let up = up.load(Ordering::SeqCst);
                Box::pin(async move {
                    if up {
                        Ok(())
                    } else {
                        Err(ProbeError {
                            refused: true,
                            reason: "connection refused".to_owned(),
                        })
                    }
                })
            })
        };
        (probe, up, calls)
    }

    async fn hang() -> Result<(), StoreError> {
        std::future::pending().await
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_call_on_a_refusing_server_is_answered_within_the_slow_call_time() {
        let (probe, up, _) = switch();
        let gate = Gate::new(probe, GateTiming::default());
        up.store(false, Ordering::SeqCst);
        let start = Instant::now();
        let answer = gate.run(hang()).await;
        assert!(matches!(answer, Err(StoreError::Unavailable(ref m)) if m.contains("refused")));
        assert!(
            start.elapsed() < Duration::from_millis(60),
            "{:?}",
            start.elapsed()
        );
        // Down: later calls do not even start.
        assert!(gate.down().is_some());
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let answer = gate
            .run(async move {
                s.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(answer.is_err() && !started.load(Ordering::SeqCst));

        // Back: within one retry period.
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(101)).await;
        assert!(gate.down().is_none());
        gate.run(async { Ok(()) }).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_probe_counts_as_down() {
        let probe: Probe = Arc::new(|| Box::pin(std::future::pending()));
        let gate = Gate::new(probe, GateTiming::default());
        let start = Instant::now();
        assert!(gate.run(hang()).await.is_err());
        let took = start.elapsed();
        assert!(took <= Duration::from_millis(201), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_probe_while_calls_complete_is_a_busy_server_not_a_gone_one() {
        let probe: Probe = Arc::new(|| Box::pin(std::future::pending()));
        let gate = Gate::new(probe, GateTiming::default());
        // One slow call starts a probe; quick ones keep completing.
        let slow = gate.run(async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            Ok(1)
        });
        let quick = async {
            for _ in 0..40 {
                gate.run(async { Ok(2) }).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (slow, ()) = tokio::join!(slow, quick);
        assert_eq!(slow.unwrap(), 1);
        assert!(gate.down().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_calls_on_a_healthy_server_finish_and_probe_sparingly() {
        let (probe, _, calls) = switch();
        let gate = Gate::new(probe, GateTiming::default());
        for _ in 0..20 {
            let slow = async {
                tokio::time::sleep(Duration::from_millis(80)).await;
                Ok(7)
            };
            assert_eq!(gate.run(slow).await.unwrap(), 7);
        }
        // 20 calls × 80 ms = 1.6 s: at most one probe per 250 ms.
        let n = calls.load(Ordering::SeqCst);
        assert!((1..=7).contains(&n), "{n} probes");
        assert!(gate.down().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_failing_as_unavailable_probes_at_once() {
        let (probe, up, calls) = switch();
        let gate = Gate::new(probe, GateTiming::default());
        up.store(false, Ordering::SeqCst);
        let failed = gate
            .run(async { Err::<(), _>(StoreError::Unavailable("broken pipe".into())) })
            .await;
        assert!(failed.is_err());
        tokio::task::yield_now().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(gate.down().is_some());
        // Other errors are the caller's business.
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let before = calls.load(Ordering::SeqCst);
        let _ = gate
            .run(async { Err::<(), _>(StoreError::Conflict("taken".into())) })
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), before);
    }
}
