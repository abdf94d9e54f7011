//! The in-process backend: right for a single cutover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{INVALIDATION_BUFFER, LockToken};

/// Above this many entries, expired ones are swept on the next write, so the
/// maps stay bounded by the number of live keys.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Clone)]
pub struct MemoryState {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Mutex<HashMap<String, (u64, Instant)>>,
    locks: Mutex<HashMap<String, (LockToken, Instant)>>,
    invalidations: broadcast::Sender<String>,
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryState {
    pub fn new() -> MemoryState {
        MemoryState {
            inner: Arc::new(Inner {
                counters: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                invalidations: broadcast::channel(INVALIDATION_BUFFER).0,
            }),
        }
    }

    pub fn hit(&self, key: &str, window: Duration) -> u64 {
        let now = Instant::now();
        let mut counters = lock(&self.inner.counters);
        if counters.len() > SWEEP_ABOVE {
            counters.retain(|_, (_, expires)| *expires > now);
        }
        let entry = counters.entry(key.to_string()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        entry.0
    }

    pub fn try_lock(&self, key: &str, ttl: Duration) -> Option<LockToken> {
        let now = Instant::now();
        let mut locks = lock(&self.inner.locks);
        if locks.len() > SWEEP_ABOVE {
            locks.retain(|_, (_, expires)| *expires > now);
        }
        match locks.get(key) {
            Some((_, expires)) if *expires > now => None,
            _ => {
                let token = LockToken::random();
                locks.insert(key.to_string(), (token.clone(), now + ttl));
                Some(token)
            }
        }
    }

    pub fn renew(&self, key: &str, token: &LockToken, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut locks = lock(&self.inner.locks);
        match locks.get_mut(key) {
            Some((owner, expires)) if owner == token && *expires > now => {
                *expires = now + ttl;
                true
            }
            _ => false,
        }
    }

    pub fn unlock(&self, key: &str, token: &LockToken) -> bool {
        let now = Instant::now();
        let mut locks = lock(&self.inner.locks);
        match locks.get(key) {
            Some((owner, expires)) if owner == token && *expires > now => {
                locks.remove(key);
                true
            }
            _ => false,
        }
    }

    pub fn invalidate(&self, topic: &str) {
        // No receivers is fine: nobody has anything cached.
        let _ = self.inner.invalidations.send(topic.to_string());
    }

    pub fn invalidations(&self) -> broadcast::Receiver<String> {
        self.inner.invalidations.subscribe()
    }
}

/// A poisoned mutex only means another thread panicked while holding it; the
/// maps hold plain data that stays consistent, so carry on with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_counts_within_its_window_then_restarts() {
        let m = MemoryState::new();
        let w = Duration::from_millis(50);
        assert_eq!(m.hit("k", w), 1);
        assert_eq!(m.hit("k", w), 2);
        assert_eq!(m.hit("other", w), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(m.hit("k", w), 1);
    }

    #[test]
    fn lock_excludes_others_until_released_or_expired() {
        let m = MemoryState::new();
        let t = m.try_lock("user_1", Duration::from_millis(50)).unwrap();
        assert!(m.try_lock("user_1", Duration::from_secs(1)).is_none());
        let stranger = LockToken::random();
        assert!(!m.unlock("user_1", &stranger), "only the owner may unlock");
        assert!(m.unlock("user_1", &t));
        let t2 = m.try_lock("user_1", Duration::from_millis(20)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            m.try_lock("user_1", Duration::from_secs(1)).is_some(),
            "expired lock is free"
        );
        assert!(
            !m.unlock("user_1", &t2),
            "an expired owner cannot unlock the new holder"
        );
    }

    #[test]
    fn only_the_owner_renews_and_a_renewed_lock_outlives_its_first_ttl() {
        let m = MemoryState::new();
        let ttl = Duration::from_millis(600);
        let t = m.try_lock("user_1", ttl).unwrap();
        let stranger = LockToken::random();
        assert!(
            !m.renew("user_1", &stranger, Duration::from_secs(60)),
            "only the owner may renew"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert!(m.renew("user_1", &t, ttl));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            m.try_lock("user_1", ttl).is_none(),
            "held past its first TTL"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert!(m.try_lock("user_1", ttl).is_some(), "unrenewed, it expires");
        assert!(
            !m.renew("user_1", &t, ttl),
            "an expired owner cannot renew the new holder's lock"
        );
        assert!(!m.renew("nobody", &t, ttl), "nothing to renew");
    }

    #[tokio::test]
    async fn invalidations_reach_subscribers() {
        let m = MemoryState::new();
        let mut rx = m.invalidations();
        m.invalidate("session:abc");
        assert_eq!(rx.recv().await.unwrap(), "session:abc");
    }
}
