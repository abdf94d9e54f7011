//! An import run's progress, counts and issues, in `cutover_import_runs` and
//! `cutover_import_issues` (migration 0002).
//!
//! A run is identified by the fingerprint of its inputs. Each batch commits its
//! rows together with the run's new position (how many units of the current
//! phase are done), its counters and its issues, so a run killed at any moment
//! and started again with the same inputs skips exactly what was committed and
//! ends with the same counts and issues as an uninterrupted run.

use serde::Serialize;

use crate::db::{Conn, DbError, now_secs, on_conn};
use crate::import::issue::{Entity, Issue, IssueKind, Location};
use crate::import::report::Counters;

use super::sql;

/// The phases of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Users,
    Organizations,
    Memberships,
    Invitations,
    Done,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Users,
        Phase::Organizations,
        Phase::Memberships,
        Phase::Invitations,
        Phase::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Users => "users",
            Phase::Organizations => "organizations",
            Phase::Memberships => "memberships",
            Phase::Invitations => "invitations",
            Phase::Done => "done",
        }
    }

    fn parse(s: &str) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or(Phase::Users)
    }
}

/// The run being carried out.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub fingerprint: String,
    pub phase: Phase,
    /// Units of `phase` already committed.
    pub position: u64,
    pub counters: Counters,
    pub issue_count: u64,
    pub started_at: i64,
    /// Whether this run picked up an interrupted one.
    pub resumed: bool,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    fingerprint: String,
    phase: String,
    units_done: i64,
    counters: String,
    issue_count: i64,
    started_at: i64,
}

/// Resume the interrupted run with this fingerprint, or start a new one.
/// Interrupted runs of other inputs are marked abandoned (their writes stay:
/// every write is idempotent, so the new run simply finds them present).
pub async fn open(conn: &mut Conn<'_>, fingerprint: &str, restart: bool) -> Result<Run, DbError> {
    const FIND: &str =
        "SELECT id, fingerprint, phase, units_done, counters, issue_count, started_at
        FROM cutover_import_runs WHERE state = 'running' AND fingerprint = $1
        ORDER BY started_at DESC, id LIMIT 1";
    let found: Option<RunRow> = if restart {
        None
    } else {
        on_conn!(conn, |c| sqlx::query_as(FIND)
            .bind(fingerprint)
            .fetch_optional(c)
            .await
            .map_err(DbError::query("reading import runs"))?)
    };
    let now = now_secs();
    const ABANDON: &str = "UPDATE cutover_import_runs SET state = 'abandoned', updated_at = $1
        WHERE state = 'running' AND id <> $2";
    let keep = found.as_ref().map(|r| r.id.clone()).unwrap_or_default();
    on_conn!(conn, |c| {
        sqlx::query(ABANDON)
            .bind(now)
            .bind(&keep)
            .execute(c)
            .await
            .map_err(DbError::query("closing interrupted import runs"))?;
    });
    if let Some(r) = found {
        return Ok(Run {
            id: r.id,
            fingerprint: r.fingerprint,
            phase: Phase::parse(&r.phase),
            position: r.units_done.max(0) as u64,
            counters: serde_json::from_str(&r.counters).unwrap_or_default(),
            issue_count: r.issue_count.max(0) as u64,
            started_at: r.started_at,
            resumed: true,
        });
    }
    let run = Run {
        id: format!("imp_{}", crate::db::kernia::new_id()),
        fingerprint: fingerprint.to_string(),
        phase: Phase::Users,
        position: 0,
        counters: Counters::default(),
        issue_count: 0,
        started_at: now,
        resumed: false,
    };
    const CREATE: &str = "INSERT INTO cutover_import_runs
        (id, fingerprint, state, phase, units_done, counters, issue_count, started_at, updated_at)
        VALUES ($1, $2, 'running', 'users', 0, '{}', 0, $3, $3)";
    on_conn!(conn, |c| {
        sqlx::query(CREATE)
            .bind(&run.id)
            .bind(fingerprint)
            .bind(now)
            .execute(c)
            .await
            .map_err(DbError::query("starting an import run"))?;
    });
    Ok(run)
}

