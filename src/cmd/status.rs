//! `cutover status` — migration progress: how many ledger rows are in each
//! state, by hasher, how users migrated and when, active coverage (of the
//! users seen through cutover lately, how many are migrated) and stragglers.
//!
//! The counts are read on one pooled connection, which goes back to the pool
//! before the pool is closed: `Pool::close` waits for every checked-out
//! connection, so closing while holding one waits forever. Output goes
//! through [`write_report`]: a reader that goes away (`cutover status | head -1`)
//! ends the command quietly instead of panicking as `println!` does.

use crate::cli::StatusArgs;
use crate::control::progress::{self, Progress};
use crate::db::ledger::{self, LedgerState};

use super::Exit;

pub async fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let db = super::open_database(&cfg).await?;
    let read = async {
        let counts = {
            let mut conn = db.acquire().await?;
            ledger::counts_by_state(&mut conn.conn()).await?
        };
        let p = progress::compute(&db, args.active_days).await?;
        anyhow::Ok((counts, p))
    }
    .await;
    db.close().await;
    let (counts, p) = read?;
    let stdout = std::io::stdout();
    match write_report(&mut stdout.lock(), &counts, &p, args.json) {
        Ok(()) => Ok(Exit::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write the report to stdout")),
    }
}

/// The report, as tables or one JSON object.
fn write_report(
    out: &mut impl std::io::Write,
    counts: &[(LedgerState, i64)],
    p: &Progress,
    json: bool,
) -> std::io::Result<()> {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if json {
        let mut by_state = serde_json::Map::new();
        for (state, n) in counts {
            by_state.insert(state.as_str().into(), (*n).into());
        }
        let report = serde_json::json!({
            "total": total,
            "by_state": by_state,
            "users": p.users,
            "migrated": p.migrated,
            "migrated_share": p.migrated_share,
            "by_hasher": p.by_hasher,
            "migrated_by_method": p.migrated_by_method,
            "migrated_per_day": p.migrated_per_day,
            "active": p.active,
            "stragglers": p.stragglers,
        });
        writeln!(out, "{report}")?;
    } else {
        writeln!(out, "{:<18} {:>10}", "state", "users")?;
        for (state, n) in counts {
            writeln!(out, "{:<18} {:>10}", state.as_str(), n)?;
        }
        writeln!(out, "{:<18} {:>10}", "total", total)?;
        print_progress(out, p)?;
    }
    out.flush()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn print_progress(out: &mut impl std::io::Write, p: &Progress) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "migrated           {:>10} of {} ({})",
        p.migrated,
        p.users,
        pct(p.migrated_share)
    )?;
    writeln!(
        out,
        "active coverage    {:>10} of {} users seen in the last {} days are migrated ({})",
        p.active.migrated,
        p.active.seen,
        p.active.days,
        pct(p.active.coverage)
    )?;
    writeln!(
        out,
        "stragglers         {:>10} ({} seen in the last {} days, {} not)",
        p.stragglers.total, p.stragglers.active, p.active.days, p.stragglers.inactive
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>10}",
        "hasher", "users", "migrated", "pending"
    )?;
    for h in &p.by_hasher {
        writeln!(
            out,
            "{:<28} {:>10} {:>10} {:>10}",
            h.hasher, h.users, h.migrated, h.pending
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{:<28} {:>10}", "migrated by method", "users")?;
    for (method, n) in &p.migrated_by_method {
        writeln!(out, "{:<28} {:>10}", method, n)?;
    }
    if !p.migrated_per_day.is_empty() {
        writeln!(out)?;
        writeln!(out, "{:<28} {:>10}", "migrated per day (UTC)", "users")?;
        for d in p.migrated_per_day.iter().rev().take(14).rev() {
            writeln!(out, "{:<28} {:>10}", d.date, d.migrated)?;
        }
    }
    Ok(())
}
