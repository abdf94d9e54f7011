//! cutover's own schema migrations, embedded in the binary and run on start.
//!
//! Not sqlx's migrator: its bookkeeping table would be `_sqlx_migrations`, and
//! every table cutover adds to the customer's database is named `cutover_*`;
//! it also takes no lock on SQLite. Here every run is one transaction that first
//! takes a lock — `pg_advisory_xact_lock` on PostgreSQL, `BEGIN IMMEDIATE` on
//! SQLite — then applies what `cutover_schema_migrations` does not list yet. Any
//! number of cutover processes may start at once; the first applies, the others
//! wait for it and find nothing left to do.

use super::{Db, DbError, on_conn};

/// (version, name, SQL). Append only; never edit a released migration.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "ledger",
        include_str!("../../migrations/0001_ledger.sql"),
    ),
    (
        2,
        "import",
        include_str!("../../migrations/0002_import.sql"),
    ),
    (
        3,
        "outbox",
        include_str!("../../migrations/0003_outbox.sql"),
    ),
    (
        4,
        "control",
        include_str!("../../migrations/0004_control.sql"),
    ),
    (
        5,
        "clerk_sync",
        include_str!("../../migrations/0005_clerk_sync.sql"),
    ),
    (
        6,
        "ledger_partial_indexes",
        include_str!("../../migrations/0006_ledger_partial_indexes.sql"),
    ),
];

/// An arbitrary constant naming cutover's advisory lock.
const PG_LOCK_KEY: i64 = 0x0063_7574_6f76_6572;

pub(super) async fn run(db: &Db) -> Result<(), DbError> {
    let mut tx = db.begin().await?;
    apply_pending(&mut tx.conn()).await?;
    tx.commit().await
}

/// Take the lock and apply what is missing, inside the caller's transaction
/// (`import --dry-run` runs everything in one transaction it rolls back).
pub(super) async fn apply_pending(conn: &mut super::Conn<'_>) -> Result<(), DbError> {
    if let super::Conn::Postgres(c) = conn {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut **c)
            .await
            .map_err(DbError::query("locking for migrations"))?;
    }
    on_conn!(conn, |c| {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS cutover_schema_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .execute(&mut *c)
        .await
        .map_err(DbError::query("creating cutover_schema_migrations"))?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM cutover_schema_migrations")
            .fetch_all(&mut *c)
            .await
            .map_err(DbError::query("reading applied migrations"))?;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(sql)
                .execute(&mut *c)
                .await
                .map_err(DbError::query("applying a migration"))?;
            sqlx::query(
                "INSERT INTO cutover_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(super::now_secs())
            .execute(&mut *c)
            .await
            .map_err(DbError::query("recording a migration"))?;
            tracing::info!(version, name, "applied cutover migration");
        }
    });
    Ok(())
}

/// Versions this binary knows that the database has not applied (readiness:
/// "schema current"). Gaps in the numbering are fine: each version is
/// looked up by itself.
pub(super) async fn missing(db: &Db) -> Result<Vec<i64>, DbError> {
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let applied: Vec<i64> = on_conn!(&mut conn, |c| sqlx::query_scalar(
        "SELECT version FROM cutover_schema_migrations"
    )
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading applied migrations"))?);
    Ok(MIGRATIONS
        .iter()
        .map(|(v, _, _)| *v)
        .filter(|v| !applied.contains(v))
        .collect())
}
