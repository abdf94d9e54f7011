//! A lock held as a lease: taken with a short TTL and renewed by its holder
//! every third of that TTL for as long as the holder works.
//!
//! A plain lock's TTL is a trade. Long, and a holder that dies (a copy
//! SIGKILLed mid-migration) keeps everyone else out for all of it; short, and a
//! holder that is merely slow is overtaken and two copies do the same work. A
//! lease is short *and* kept: a live holder's renewals keep it, a dead
//! holder's stop, and the lock is free within one TTL of the last renewal.
//!
//! The renewals run on a task of their own. They stop when the lease is
//! released, when it is dropped (the holder's task cancelled, or a panic: a
//! dropped lease also releases the lock at once, best effort), and when a
//! renewal finds the lock no longer ours — which is logged, since another
//! holder may then be doing the same work.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{LockToken, SharedState, StateError};

/// Proof of holding the lock `key`, kept alive while this value lives.
/// Release it with [`Lease::release`]; dropping it releases it too, without
/// waiting for the answer.
pub struct Lease {
    state: SharedState,
    key: String,
    token: LockToken,
    renewals: JoinHandle<()>,
    released: bool,
}

impl Lease {
    /// Start renewing a lock just taken with `token` for `ttl`.
    pub(super) fn hold(state: SharedState, key: &str, token: LockToken, ttl: Duration) -> Lease {
        let renewals = tokio::spawn(renew_while_held(
            state.clone(),
            key.to_string(),
            token.clone(),
            ttl,
        ));
        Lease {
            state,
            key: key.to_string(),
            token,
            renewals,
            released: false,
        }
    }

    /// Stop renewing and release the lock. Returns false when it was no longer
    /// ours (it expired or was taken over meanwhile; nothing is deleted then).
    pub async fn release(mut self) -> Result<bool, StateError> {
        self.renewals.abort();
        let released = self.state.unlock(&self.key, &self.token).await;
        // Set after the answer: if this future is itself cancelled while
        // waiting, `drop` still releases the lock.
        self.released = true;
        released
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewals.abort();
        if self.released {
            return;
        }
        // Dropped while held: the holder's task was cancelled or panicked. Its
        // work is over, so free the lock now rather than after its TTL. Outside
        // a runtime (nothing of ours drops one there) it simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (state, key, token) = (self.state.clone(), self.key.clone(), self.token.clone());
            runtime.spawn(async move {
                if let Err(e) = state.unlock(&key, &token).await {
                    tracing::warn!(key, error = %e, "cannot release a dropped lock; it expires by itself");
                }
            });
        }
    }
}

/// Every third of `ttl`, extend the lock to `ttl` from now, until it is found
/// lost (or the task is aborted). A failed renewal is tried again on the next
/// tick: one Redis timeout (1 s) per tick still leaves the lock alive when the
/// TTL is above 1.5 s.
async fn renew_while_held(state: SharedState, key: String, token: LockToken, ttl: Duration) {
    let every = (ttl / 3).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match state.renew(&key, &token, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    key,
                    "a lock expired before its holder finished; another may now take it"
                );
                return;
            }
            Err(e) => tracing::warn!(key, error = %e, "cannot renew a lock; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryState;

    fn memory() -> SharedState {
        SharedState::Memory(MemoryState::new())
    }

    #[tokio::test]
    async fn a_held_lease_outlives_its_ttl_and_keeps_others_out() {
        let state = memory();
        let ttl = Duration::from_millis(300);
        let lease = state.try_lease("migrate:u", ttl).await.unwrap().unwrap();
        // The holder's work takes several TTLs; a second comer waits.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                state.try_lock("migrate:u", ttl).await.unwrap().is_none(),
                "a slow holder was overtaken"
            );
        }
        assert!(lease.release().await.unwrap(), "still ours at the end");
        assert!(state.try_lock("migrate:u", ttl).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_lease_dropped_by_a_panicking_holder_frees_the_lock() {
        let state = memory();
        let ttl = Duration::from_secs(60);
        let holder = {
            let state = state.clone();
            tokio::spawn(async move {
                let _lease = state.try_lease("migrate:u", ttl).await.unwrap().unwrap();
                panic!("the holder's work failed");
            })
        };
        assert!(holder.await.unwrap_err().is_panic());
        let deadline = Instant::now() + Duration::from_secs(5);
        while state.try_lock("migrate:u", ttl).await.unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a dropped lease kept its lock (for a 60 s TTL)"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_lease_whose_lock_was_taken_over_stops_renewing() {
        let state = memory();
        let ttl = Duration::from_millis(60);
        let lease = state.try_lease("migrate:u", ttl).await.unwrap().unwrap();
        // Simulate a lost lock: it expires (the renewals are held off by
        // blocking this single-threaded runtime past the TTL) and a stranger
        // takes it.
        std::thread::sleep(Duration::from_millis(100));
        let stranger = state
            .try_lock("migrate:u", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(lease.renewals.is_finished(), "renewing a lost lock");
        assert!(!lease.release().await.unwrap(), "not ours to release");
        assert!(
            state.unlock("migrate:u", &stranger).await.unwrap(),
            "the stranger's lock was left alone"
        );
    }
}
