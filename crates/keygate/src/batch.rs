//! Coalescing: requests for one key that arrive while a round trip for
//! that key is in flight wait, and are then sent together as one batch.
//! A hot key then costs one round trip per batch instead of one per
//! request, and requests never queue one by one on a lock in the store or
//! in Redis. Used for credits (the store) and shared rate limits (Redis).
//!
//! Exactness is the batch operation's: it decides the requests in order,
//! atomically.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// A boxed future, as the batch operations return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One batch operation: decides `inputs` (never empty) for key `id`, in
/// order, returning one output per input.
pub(crate) trait Batch: Send + Sync + 'static {
    type Input: Send + 'static;
    type Output: Send + 'static;
    type Error: Send + 'static;

    fn run<'a>(
        &'a self,
        id: &'a str,
        inputs: Vec<Self::Input>,
    ) -> BoxFuture<'a, Result<Vec<Self::Output>, Self::Error>>;

    /// The error each waiter of a failed batch gets.
    fn copy_error(e: &Self::Error) -> Self::Error;

    /// An error for a batch that went wrong in keygate itself.
    fn internal_error(message: String) -> Self::Error;
}

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Output, <B as Batch>::Error>>;

/// Per key, the requests waiting for its next batch.
type Waiting<B> = HashMap<String, Vec<(<B as Batch>::Input, Reply<B>)>>;

/// The keys with a batch in flight, and the requests waiting for the next.
pub(crate) struct Coalescer<B: Batch> {
    keys: Mutex<Waiting<B>>,
}

impl<B: Batch> Default for Coalescer<B> {
    fn default() -> Self {
        Self {
            keys: Mutex::default(),
        }
    }
}

impl<B: Batch> Coalescer<B> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<B>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides `input` for key `id` in the next batch of that key. When no
    /// batch is in flight, `operation()` makes the one that serves this
    /// request and those arriving meanwhile, run on a task of its own (a
    /// client that hangs up must not strand the requests behind it). Needs
    /// a tokio runtime; without one, returns `Err(input)` untouched.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        id: &str,
        input: B::Input,
        operation: impl FnOnce() -> B,
    ) -> Result<Result<B::Output, B::Error>, B::Input> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(input);
        };
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut keys = self.lock();
            match keys.get_mut(id) {
                Some(waiting) => {
                    waiting.push((input, reply));
                    false
                }
                None => {
                    keys.insert(id.to_owned(), vec![(input, reply)]);
                    true
                }
            }
        };
        if start {
            let (this, id, operation) = (self.clone(), id.to_owned(), operation());
            runtime.spawn(async move { this.drain(&operation, &id).await });
        }
        Ok(answer
            .await
            .unwrap_or_else(|_| Err(B::internal_error("batch abandoned".into()))))
    }

    /// Runs batch after batch for key `id` until no request waits.
    async fn drain(&self, operation: &B, id: &str) {
        loop {
            let waiting = {
                let mut keys = self.lock();
                match keys.get_mut(id) {
                    Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
                    _ => {
                        keys.remove(id);
                        return;
                    }
                }
            };
            let (inputs, replies): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
            let expected = replies.len();
            match operation.run(id, inputs).await {
                Ok(outputs) if outputs.len() == expected => {
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(Ok(output));
                    }
                }
                Ok(outputs) => {
                    let message = format!("{} answers for {expected} requests", outputs.len());
                    for reply in replies {
                        let _ = reply.send(Err(B::internal_error(message.clone())));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(B::copy_error(&e)));
                    }
                }
            }
        }
    }
}
