//! Writing batches on several PostgreSQL connections at once, with the
//! guarantees of a single writer.
//!
//! PostgreSQL runs one backend process per connection, and during an import
//! that backend is the bottleneck (one full core, see `docs/BENCHMARKS.md`);
//! two connections use two cores. What must not change:
//!
//! - **Resume is exact.** Batches write their rows concurrently, but each
//!   commits only after the batch before it committed (a chain of oneshot
//!   signals), and it is the commit that also saves the run's position,
//!   counters and issues ([`runs::save`]). The committed batches are therefore
//!   always a prefix of the run, as with one writer. Each batch counts into its
//!   own [`Counters`], added to the run's totals at its turn to commit.
//! - **The same rows and counts as one writer.** Two batches in flight may
//!   not touch the same unique value: ids, emails, usernames, phone numbers,
//!   social accounts, organization slugs — the values the batch writes *and*
//!   the values its rows hold now (a refresh may move a user's email away).
//!   A batch sharing one with a batch in flight waits until that one committed
//!   ([`Keys`]). Then neither batch's lookups can see a difference between the
//!   other having committed or not, and neither waits on the other's row or
//!   index locks. (`duplicates::decide` already settled the values several
//!   users of the export claim, so in practice only exports listing the same
//!   organization, membership or social account twice wait.)
//! - **Phases in order.** A batch of a later phase (memberships need their
//!   organizations and users) starts only when every batch of the earlier
//!   phase committed ([`Lanes::drain`]).
//! - **Errors.** A failing batch drops its signal, so every batch after it
//!   rolls back instead of committing; the error reported is the first in
//!   batch order, as with one writer.
//!
//! No lock cycle between the import's own batches is possible (the earlier
//! batch never waits on a lock of a later one, by the rule above), but a
//! concurrent Kernia transaction holding one row each of two batches could
//! close one that PostgreSQL cannot see (the later batch waits for the
//! earlier one here, not in the database). As a guard, a batch gives up on
//! a row lock after [`LOCK_WAIT`]: the run stops with that error, and the
//! next run resumes after the committed prefix.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::db::{Conn, Db, DbError};

use super::batch::{advance, write_items};
use super::plan::Planned;
use super::produce::{Batch, Items, Record};
use super::report::Counters;
use super::store::runs::{self, Run};
use super::store::{ImportSchema, sql, tuning};
use super::{ImportError, ImportOptions};

/// How long a batch waits for a row lock before the run stops.
pub(super) const LOCK_WAIT: &str = "30s";

/// What every batch task needs.
struct Shared {
    db: Db,
    schema: ImportSchema,
    opts: ImportOptions,
    now: i64,
    /// The run as of the last committed batch.
    run: Mutex<Run>,
}

/// A batch being written.
struct Flight {
    keys: Keys,
    /// Input records, for progress.
    records: u64,
    task: JoinHandle<Result<(), ImportError>>,
}

/// Up to `writers` batches in flight, committing in order.
///
/// Its batch tasks are local tasks (`spawn_local`): every method must be
/// called inside the caller's `tokio::task::LocalSet`. The database does the
/// work; cutover's share (encoding rows, a few hundred ms a batch at most)
/// stays on one thread, and the store's futures need not be `Send`.
pub(super) struct Lanes {
    shared: Arc<Shared>,
    writers: usize,
    flight: VecDeque<Flight>,
    /// The signal of the last batch started: it fires when that batch committed.
    last_commit: Option<oneshot::Receiver<()>>,
}

impl Lanes {
    pub(super) fn new(
        db: &Db,
        schema: &ImportSchema,
        opts: &ImportOptions,
        now: i64,
        writers: usize,
        run: Run,
    ) -> Lanes {
        Lanes {
            shared: Arc::new(Shared {
                db: db.clone(),
                schema: schema.clone(),
                opts: opts.clone(),
                now,
                run: Mutex::new(run),
            }),
            writers: writers.max(1),
            flight: VecDeque::new(),
            last_commit: None,
        }
    }

    /// Wait until fewer than `writers` batches are in flight. Returns the input
    /// records of the batches that committed meanwhile.
    pub(super) async fn ready(&mut self) -> Result<u64, ImportError> {
        let mut records = 0;
        while self.flight.len() >= self.writers {
            records += self.reap().await?;
        }
        Ok(records)
    }

