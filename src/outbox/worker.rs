//! The delivery loop. Every copy runs one; they share the work through the
//! table (claims with leases), so any number may run.
//!
//! Each round claims at most `[outbox] batch` due rows in one short
//! transaction, makes their attempts concurrently (each bounded by the
//! delivery timeout), then records each outcome. A commit on this copy wakes
//! the loop at once ([`Waker`]); otherwise it polls every `poll_ms`. On stop it
//! finishes the round in hand (at most one delivery timeout) and returns; rows
//! it had not claimed stay for the next start or another copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Notify, watch};

use crate::config::OutboxConfig;
use crate::db::{Db, DbError};

use super::send::Senders;
use super::store::{self, Attempt, Claimed};
use super::{Kind, Next, after_attempt, now_ms};

/// Wakes the worker of this copy after a commit that queued rows.
#[derive(Clone, Default, Debug)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Counters for metrics (this copy's deliveries since start).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub delivered: AtomicU64,
    /// Failed attempts that will be retried.
    pub retried: AtomicU64,
    /// Rows given up after the whole schedule.
    pub failed: AtomicU64,
    /// Destinations this copy disabled.
    pub disabled: AtomicU64,
}

impl DeliveryCounters {
    /// `(outcome, count)` pairs for `cutover_webhook_deliveries_total{outcome}`.
    pub fn snapshot(&self) -> [(&'static str, u64); 4] {
        [
            ("delivered", self.delivered.load(Ordering::Relaxed)),
            ("retried", self.retried.load(Ordering::Relaxed)),
            ("failed", self.failed.load(Ordering::Relaxed)),
            ("disabled", self.disabled.load(Ordering::Relaxed)),
        ]
    }
}

/// The loop's parts.
pub struct Worker {
    db: Db,
    senders: Senders,
    cfg: OutboxConfig,
    owner: String,
    counters: Arc<DeliveryCounters>,
}

/// A running worker: wake it, read its counters, stop it.
pub struct WorkerHandle {
    waker: Waker,
    stop: watch::Sender<bool>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    counters: Arc<DeliveryCounters>,
    db: Db,
}

impl WorkerHandle {
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    pub fn counters(&self) -> &DeliveryCounters {
        &self.counters
    }

    /// Queue depth and totals, read from the table (all copies).
    pub async fn counts(&self) -> Result<store::Counts, DbError> {
        let mut conn = self.db.acquire().await?;
        store::counts(&mut conn.conn(), now_ms()).await
    }

    /// Stop after the round in hand and wait for it.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.waker.wake();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

impl Worker {
    pub fn new(db: Db, senders: Senders, cfg: OutboxConfig) -> Worker {
        Worker {
            db,
            senders,
            cfg,
            owner: format!("{}-{}", std::process::id(), crate::db::kernia::new_id()),
            counters: Arc::default(),
        }
    }

    /// Start the loop on the runtime; `waker` is the one the request path uses.
    pub fn spawn(self, waker: Waker) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let counters = self.counters.clone();
        let db = self.db.clone();
        let w = waker.clone();
        let task = tokio::spawn(async move { self.run(w, stopped).await });
        WorkerHandle {
            waker,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
            counters,
            db,
        }
    }

