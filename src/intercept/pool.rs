//! The hashing pool: password work, bounded, off the request path.
//!
//! Verifying a legacy digest and making Kernia's Argon2id hash cost tens to
//! hundreds of milliseconds of CPU each. They run on `size` dedicated threads
//! (default: the number of cores) at a lowered scheduling priority
//! (`[migration].hash_thread_nice`), so that when the machine is busy the
//! threads that forward ordinary traffic win the CPU and hashing takes what is
//! left. A job waits for a thread at most `deadline`; at most `queue_limit`
//! jobs may wait at all. Past either limit the caller gets
//! [`PoolError::Saturated`] at once and answers `503` with `Retry-After` — a
//! sign-in storm queues nowhere without bound.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("the hashing pool is saturated")]
    Saturated,
    #[error("a hashing job failed")]
    Panicked,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct HashPool {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Jobs started, ever (metrics and tests).
    started: Arc<AtomicUsize>,
    jobs: mpsc::Sender<Job>,
    queue_limit: usize,
    deadline: Duration,
}

impl HashPool {
    /// `nice` is the niceness of the hashing threads (0 = normal, 19 = lowest);
    /// where it cannot be set, they run at normal priority.
    pub fn new(size: usize, queue_limit: usize, deadline: Duration, nice: u8) -> HashPool {
        let size = size.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("cutover-hash-{i}"))
                .spawn(move || worker(rx, nice));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        HashPool {
            slots: Arc::new(Semaphore::new(size)),
            waiting: Arc::new(AtomicUsize::new(0)),
            started: Arc::new(AtomicUsize::new(0)),
            jobs,
            queue_limit,
            deadline,
        }
    }

    /// Jobs waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// How many jobs have started since the pool was made.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// Run `job` on a hashing thread once a slot is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let asked = std::time::Instant::now();
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(PoolError::Saturated);
                }
                crate::metrics::set_hash_queue_depth(self.waiting());
                let acquired =
                    tokio::time::timeout(self.deadline, self.slots.clone().acquire_owned()).await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                crate::metrics::set_hash_queue_depth(self.waiting());
                match acquired {
                    Ok(Ok(p)) => p,
                    _ => return Err(PoolError::Saturated),
                }
            }
        };
        crate::metrics::record_hash_wait(asked.elapsed());
        self.started.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let wrapped: Job = Box::new(move || {
            // The slot is free again once the work is done, even if the
            // waiting request has gone away meanwhile.
            let _permit = permit;
            let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(job)));
        });
        if self.jobs.send(wrapped).is_err() {
            return Err(PoolError::Panicked);
        }
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(PoolError::Panicked),
        }
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>, nice: u8) {
    if nice > 0 {
        lower_priority(nice);
    }
    loop {
        // A poisoned lock only means another worker panicked outside a job; the
        // receiver itself is intact.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // the pool is gone
        };
        job();
    }
}

/// Raise this thread's niceness (SCHED_OTHER) to `nice`.
fn lower_priority(nice: u8) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let set = ThreadPriorityValue::try_from(crossplatform_value(nice))
        .map_err(|e| e.to_string())
        .and_then(|v| {
            thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(v))
                .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = set {
        tracing::warn!(error = %e, "cannot lower the hashing threads' priority; they run at normal priority");
    }
}

/// thread-priority maps its portable 0–99 scale onto niceness for normal
/// threads as `trunc(39 · (1 − p/99)) − 20`; find the `p` that gives `nice`.
fn crossplatform_value(nice: u8) -> u8 {
    let wanted = i32::from(nice.min(19));
    (0u8..=99)
        .find(|p| (39.0f32 * (1.0 - f32::from(*p) / 99.0)) as i32 - 20 == wanted)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_beyond_the_queue_are_refused_at_once() {
        let pool = HashPool::new(1, 1, Duration::from_secs(5), 0);
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
        let pool = HashPool::new(1, 10, Duration::from_millis(100), 0);
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

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_thread_carries_on() {
        let pool = HashPool::new(1, 10, Duration::from_secs(1), 0);
        let failed: Result<(), PoolError> = pool.run(|| panic!("boom")).await;
        assert_eq!(failed, Err(PoolError::Panicked));
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }

    #[test]
    fn every_niceness_has_a_portable_value() {
        for nice in 0..=19u8 {
            let p = crossplatform_value(nice);
            assert_eq!(
                (39.0f32 * (1.0 - f32::from(p) / 99.0)) as i32 - 20,
                i32::from(nice),
                "nice {nice}"
            );
        }
    }

    #[tokio::test]
    async fn hashing_threads_run_at_the_requested_niceness() {
        let pool = HashPool::new(1, 10, Duration::from_secs(1), 10);
        let nice = pool
            .run(|| {
                // /proc/thread-self/stat field 19 is the nice value.
                std::fs::read_to_string("/proc/thread-self/stat")
                    .ok()
                    .and_then(|s| s.rsplit(')').next().map(str::to_string))
                    .and_then(|rest| rest.split_whitespace().nth(16).map(str::to_string))
            })
            .await
            .unwrap();
        assert_eq!(nice.as_deref(), Some("10"));
    }
}