    /// Start writing `batch` as soon as no batch in flight shares a key with
    /// it. Returns the input records of the batches that committed meanwhile.
    pub(super) async fn start(&mut self, batch: Batch) -> Result<u64, ImportError> {
        let mut keys = Keys::of(&batch.items);
        keys.held_now(&self.shared.db, &self.shared.schema, &batch.items)
            .await?;
        let mut records = self.ready().await?;
        while self.flight.iter().any(|f| f.keys.overlaps(&keys)) {
            records += self.reap().await?;
        }
        let (done, commit) = oneshot::channel();
        let before = self.last_commit.replace(commit);
        let flight_records = batch.records + batch.skipped;
        let task = tokio::task::spawn_local(write(self.shared.clone(), batch, before, done));
        self.flight.push_back(Flight {
            keys,
            records: flight_records,
            task,
        });
        Ok(records)
    }

    /// Wait for every batch in flight to commit (a phase barrier, and the end).
    pub(super) async fn drain(&mut self) -> Result<u64, ImportError> {
        let mut records = 0;
        while !self.flight.is_empty() {
            records += self.reap().await?;
        }
        Ok(records)
    }

    /// After an error: let the batches still in flight finish. Those after a
    /// failed batch roll back; their own errors are consequences, not reported.
    pub(super) async fn abandon(&mut self) {
        while let Some(f) = self.flight.pop_front() {
            let _ = f.task.await;
        }
    }

    /// The run as of the last committed batch.
    pub(super) fn into_run(self) -> Run {
        let shared = self.shared.run.lock();
        shared.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Wait for the oldest batch in flight.
    async fn reap(&mut self) -> Result<u64, ImportError> {
        let Some(f) = self.flight.pop_front() else {
            return Ok(0);
        };
        f.task
            .await
            .map_err(|e| ImportError::Internal(format!("a batch writer stopped: {e}")))??;
        Ok(f.records)
    }
}

/// Write one batch on its own connection; commit it, with the run's progress,
/// once the batch before it committed (`before`); then signal `done`.
async fn write(
    shared: Arc<Shared>,
    batch: Batch,
    before: Option<oneshot::Receiver<()>>,
    done: oneshot::Sender<()>,
) -> Result<(), ImportError> {
    let mut tx = shared.db.begin().await?;
    let mut conn = tx.conn();
    tuning::tune(&mut conn).await?;
    tuning::bound_lock_waits(&mut conn, LOCK_WAIT).await?;
    let (phase, units) = (batch.phase, batch.units);
    let mut counted = Counters::default();
    let mut issues = Vec::new();
    write_items(
        &mut conn,
        &shared.schema,
        &shared.opts,
        batch,
        shared.now,
        &mut counted,
        &mut issues,
    )
    .await?;
    // Dropped without a signal: the batch before failed, so this one must not
    // commit (the committed batches stay a prefix).
    if let Some(before) = before {
        before.await.map_err(|_| {
            ImportError::Internal("an earlier batch was not written; this one rolled back".into())
        })?;
    }
    // Only this task runs between the previous commit and its own: the lock
    // is never contended, and never held across an await.
    let mut run = shared.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
    run.counters.add(&counted);
    advance(&mut run, phase, units);
    runs::save(&mut conn, &mut run, &issues).await?;
    tx.commit().await?;
    *shared.run.lock().unwrap_or_else(|e| e.into_inner()) = run;
    let _ = done.send(());
    Ok(())
}

/// The unique values a batch writes or changes, hashed: two batches whose
/// sets overlap are not written at the same time. (A hash collision only
/// makes two batches wait for each other needlessly.)
#[derive(Debug, Default)]
pub(super) struct Keys(HashSet<u64>);

/// Which kind of value a key is.
#[derive(Hash, Clone, Copy)]
enum Kind {
    UserId,
    Email,
    Username,
    Phone,
    AccountId,
    ProviderAccount,
    OrganizationId,
    Slug,
    MemberId,
    InvitationId,
}

impl Keys {
    /// The values the batch's records write (pure: from the records alone).
    pub(super) fn of(items: &Items) -> Keys {
        let mut k = Keys::default();
        match items {
            Items::Users(planned) => {
                for p in planned {
                    let Planned::User(p) = p else { continue };
                    let u = &p.user;
                    k.add(Kind::UserId, &u.id);
                    k.add(Kind::Email, &u.email);
                    if let Some(n) = &u.username {
                        k.add(Kind::Username, n);
                    }
                    if let Some(ph) = &u.phone_number {
                        k.add(Kind::Phone, ph);
                    }
                    for a in &p.accounts {
                        k.add(Kind::AccountId, &a.id);
                        k.add2(Kind::ProviderAccount, &a.provider_id, &a.account_id);
                    }
                }
            }
            Items::Organizations(records) => {
                for o in valid(records) {
                    k.add(Kind::OrganizationId, &o.id);
                    k.add(Kind::Slug, &o.slug);
                }
            }
            Items::Memberships(records) => {
                for m in valid(records) {
                    k.add(Kind::MemberId, &m.id);
                }
            }
            Items::Invitations(records) => {
                for i in valid(records) {
                    k.add(Kind::InvitationId, &i.id);
                }
            }
        }
        k
    }

