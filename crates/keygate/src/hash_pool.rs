//! A small, fixed pool of threads for slow hashing (Argon2, bcrypt).
//!
//! Slow hashes never run on the async executor's threads, and at most
//! `threads` run at once: a flood of wrong secrets for a real key id queues
//! here instead of taking every core from valid (cached) requests. A fixed
//! set of threads also bounds memory: each Argon2 hash needs its `m_cost`,
//! and the allocator keeps that per thread.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting beyond this make callers wait (asynchronously) to enqueue.
const QUEUE: usize = 1024;

pub(crate) struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    pub(crate) fn new(threads: usize) -> Result<Self, Error> {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("keygate-hash-{i}"))
                .spawn(move || loop {
                    // Lock only to take a job; poison cannot leave the queue inconsistent.
                    let job = queue
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .blocking_recv();
                    match job {
                        Some(job) => job(),
                        None => break, // the service is gone
                    }
                })
                .map_err(|e| Error::Hash(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on the pool and waits for its result.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller went away (client hung up) while queued: skip the work.
            if !done.is_closed() {
                let _ = done.send(work());
            }
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::Hash("hashing pool stopped".into()))?;
        result
            .await
            .map_err(|_| Error::Hash("hashing job failed".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn abandoned_jobs_are_skipped() {
        let pool = Arc::new(HashPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let busy = pool.clone();
        let blocker = tokio::spawn(async move {
            busy.run(|| std::thread::sleep(Duration::from_millis(100)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let counted = ran.clone();
        let queued = pool.run(move || counted.fetch_add(1, Ordering::SeqCst));
        // Give up on the queued job while the thread is still busy.
        assert!(tokio::time::timeout(Duration::from_millis(20), queued)
            .await
            .is_err());
        let _ = blocker.await;
        let counted = ran.clone();
        pool.run(move || counted.fetch_add(1, Ordering::SeqCst))
            .await
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1, "only the awaited job ran");
    }
}
