//! `[limits].max_connections`: the semaphore every open connection holds a
//! permit of, resizable while serving (a SIGHUP reload).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `[limits].max_connections` as a semaphore a reload can resize: every open
/// connection holds one permit. Growing adds permits at once. Shrinking
/// retires the free permits at once and owes the rest, which connections pay
/// as they close (their permit is retired instead of returned); an open
/// connection is never closed for it.
///
/// The accept loop holds the next connection's permit while it waits in
/// `accept`, so a shrink while connections are open may let one more in
/// than the new maximum; the debt is paid when any of them closes.
pub(crate) struct ConnectionLimit {
    permits: Arc<Semaphore>,
    /// Permits still to retire after a shrink.
    owed: Arc<AtomicUsize>,
    max: AtomicUsize,
}

/// One open connection's place under the limit.
pub(crate) struct ConnectionPermit {
    permit: Option<OwnedSemaphorePermit>,
    owed: Arc<AtomicUsize>,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            owed: Arc::new(AtomicUsize::new(0)),
            max: AtomicUsize::new(max),
        }
    }

    /// Wait for a place (the semaphore is never closed, so this does not fail
    /// in practice).
    pub(super) async fn acquire(&self) -> Result<ConnectionPermit, tokio::sync::AcquireError> {
        let permit = self.permits.clone().acquire_owned().await?;
        Ok(ConnectionPermit {
            permit: Some(permit),
            owed: self.owed.clone(),
        })
    }

    /// A new maximum. Only the reload task calls this, one call at a time.
    pub(crate) fn resize(&self, max: usize) {
        let old = self.max.swap(max, Ordering::AcqRel);
        if max > old {
            // Cancel what a shrink still owes first, then add the rest.
            let grow = max - old;
            let cancelled = self
                .owed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n - n.min(grow))
                })
                .map_or(0, |before| before.min(grow));
            self.permits.add_permits(grow - cancelled);
        } else if old > max {
            let cut = old - max;
            let retired = self.permits.forget_permits(cut);
            self.owed.fetch_add(cut - retired, Ordering::AcqRel);
        }
    }

    /// Places free now (for tests).
    #[cfg(test)]
    fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let pay = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if pay && let Some(permit) = self.permit.take() {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_connection_limit_grows_at_once_and_shrinks_as_connections_close() {
        let limit = ConnectionLimit::new(3);
        let mut open = Vec::new();
        for _ in 0..3 {
            open.push(limit.acquire().await.unwrap());
        }
        assert_eq!(limit.available(), 0);

        // Down to 1 with 3 open: nobody is closed; two closings pay the debt.
        limit.resize(1);
        open.pop();
        assert_eq!(limit.available(), 0, "the first close is retired");
        open.pop();
        assert_eq!(limit.available(), 0, "so is the second");
        open.pop();
        assert_eq!(limit.available(), 1, "the third is the one place left");

        // Up to 4: three more places at once.
        limit.resize(4);
        assert_eq!(limit.available(), 4);

        // Down to 2 with 1 open: two free places retired at once, none owed.
        let one = limit.acquire().await.unwrap();
        limit.resize(2);
        assert_eq!(limit.available(), 1);
        drop(one);
        assert_eq!(limit.available(), 2);

        // Down then up before the debt is paid: the debt is cancelled first.
        let held: Vec<_> = [
            limit.acquire().await.unwrap(),
            limit.acquire().await.unwrap(),
        ]
        .into();
        limit.resize(1); // owes 1
        limit.resize(3); // cancels it, adds 1
        assert_eq!(limit.available(), 1);
        drop(held);
        assert_eq!(limit.available(), 3);
    }
}