    /// Add the unique values the batch's rows hold in Kernia now, which a
    /// refresh may change: users' emails, usernames and phone numbers,
    /// organizations' slugs. (Only the batch itself changes its rows.)
    async fn held_now(
        &mut self,
        db: &Db,
        schema: &ImportSchema,
        items: &Items,
    ) -> Result<(), DbError> {
        let (sql, ids) = match items {
            Items::Users(planned) => {
                let ids: Vec<String> = planned
                    .iter()
                    .filter_map(|p| match p {
                        Planned::User(u) => Some(u.user.id.clone()),
                        Planned::Invalid(_) => None,
                    })
                    .collect();
                let col = |c: &str, quoted: &str| {
                    if schema.kernia.has_user_column(c) {
                        quoted.to_string()
                    } else {
                        "CAST(NULL AS TEXT)".to_string()
                    }
                };
                let sql = format!(
                    r#"SELECT email, {}, {} FROM "user" WHERE {}"#,
                    col("username", "username"),
                    col("phoneNumber", "\"phoneNumber\""),
                    sql::in_list(db.engine(), "id", 1)
                );
                (sql, ids)
            }
            Items::Organizations(records) => {
                let ids: Vec<String> = valid(records).map(|o| o.id.clone()).collect();
                let sql = format!(
                    "SELECT slug, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM organization WHERE {}",
                    sql::in_list(db.engine(), "id", 1)
                );
                (sql, ids)
            }
            Items::Memberships(_) | Items::Invitations(_) => return Ok(()),
        };
        if ids.is_empty() || (matches!(items, Items::Organizations(_)) && !schema.organizations()) {
            return Ok(());
        }
        // A short transaction of its own, for the import's plan settings
        // (`tuning::tune`): an index lookup, never a scan of a growing table.
        let mut tx = db.begin().await?;
        let mut conn: Conn<'_> = tx.conn();
        tuning::tune(&mut conn).await?;
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sql::fetch_with_lists(&mut conn, &sql, &[&ids], "reading the values a batch holds")
                .await?;
        let first = if matches!(items, Items::Users(_)) {
            Kind::Email
        } else {
            Kind::Slug
        };
        for (value, username, phone) in rows {
            self.add(first, &value);
            if let Some(n) = username {
                self.add(Kind::Username, &n);
            }
            if let Some(p) = phone {
                self.add(Kind::Phone, &p);
            }
        }
        Ok(())
    }

    fn add(&mut self, kind: Kind, value: &str) {
        let mut h = DefaultHasher::new();
        (kind, value).hash(&mut h);
        self.0.insert(h.finish());
    }

    fn add2(&mut self, kind: Kind, a: &str, b: &str) {
        let mut h = DefaultHasher::new();
        (kind, a, b).hash(&mut h);
        self.0.insert(h.finish());
    }

    pub(super) fn overlaps(&self, other: &Keys) -> bool {
        !self.0.is_disjoint(&other.0)
    }
}

fn valid<T>(records: &[Record<T>]) -> impl Iterator<Item = &T> {
    records.iter().filter_map(|r| match r {
        Record::Valid(v) => Some(v),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
