//! The Redis backend: state shared by every cutover copy.
//!
//! Commands go through one `ConnectionManager` (multiplexed, reconnecting) with
//! short timeouts, so a Redis outage shows up as a quick [`StateError`] rather
//! than requests piling up. Invalidation messages use Redis pub/sub on the
//! channel `<prefix>invalidate`; a background task relays them to a local
//! broadcast and resubscribes after a lost connection.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{broadcast, watch};

use super::{INVALIDATION_BUFFER, LockToken, StateError};

/// Per-command budget: past this, Redis counts as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);

/// INCR, and start the window's expiry on the first event.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

/// Delete the lock only if we still own it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Extend the lock's expiry only if we still own it (an expired or taken-over
/// lock is not ours to revive).
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

#[derive(Clone)]
pub struct RedisState {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
    hit: redis::Script,
    unlock: redis::Script,
    renew: redis::Script,
    invalidations: broadcast::Sender<String>,
    // Dropped with the last `RedisState`: stops the relay task.
    _stop: watch::Sender<()>,
}

impl RedisState {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisState, StateError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        if pong != "PONG" {
            return Err(StateError::Protocol(format!("PING answered {pong:?}")));
        }
        let (invalidations, _) = broadcast::channel(INVALIDATION_BUFFER);
        let (stop, stopped) = watch::channel(());
        let channel = format!("{prefix}invalidate");
        tokio::spawn(relay(client, channel, invalidations.clone(), stopped));
        Ok(RedisState {
            inner: Arc::new(Inner {
                conn,
                prefix: prefix.to_string(),
                hit: redis::Script::new(HIT),
                unlock: redis::Script::new(UNLOCK),
                renew: redis::Script::new(RENEW),
                invalidations,
                _stop: stop,
            }),
        })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.inner.prefix)
    }

    pub async fn hit(&self, key: &str, window: Duration) -> Result<u64, StateError> {
        let mut conn = self.inner.conn.clone();
        let n: u64 = self
            .inner
            .hit
            .key(self.key("count", key))
            .arg(window.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub async fn try_lock(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StateError> {
        let mut conn = self.inner.conn.clone();
        let token = LockToken::random();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key("lock", key))
            .arg(&token.0)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        Ok(set.map(|_| token))
    }

    pub async fn renew(
        &self,
        key: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let mut conn = self.inner.conn.clone();
        let renewed: i64 = self
            .inner
            .renew
            .key(self.key("lock", key))
            .arg(&token.0)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    pub async fn unlock(&self, key: &str, token: &LockToken) -> Result<bool, StateError> {
        let mut conn = self.inner.conn.clone();
        let deleted: i64 = self
            .inner
            .unlock
            .key(self.key("lock", key))
            .arg(&token.0)
            .invoke_async(&mut conn)
            .await?;
        Ok(deleted == 1)
    }

    pub async fn invalidate(&self, topic: &str) -> Result<(), StateError> {
        let mut conn = self.inner.conn.clone();
        let _receivers: i64 = redis::cmd("PUBLISH")
            .arg(format!("{}invalidate", self.inner.prefix))
            .arg(topic)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub fn invalidations(&self) -> broadcast::Receiver<String> {
        self.inner.invalidations.subscribe()
    }
}

/// Relay pub/sub messages to the local broadcast until stopped, resubscribing
/// after any failure. While the subscription is down, invalidations are missed:
/// caches that depend on them must keep their entries short-lived.
async fn relay(
    client: redis::Client,
    channel: String,
    out: broadcast::Sender<String>,
    mut stopped: watch::Receiver<()>,
) {
    use futures_util::StreamExt as _;
    let mut backoff = Duration::from_millis(100);
    loop {
        let session = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if let Ok(topic) = msg.get_payload::<String>() {
                    let _ = out.send(topic);
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "Redis invalidation subscription lost; retrying");
                }
            }
            _ = stopped.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
