//! Credits taken in batches ([`Coalescer`]): the requests of one metered
//! key that arrive while its credits are being taken are served together
//! by one atomic store operation ([`KeyStore::consume_credits_batch`]).
//!
//! [`KeyStore::consume_credits_batch`]: crate::KeyStore::consume_credits_batch

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::batch::{Batch, BoxFuture, Coalescer};
use crate::error::StoreError;
use crate::limits::CreditUse;
use crate::repository::Repository;

/// One batch of credit uses against the store.
pub(crate) struct TakeCredits(Arc<dyn Repository>);

impl Batch for TakeCredits {
    type Input = (u64, DateTime<Utc>);
    type Output = CreditUse;
    type Error = StoreError;

    fn run<'a>(
        &'a self,
        id: &'a str,
        inputs: Vec<(u64, DateTime<Utc>)>,
    ) -> BoxFuture<'a, Result<Vec<CreditUse>, StoreError>> {
        Box::pin(async move {
            // The latest time of the batch: a refill due for any is due.
            let now = inputs
                .iter()
                .map(|(_, t)| *t)
                .max()
                .unwrap_or_else(Utc::now);
            if let [(cost, _)] = inputs.as_slice() {
                return Ok(vec![self.0.consume_credits(id, *cost, now).await?]);
            }
            let costs: Vec<u64> = inputs.iter().map(|(c, _)| *c).collect();
            self.0.consume_credits_batch(id, &costs, now).await
        })
    }

    fn copy_error(e: &StoreError) -> StoreError {
        match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::InvalidConfig(m) => StoreError::InvalidConfig(m.clone()),
            StoreError::Other(m) => StoreError::Other(m.clone()),
        }
    }

    fn internal_error(message: String) -> StoreError {
        StoreError::Other(message)
    }
}

/// The service's credit batches.
pub(crate) type CreditQueues = Coalescer<TakeCredits>;

/// Takes `cost` credits of key `id`, batched with the concurrent requests
/// of the same key.
pub(crate) async fn take_credits(
    queues: &Arc<CreditQueues>,
    repo: &Arc<dyn Repository>,
    id: &str,
    cost: u64,
    now: DateTime<Utc>,
) -> Result<CreditUse, StoreError> {
    match queues
        .submit(id, (cost, now), || TakeCredits(repo.clone()))
        .await
    {
        Ok(result) => result,
        // No tokio runtime to batch on: one request at a time.
        Err((cost, now)) => repo.consume_credits(id, cost, now).await,
    }
}
