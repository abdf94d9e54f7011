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
//! written concurrently by Kernia is noticed rather than overwritten. Users,
//! the bulk of an import, are looked up after their insert instead, and only
//! those it skipped, when Kernia's unique indexes stand behind the insert
//! (see [`users::write`]).
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
    /// `"user"` has a unique index of its own on `id`, `email`, and on
    /// `username` and `"phoneNumber"` where those columns exist (Kernia's
    /// schema does). Then the database itself refuses a second holder of a
    /// value, and [`users::write`] only looks up the rows its insert skipped.
    pub unique_user_values: bool,
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
        let unique = unique_user_columns(db).await?;
        let unique_user_values = ["id", "email", "username", "phoneNumber"]
            .iter()
            .all(|c| !kernia.has_user_column(c) || unique.iter().any(|u| u == c));
        Ok(ImportSchema {
            unique_user_values,
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

/// The `"user"` columns that a unique index covers by itself: one plain
/// column, no expression, no `WHERE` (the primary key included).
async fn unique_user_columns(db: &Db) -> Result<Vec<String>, DbError> {
    match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT a.attname::TEXT
                 FROM pg_index i
                 JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
                 WHERE n.nspname = current_schema() AND t.relname = 'user'
                   AND i.indisunique AND i.indnatts = 1
                   AND i.indexprs IS NULL AND i.indpred IS NULL",
            )
            .fetch_all(pool)
            .await
        }
        Db::Sqlite(pool) => {
            sqlx::query_scalar(
                "SELECT ii.name
                 FROM pragma_index_list('user') AS il, pragma_index_info(il.name) AS ii
                 WHERE il.\"unique\" = 1 AND il.partial = 0 AND ii.name IS NOT NULL
                   AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1",
            )
            .fetch_all(pool)
            .await
        }
    }
    .map_err(DbError::query(
        "reading the unique indexes of Kernia's user table",
    ))
}
