//! One import run from start to end: stage the input, then write it batch by
//! batch, each batch in one transaction with the run's progress, then report.
//!
//! ```text
//! stage (thread) ─► sorted users + spools ─► produce (thread) ─► batches ─► write (async, one tx each)
//! ```
//!
//! On PostgreSQL up to `writers` batches are written at once, each on its
//! own connection, committing in batch order ([`super::writers`]).
//!
//! Under `--dry-run` every batch goes into one transaction that is rolled back
//! at the end, so the checks and counts are exactly those of a real run and
//! nothing stays behind.

use std::path::Path;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::db::{Conn, Db, DbError, Engine, Tx, now_secs};

use super::batch::{advance, write_items};
use super::duplicates;
use super::issue::Issue;
use super::produce::{self, Batch};
use super::progress::Progress;
use super::report::{self, ReportWriter, RunInfo};
use super::spool::WorkDir;
use super::stage::{self, Inputs};
use super::store::runs::{self, Phase, Run};
use super::store::{ImportSchema, tuning};
use super::writers::Lanes;
use super::{ImportError, ImportOptions, Outcome};

/// A fingerprint of the inputs (path, size, modification time) and of the
/// settings that change what is written, so that only the same import resumes.
pub fn fingerprint(inputs: &Inputs, roles: &str) -> Result<String, ImportError> {
    let mut h = Sha256::new();
    for (kind, files) in [
        ("csv", &inputs.csv),
        ("users", &inputs.users),
        ("organizations", &inputs.organizations),
        ("memberships", &inputs.memberships),
        ("invitations", &inputs.invitations),
    ] {
        for f in files.iter() {
            let meta = std::fs::metadata(f).map_err(|e| ImportError::io(f, e))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let path = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
            h.update(format!(
                "{kind}\0{}\0{}\0{modified}\n",
                path.display(),
                meta.len()
            ));
        }
    }
    h.update(roles.as_bytes());
    Ok(hex::encode(&h.finalize()[..16]))
}

/// Where the batches are written: a transaction per batch, or one for all.
enum Writer {
    PerBatch(Db),
    DryRun(Tx),
}

/// The transaction of one step: its own, or the dry run's.
enum Step<'a> {
    Own(Tx),
    Shared(&'a mut Tx),
}

impl Writer {
    async fn begin(&mut self) -> Result<Step<'_>, DbError> {
        match self {
            Writer::PerBatch(db) => {
                let mut tx = db.begin().await?;
                tuning::tune(&mut tx.conn()).await?;
                Ok(Step::Own(tx))
            }
            Writer::DryRun(tx) => Ok(Step::Shared(tx)),
        }
    }
}

impl Step<'_> {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Step::Own(t) => t.conn(),
            Step::Shared(t) => t.conn(),
        }
    }

    async fn commit(self) -> Result<(), DbError> {
        match self {
            Step::Own(t) => t.commit().await,
            Step::Shared(_) => Ok(()),
        }
    }
}

