//! The import's writes: Kernia's tables (users, social accounts, two-factor
//! rows, organizations, members, invitations) and cutover's own (the ledger,
//! the run and its issues), in batches.
//!
//! A batch is written with a handful of statements whatever its size: the rows
//! go in as one typed array per column on PostgreSQL (`unnest`), so each
//! statement text is fixed, prepared once and cached; on SQLite as a multi-row
//! `VALUES` list of bound parameters (see [`sql::batch_rows`]). Before inserting, each
//! batch asks which of its rows Kernia already has — by id (already present,
//! left alone) or by a unique value under another id (a conflict, reported and
//! left alone) — and inserts with `ON CONFLICT DO NOTHING RETURNING id`, so a row
//! written concurrently by Kernia is noticed rather than overwritten.
//!
//! The caller owns the transaction: one per batch normally, one for the whole
//! run under `--dry-run` (rolled back at the end).

pub mod accounts;
pub mod factors;
pub mod orgs;
pub mod refresh;
pub mod runs;
pub mod sql;
pub mod tuning;
pub mod users;

use crate::db::{Db, DbError, KerniaSchema};

/// What the deployed Kernia database has, beyond the core tables.
#[derive(Debug, Clone)]
pub struct ImportSchema {
    pub kernia: KerniaSchema,
    pub organization: bool,
    pub member: bool,
    pub invitation: bool,
    pub two_factor: bool,
}

impl ImportSchema {
    pub async fn read(db: &Db) -> Result<ImportSchema, DbError> {
        let kernia = KerniaSchema::read(db).await?;
        let tables: Vec<String> = match db {
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT table_name::TEXT FROM information_schema.tables
                     WHERE table_schema = current_schema()",
                )
                .fetch_all(pool)
                .await
            }
            Db::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(DbError::query("listing Kernia's tables"))?;
        let has = |t: &str| tables.iter().any(|x| x == t);
        Ok(ImportSchema {
            organization: has("organization"),
            member: has("member"),
            invitation: has("invitation"),
            two_factor: has("twoFactor"),
            kernia,
        })
    }

    /// The organization plugin's tables are all there.
    pub fn organizations(&self) -> bool {
        self.organization && self.member && self.invitation
    }
}
