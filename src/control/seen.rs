//! "Last seen": when each user was last seen through cutover, for active
//! coverage and the stragglers list — without a write per request.
//!
//! [`SeenRecorder::note_marked`] is called once per identified request. It
//! remembers, in memory, the users noted today (and on the identity, that it
//! was noted: see [`SeenMark`]); only the first sighting of a
//! user on a given day queues a row. A flusher writes the queue every few
//! seconds as a few upserts of up to 400 rows (one statement text, whatever
//! the count) that never move a day backwards. So a
//! user costs at most one row write per day per copy, however many requests
//! they make, and a burst of new users costs one statement per 400 of them.
//! The queue is bounded; past the bound sightings are dropped (and noted
//! again on the user's next request, since they were not remembered either).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::db::{Conn, Db, DbError, now_secs};

/// Most sightings waiting for the next flush.
const MAX_PENDING: usize = 100_000;
/// Rows per upsert statement (one transaction each; the statement's text
/// does not depend on it).
const CHUNK: usize = 400;

pub fn today() -> i64 {
    now_secs().div_euclid(86_400)
}

/// Kept on a cached identity: the day its user was last noted, and the
/// recorder's generation then, so that the identity's later requests that day
/// skip the recorder altogether. A failed flush starts a new generation, so
/// those users are noted again, as the recorder forgets them.
#[derive(Debug, Default)]
pub struct SeenMark(AtomicU64);

pub struct SeenRecorder {
    /// Users queued today. Only an identity whose [`SeenMark`] is not set for
    /// today gets here (a new token, a new day), so a plain set under a lock
    /// is enough, and it costs a fraction of a concurrent cache's memory per
    /// user. Bounded: when full it starts again empty, which costs one more
    /// queued row per user (harmless, the upsert is idempotent).
    remembered: Mutex<Today>,
    pending: Mutex<HashMap<String, i64>>,
    /// Bumped when a flush fails (see [`SeenMark`]).
    generation: AtomicU32,
}

/// The users queued on one day.
#[derive(Default)]
struct Today {
    day: i64,
    users: HashSet<Box<str>>,
}

impl Today {
    fn has(&self, user_id: &str, day: i64) -> bool {
        self.day == day && self.users.contains(user_id)
    }

    fn add(&mut self, user_id: &str, day: i64) {
        if day < self.day {
            // Read from the clock just before midnight: queued, not
            // remembered (today's set stays).
            return;
        }
        if day > self.day || self.users.len() >= MAX_REMEMBERED {
            // A new day (or a full set): nobody is queued on it yet.
            self.users = HashSet::new();
            self.day = day;
        }
        self.users.insert(user_id.into());
    }
}

impl Default for SeenRecorder {
    fn default() -> Self {
        SeenRecorder {
            remembered: Mutex::new(Today::default()),
            pending: Mutex::new(HashMap::new()),
            generation: AtomicU32::new(0),
        }
    }
}

const MAX_REMEMBERED: usize = 500_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SeenRecorder {
    pub fn new() -> Arc<SeenRecorder> {
        Arc::new(SeenRecorder::default())
    }

    /// A user was seen now, through an identity carrying `mark`: the
    /// identity's later requests that day cost one atomic load.
    pub fn note_marked(&self, user_id: &str, mark: &SeenMark) {
        let day = today();
        let stamp = (u64::try_from(day).unwrap_or(0) << 32)
            | u64::from(self.generation.load(Ordering::Acquire));
        if mark.0.load(Ordering::Relaxed) == stamp {
            return;
        }
        if self.note_on(user_id, day) {
            mark.0.store(stamp, Ordering::Relaxed);
        }
    }

    /// Whether the sighting is remembered (queued now, or already today);
    /// not when the queue is full.
    fn note_on(&self, user_id: &str, day: i64) -> bool {
        // Lock order: `remembered`, then `pending`.
        let mut remembered = lock(&self.remembered);
        if remembered.has(user_id, day) {
            return true; // seen already today
        }
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING {
            return false;
        }
        pending.insert(user_id.to_string(), day);
        remembered.add(user_id, day);
        true
    }

    /// Sightings waiting to be written.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Write what is queued. On failure the batch is forgotten from memory
    /// too, so those users are queued again when next seen.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbError> {
        let batch: Vec<(String, i64)> = std::mem::take(&mut *lock(&self.pending))
            .into_iter()
            .collect();
        let mut written = 0;
        for chunk in batch.chunks(CHUNK) {
            if let Err(e) = upsert(db, chunk).await {
                self.generation.fetch_add(1, Ordering::AcqRel);
                let mut remembered = lock(&self.remembered);
                for (user, _) in &batch {
                    remembered.users.remove(user.as_str());
                }
                return Err(e);
            }
            written += chunk.len();
        }
        Ok(written)
    }

    /// Flush every `every` until the recorder is dropped.
    pub fn start_flusher(self: &Arc<Self>, db: Db, every: Duration) {
        let me: Weak<SeenRecorder> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if me.pending() == 0 {
                    continue;
                }
                if let Err(e) = me.flush(&db).await {
                    tracing::warn!(error = %e, "cannot record when users were last seen; trying again later");
                }
            }
        });
    }
}