pub async fn run(db: &Db, opts: &ImportOptions) -> Result<Outcome, ImportError> {
    let fingerprint = fingerprint(&opts.inputs, &opts.roles.describe())?;
    let schema = ImportSchema::read(db).await?;
    let lock = if opts.dry_run {
        None
    } else {
        Some(tuning::RunLock::take(db).await?)
    };
    let mut writer = if opts.dry_run {
        let mut tx = db.begin().await?;
        tuning::tune(&mut tx.conn()).await?;
        Db::migrate_in(&mut tx.conn()).await?;
        Writer::DryRun(tx)
    } else {
        Writer::PerBatch(db.clone())
    };
    let mut run = {
        let mut step = writer.begin().await?;
        let mut conn = step.conn();
        tuning::create_account_index(&mut conn).await?;
        let run = runs::open(&mut conn, &fingerprint, opts.restart || opts.dry_run).await?;
        step.commit().await?;
        run
    };
    if run.resumed {
        tracing::info!(run = %run.id, phase = run.phase.as_str(), done = run.position, "resuming an interrupted import");
    }
    // The run's start stands in for "now" (missing creation times, invitation
    // expiry), so a resumed run decides exactly as an uninterrupted one.
    let now = run.started_at;

    // Stage: read and check everything (a strict run stops here on bad input),
    // then settle identifiers several users share, over the whole export.
    let work = opts.work_dir.clone();
    let inputs = opts.inputs.clone();
    let (budget, strict) = (opts.sort_budget, opts.strict);
    let csv_name = opts
        .inputs
        .csv
        .first()
        .map(|p| stage::display(p))
        .unwrap_or_else(|| "csv".into());
    let csv = csv_name.clone();
    let mode = opts.progress;
    let (dir, staging) = tokio::task::spawn_blocking(move || -> Result<_, ImportError> {
        let mut dir = WorkDir::create(&work).map_err(ImportError::Spool)?;
        let started = Instant::now();
        Progress::note(mode, "reading and checking the input");
        let mut staging = stage::stage(&inputs, &mut dir, budget, strict)?;
        let [users, orgs, members, invites] = staging.totals;
        Progress::note(
            mode,
            &format!(
                "input read and checked in {:.1}s: {users} user records, {orgs} organizations, \
                 {members} memberships, {invites} invitations",
                started.elapsed().as_secs_f64()
            ),
        );
        let started = Instant::now();
        staging.duplicates = duplicates::decide(&staging.users, &mut dir, budget, &csv, now)?;
        Progress::note(
            mode,
            &format!(
                "identifiers shared by several users settled in {:.1}s: {} user(s) lose one",
                started.elapsed().as_secs_f64(),
                staging.duplicates.len()
            ),
        );
        Ok((dir, staging))
    })
    .await
    .map_err(|e| ImportError::Internal(e.to_string()))??;
    let totals = staging.totals;

    // Several batches at once on PostgreSQL (see `writers`); one at a time on
    // SQLite (one writer anyway) and in a dry run (one shared transaction).
    let writers = if opts.dry_run || db.engine() != Engine::Postgres {
        1
    } else {
        opts.writers.max(1)
    };
    // Batches in memory: the channel's, the one being made, and those being
    // written (one, or `writers`): with several writers the channel holds one,
    // so memory stays where one writer with a channel of two had it.
    let (tx, mut rx) = mpsc::channel(if writers > 1 { 1 } else { 2 });
    let plan = produce::Plan {
        phase: run.phase,
        position: run.position,
        batch_size: opts.batch_size.max(1),
        strict: opts.strict,
        csv_name,
        now,
    };
    let producer = std::thread::spawn(move || produce::produce(staging, plan, tx));

    let mut lanes = (writers > 1).then(|| Lanes::new(db, &schema, opts, now, writers, run.clone()));
    let mut progress: Option<(Phase, Progress)> = None;
    // The lanes' batch tasks are local tasks of this set (see `Lanes`).
    let local = tokio::task::LocalSet::new();
    let result = local
        .run_until(async {
            let written = async {
                loop {
                    // Wait for a free lane before taking a batch: at most `writers`
                    // batches in flight, plus the channel's.
                    if let Some(l) = lanes.as_mut() {
                        let n = l.ready().await?;
                        advance_progress(&mut progress, n);
                    }
                    let Some(batch) = rx.recv().await else { break };
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            // Bad input (or --strict): what came before is written,
                            // as with one writer, then the run stops.
                            if let Some(l) = lanes.as_mut() {
                                l.drain().await?;
                            }
                            return Err(e);
                        }
                    };
                    if progress.as_ref().map(|p| p.0) != Some(batch.phase) {
                        // A phase barrier: the earlier phase commits completely first.
                        if let Some(l) = lanes.as_mut() {
                            let n = l.drain().await?;
                            advance_progress(&mut progress, n);
                        }
                        if let Some((_, mut p)) = progress.take() {
                            p.finish();
                        }
                        let total = match batch.phase {
                            Phase::Users => totals[0],
                            Phase::Organizations => totals[1],
                            Phase::Memberships => totals[2],
                            _ => totals[3],
                        };
                        // Users are counted in records, as read (a user may have a CSV
                        // row and an API object); the summary shows both numbers.
                        let label = match batch.phase {
                            Phase::Users => "user records",
                            other => other.as_str(),
                        };
                        progress = Some((batch.phase, Progress::new(opts.progress, label, total)));
                    }
                    match lanes.as_mut() {
                        Some(l) => {
                            let n = l.start(batch).await?;
                            advance_progress(&mut progress, n);
                        }
                        None => {
                            let records = batch.records + batch.skipped;
                            write_batch(&mut writer, &schema, opts, &mut run, batch, now).await?;
                            advance_progress(&mut progress, records);
                        }
                    }
                }
                if let Some(l) = lanes.as_mut() {
                    let n = l.drain().await?;
                    advance_progress(&mut progress, n);
                }
                Ok::<(), ImportError>(())
            }
            .await;
            if written.is_err()
                && let Some(l) = lanes.as_mut()
            {
                l.abandon().await;
            }
            written
        })
        .await;
    if let Some((_, mut p)) = progress.take() {
        p.finish();
    }
    drop(rx);
    if let Some(l) = lanes.take() {
        run = l.into_run();
    }
    let _ = producer.join();
    result?;

    // Finish and report, in one last step.
    let mut step = writer.begin().await?;
    let mut conn = step.conn();
    runs::finish(&mut conn, &mut run).await?;
    let info = RunInfo {
        id: run.id.clone(),
        fingerprint: run.fingerprint.clone(),
        resumed: run.resumed,
        dry_run: opts.dry_run,
        started_at: run.started_at,
        finished_at: now_secs(),
        inputs: opts.inputs.all().map(|p| stage::display(p)).collect(),
    };
    let first: Vec<Issue> = runs::issues(&mut conn, &run.id, -1, 10)
        .await?
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    if let Some(path) = &opts.report {
        write_report(&mut conn, path, &info, &run).await?;
    }
    step.commit().await?;
    drop(writer); // a dry run's transaction rolls back here
    if let Some(lock) = lock {
        lock.release().await;
    }
    drop(dir);
    Ok(Outcome {
        summary: report::summary(&info, &run.counters, &first, run.issue_count),
        run: info,
        counters: run.counters,
        issue_count: run.issue_count,
    })
}

