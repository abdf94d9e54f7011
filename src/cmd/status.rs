//! `cutover status` — migration progress: how many ledger rows are in each state.
//!
//! The counts are read on one pooled connection, which goes back to the pool
//! before the pool is closed: `Pool::close` waits for every checked-out
//! connection, so closing while holding one waits forever. Output goes
//! through [`write_report`]: a reader that goes away (`cutover status | head -1`)
//! ends the command quietly instead of panicking as `println!` does.

use crate::cli::StatusArgs;
use crate::db::ledger::{self, LedgerState};

use super::Exit;

pub async fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let db = super::open_database(&cfg).await?;
    let counts = {
        let mut conn = db.acquire().await?;
        ledger::counts_by_state(&mut conn.conn()).await
    };
    db.close().await;
    let counts = counts?;
    let stdout = std::io::stdout();
    match write_report(&mut stdout.lock(), &counts, args.json) {
        Ok(()) => Ok(Exit::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write the report to stdout")),
    }
}

/// The report, as a table or one JSON object.
fn write_report(
    out: &mut impl std::io::Write,
    counts: &[(LedgerState, i64)],
    json: bool,
) -> std::io::Result<()> {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if json {
        let mut by_state = serde_json::Map::new();
        for (state, n) in counts {
            by_state.insert(state.as_str().into(), (*n).into());
        }
        let report = serde_json::json!({ "total": total, "by_state": by_state });
        writeln!(out, "{report}")?;
    } else {
        writeln!(out, "{:<18} {:>10}", "state", "users")?;
        for (state, n) in counts {
            writeln!(out, "{:<18} {:>10}", state.as_str(), n)?;
        }
        writeln!(out, "{:<18} {:>10}", "total", total)?;
    }
    out.flush()
}
