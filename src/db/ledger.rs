//! The migration ledger: one row per Clerk user in `cutover_ledger`.
//!
//! It records what Kernia cannot: the legacy digest and its hasher while the
//! password still waits to move, where each user is in the migration, and how
//! they got there. It lives in Kernia's database so that writing a credential and
//! marking the user migrated commit in one transaction.

use std::fmt;
use std::str::FromStr;

use super::{Conn, DbError, now_secs, on_conn};

/// The prefix of a ledger row's invalidation topic.
pub const TOPIC_PREFIX: &str = "ledger:";

/// The invalidation topic of a user's ledger row: every copy drops what it
/// cached about the user when it hears it.
pub fn topic(user_id: &str) -> String {
    format!("{TOPIC_PREFIX}{user_id}")
}

/// Where a user is in the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LedgerState {
    /// A verifiable legacy digest waits for the user's next sign-in.
    PendingPassword,
    /// The digest cannot be verified (missing, `awscognito`, unknown hasher):
    /// the user must reset their password.
    PendingReset,
    /// No password at all, but social accounts: the user signs in with those.
    SocialOnly,
    /// The password (or a social sign-in) lives in Kernia now.
    Migrated,
    /// Deleted at Clerk.
    Removed,
}

impl LedgerState {
    pub const ALL: [LedgerState; 5] = [
        LedgerState::PendingPassword,
        LedgerState::PendingReset,
        LedgerState::SocialOnly,
        LedgerState::Migrated,
        LedgerState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LedgerState::PendingPassword => "pending_password",
            LedgerState::PendingReset => "pending_reset",
            LedgerState::SocialOnly => "social_only",
            LedgerState::Migrated => "migrated",
            LedgerState::Removed => "removed",
        }
    }
}

impl fmt::Display for LedgerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LedgerState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LedgerState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown ledger state `{s}`"))
    }
}

/// A ledger row.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub user_id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    /// JSON array of further addresses the user had at Clerk.
    pub secondary_emails: String,
    pub hasher: Option<String>,
    pub digest: Option<String>,
    pub state: LedgerState,
    pub method: Option<String>,
    pub had_backup_codes: bool,
    pub had_passkeys: bool,
    pub legacy_failures: i64,
    pub imported_at: i64,
    pub migrated_at: Option<i64>,
    pub reset_requested_at: Option<i64>,
    pub updated_at: i64,
}

// The digest must never reach a log line, even through `{:?}`.
impl fmt::Debug for LedgerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerEntry")
            .field("user_id", &self.user_id)
            .field("state", &self.state)
            .field("hasher", &self.hasher)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A ledger row as the database returns it; `state` is checked on the way out.
#[derive(sqlx::FromRow)]
struct LedgerRow {
    user_id: String,
    email: Option<String>,
    username: Option<String>,
    phone: Option<String>,
    secondary_emails: String,
    hasher: Option<String>,
    digest: Option<String>,
    state: String,
    method: Option<String>,
    had_backup_codes: bool,
    had_passkeys: bool,
    legacy_failures: i64,
    imported_at: i64,
    migrated_at: Option<i64>,
    reset_requested_at: Option<i64>,
    updated_at: i64,
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = DbError;

    fn try_from(r: LedgerRow) -> Result<Self, DbError> {
        Ok(LedgerEntry {
            state: r.state.parse().map_err(DbError::Schema)?,
            user_id: r.user_id,
            email: r.email,
            username: r.username,
            phone: r.phone,
            secondary_emails: r.secondary_emails,
            hasher: r.hasher,
            digest: r.digest,
            method: r.method,
            had_backup_codes: r.had_backup_codes,
            had_passkeys: r.had_passkeys,
            legacy_failures: r.legacy_failures,
            imported_at: r.imported_at,
            migrated_at: r.migrated_at,
            reset_requested_at: r.reset_requested_at,
            updated_at: r.updated_at,
        })
    }
}

/// A ledger row to write at import.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewLedgerEntry {
    pub user_id: String,
    pub email: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
    pub secondary_emails: Vec<String>,
    pub hasher: Option<String>,
    pub digest: Option<String>,
    pub state: Option<LedgerState>,
    pub had_backup_codes: bool,
    pub had_passkeys: bool,
}

impl fmt::Debug for NewLedgerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewLedgerEntry")
            .field("user_id", &self.user_id)
            .field("state", &self.state)
            .field("hasher", &self.hasher)
            .field("digest", &self.digest.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

const SELECT: &str =
    "SELECT user_id, email, username, phone, secondary_emails, hasher, digest, state,
    method, had_backup_codes, had_passkeys, legacy_failures, imported_at, migrated_at,
    reset_requested_at, updated_at FROM cutover_ledger";

/// Insert a row unless one exists for this user; returns whether it was written.
/// A re-run import therefore never moves a user backwards (a migrated user stays
/// migrated).
pub async fn insert_if_absent(conn: &mut Conn<'_>, e: &NewLedgerEntry) -> Result<bool, DbError> {
    let now = now_secs();
    let state = e.state.unwrap_or(LedgerState::PendingReset);
    let secondary = serde_json::to_string(&e.secondary_emails).unwrap_or_else(|_| "[]".into());
    const SQL: &str =
        "INSERT INTO cutover_ledger (user_id, email, username, phone, secondary_emails,
        hasher, digest, state, had_backup_codes, had_passkeys, imported_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
        ON CONFLICT (user_id) DO NOTHING";
    let written = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(&e.user_id)
        .bind(&e.email)
        .bind(&e.username)
        .bind(&e.phone)
        .bind(&secondary)
        .bind(&e.hasher)
        .bind(&e.digest)
        .bind(state.as_str())
        .bind(e.had_backup_codes)
        .bind(e.had_passkeys)
        .bind(now)
        .execute(c)
        .await
        .map_err(DbError::query("writing a ledger row"))?
        .rows_affected());
    Ok(written > 0)
}

