//! Shared ephemeral state: what several cutover copies must agree on.
//!
//! Three small things, nothing that cannot be lost:
//! - **counters with expiry** ([`SharedState::hit`]): fixed-window rate limits
//!   (sign-in attempts per account and per IP);
//! - **short locks with owner tokens** ([`SharedState::try_lock`]): one password
//!   migration per user at a time, across copies; only its owner can renew or
//!   release it. Held as a [`Lease`] ([`SharedState::try_lease`]): a short TTL,
//!   renewed while its holder works, so a holder that dies (a copy SIGKILLed
//!   mid-migration) frees it within one TTL while a slow one keeps it;
//! - **cache invalidation messages** ([`SharedState::invalidate`]): "forget what
//!   you cached about X", delivered to every copy (to itself too).
//!
//! Two backends: in-process ([`memory`], the default for a single copy) and Redis
//! ([`redis`], when several copies run). The set is closed, so this is an enum
//! rather than a trait object: no boxing on the request path. Redis failures are
//! [`StateError`]s, never panics; callers decide whether to fail closed.

mod lease;
pub mod memory;
pub mod redis;

pub use lease::Lease;

use std::time::Duration;

use tokio::sync::broadcast;

use crate::config::{StateBackend, StateConfig};

/// A failure of the shared state backend.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("Redis is unavailable: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis answered unexpectedly: {0}")]
    Protocol(String),
}

/// Proof of holding a lock: a random owner token.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    fn random() -> LockToken {
        use rand::RngCore as _;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        LockToken(hex::encode(bytes))
    }
}

impl std::fmt::Debug for LockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// The configured backend.
#[derive(Clone)]
pub enum SharedState {
    Memory(memory::MemoryState),
    Redis(redis::RedisState),
}

impl SharedState {
    /// Connect to the configured backend. For Redis this checks the server
    /// answers and starts the task that relays invalidation messages.
    pub async fn connect(cfg: &StateConfig) -> Result<SharedState, StateError> {
        match &cfg.backend {
            StateBackend::Memory => Ok(SharedState::Memory(memory::MemoryState::new())),
            StateBackend::Redis { url } => Ok(SharedState::Redis(
                redis::RedisState::connect(url.expose(), &cfg.key_prefix).await?,
            )),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            SharedState::Memory(_) => "memory",
            SharedState::Redis(_) => "redis",
        }
    }

    /// Count one event under `key` and return how many happened in the current
    /// window of length `window` (the window starts at the first event).
    pub async fn hit(&self, key: &str, window: Duration) -> Result<u64, StateError> {
        match self {
            SharedState::Memory(m) => Ok(m.hit(key, window)),
            SharedState::Redis(r) => r.hit(key, window).await,
        }
    }

    /// Take the lock `key` for at most `ttl`, or `None` when someone holds it.
    pub async fn try_lock(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LockToken>, StateError> {
        match self {
            SharedState::Memory(m) => Ok(m.try_lock(key, ttl)),
            SharedState::Redis(r) => r.try_lock(key, ttl).await,
        }
    }

    /// Take the lock `key` as a [`Lease`] of `ttl`, renewed every third of it
    /// until released or dropped; `None` when someone holds it.
    pub async fn try_lease(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, StateError> {
        let token = self.try_lock(key, ttl).await?;
        Ok(token.map(|token| Lease::hold(self.clone(), key, token, ttl)))
    }

    /// Extend a lock we hold to expire `ttl` from now. Returns false when it had
    /// expired or was taken over meanwhile (then nothing changes: a lost lock is
    /// never revived).
    pub async fn renew(
        &self,
        key: &str,
        token: &LockToken,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        match self {
            SharedState::Memory(m) => Ok(m.renew(key, token, ttl)),
            SharedState::Redis(r) => r.renew(key, token, ttl).await,
        }
    }

    /// Release a lock we hold. Returns false when it had expired or was taken
    /// over meanwhile (then it is not ours to delete, and nothing is deleted).
    pub async fn unlock(&self, key: &str, token: &LockToken) -> Result<bool, StateError> {
        match self {
            SharedState::Memory(m) => Ok(m.unlock(key, token)),
            SharedState::Redis(r) => r.unlock(key, token).await,
        }
    }

    /// Tell every copy (this one included) to forget what it cached under `topic`.
    pub async fn invalidate(&self, topic: &str) -> Result<(), StateError> {
        match self {
            SharedState::Memory(m) => {
                m.invalidate(topic);
                Ok(())
            }
            SharedState::Redis(r) => r.invalidate(topic).await,
        }
    }

    /// Invalidation messages as they arrive. A receiver that falls behind gets
    /// `RecvError::Lagged` and should drop its whole cache.
    pub fn invalidations(&self) -> broadcast::Receiver<String> {
        match self {
            SharedState::Memory(m) => m.invalidations(),
            SharedState::Redis(r) => r.invalidations(),
        }
    }
}

/// Capacity of the local fan-out of invalidation messages.
const INVALIDATION_BUFFER: usize = 1024;
