//! The hashing pool: password work, bounded, off the request path.
//!
//! Verifying a legacy digest and making Kernia's Argon2id hash cost tens to
//! hundreds of milliseconds of CPU each. They run on blocking threads, at most
//! `size` at a time (default: the number of cores). A job waits for a slot at
//! most `deadline`; at most `queue_limit` jobs may wait at all. Past either
//! limit the caller gets [`PoolError::Saturated`] at once and answers `503`
//! with `Retry-After` — a sign-in storm queues nowhere without bound, and the
//! async threads that forward ordinary traffic never run a hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("the hashing pool is saturated")]
    Saturated,
    #[error("a hashing job failed")]
    Panicked,
}

#[derive(Clone)]
pub struct HashPool {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Jobs started, ever (metrics and tests).
    started: Arc<AtomicUsize>,
    queue_limit: usize,
    deadline: Duration,
    size: usize,
}

impl HashPool {
    pub fn new(size: usize, queue_limit: usize, deadline: Duration) -> HashPool {
        let size = size.max(1);
        HashPool {
            slots: Arc::new(Semaphore::new(size)),
            waiting: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(AtomicUsize::new(0)),
            queue_limit,
            deadline,
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Jobs waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// How many jobs have started since the pool was made.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Run `job` on a blocking thread once a slot is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PoolError::Saturated);
                }
                let acquired =
                    tokio::time::timeout(self.deadline, self.slots.clone().acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match acquired {
                    Ok(Ok(p)) => p,
                    _ => return Err(PoolError::Saturated),
                }
            }
        };
        self.started.fetch_add(1, Ordering::Relaxed);
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        });
        handle.await.map_err(|_| PoolError::Panicked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_beyond_the_queue_are_refused_at_once() {
        let pool = HashPool::new(1, 1, Duration::from_secs(5));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || rx.recv().ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| 2).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.waiting(), 1);
        let started = std::time::Instant::now();
        assert_eq!(pool.run(|| 3).await, Err(PoolError::Saturated));
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "refused without waiting"
        );
        tx.send(()).unwrap();
        assert!(busy.await.unwrap().is_ok());
        assert_eq!(queued.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn a_job_that_waits_past_the_deadline_is_refused() {
        let pool = HashPool::new(1, 10, Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || rx.recv().ok()).await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(pool.run(|| 1).await, Err(PoolError::Saturated));
        tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(pool.run(|| 1).await, Ok(1), "free again");
    }
}
