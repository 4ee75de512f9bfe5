//! A small, fixed pool of threads for slow hashing (Argon2, bcrypt), with
//! lanes so that failures cannot starve legitimate work.
//!
//! Slow hashes never run on the async executor's threads, and at most
//! `threads` run at once. A fixed set of threads also bounds memory: each
//! Argon2 hash needs its `m_cost`, and the allocator keeps that per thread.
//!
//! Work waits in one of three lanes, and a free thread takes from the
//! first lane that has work:
//!
//! 1. [`Lane::Trusted`]: hashing new secrets (create, rotate) — only
//!    callers that were already authenticated get here.
//! 2. [`Lane::Known`]: checking a presented secret against a key id that
//!    exists (a first verification, or a wrong secret). Jobs are queued per
//!    key id and taken round-robin across key ids, so a flood of wrong
//!    secrets for one key id delays another key's first verification by at
//!    most one hash per busy key id, not by the whole flood.
//! 3. [`Lane::Unknown`]: the decoy hash for a key id that does not exist
//!    (spent so that timing does not tell which key ids exist). A flood of
//!    random keys lands here, behind everything else.
//!
//! Every lane is bounded; a job that would exceed its bound is refused at
//! once with [`Error::Overloaded`] (HTTP 503 with `Retry-After`) instead of
//! queueing without end. Jobs whose caller went away are skipped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// Most jobs waiting in the trusted lane.
const TRUSTED_MAX: usize = 1024;
/// Most jobs waiting for one key id.
const PER_KEY_MAX: usize = 64;
/// Most jobs waiting in the known lane, all key ids together.
const KNOWN_MAX: usize = 4096;
/// Most jobs waiting in the unknown lane.
const UNKNOWN_MAX: usize = 1024;

/// Which queue a hashing job waits in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Hashing a new secret for an authenticated caller.
    Trusted,
    /// Checking a secret against this existing key id.
    Known(String),
    /// The decoy hash for an unknown key id.
    Unknown,
}

#[derive(Default)]
struct Lanes {
    trusted: VecDeque<Job>,
    known: HashMap<String, VecDeque<Job>>,
    /// Key ids with waiting jobs, in turn order.
    turns: VecDeque<String>,
    known_len: usize,
    unknown: VecDeque<Job>,
    closed: bool,
}

impl Lanes {
    fn len(&self) -> usize {
        self.trusted.len() + self.known_len + self.unknown.len()
    }

    fn push(&mut self, lane: Lane, job: Job) -> Result<(), Job> {
        match lane {
            Lane::Trusted if self.trusted.len() < TRUSTED_MAX => self.trusted.push_back(job),
            Lane::Known(key_id) if self.known_len < KNOWN_MAX => {
                let queue = self.known.entry(key_id.clone()).or_default();
                if queue.len() >= PER_KEY_MAX {
                    return Err(job);
                }
                if queue.is_empty() {
                    self.turns.push_back(key_id);
                }
                queue.push_back(job);
                self.known_len += 1;
            }
            Lane::Unknown if self.unknown.len() < UNKNOWN_MAX => self.unknown.push_back(job),
            _ => return Err(job),
        }
        Ok(())
    }

    /// The next job: trusted first, then one per key id in turn, then unknown.
    fn pop(&mut self) -> Option<Job> {
        if let Some(job) = self.trusted.pop_front() {
            return Some(job);
        }
        if let Some(key_id) = self.turns.pop_front() {
            let queue = self.known.get_mut(&key_id)?;
            let job = queue.pop_front();
            if queue.is_empty() {
                self.known.remove(&key_id);
            } else {
                self.turns.push_back(key_id);
            }
            self.known_len -= 1;
            return job;
        }
        self.unknown.pop_front()
    }
}

struct Shared {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    completed: AtomicU64,
}

impl Shared {
    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        // Every change to the lanes is a single push or pop; ignore poison.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct HashPool {
    shared: Arc<Shared>,
}

