//! Kernia's database, as cutover reads and writes it — on PostgreSQL or SQLite.
//!
//! cutover works inside Kernia's own database: it reads sessions, writes users,
//! accounts, organizations and credentials in Kernia 0.1.0's exact schema
//! ([`kernia`]), and keeps its own `cutover_*` tables beside them ([`ledger`],
//! created by [`migrate`]), so a credential write and a ledger change commit in
//! one transaction.
//!
//! Both engines run the same SQL text wherever they agree (quoted camelCase
//! columns, the quoted `"user"` table, `$n` placeholders, `ON CONFLICT`). Where
//! they do not, a query names both forms. [`Conn`] is a connection or an open
//! transaction of either engine; the [`on_conn!`] macro runs one body against
//! whichever it is, so each query is written once and compiled for both.
//!
//! Dates are integer epoch seconds (PostgreSQL `INTEGER`, i.e. 32-bit, as Kernia
//! creates them); reads cast them to `BIGINT` so both engines decode to `i64`.

pub mod bounded;
pub mod kernia;
pub mod ledger;
mod migrate;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, PgPool, SqlitePool};

pub use kernia::KerniaSchema;

/// A database failure, with what cutover was doing when it happened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database error while {doing}: {source}")]
    Query {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("database schema problem: {0}")]
    Schema(String),
}

impl DbError {
    pub(crate) fn query(doing: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
        move |source| DbError::Query { doing, source }
    }

    /// True for a unique-constraint violation (someone else wrote the row first).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Query { source, .. } => source
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation()),
            _ => false,
        }
    }
}

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// A pool of connections to Kernia's database.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$c` bound to the engine-specific connection inside a
/// [`Conn`]; the body is compiled once per engine.
#[macro_export]
#[doc(hidden)]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Postgres($c) => {
                let $c = &mut **$c;
                $body
            }
            $crate::db::Conn::Sqlite($c) => {
                let $c = &mut **$c;
                $body
            }
        }
    };
}
pub use on_conn;

/// One connection (or open transaction) of either engine.
pub enum Conn<'a> {
    Postgres(&'a mut sqlx::PgConnection),
    Sqlite(&'a mut sqlx::SqliteConnection),
}

impl Conn<'_> {
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Postgres(_) => Engine::Postgres,
            Conn::Sqlite(_) => Engine::Sqlite,
        }
    }
}

/// An open transaction of either engine; dropped without [`Tx::commit`], it
/// rolls back.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl Tx {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Postgres(tx) => Conn::Postgres(&mut *tx),
            Tx::Sqlite(tx) => Conn::Sqlite(&mut *tx),
        }
    }

    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
        .map_err(DbError::query("committing"))
    }
}

/// What a pool's SQLite connections are for (PostgreSQL connections are the
/// same for every use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteUse {
    /// SQLite's own settings: a 2 MiB page cache per connection,
    /// `synchronous = FULL` (each commit is on disk when it returns).
    #[default]
    Default,
    /// Serving: point lookups and small writes, with the page cache of each
    /// connection capped at `page_cache_kib` (the OS caches the file anyway).
    Serving { page_cache_kib: u32 },
    /// The import's bulk writes:
    /// - `synchronous = NORMAL`: a commit no longer waits for the disk. In WAL
    ///   mode the database stays consistent through a crash; only the last
    ///   commits may be lost, and since a batch commits with the run's
    ///   position, the resumed run writes exactly those batches again (as
    ///   `synchronous_commit = off` does on PostgreSQL).
    /// - a WAL checkpoint every [`BULK_LOAD_CHECKPOINT_PAGES`] pages instead of
    ///   SQLite's 1,000: the index pages every batch touches are copied back
    ///   into the database file a tenth as often (the WAL may grow to about
    ///   40 MiB with 4 KiB pages).
    BulkLoad,
}

/// A pooled connection that has been idle at least this long is pinged before
/// it is handed out; one used more recently is handed out as it is.
///
/// sqlx's default pings on every acquire: a round trip to PostgreSQL, or to
/// the SQLite connection's worker thread, before every query, which on the
/// request path (a session or ledger look-up on a cache miss) doubled the
/// cost of each look-up. A connection in steady use has just answered; a dead
/// one among those (the server restarted within this window) fails its query
/// once and is dropped from the pool, as with the pool's own idle timeout. The
/// same rule as HikariCP's `aliveBypassWindowMs` (500 ms).
pub const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// Pool options shared by both engines: the ping rule of [`PING_AFTER_IDLE`].
fn pool_options<DB: sqlx::Database>(
    max_connections: u32,
    acquire_timeout: Duration,
) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    // An error closes the connection and the pool tries the next.
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// `wal_autocheckpoint` of [`SqliteUse::BulkLoad`] connections.
pub const BULK_LOAD_CHECKPOINT_PAGES: u32 = 10_000;

