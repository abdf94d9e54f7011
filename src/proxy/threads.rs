//! Serving threads: each runs its own single-threaded tokio runtime, and each
//! accepted connection is handed to one of them (round robin) for its whole
//! life.
//!
//! Why: a proxied request crosses two tasks — the client's connection and the
//! pooled upstream connection hyper's client drives — and back. On tokio's
//! work-stealing runtime those tasks often sit on different threads, so every
//! request paid cross-thread wake-ups (a futex and a context switch each way).
//! Here a connection, its requests and the upstream connections they use
//! (each serving thread has its own upstream pool, see
//! [`super::forward::Upstreams`]) stay on one thread, and a wake-up is a push
//! onto that thread's own run queue.
//!
//! Everything else — the accept loop, background work (rollout polling,
//! the outbox, JWKS refresh), the admin listener — stays on the process's main
//! runtime. Futures on a serving thread may still await shared resources
//! (database, Redis, the hashing pool); those work across runtimes.
//!
//! The threads stop when [`ServingThreads`] is dropped; tasks still on them
//! are cancelled then (the server drains connections before that).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// Serving threads, started by [`ServingThreads::start`].
pub struct ServingThreads {
    handles: Vec<Handle>,
    /// Dropping a sender lets its thread's runtime finish.
    _stop: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl ServingThreads {
    /// Start `n` (at least one) serving threads named `cutover-serve-N`.
    pub fn start(n: usize) -> std::io::Result<ServingThreads> {
        let n = n.max(1);
        let mut handles = Vec::with_capacity(n);
        let mut stop = Vec::with_capacity(n);
        for i in 0..n {
            let rt = Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("cutover-serve-{i}"))
                .spawn(move || {
                    // Runs the thread's tasks until the sender is dropped;
                    // dropping the runtime then cancels what is left.
                    let _ = rt.block_on(rx);
                })?;
        }
        Ok(ServingThreads {
            handles,
            _stop: stop,
            next: AtomicUsize::new(0),
        })
    }

    /// How many threads serve.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The thread the next connection goes to.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// Serving threads when the configuration does not say: one per CPU this
/// process may use (cgroup quotas included).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_spread_over_every_thread_and_threads_stop_when_dropped() {
        let threads = ServingThreads::start(3).unwrap();
        assert_eq!(threads.len(), 3);
        let names: Vec<String> = (0..6)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::channel();
                threads.next().spawn(async move {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    tx.send(name).unwrap();
                });
                rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "cutover-serve-0",
                "cutover-serve-1",
                "cutover-serve-2",
                "cutover-serve-0",
                "cutover-serve-1",
                "cutover-serve-2"
            ]
        );
        let handle = threads.next().clone();
        drop(threads);
        // The runtime shuts down; a task spawned now never runs.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(handle.spawn(async move {
            let _ = tx.send(());
        }));
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err()
        );
    }
}
