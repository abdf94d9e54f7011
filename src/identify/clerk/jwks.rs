//! The JWKS key store: fetched at start, refreshed in the background,
//! refetched on an unknown `kid` at a bounded rate, stale-while-error.
//!
//! - **Start**: one fetch. If it fails cutover still starts (Kernia sessions
//!   and the rest of the proxy do not depend on Clerk's endpoint); Clerk tokens
//!   are refused as `unknown_kid` until a fetch succeeds, the failure is logged,
//!   and the first unknown `kid` triggers a refetch straight away.
//! - **Background refresh** every `refresh`, by a task that holds only a weak
//!   reference (it ends when the store is dropped, and is aborted then too).
//! - **Unknown `kid`**: a refetch, at most one per `min_refetch` (measured
//!   from the start of the previous *miss-triggered* fetch; the start-up and
//!   background fetches do not count, so a rotation seen just after a refresh
//!   is still picked up at once). Misses that arrive together queue on one
//!   lock: the first fetches, the others then find the new key — or find the
//!   rate limit spent — without fetching again.
//! - **Failures** keep the last good key set (stale-while-error); an answer
//!   with no usable key counts as a failure.
//!
//! The rate-limit clock is `tokio::time::Instant`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::jwks_fetch::{JwksFetcher, KeySet};
use super::key::ClerkKey;

#[derive(Debug)]
pub(crate) struct JwksStore {
    keys: RwLock<Arc<KeySet>>,
    fetcher: JwksFetcher,
    min_refetch: Duration,
    /// Serialises fetches; holds when the last miss-triggered fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
    failures: AtomicU64,
}

/// Aborts the background refresh when the verifier goes away.
#[derive(Debug)]
pub(crate) struct RefreshTask(JoinHandle<()>);

impl Drop for RefreshTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl JwksStore {
    /// Fetches once, then refreshes every `refresh` in a background task.
    pub async fn start(
        fetcher: JwksFetcher,
        refresh: Duration,
        min_refetch: Duration,
    ) -> (Arc<Self>, RefreshTask) {
        let store = Arc::new(JwksStore {
            keys: RwLock::new(Arc::new(KeySet::new())),
            fetcher,
            min_refetch,
            fetching: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        {
            let _serial = store.fetching.lock().await;
            store.fetch_and_swap("start").await;
        }
        let task = tokio::spawn(refresh_loop(Arc::downgrade(&store), refresh));
        (store, RefreshTask(task))
    }

    /// The key for `kid` in the current set, without any I/O.
    pub fn lookup(&self, kid: &str) -> Option<Arc<ClerkKey>> {
        self.current().get(kid).cloned()
    }

    /// The key for a `kid` the current set lacks: refetches if the rate limit
    /// allows, coalescing with fetches already under way.
    pub async fn refetch_for(&self, kid: &str) -> Option<Arc<ClerkKey>> {
        let mut last_miss_fetch = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        let now = Instant::now();
        if last_miss_fetch.is_some_and(|at| now.duration_since(at) < self.min_refetch) {
            return None;
        }
        *last_miss_fetch = Some(now);
        self.fetch_and_swap("unknown kid").await;
        self.lookup(kid)
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn key_count(&self) -> usize {
        self.current().len()
    }

    fn current(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole `Arc` (the write is one
        // assignment), so its value is safe to use.
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Fetches and, on success, replaces the key set. Callers hold `fetching`.
    async fn fetch_and_swap(&self, why: &'static str) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetcher.fetch().await {
            Ok(keys) => {
                crate::metrics::record_jwks_refresh("ok");
                tracing::debug!(why, keys = keys.len(), "clerk jwks fetched");
                let keys = Arc::new(keys);
                match self.keys.write() {
                    Ok(mut current) => *current = keys,
                    Err(poisoned) => *poisoned.into_inner() = keys,
                }
            }
            Err(error) => {
                crate::metrics::record_jwks_refresh("error");
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    why,
                    error = %error,
                    keys_kept = self.key_count(),
                    "clerk jwks fetch failed; keeping the last good keys"
                );
            }
        }
    }
}

async fn refresh_loop(store: Weak<JwksStore>, every: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let _serial = store.fetching.lock().await;
        store.fetch_and_swap("refresh").await;
    }
}
