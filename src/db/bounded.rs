//! Database reads on the request path, bounded.
//!
//! A request must not wait for a slow or hung database longer than a page can
//! afford. Session and ledger look-ups therefore go through [`Bounded`]:
//! - each look-up (pool acquire included) gets `[kernia].db_lookup_timeout_ms`
//!   (250 ms by default);
//! - a failure or a timeout is remembered for `[kernia].db_retry_after_ms`
//!   (1 s): until then look-ups fail at once without asking the database, so a
//!   hung database costs one timeout per second, not one per request;
//! - concurrent misses for one key share one look-up ([`SingleFlight`]).
//!
//! The callers decide what a failed look-up means (a Kernia cookie goes to
//! Kernia unverified, a Clerk user routes as not migrated).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::DbError;

/// Bounds for request-path look-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupLimits {
    /// The longest one look-up may take, connection included.
    pub timeout: Duration,
    /// After a failure, how long look-ups fail without asking.
    pub retry_after: Duration,
}

impl Default for LookupLimits {
    fn default() -> Self {
        LookupLimits {
            timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Why a bounded look-up has no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the database failed moments ago; not asked again yet")]
    Backoff,
}

/// Timeout and failure memory, shared by every request-path look-up of one
/// database.
#[derive(Debug)]
pub struct Bounded {
    limits: LookupLimits,
    started: Instant,
    /// Milliseconds after `started` until which look-ups are not tried.
    down_until_ms: AtomicU64,
}

impl Bounded {
    pub fn new(limits: LookupLimits) -> Bounded {
        Bounded {
            limits,
            started: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a recent failure says not to ask now.
    pub fn backing_off(&self) -> bool {
        self.now_ms() < self.down_until_ms.load(Ordering::Acquire)
    }

    /// Run one look-up within the limits.
    pub async fn run<T>(
        &self,
        lookup: impl Future<Output = Result<T, DbError>>,
    ) -> Result<T, LookupError> {
        if self.backing_off() {
            return Err(LookupError::Backoff);
        }
        let result = match tokio::time::timeout(self.limits.timeout, lookup).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => LookupError::Db(e),
            Err(_) => LookupError::Timeout(self.limits.timeout),
        };
        let retry = u64::try_from(self.limits.retry_after.as_millis()).unwrap_or(u64::MAX);
        self.down_until_ms
            .fetch_max(self.now_ms().saturating_add(retry), Ordering::AcqRel);
        Err(result)
    }
}

/// One look-up per key at a time: callers that miss the same key while a
/// look-up for it runs wait for that look-up's answer instead of starting
/// their own. If the caller running it goes away (its request is cancelled),
/// a waiting caller takes over.
pub struct SingleFlight<K, V> {
    running: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    pub async fn run<F>(&self, key: K, lookup: F) -> V
    where
        F: Future<Output = V>,
    {
        let cell = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let value = cell.get_or_init(|| lookup).await.clone();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            running.remove(&key);
        }
        value
    }

    /// Look-ups running now (for tests and metrics).
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_hung_lookup_times_out_and_the_failure_is_remembered() {
        let asked = AtomicUsize::new(0);
        let hung = || async {
            asked.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), DbError>>().await
        };
        let b = Bounded::new(LookupLimits {
            timeout: Duration::from_millis(50),
            retry_after: Duration::from_secs(600),
        });
        assert!(matches!(b.run(hung()).await, Err(LookupError::Timeout(_))));
        assert!(b.backing_off());
        assert!(matches!(b.run(hung()).await, Err(LookupError::Backoff)));
        assert!(matches!(
            b.run(async { Ok::<_, DbError>(7) }).await,
            Err(LookupError::Backoff)
        ));
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "asked again while backing off"
        );
        // With no memory of failures, every look-up asks.
        let forgetful = Bounded::new(LookupLimits {
            timeout: Duration::from_millis(50),
            retry_after: Duration::ZERO,
        });
        assert!(forgetful.run(hung()).await.is_err());
        assert_eq!(
            forgetful.run(async { Ok::<_, DbError>(7) }).await.unwrap(),
            7
        );
        assert_eq!(asked.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_key_share_one_lookup() {
        let flight: Arc<SingleFlight<&'static str, u32>> = Arc::new(SingleFlight::default());
        let asked = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flight, asked, mut gate) = (flight.clone(), asked.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run("k", async move {
                        asked.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        42
                    })
                    .await
            }));
        }
        while asked.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert_eq!(flight.running(), 0);
    }
}