#[derive(Serialize)]
struct IssueRow<'a> {
    run_id: &'a str,
    seq: i64,
    kind: &'a str,
    entity: &'a str,
    record_id: Option<&'a str>,
    location: Option<String>,
    message: &'a str,
}

/// Record the batch's issues and the run's new position and counters.
pub async fn save(conn: &mut Conn<'_>, run: &mut Run, issues: &[Issue]) -> Result<(), DbError> {
    let rows: Vec<IssueRow> = issues
        .iter()
        .enumerate()
        .map(|(i, issue)| IssueRow {
            run_id: &run.id,
            seq: (run.issue_count + i as u64) as i64,
            kind: issue.kind.as_str(),
            entity: issue.entity.as_str(),
            record_id: issue.id.as_deref(),
            location: issue
                .location
                .as_ref()
                .and_then(|l| serde_json::to_string(l).ok()),
            message: &issue.message,
        })
        .collect();
    let cols = [
        ("run_id", "text"),
        ("seq", "bigint"),
        ("kind", "text"),
        ("entity", "text"),
        ("record_id", "text"),
        ("location", "text"),
        ("message", "text"),
    ];
    let (select, from) = sql::batch_rows(conn.engine(), &cols);
    let insert = format!(
        "INSERT INTO cutover_import_issues (run_id, seq, kind, entity, record_id, location, message)
         SELECT {select} FROM {from}"
    );
    sql::insert(conn, &insert, &cols, &rows, "recording import issues").await?;
    run.issue_count += issues.len() as u64;
    let counters =
        serde_json::to_string(&run.counters).map_err(|e| DbError::Schema(e.to_string()))?;
    const UPDATE: &str = "UPDATE cutover_import_runs
        SET phase = $1, units_done = $2, counters = $3, issue_count = $4, updated_at = $5 WHERE id = $6";
    on_conn!(conn, |c| {
        sqlx::query(UPDATE)
            .bind(run.phase.as_str())
            .bind(run.position as i64)
            .bind(&counters)
            .bind(run.issue_count as i64)
            .bind(now_secs())
            .bind(&run.id)
            .execute(c)
            .await
            .map_err(DbError::query("saving the import's progress"))?;
    });
    Ok(())
}

/// Mark the run finished.
pub async fn finish(conn: &mut Conn<'_>, run: &mut Run) -> Result<(), DbError> {
    run.phase = Phase::Done;
    run.position = 0;
    save(conn, run, &[]).await?;
    const DONE: &str =
        "UPDATE cutover_import_runs SET state = 'finished', finished_at = $1 WHERE id = $2";
    on_conn!(conn, |c| {
        sqlx::query(DONE)
            .bind(now_secs())
            .bind(&run.id)
            .execute(c)
            .await
            .map_err(DbError::query("finishing the import run"))?;
    });
    Ok(())
}

#[derive(sqlx::FromRow)]
struct StoredIssue {
    seq: i64,
    kind: String,
    entity: String,
    record_id: Option<String>,
    location: Option<String>,
    message: String,
}

/// A page of the run's issues in order, from `after` (exclusive).
pub async fn issues(
    conn: &mut Conn<'_>,
    run_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Issue)>, DbError> {
    const PAGE: &str =
        "SELECT seq, kind, entity, record_id, location, message FROM cutover_import_issues
        WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    let rows: Vec<StoredIssue> = on_conn!(conn, |c| sqlx::query_as(PAGE)
        .bind(run_id)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading import issues"))?);
    Ok(rows
        .into_iter()
        .map(|r| {
            let entity = [
                Entity::User,
                Entity::Account,
                Entity::Organization,
                Entity::Membership,
                Entity::Invitation,
                Entity::File,
            ]
            .into_iter()
            .find(|e| e.as_str() == r.entity)
            .unwrap_or(Entity::File);
            let issue = Issue {
                kind: IssueKind::parse(&r.kind).unwrap_or(IssueKind::Warning),
                entity,
                id: r.record_id,
                location: r
                    .location
                    .and_then(|l| serde_json::from_str::<Location>(&l).ok()),
                message: r.message,
            };
            (r.seq, issue)
        })
        .collect())
}
