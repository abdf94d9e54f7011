//! The import's own arrangements with the database: transaction settings on
//! PostgreSQL, the lock that keeps two imports apart, and the one index the
//! import adds to Kernia's tables.

use crate::db::{Conn, Db, DbError, Engine, PoolConn, on_conn};
use crate::import::ImportError;

/// Settings for the import's transactions on PostgreSQL, which only look rows
/// up by key and insert.
///
/// - `plan_cache_mode = force_custom_plan`: sqlx prepares each statement once
///   per connection, and PostgreSQL would switch it to a generic plan made
///   while Kernia's tables were still empty (a sequential scan) and keep it
///   while they grow to millions of rows.
/// - `enable_seqscan = off`: during a bulk load the tables have no statistics
///   yet and the pages just written are hot, so the cost model prefers
///   sequential scans for a batch's thousands of key lookups; measured on
///   200,000 users, 52 ms against 2 ms by the unique indexes, and growing with
///   the table. Every lookup here has an index (a scan without one is still
///   possible, only priced higher).
/// - `max_parallel_workers_per_gather = 0`: PostgreSQL planned the batch's
///   ledger-and-user lookup with a parallel worker once the tables held a few
///   hundred thousand rows, and starting that worker cost ~30 ms of a 40 ms
///   statement, every batch (measured on the 1,000,000-user import: 18 s of
///   the backends' time; 4 ms without it). Key lookups never gain from one.
/// - `synchronous_commit = off`: a batch and the run's position commit in the
///   same transaction, so losing the last commits in a database crash only
///   means the resumed run writes those batches again.
pub async fn tune(conn: &mut Conn<'_>) -> Result<(), DbError> {
    if let Conn::Postgres(c) = conn {
        sqlx::raw_sql(
            "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = off; \
             SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL synchronous_commit = off",
        )
        .execute(&mut **c)
        .await
        .map_err(DbError::query("tuning the import's transaction"))?;
    }
    Ok(())
}

/// Give up on a row lock after `wait` (e.g. `30s`) in this transaction: the
/// guard of concurrent batch writers (`import::writers`) against a lock cycle
/// PostgreSQL cannot see.
pub(crate) async fn bound_lock_waits(conn: &mut Conn<'_>, wait: &str) -> Result<(), DbError> {
    if let Conn::Postgres(c) = conn {
        sqlx::raw_sql(&format!("SET LOCAL lock_timeout = '{wait}'"))
            .execute(&mut **c)
            .await
            .map_err(DbError::query("bounding the import's lock waits"))?;
    }
    Ok(())
}

/// Kernia has no index on `account ("providerId", "accountId")`, the pair its
/// own OAuth callback looks up; the import checks that pair for every social
/// account, so it adds one (named `cutover_…`, harmless to Kernia, and it
/// speeds up Kernia's callback too).
pub(crate) async fn create_account_index(conn: &mut Conn<'_>) -> Result<(), DbError> {
    const SQL: &str = r#"CREATE INDEX IF NOT EXISTS cutover_account_provider_account ON account ("providerId", "accountId")"#;
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .execute(c)
            .await
            .map_err(DbError::query("indexing account (providerId, accountId)"))?;
    });
    Ok(())
}

/// One import at a time per PostgreSQL database (a session advisory lock);
/// SQLite's write lock serialises batches anyway.
pub(crate) struct RunLock(Option<PoolConn>);

const IMPORT_LOCK_KEY: i64 = 0x6375_7469_6d70_6f72;

impl RunLock {
    pub(crate) async fn take(db: &Db) -> Result<RunLock, ImportError> {
        if db.engine() != Engine::Postgres {
            return Ok(RunLock(None));
        }
        let mut pc = db.acquire().await?;
        let got: bool = match &mut pc.conn() {
            Conn::Postgres(c) => sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(IMPORT_LOCK_KEY)
                .fetch_one(&mut **c)
                .await
                .map_err(DbError::query("taking the import lock"))?,
            Conn::Sqlite(_) => true,
        };
        if !got {
            return Err(ImportError::Input(
                "another cutover import is running against this database".into(),
            ));
        }
        Ok(RunLock(Some(pc)))
    }

    pub(crate) async fn release(mut self) {
        if let Some(mut pc) = self.0.take()
            && let Conn::Postgres(c) = &mut pc.conn()
        {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(IMPORT_LOCK_KEY)
                .execute(&mut **c)
                .await;
        }
    }
}
