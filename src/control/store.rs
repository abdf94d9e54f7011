//! The rollout in the database: `cutover_rollout` (one versioned row) and
//! `cutover_rollout_history` (one row per change).
//!
//! A change is a compare-and-set on the version: read the row, compute the
//! next rollout, `UPDATE … WHERE version = old` and append the history row in
//! one transaction. When another writer got there first, nothing is written and
//! the change is computed again from what they wrote, so two operators
//! allowing two users at once both land. The first start seeds the row from
//! the file (`INSERT … ON CONFLICT DO NOTHING`: any number of copies may race).

use serde::Serialize;

use super::rollout::{self, Diff, Rollout};
use crate::db::{Conn, Db, DbError, on_conn};

/// Why a rollout could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Invalid(String),
    #[error("the stored rollout (version {version}) cannot be read: {message}")]
    Corrupt { version: i64, message: String },
    #[error("the rollout has not been seeded yet")]
    NotSeeded,
    #[error("the rollout kept changing under this change; try again")]
    Contended,
}

/// The rollout row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    pub version: i64,
    pub rollout: Rollout,
    /// Epoch seconds.
    pub updated_at: i64,
}

/// Through which interface a change came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    File,
    Cli,
    Api,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::File => "file",
            Interface::Cli => "cli",
            Interface::Api => "api",
        }
    }
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    /// Epoch milliseconds.
    pub changed_at_ms: i64,
    pub fields: Vec<String>,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
    pub reason: String,
    pub interface: String,
    pub actor: Option<String>,
}

/// The outcome of [`change`]. (Built once per operator change: its size
/// does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Changed {
    Done {
        before: Stored,
        after: Stored,
        diff: Diff,
        changed_at_ms: i64,
    },
    /// The change asked for what already is: nothing written.
    Unchanged(Stored),
}

/// Who made a change and why.
#[derive(Debug, Clone)]
pub struct Provenance<'a> {
    pub reason: &'a str,
    pub interface: Interface,
    pub actor: Option<&'a str>,
}

/// Longest reason kept.
pub const MAX_REASON: usize = 500;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The stored rollout, if seeded.
pub async fn read(db: &Db) -> Result<Option<Stored>, ControlError> {
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let row: Option<(i64, String, i64)> = on_conn!(&mut conn, |c| sqlx::query_as(
        "SELECT version, settings, updated_at FROM cutover_rollout WHERE id = 1"
    )
    .fetch_optional(c)
    .await
    .map_err(DbError::query("reading the rollout"))?);
    row.map(|(version, settings, updated_at)| parse(version, &settings, updated_at))
        .transpose()
}

fn parse(version: i64, settings: &str, updated_at: i64) -> Result<Stored, ControlError> {
    let rollout: Rollout = serde_json::from_str(settings).map_err(|e| ControlError::Corrupt {
        version,
        message: e.to_string(),
    })?;
    rollout::validate(&rollout).map_err(|message| ControlError::Corrupt { version, message })?;
    Ok(Stored {
        version,
        rollout,
        updated_at,
    })
}

/// Seed the row from the file unless it exists. Returns the stored row and
/// whether this call created it.
pub async fn seed(db: &Db, file: &Rollout) -> Result<(Stored, bool), ControlError> {
    rollout::validate(file).map_err(ControlError::Invalid)?;
    let settings = serde_json::to_string(file).map_err(|e| ControlError::Invalid(e.to_string()))?;
    let now_ms = now_ms();
    let mut tx = db.begin().await?;
    let n = on_conn!(&mut tx.conn(), |c| sqlx::query(
        "INSERT INTO cutover_rollout (id, version, settings, updated_at)
         VALUES (1, 1, $1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&settings)
    .bind(now_ms / 1000)
    .execute(c)
    .await
    .map_err(DbError::query("seeding the rollout"))?
    .rows_affected());
    let created = n > 0;
    if created {
        let record = Record {
            version: 1,
            changed_at_ms: now_ms,
            fields: "seed",
            from: "null",
            to: &settings,
            reason: "seeded from [rollout] in the configuration file",
            interface: Interface::File.as_str(),
            actor: None,
            settings: &settings,
        };
        insert_history(&mut tx.conn(), &record).await?;
    }
    tx.commit().await?;
    let stored = read(db).await?.ok_or(ControlError::NotSeeded)?;
    Ok((stored, created))
}

/// One audit row; `from`, `to` and `settings` are JSON text.
struct Record<'a> {
    version: i64,
    changed_at_ms: i64,
    fields: &'a str,
    from: &'a str,
    to: &'a str,
    reason: &'a str,
    interface: &'a str,
    actor: Option<&'a str>,
    settings: &'a str,
}

async fn insert_history(conn: &mut Conn<'_>, r: &Record<'_>) -> Result<(), DbError> {
    on_conn!(conn, |c| {
        sqlx::query(
            "INSERT INTO cutover_rollout_history (version, changed_at_ms, fields, from_value,
             to_value, reason, interface, actor, settings)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.version)
        .bind(r.changed_at_ms)
        .bind(r.fields)
        .bind(r.from)
        .bind(r.to)
        .bind(r.reason)
        .bind(r.interface)
        .bind(r.actor)
        .bind(r.settings)
        .execute(c)
        .await
        .map_err(DbError::query("recording a rollout change"))?;
    });
    Ok(())
}