impl HashPool {
    pub(crate) fn new(threads: usize) -> Result<Self, Error> {
        let shared = Arc::new(Shared {
            lanes: Mutex::new(Lanes::default()),
            ready: Condvar::new(),
            completed: AtomicU64::new(0),
        });
        for i in 0..threads.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("keygate-hash-{i}"))
                .spawn(move || work(&shared))
                .map_err(|e| Error::Hash(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(Self { shared })
    }

    /// Runs `work` on the pool in `lane` and waits for its result;
    /// [`Error::Overloaded`] at once when the lane is full.
    pub(crate) async fn run<T, F>(&self, lane: Lane, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let shared = self.shared.clone();
        let job: Job = Box::new(move || {
            // The caller went away (client hung up) while queued: skip the work.
            if !done.is_closed() {
                let output = work();
                // Counted before the caller can see the result.
                shared.completed.fetch_add(1, Ordering::Relaxed);
                let _ = done.send(output);
            }
        });
        if self.shared.lanes().push(lane, job).is_err() {
            return Err(Error::Overloaded);
        }
        self.shared.ready.notify_one();
        result
            .await
            .map_err(|_| Error::Hash("hashing job failed".into()))
    }

    /// Jobs waiting for a thread.
    pub(crate) fn queued(&self) -> usize {
        self.shared.lanes().len()
    }

    /// Jobs run to completion since the pool started (skipped ones aside).
    pub(crate) fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.shared.lanes().closed = true;
        self.shared.ready.notify_all();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut lanes = shared.lanes();
            loop {
                if lanes.closed {
                    return;
                }
                if let Some(job) = lanes.pop() {
                    break job;
                }
                lanes = shared.ready.wait(lanes).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Occupies the pool's only thread until the returned sender fires.
    async fn block(
        pool: &Arc<HashPool>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let busy = pool.clone();
        let handle = tokio::spawn(async move {
            busy.run(Lane::Trusted, move || {
                let _ = started.send(());
                let _ = wait.recv();
            })
            .await
            .unwrap();
        });
        running.await.unwrap();
        (release, handle)
    }

    #[tokio::test]
    async fn abandoned_jobs_are_skipped() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let (release, blocker) = block(&pool).await;
        let counted = ran.clone();
        let queued = pool.run(Lane::Unknown, move || {
            counted.fetch_add(1, Ordering::SeqCst)
        });
        // Give up on the queued job while the thread is still busy.
        assert!(tokio::time::timeout(Duration::from_millis(20), queued)
            .await
            .is_err());
        release.send(()).unwrap();
        blocker.await.unwrap();
        let counted = ran.clone();
        pool.run(Lane::Unknown, move || {
            counted.fetch_add(1, Ordering::SeqCst)
        })
        .await
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the awaited job ran");
    }

    #[tokio::test]
    async fn trusted_first_then_key_ids_in_turn_then_unknown() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, blocker) = block(&pool).await;
        let mut waits = Vec::new();
        let lanes = [
            ("u1", Lane::Unknown),
            ("u2", Lane::Unknown),
            ("x1", Lane::Known("x".into())),
            ("x2", Lane::Known("x".into())),
            ("x3", Lane::Known("x".into())),
            ("y1", Lane::Known("y".into())),
            ("t1", Lane::Trusted),
        ];
        for (name, lane) in lanes {
            let (submit, order) = (pool.clone(), order.clone());
            waits.push(tokio::spawn(async move {
                submit
                    .run(lane, move || order.lock().unwrap().push(name))
                    .await
                    .unwrap()
            }));
            // Each job is queued before the next is submitted.
            while pool.queued() < waits.len() {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).unwrap();
        blocker.await.unwrap();
        for w in waits {
            w.await.unwrap();
        }
        // A flood on key x does not hold key y back by more than one job.
        assert_eq!(
            *order.lock().unwrap(),
            ["t1", "x1", "y1", "x2", "x3", "u1", "u2"]
        );
        assert_eq!(pool.completed(), 8);
    }

    #[tokio::test]
    async fn full_lanes_refuse_at_once() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let (release, blocker) = block(&pool).await;
        let mut waits = Vec::new();
        for _ in 0..PER_KEY_MAX {
            let pool = pool.clone();
            waits.push(tokio::spawn(async move {
                pool.run(Lane::Known("x".into()), || ()).await
            }));
        }
        while pool.queued() < PER_KEY_MAX {
            tokio::task::yield_now().await;
        }
        // Key x is full; key y and the other lanes still have room.
        assert!(matches!(
            pool.run(Lane::Known("x".into()), || ()).await,
            Err(Error::Overloaded)
        ));
        let other = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(Lane::Known("y".into()), || 7).await })
        };
        while pool.queued() < PER_KEY_MAX + 1 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        blocker.await.unwrap();
        assert_eq!(other.await.unwrap().unwrap(), 7);
        for w in waits {
            w.await.unwrap().unwrap();
        }
    }
}