/// Which identifier a sign-in named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier<'a> {
    Email(&'a str),
    Username(&'a str),
    Phone(&'a str),
}

/// The ledger row for a normalized identifier.
pub async fn find(conn: &mut Conn<'_>, id: Identifier<'_>) -> Result<Option<LedgerEntry>, DbError> {
    let (column, value) = match id {
        Identifier::Email(v) => ("email", v),
        Identifier::Username(v) => ("username", v),
        Identifier::Phone(v) => ("phone", v),
    };
    let sql = format!("{SELECT} WHERE {column} = $1 AND state <> 'removed' LIMIT 1");
    let row = on_conn!(conn, |c| sqlx::query_as::<_, LedgerRow>(&sql)
        .bind(value)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading the ledger"))?);
    row.map(LedgerEntry::try_from).transpose()
}

pub async fn find_by_user(
    conn: &mut Conn<'_>,
    user_id: &str,
) -> Result<Option<LedgerEntry>, DbError> {
    let sql = format!("{SELECT} WHERE user_id = $1");
    let row = on_conn!(conn, |c| sqlx::query_as::<_, LedgerRow>(&sql)
        .bind(user_id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading the ledger"))?);
    row.map(LedgerEntry::try_from).transpose()
}

/// Move a user to `migrated`, recording how. Returns false when the row was
/// already migrated or removed (nothing changed).
pub async fn mark_migrated(
    conn: &mut Conn<'_>,
    user_id: &str,
    method: &str,
) -> Result<bool, DbError> {
    let now = now_secs();
    const SQL: &str = "UPDATE cutover_ledger SET state = 'migrated', method = $1, migrated_at = $2,
        updated_at = $2 WHERE user_id = $3 AND state NOT IN ('migrated', 'removed')";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(method)
        .bind(now)
        .bind(user_id)
        .execute(c)
        .await
        .map_err(DbError::query("marking a user migrated"))?
        .rows_affected());
    Ok(n > 0)
}

/// Count a failed legacy verify for this user.
pub async fn count_legacy_failure(conn: &mut Conn<'_>, user_id: &str) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE cutover_ledger SET legacy_failures = legacy_failures + 1, updated_at = $1
        WHERE user_id = $2";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(now_secs())
            .bind(user_id)
            .execute(c)
            .await
            .map_err(DbError::query("counting a failed verify"))?;
    });
    Ok(())
}

/// How many ledger rows are in each state (every state listed, zeros included).
pub async fn counts_by_state(conn: &mut Conn<'_>) -> Result<Vec<(LedgerState, i64)>, DbError> {
    const SQL: &str = "SELECT state, COUNT(*) FROM cutover_ledger GROUP BY state";
    let rows: Vec<(String, i64)> = on_conn!(conn, |c| sqlx::query_as(SQL)
        .fetch_all(c)
        .await
        .map_err(DbError::query("counting the ledger"))?);
    let mut out: Vec<(LedgerState, i64)> = LedgerState::ALL.iter().map(|s| (*s, 0)).collect();
    for (state, n) in rows {
        match state.parse::<LedgerState>() {
            Ok(s) => {
                if let Some(slot) = out.iter_mut().find(|(x, _)| *x == s) {
                    slot.1 = n;
                }
            }
            Err(e) => return Err(DbError::Schema(e)),
        }
    }
    Ok(out)
}

/// Record (or clear, with `None`) when a password reset was last started.
pub async fn set_reset_requested(
    conn: &mut Conn<'_>,
    user_id: &str,
    at: Option<i64>,
) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE cutover_ledger SET reset_requested_at = $1, updated_at = $2 WHERE user_id = $3";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(at)
            .bind(now_secs())
            .bind(user_id)
            .execute(c)
            .await
            .map_err(DbError::query("recording a reset"))?;
    });
    Ok(())
}

/// Move a user to another state (not to `migrated`: use [`mark_migrated`]).
pub async fn set_state(
    conn: &mut Conn<'_>,
    user_id: &str,
    state: LedgerState,
) -> Result<(), DbError> {
    const SQL: &str = "UPDATE cutover_ledger SET state = $1, updated_at = $2 WHERE user_id = $3";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(state.as_str())
            .bind(now_secs())
            .bind(user_id)
            .execute(c)
            .await
            .map_err(DbError::query("changing a ledger state"))?;
    });
    Ok(())
}

/// Claim the right to start a reset: sets `reset_requested_at = now` only when
/// no reset was started within `window_secs`. True when this caller won.
pub async fn claim_reset(
    conn: &mut Conn<'_>,
    user_id: &str,
    now: i64,
    window_secs: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE cutover_ledger SET reset_requested_at = $1, updated_at = $1
        WHERE user_id = $2 AND (reset_requested_at IS NULL OR reset_requested_at <= $3)";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(now)
        .bind(user_id)
        .bind(now - window_secs)
        .execute(c)
        .await
        .map_err(DbError::query("claiming a reset"))?
        .rows_affected());
    Ok(n > 0)
}
