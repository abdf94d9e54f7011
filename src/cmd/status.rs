//! `cutover status` — migration progress: how many ledger rows are in each state.

use crate::cli::StatusArgs;
use crate::db::ledger;

use super::Exit;

pub async fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let db = super::open_database(&cfg).await?;
    let counts = {
        let mut conn = db.acquire().await?;
        ledger::counts_by_state(&mut conn.conn()).await?
        // The connection goes back to the pool here: closing the pool waits for
        // every checked-out connection, so holding it across `close` can hang.
    };
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    if args.json {
        let mut by_state = serde_json::Map::new();
        for (state, n) in &counts {
            by_state.insert(state.as_str().into(), (*n).into());
        }
        let out = serde_json::json!({ "total": total, "by_state": by_state });
        println!("{out}");
    } else {
        println!("{:<18} {:>10}", "state", "users");
        for (state, n) in &counts {
            println!("{:<18} {:>10}", state.as_str(), n);
        }
        println!("{:<18} {:>10}", "total", total);
    }
    db.close().await;
    Ok(Exit::Success)
}