fn advance_progress(progress: &mut Option<(Phase, Progress)>, records: u64) {
    if let Some((_, p)) = progress.as_mut() {
        p.advance(records);
    }
}

/// Count a batch and write it, with the run's progress, in one step.
async fn write_batch(
    writer: &mut Writer,
    schema: &ImportSchema,
    opts: &ImportOptions,
    run: &mut Run,
    batch: Batch,
    now: i64,
) -> Result<(), ImportError> {
    let mut step = writer.begin().await?;
    let mut conn = step.conn();
    let mut issues = Vec::new();
    let (phase, units) = (batch.phase, batch.units);
    write_items(
        &mut conn,
        schema,
        opts,
        batch,
        now,
        &mut run.counters,
        &mut issues,
    )
    .await?;
    advance(run, phase, units);
    runs::save(&mut conn, run, &issues).await?;
    step.commit().await?;
    Ok(())
}

/// Stream the run's issues into the report file (written to a temporary name,
/// then renamed, so a report is whole or absent).
async fn write_report(
    conn: &mut Conn<'_>,
    path: &Path,
    info: &RunInfo,
    run: &Run,
) -> Result<(), ImportError> {
    let tmp = path.with_extension("json.partial");
    let report_err = |e: std::io::Error| ImportError::Report {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::create(&tmp).map_err(report_err)?;
    let mut w = ReportWriter::start(std::io::BufWriter::new(file), info, &run.counters)
        .map_err(report_err)?;
    let mut after = -1i64;
    loop {
        let page = runs::issues(conn, &run.id, after, 5000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, issue) in &page {
            w.issue(issue).map_err(report_err)?;
        }
    }
    w.finish().map_err(report_err)?;
    std::fs::rename(&tmp, path).map_err(report_err)?;
    Ok(())
}