/// Apply `next` to the stored rollout and record it.
pub async fn change(
    db: &Db,
    next: impl Fn(&Rollout) -> Result<Rollout, String>,
    who: &Provenance<'_>,
) -> Result<Changed, ControlError> {
    let reason: String = who.reason.trim().chars().take(MAX_REASON).collect();
    for _ in 0..20 {
        let before = read(db).await?.ok_or(ControlError::NotSeeded)?;
        let after = next(&before.rollout).map_err(ControlError::Invalid)?;
        rollout::validate(&after).map_err(ControlError::Invalid)?;
        let diff = rollout::diff(&before.rollout, &after);
        if diff.is_empty() {
            return Ok(Changed::Unchanged(before));
        }
        let settings =
            serde_json::to_string(&after).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let fields = diff.keys().copied().collect::<Vec<_>>().join(",");
        let from = serde_json::Value::Object(
            diff.iter()
                .map(|(k, (a, _))| (k.to_string(), a.clone()))
                .collect(),
        )
        .to_string();
        let to = serde_json::Value::Object(
            diff.iter()
                .map(|(k, (_, b))| (k.to_string(), b.clone()))
                .collect(),
        )
        .to_string();
        let changed_at_ms = now_ms();
        let version = before.version + 1;
        let mut tx = db.begin().await?;
        let n = on_conn!(&mut tx.conn(), |c| sqlx::query(
            "UPDATE cutover_rollout SET version = $1, settings = $2, updated_at = $3
             WHERE id = 1 AND version = $4",
        )
        .bind(version)
        .bind(&settings)
        .bind(changed_at_ms / 1000)
        .bind(before.version)
        .execute(c)
        .await
        .map_err(DbError::query("changing the rollout"))?
        .rows_affected());
        let won = n > 0;
        if won {
            let record = Record {
                version,
                changed_at_ms,
                fields: &fields,
                from: &from,
                to: &to,
                reason: &reason,
                interface: who.interface.as_str(),
                actor: who.actor,
                settings: &settings,
            };
            insert_history(&mut tx.conn(), &record).await?;
        }
        if !won {
            continue; // dropped: rolled back; someone else changed it first
        }
        tx.commit().await?;
        let after = Stored {
            version,
            rollout: after,
            updated_at: changed_at_ms / 1000,
        };
        return Ok(Changed::Done {
            before,
            after,
            diff,
            changed_at_ms,
        });
    }
    Err(ControlError::Contended)
}

/// The newest `limit` changes, newest first.
pub async fn history(db: &Db, limit: i64) -> Result<Vec<HistoryEntry>, ControlError> {
    type Row = (
        i64,
        i64,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let rows: Vec<Row> = on_conn!(&mut conn, |c| sqlx::query_as(
        "SELECT version, changed_at_ms, fields, from_value, to_value, reason, interface, actor
         FROM cutover_rollout_history ORDER BY version DESC LIMIT $1"
    )
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading the rollout history"))?);
    Ok(rows
        .into_iter()
        .map(
            |(version, changed_at_ms, fields, from, to, reason, interface, actor)| HistoryEntry {
                version,
                changed_at_ms,
                fields: fields.split(',').map(str::to_string).collect(),
                from: serde_json::from_str(&from).unwrap_or(serde_json::Value::Null),
                to: serde_json::from_str(&to).unwrap_or(serde_json::Value::Null),
                reason,
                interface,
                actor,
            },
        )
        .collect())
}

/// How many known users (ledger rows not migrated and not removed) sit in
/// buckets between two percentages: the users a lowering sends back to legacy,
/// or a raise sends to kernia. Users an override pins are left out.
pub async fn users_between(
    db: &Db,
    salt: &str,
    r: &Rollout,
    low: f64,
    high: f64,
) -> Result<u64, ControlError> {
    use crate::route::rollout::{Pin, bucket};
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let rows: Vec<(String, Option<String>)> = on_conn!(&mut conn, |c| sqlx::query_as(
        "SELECT user_id, email FROM cutover_ledger WHERE state NOT IN ('migrated', 'removed')"
    )
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading the ledger"))?);
    let (low, high) = (low / 100.0, high / 100.0);
    let overridden = |user: &str, email: Option<&str>| {
        let domain = email
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        [&r.allow, &r.deny].iter().any(|l| {
            l.users.contains(user) || domain.as_ref().is_some_and(|d| l.email_domains.contains(d))
        })
    };
    Ok(rows
        .iter()
        .filter(|(u, e)| !overridden(u, e.as_deref()))
        .filter(|(u, _)| {
            let b = bucket(salt, &Pin::for_user(u, false));
            b >= low && b < high
        })
        .count() as u64)
}
