//! Push invalidation through Redis pub/sub (SPEC §9): every change one
//! instance stores is published on a channel; every instance subscribed
//! to it drops the key from its cache at once.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use keygate::{ChangePublisher, Invalidator, StoreError};
use redis::AsyncCommands;
use tokio::task::JoinHandle;

use crate::{connection_lost, mask, RedisRateLimiter};

/// Quiet this long → the subscriber pings Redis to check its connection.
const IDLE_CHECK: Duration = Duration::from_secs(15);
/// Longest wait for a subscription or a ping.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Publishes key changes on a Redis channel and listens to it: both halves
/// of push invalidation ([`ChangePublisher`] for
/// [`ServiceBuilder::change_publisher`], [`listen`](Self::listen) for the
/// service's [`Invalidator`]).
///
/// Made from a [`RedisRateLimiter`], whose connection it shares for
/// publishing; it subscribes on a connection of its own. The channel is
/// the limiter's prefix followed by `key-changes` (`keygate:rl:key-changes`
/// by default), so deployments that use separate prefixes do not hear each
/// other. The payload is the changed key's key id, which is public.
///
/// [`ServiceBuilder::change_publisher`]: keygate::ServiceBuilder::change_publisher
#[derive(Clone)]
pub struct RedisChangeFeed {
    limiter: RedisRateLimiter,
    channel: String,
}

impl std::fmt::Debug for RedisChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisChangeFeed")
            .field("server", &self.limiter.inner.server)
            .field("channel", &self.channel)
            .finish()
    }
}

impl RedisChangeFeed {
    /// A feed on the limiter's Redis.
    pub fn new(limiter: &RedisRateLimiter) -> Self {
        Self {
            channel: format!("{}key-changes", limiter.prefix()),
            limiter: limiter.clone(),
        }
    }

    /// The channel changes are published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Runs [`listen`](Self::listen) on a task of its own.
    pub fn spawn_listener(&self, invalidator: Invalidator) -> JoinHandle<()> {
        tokio::spawn(self.clone().listen(invalidator))
    }

    /// Subscribes to the channel and passes every announced key id to
    /// `invalidator`, until its service is gone. Whenever it (re)subscribes,
    /// announcements may have been missed, so it first calls
    /// [`Invalidator::resync`]. A lost connection is retried (50 ms,
    /// doubling up to 1 s); a quiet one is pinged every 15 s.
    pub async fn listen(self, invalidator: Invalidator) {
        let feed = format!("Redis {} at {}", self.channel, self.limiter.inner.server);
        let connect = || async {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.subscribe()).await {
                Ok(Ok(pubsub)) => Ok(pubsub),
                Ok(Err(e)) => Err(self.masked(&e)),
                Err(_) => Err("no answer within 3 s".to_owned()),
            }
        };
        let receive =
            |pubsub, invalidator: Invalidator| async move { receive(pubsub, &invalidator).await };
        invalidator.keep_listening(&feed, connect, receive).await;
    }

    /// Subscribes on the first of the limiter's URLs that answers: on a
    /// cluster any node hears what is published on any other.
    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut last = None;
        for node in &self.limiter.inner.nodes {
            let attempt = async {
                let mut pubsub = node.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok(pubsub)
            };
            match attempt.await {
                Ok(pubsub) => return Ok(pubsub),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Redis URL"))
        }))
    }

    fn masked(&self, e: &redis::RedisError) -> String {
        mask(&e.to_string(), self.limiter.inner.password.as_deref())
    }
}

/// Passes messages on until the subscription is lost (or the service is
/// gone); says why it stopped.
async fn receive(pubsub: redis::aio::PubSub, invalidator: &Invalidator) -> String {
    let (mut sink, mut stream) = pubsub.split();
    loop {
        match tokio::time::timeout(IDLE_CHECK, stream.next()).await {
            Ok(Some(message)) => {
                let Ok(key_id) = message.get_payload::<String>() else {
                    continue;
                };
                if !invalidator.key_changed(&key_id) {
                    return "service dropped".into();
                }
            }
            Ok(None) => return "connection closed".into(),
            Err(_) => {
                let ping = tokio::time::timeout(ATTEMPT_TIMEOUT, sink.ping::<redis::Value>());
                match ping.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return "ping timed out".into(),
                }
            }
        }
    }
}

#[async_trait]
impl ChangePublisher for RedisChangeFeed {
    async fn publish(&self, key_id: &str) -> Result<(), StoreError> {
        let channel = self.channel.as_str();
        self.limiter
            .run("publish", connection_lost, |mut c| async move {
                c.publish::<_, _, i64>(channel, key_id).await
            })
            .await
            .map(|_listeners| ())
            .map_err(|e| StoreError::Unavailable(e.0))
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