impl Db {
    /// Connect to `url` (`postgres://…` or `sqlite:…`). SQLite files are created
    /// when missing and switched to WAL, so Kernia and cutover can both write.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        Db::connect_for(url, max_connections, SqliteUse::Default).await
    }

    /// [`Db::connect`], with SQLite's connections set up for `sqlite_use`.
    pub async fn connect_for(
        url: &str,
        max_connections: u32,
        sqlite_use: SqliteUse,
    ) -> Result<Db, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
            let pool = pool_options(max_connections, Duration::from_secs(5))
                .connect_with(opts)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(DbError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                // Kernia's SQLAlchemy connections do not enforce foreign keys;
                // cutover writes in dependency order either way.
                .foreign_keys(false);
            let opts = match sqlite_use {
                SqliteUse::Default => opts,
                SqliteUse::Serving { page_cache_kib } => {
                    opts.pragma("cache_size", format!("-{page_cache_kib}"))
                }
                SqliteUse::BulkLoad => opts
                    .synchronous(SqliteSynchronous::Normal)
                    .pragma("wal_autocheckpoint", BULK_LOAD_CHECKPOINT_PAGES.to_string()),
            };
            let pool = pool_options(max_connections, Duration::from_secs(10))
                .connect_with(opts)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db::Sqlite(pool))
        } else {
            Err(DbError::Schema(
                "database URL must start with postgres://, postgresql:// or sqlite:".into(),
            ))
        }
    }

    /// Connect to a database that must already exist, as Kernia's does once
    /// the Kernia app has run: a SQLite URL naming a missing file is refused
    /// rather than creating an empty database (a mistyped path would otherwise
    /// leave a stray file behind before any "no Kernia tables" error).
    pub async fn connect_existing(url: &str, max_connections: u32) -> Result<Db, DbError> {
        Db::connect_existing_for(url, max_connections, SqliteUse::Default).await
    }

    /// [`Db::connect_existing`], set up for `sqlite_use` ([`Db::connect_for`]).
    pub async fn connect_existing_for(
        url: &str,
        max_connections: u32,
        sqlite_use: SqliteUse,
    ) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url).map_err(DbError::Connect)?;
            let file = opts.get_filename();
            if !url.contains(":memory:") && !file.exists() {
                return Err(DbError::Schema(format!(
                    "the SQLite database {} does not exist: check kernia.database_url (cutover never creates Kernia's database; the Kernia app does)",
                    file.display()
                )));
            }
        }
        Db::connect_for(url, max_connections, sqlite_use).await
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Postgres(_) => Engine::Postgres,
            Db::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// Create or upgrade cutover's own tables. Safe to run from several processes
    /// at once: PostgreSQL serialises on an advisory lock, SQLite on its write lock.
    pub async fn migrate(&self) -> Result<(), DbError> {
        migrate::run(self).await
    }

    /// Migrations this binary has that the database lacks (empty: current).
    pub async fn missing_migrations(&self) -> Result<Vec<i64>, DbError> {
        migrate::missing(self).await
    }

    /// Create or upgrade cutover's own tables inside an open transaction.
    pub async fn migrate_in(conn: &mut Conn<'_>) -> Result<(), DbError> {
        migrate::apply_pending(conn).await
    }

    /// Begin a transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
    /// taken up front, so two writers queue instead of failing at commit time.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        match self {
            Db::Postgres(pool) => Ok(Tx::Postgres(
                pool.begin()
                    .await
                    .map_err(DbError::query("beginning a transaction"))?,
            )),
            Db::Sqlite(pool) => Ok(Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(DbError::query("beginning a transaction"))?,
            )),
        }
    }

    /// A pooled connection outside any transaction.
    pub async fn acquire(&self) -> Result<PoolConn, DbError> {
        match self {
            Db::Postgres(pool) => Ok(PoolConn::Postgres(
                pool.acquire()
                    .await
                    .map_err(DbError::query("acquiring a connection"))?,
            )),
            Db::Sqlite(pool) => Ok(PoolConn::Sqlite(
                pool.acquire()
                    .await
                    .map_err(DbError::query("acquiring a connection"))?,
            )),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A pooled connection of either engine.
pub enum PoolConn {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl PoolConn {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PoolConn::Postgres(c) => Conn::Postgres(&mut *c),
            PoolConn::Sqlite(c) => Conn::Sqlite(&mut *c),
        }
    }
}

/// Seconds since the Unix epoch, the unit of every Kernia date.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod page_cache_tests {
    use super::*;

    async fn pragma(db: &Db, name: &str) -> i64 {
        let mut c = db.acquire().await.unwrap();
        match c.conn() {
            Conn::Sqlite(conn) => sqlx::query_scalar(&format!("PRAGMA {name}"))
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
            Conn::Postgres(_) => unreachable!("a SQLite URL"),
        }
    }

    async fn cache_size(db: &Db) -> i64 {
        pragma(db, "cache_size").await
    }

    #[tokio::test]
    async fn the_import_s_connections_commit_without_waiting_for_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("b.db").display());
        let bulk = Db::connect_for(&url, 2, SqliteUse::BulkLoad).await.unwrap();
        // Both pooled connections, not only the first.
        let (mut a, mut b) = (bulk.acquire().await.unwrap(), bulk.acquire().await.unwrap());
        for c in [&mut a, &mut b] {
            let Conn::Sqlite(conn) = c.conn() else {
                unreachable!("a SQLite URL")
            };
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(sync, 1, "NORMAL");
            let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(pages, i64::from(BULK_LOAD_CHECKPOINT_PAGES));
        }
        drop((a, b));
        bulk.close().await;
        let default = Db::connect(&url, 1).await.unwrap();
        assert_eq!(
            pragma(&default, "synchronous").await,
            2,
            "FULL, SQLite's own"
        );
        assert_eq!(pragma(&default, "wal_autocheckpoint").await, 1000);
        default.close().await;
    }

    #[tokio::test]
    async fn the_sqlite_page_cache_cap_reaches_every_pooled_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let capped = Db::connect_for(
            &url,
            2,
            SqliteUse::Serving {
                page_cache_kib: 512,
            },
        )
        .await
        .unwrap();
        assert_eq!(cache_size(&capped).await, -512);
        capped.close().await;
        let default = Db::connect(&url, 2).await.unwrap();
        assert_eq!(cache_size(&default).await, -2000, "SQLite's own default");
        default.close().await;
    }
}