/// One statement, the same text whatever the batch's size: the rows go in as
/// arrays (PostgreSQL) or one JSON array (SQLite). A text per batch size (the
/// multi-row `VALUES` this replaced) was a new prepared statement at every
/// flush: it took a place in each connection's statement cache, pushing out
/// the ones requests use, and SQLite parses `$n` parameters in time
/// quadratic in their number (about 3.6 million instructions for 400 rows).
async fn upsert(db: &Db, rows: &[(String, i64)]) -> Result<(), DbError> {
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    const DOING: &str = "recording when users were last seen";
    match &mut conn {
        // `rows` come from a map keyed by user: no user twice in one batch,
        // which PostgreSQL's ON CONFLICT DO UPDATE would refuse.
        Conn::Postgres(c) => {
            const SQL: &str = "INSERT INTO cutover_user_seen (user_id, last_seen_day)
                SELECT * FROM unnest($1::text[], $2::bigint[])
                ON CONFLICT (user_id) DO UPDATE SET last_seen_day = excluded.last_seen_day
                WHERE cutover_user_seen.last_seen_day < excluded.last_seen_day";
            let users: Vec<&str> = rows.iter().map(|(u, _)| u.as_str()).collect();
            let days: Vec<i64> = rows.iter().map(|(_, d)| *d).collect();
            sqlx::query(SQL)
                .bind(users)
                .bind(days)
                .execute(&mut **c)
                .await
                .map_err(DbError::query(DOING))?;
        }
        Conn::Sqlite(c) => {
            // `WHERE true`: SQLite's rule for an upsert whose rows come from
            // a SELECT (without it, `ON` would be read as a join's).
            const SQL: &str = "INSERT INTO cutover_user_seen (user_id, last_seen_day)
                SELECT value ->> 0, value ->> 1 FROM json_each($1) WHERE true
                ON CONFLICT (user_id) DO UPDATE SET last_seen_day = excluded.last_seen_day
                WHERE cutover_user_seen.last_seen_day < excluded.last_seen_day";
            // Strings and integers only: this cannot fail.
            let json = serde_json::to_string(rows)
                .map_err(|e| DbError::query(DOING)(sqlx::Error::Encode(e.into())))?;
            sqlx::query(SQL)
                .bind(json)
                .execute(&mut **c)
                .await
                .map_err(DbError::query(DOING))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_queued_once_per_day_however_often_seen() {
        let r = SeenRecorder::default();
        for _ in 0..1000 {
            r.note_on("user_1", 20_000);
        }
        r.note_on("user_2", 20_000);
        assert_eq!(r.pending(), 2);
        lock(&r.pending).clear();
        r.note_on("user_1", 20_000);
        assert_eq!(r.pending(), 0, "already recorded today");
        r.note_on("user_1", 20_001);
        assert_eq!(r.pending(), 1, "a new day is a new row");
    }

    #[test]
    fn a_marked_identity_skips_the_recorder_until_a_flush_fails() {
        let r = SeenRecorder::default();
        let mark = SeenMark::default();
        r.note_marked("user_1", &mark);
        assert_eq!(r.pending(), 1);
        lock(&r.pending).clear(); // written
        // The recorder forgetting the user does not matter while the mark holds:
        // the identity's later requests do not reach it.
        lock(&r.remembered).users.clear();
        r.note_marked("user_1", &mark);
        assert_eq!(r.pending(), 0);
        // A failed flush forgets its batch and starts a new generation: the
        // user is queued again on their next request.
        r.generation.fetch_add(1, Ordering::AcqRel);
        r.note_marked("user_1", &mark);
        assert_eq!(r.pending(), 1);
        // Another identity of the same user (a new token) meets the recorder,
        // which remembers them today.
        lock(&r.pending).clear();
        r.note_marked("user_1", &SeenMark::default());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn the_users_remembered_are_today_s_and_bounded() {
        let mut t = Today::default();
        t.add("user_1", 20_000);
        assert!(t.has("user_1", 20_000));
        assert!(!t.has("user_1", 20_001), "another day");
        t.add("user_2", 20_001);
        assert!(!t.has("user_1", 20_000), "yesterday's users are let go");
        assert_eq!(t.users.len(), 1);
        t.add("late", 20_000);
        assert!(
            t.has("user_2", 20_001),
            "a late sighting of yesterday keeps today's set"
        );
        assert!(!t.has("late", 20_000));
        for i in 1..MAX_REMEMBERED {
            t.add(&format!("u{i}"), 20_001);
        }
        assert_eq!(t.users.len(), MAX_REMEMBERED);
        t.add("one_more", 20_001);
        assert_eq!(t.users.len(), 1, "full: starts again");
        assert!(t.has("one_more", 20_001));
    }

    #[test]
    fn a_sighting_dropped_on_a_full_queue_leaves_the_mark_unset() {
        let r = SeenRecorder::default();
        {
            let mut p = lock(&r.pending);
            for i in 0..MAX_PENDING {
                p.insert(format!("u{i}"), 1);
            }
        }
        let mark = SeenMark::default();
        r.note_marked("user_1", &mark);
        assert_eq!(
            mark.0.load(Ordering::Relaxed),
            0,
            "not noted, so not marked"
        );
        lock(&r.pending).clear();
        r.note_marked("user_1", &mark);
        assert_eq!(r.pending(), 1, "noted on the next request");
    }
}