    async fn run(self, waker: Waker, mut stopped: watch::Receiver<bool>) {
        let mut rounds: u64 = 0;
        loop {
            if *stopped.borrow() {
                return;
            }
            // Work down what is due, one bounded batch at a time.
            loop {
                match self.round().await {
                    Ok(0) => break,
                    Ok(_) if *stopped.borrow() => return,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox: cannot claim deliveries; trying again shortly");
                        break;
                    }
                }
            }
            rounds += 1;
            if rounds % 600 == 1 {
                self.purge().await;
            }
            tokio::select! {
                _ = waker.0.notified() => {}
                _ = tokio::time::sleep(self.cfg.poll) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// One claim-deliver-record round; returns how many rows it handled.
    async fn round(&self) -> Result<usize, DbError> {
        let now = now_ms();
        let lease_until = now + self.cfg.lease.as_millis() as i64;
        let claimed = {
            let mut tx = self.db.begin().await?;
            let rows = store::claim(
                &mut tx.conn(),
                &self.owner,
                now,
                lease_until,
                self.cfg.batch,
            )
            .await?;
            tx.commit().await?;
            rows
        };
        if claimed.is_empty() {
            return Ok(0);
        }
        let attempts =
            futures_util::future::join_all(claimed.iter().map(|row| self.senders.send(row))).await;
        for (row, attempt) in claimed.iter().zip(attempts) {
            if let Err(e) = self.record(row, &attempt).await {
                // The lease runs out and the row is tried again: at least once.
                tracing::warn!(error = %e, msg_id = %row.msg_id, "outbox: cannot record a delivery; it will be retried");
            }
        }
        Ok(claimed.len())
    }

    async fn record(&self, row: &Claimed, a: &Attempt) -> Result<(), DbError> {
        let now = now_ms();
        let wipe = row
            .kind
            .parse::<Kind>()
            .map(Kind::is_reset)
            .unwrap_or(false);
        let next = after_attempt(
            a.error.is_none(),
            row.attempts,
            now,
            &self.cfg.retry_schedule,
        );
        let mut tx = self.db.begin().await?;
        match next {
            Next::Delivered => {
                store::mark_delivered(&mut tx.conn(), &self.owner, a, wipe, now).await?;
                store::destination_ok(&mut tx.conn(), &row.destination, now).await?;
            }
            Next::RetryAt(at) => {
                store::mark_failed(&mut tx.conn(), &self.owner, a, Some(at), wipe, now).await?;
            }
            Next::GiveUp => {
                store::mark_failed(&mut tx.conn(), &self.owner, a, None, wipe, now).await?;
            }
        }
        let disabled = if next == Next::Delivered {
            false
        } else {
            store::destination_failed(
                &mut tx.conn(),
                &row.destination,
                now,
                self.cfg.disable_after.map(|d| d.as_millis() as i64),
            )
            .await?
        };
        tx.commit().await?;
        let outcome = match next {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "retry",
            Next::GiveUp => "failed",
        };
        match row.kind.parse::<Kind>() {
            Ok(kind @ (Kind::ResetMail | Kind::ResetWebhook)) => {
                let channel = if kind == Kind::ResetMail {
                    "email"
                } else {
                    "webhook"
                };
                let sent = if next == Next::Delivered {
                    "sent"
                } else {
                    "failed"
                };
                crate::metrics::record_reset_delivery(channel, sent)
            }
            Ok(Kind::Webhook) => crate::metrics::record_webhook_delivery(outcome),
            Err(_) => {}
        }
        let c = &self.counters;
        match next {
            Next::Delivered => {
                c.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(msg_id = %row.msg_id, kind = %row.kind, event = %row.event_type, attempts = row.attempts, "outbox: delivered");
            }
            Next::RetryAt(at) => {
                c.retried.fetch_add(1, Ordering::Relaxed);
                tracing::info!(msg_id = %row.msg_id, kind = %row.kind, event = %row.event_type, attempts = row.attempts,
                    retry_in_ms = at - now, error = a.error.as_deref().unwrap_or(""), "outbox: delivery failed; will retry");
            }
            Next::GiveUp => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(msg_id = %row.msg_id, kind = %row.kind, event = %row.event_type, attempts = row.attempts,
                    error = a.error.as_deref().unwrap_or(""), "outbox: delivery failed for good");
            }
        }
        if disabled {
            c.disabled.fetch_add(1, Ordering::Relaxed);
            tracing::error!(destination = %redact_destination(&row.destination), "outbox: destination disabled after failing too long; `cutover webhooks enable` turns it back on");
        }
        Ok(())
    }

    async fn purge(&self) {
        let Some(keep) = self.cfg.retention else {
            return;
        };
        let before = now_ms() - keep.as_millis() as i64;
        let result = async {
            let mut conn = self.db.acquire().await?;
            store::purge(&mut conn.conn(), before, 10_000).await
        }
        .await;
        match result {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "outbox: purged old delivered and failed rows"),
            Err(e) => tracing::warn!(error = %e, "outbox: cannot purge old rows"),
        }
    }
}

/// A destination for logs: the scheme, host and path, never a query string
/// (it may carry a token).
pub fn redact_destination(d: &str) -> String {
    d.split(['?', '#']).next().unwrap_or("").to_string()
}
