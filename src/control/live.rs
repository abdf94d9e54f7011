//! The rollout every request reads, kept in step with the database.
//!
//! [`LiveRollout`] holds the current [`RouteSettings`] behind an `ArcSwap`:
//! the request path loads it without a lock (one atomic load per request) and
//! hands it to the pure `route::decide`. A watcher task per copy replaces it
//! when the stored version moves on:
//!
//! - **Redis pub/sub** (when `[state] backend = "redis"`): whoever changes the
//!   rollout publishes `rollout:<version>` on the invalidation channel; every
//!   copy reads the row at once;
//! - **database polling** every `[rollout] poll_ms` (default 250 ms), always:
//!   the only path without Redis, and the fallback when Redis is down or a
//!   message was missed. One primary-key read per copy per interval.
//!
//! A version only ever moves forward, so a late poll cannot undo a newer
//! message. When the database cannot be read, the copy keeps routing with the
//! last rollout it had and says so in its log (once per outage).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::rollout::Rollout;
use super::store::{self, ControlError, Stored};
use crate::db::Db;
use crate::route::RouteSettings;
use crate::state::SharedState;

/// The invalidation topic prefix of rollout changes.
pub const TOPIC_PREFIX: &str = "rollout:";

/// What this copy routes by right now.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub rollout: Rollout,
    /// When this copy started routing by it (epoch milliseconds).
    pub applied_at_ms: i64,
}

pub struct LiveRollout {
    /// The file's settings: base path, denied paths, salt (and its `[rollout]`,
    /// which only seeds the database).
    file: RouteSettings,
    settings: ArcSwap<RouteSettings>,
    applied: ArcSwap<Applied>,
    /// Whether the last read of the database failed.
    stale: AtomicBool,
}

impl LiveRollout {
    /// A rollout that never changes: the file's (for tests of the pure parts).
    pub fn fixed(file: RouteSettings) -> LiveRollout {
        let rollout = Rollout::from_settings(&file);
        LiveRollout {
            settings: ArcSwap::from_pointee(file.clone()),
            applied: ArcSwap::from_pointee(Applied {
                version: 0,
                rollout,
                applied_at_ms: store::now_ms(),
            }),
            file,
            stale: AtomicBool::new(false),
        }
    }

    /// Seed the database from the file when it holds no rollout yet, load
    /// what it holds, and keep following it until the returned value is dropped.
    pub async fn start(
        file: RouteSettings,
        db: Db,
        state: SharedState,
        poll: Duration,
    ) -> Result<Arc<LiveRollout>, ControlError> {
        let from_file = Rollout::from_settings(&file);
        let (stored, created) = store::seed(&db, &from_file).await?;
        if !created && stored.rollout != from_file {
            tracing::info!(
                version = stored.version,
                "the rollout in the database differs from [rollout] in the file; the database wins (`cutover rollout show`)"
            );
        }
        let live = Arc::new(LiveRollout::fixed(file));
        live.offer(stored);
        tokio::spawn(watch(Arc::downgrade(&live), db, state, poll));
        Ok(live)
    }

    /// The settings to route this request by.
    pub fn settings(&self) -> arc_swap::Guard<Arc<RouteSettings>> {
        self.settings.load()
    }

    pub fn applied(&self) -> Arc<Applied> {
        self.applied.load_full()
    }

    /// True while the database cannot be read (routing by the last rollout).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Route by `stored` when it is newer than what this copy has.
    pub fn offer(&self, stored: Stored) -> bool {
        if stored.version <= self.applied.load().version {
            return false;
        }
        let settings = stored.rollout.apply_to(&self.file);
        let applied = Applied {
            version: stored.version,
            rollout: stored.rollout,
            applied_at_ms: store::now_ms(),
        };
        self.settings.store(Arc::new(settings));
        crate::metrics::rollout_applied(
            applied.version,
            applied.rollout.percentage,
            applied.rollout.kill_switch,
        );
        tracing::info!(
            version = applied.version,
            percentage = applied.rollout.percentage,
            kill_switch = applied.rollout.kill_switch,
            "rollout applied"
        );
        self.applied.store(Arc::new(applied));
        true
    }

    async fn refresh(&self, db: &Db) {
        match store::read(db).await {
            Ok(Some(stored)) => {
                if self.stale.swap(false, Ordering::Relaxed) {
                    tracing::info!("the rollout can be read again");
                }
                self.offer(stored);
            }
            Ok(None) => {}
            Err(e) => {
                if !self.stale.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        version = self.applied.load().version,
                        "cannot read the rollout; routing by the last one until the database answers"
                    );
                }
            }
        }
    }
}

/// Follow the stored rollout: on every pub/sub message and every `poll`.
async fn watch(live: Weak<LiveRollout>, db: Db, state: SharedState, poll: Duration) {
    let mut messages = Some(state.invalidations());
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let woke = tokio::select! {
            msg = next_message(&mut messages) => Some(msg),
            _ = tick.tick() => None,
        };
        match woke {
            Some(Ok(topic)) if !topic.starts_with(TOPIC_PREFIX) => continue,
            Some(Err(RecvError::Closed)) => {
                // No more messages: polling alone from here on.
                messages = None;
                continue;
            }
            // A rollout message, a missed stretch of messages, or the poll.
            Some(Ok(_)) | Some(Err(RecvError::Lagged(_))) | None => {}
        }
        let Some(live) = live.upgrade() else { return };
        // A read that hangs (a database that stopped answering) must not stop the watcher.
        if tokio::time::timeout(poll.max(Duration::from_secs(2)), live.refresh(&db))
            .await
            .is_err()
            && !live.stale.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                version = live.applied.load().version,
                "reading the rollout timed out; routing by the last one until the database answers"
            );
        }
    }
}

async fn next_message(rx: &mut Option<broadcast::Receiver<String>>) -> Result<String, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Tell every copy that the rollout changed (Redis pub/sub; in-process for a
/// single copy). Failure is not fatal: polling delivers within `poll_ms`.
pub async fn announce(state: &SharedState, version: i64) -> bool {
    match state.invalidate(&format!("{TOPIC_PREFIX}{version}")).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish the rollout change; copies pick it up by polling");
            false
        }
    }
}
