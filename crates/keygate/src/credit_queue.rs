//! Credits taken in batches: requests of one key that arrive while its
//! credits are being taken wait and are then served together by one
//! atomic store operation ([`KeyStore::consume_credits_batch`]), so a hot
//! metered key costs one store round trip per batch instead of one per
//! request, and requests never queue one behind another on the row lock.
//!
//! Exactness is the store's: each batch is one atomic operation granting
//! requests in order while credits last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::limits::CreditUse;
use crate::repository::Repository;

type Reply = oneshot::Sender<Result<CreditUse, StoreError>>;

struct Waiter {
    cost: u64,
    now: DateTime<Utc>,
    reply: Reply,
}

/// The keys whose credits are being taken, with the requests waiting.
#[derive(Default)]
pub(crate) struct CreditQueues {
    keys: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl CreditQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiter>>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `cost` credits of key `id`, in a batch with the requests of
    /// the same key that arrive meanwhile.
    pub(crate) async fn consume(
        self: &Arc<Self>,
        repo: &Arc<dyn Repository>,
        id: &str,
        cost: u64,
        now: DateTime<Utc>,
    ) -> Result<CreditUse, StoreError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return repo.consume_credits(id, cost, now).await;
        };
        let (reply, answer) = oneshot::channel();
        let start_drain = {
            let mut keys = self.lock();
            let waiter = Waiter { cost, now, reply };
            match keys.get_mut(id) {
                Some(waiting) => {
                    waiting.push(waiter);
                    false
                }
                None => {
                    keys.insert(id.to_owned(), vec![waiter]);
                    true
                }
            }
        };
        if start_drain {
            // A task of its own: a client that hangs up must not strand the
            // requests waiting behind it.
            let (queues, repo, id) = (self.clone(), repo.clone(), id.to_owned());
            runtime.spawn(async move { queues.drain(repo, id).await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("credit batch abandoned".into())))
    }

    /// Serves the waiting requests of key `id`, batch after batch, until
    /// none is left.
    async fn drain(&self, repo: Arc<dyn Repository>, id: String) {
        loop {
            let batch = {
                let mut keys = self.lock();
                match keys.get_mut(&id) {
                    Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
                    _ => {
                        keys.remove(&id);
                        return;
                    }
                }
            };
            let now = batch.iter().map(|w| w.now).max().unwrap_or_else(Utc::now);
            let result = if let [one] = batch.as_slice() {
                repo.consume_credits(&id, one.cost, now)
                    .await
                    .map(|used| vec![used])
            } else {
                let costs: Vec<u64> = batch.iter().map(|w| w.cost).collect();
                repo.consume_credits_batch(&id, &costs, now).await
            };
            match result {
                Ok(uses) if uses.len() == batch.len() => {
                    for (waiter, used) in batch.into_iter().zip(uses) {
                        let _ = waiter.reply.send(Ok(used));
                    }
                }
                Ok(uses) => {
                    let message = format!(
                        "store answered {} credit uses for {} requests",
                        uses.len(),
                        batch.len()
                    );
                    for waiter in batch {
                        let _ = waiter.reply.send(Err(StoreError::Other(message.clone())));
                    }
                }
                Err(e) => {
                    for waiter in batch {
                        let _ = waiter.reply.send(Err(same_error(&e)));
                    }
                }
            }
        }
    }
}

/// The same error, for each request of a failed batch.
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::InvalidConfig(m) => StoreError::InvalidConfig(m.clone()),
        StoreError::Other(m) => StoreError::Other(m.clone()),
    }
}
