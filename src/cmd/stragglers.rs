//! `cutover stragglers --export FILE.csv [--inactive-since DATE]` — the users
//! who have not migrated yet, with when cutover last saw them: the input of a
//! reset campaign, or of a mail to the people who never came back.
//!
//! Rows are read in pages (keyset by user id), so memory stays flat however
//! long the list; the file is written next to its destination and renamed
//! into place only when complete.

use std::io::Write as _;

use anyhow::Context as _;

use crate::cli::StragglersArgs;
use crate::control::progress::{self, Straggler};

use super::{Exit, UsageError};

const PAGE: i64 = 1000;

pub async fn run(args: StragglersArgs) -> anyhow::Result<Exit> {
    let inactive_before = match &args.inactive_since {
        Some(d) => Some(
            progress::day_of_date(d).map_err(|m| UsageError(format!("--inactive-since: {m}")))?,
        ),
        None => None,
    };
    let cfg = super::load_config(&args.config.path)?;
    let db = super::open_database(&cfg).await?;
    let to_stdout = args.export.as_os_str() == "-";
    let (mut sink, tmp): (Box<dyn std::io::Write>, Option<std::path::PathBuf>) = if to_stdout {
        (Box::new(std::io::stdout().lock()), None)
    } else {
        let mut tmp = args.export.clone().into_os_string();
        tmp.push(".partial");
        let tmp = std::path::PathBuf::from(tmp);
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        (Box::new(std::io::BufWriter::new(f)), Some(tmp))
    };
    let mut csv = csv::Writer::from_writer(&mut sink);
    csv.write_record([
        "user_id",
        "email",
        "state",
        "hasher",
        "last_seen",
        "imported_at",
        "reset_requested_at",
    ])?;
    let mut after = String::new();
    let mut count = 0u64;
    loop {
        let page = progress::stragglers_page(&db, &after, inactive_before, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.user_id.clone();
        for s in &page {
            csv.write_record(record(s))?;
            count += 1;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    csv.flush()?;
    drop(csv);
    sink.flush()?;
    drop(sink);
    if let Some(tmp) = tmp {
        std::fs::rename(&tmp, &args.export)
            .with_context(|| format!("cannot move the export to {}", args.export.display()))?;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{count} straggler(s){} written to {}",
            match &args.inactive_since {
                Some(d) => format!(" not seen since {d}"),
                None => String::new(),
            },
            args.export.display()
        );
    }
    db.close().await;
    Ok(Exit::Success)
}

fn record(s: &Straggler) -> [String; 7] {
    [
        s.user_id.clone(),
        defuse(s.email.as_deref().unwrap_or_default()),
        s.state.clone(),
        s.hasher.clone().unwrap_or_default(),
        s.last_seen_day
            .map(progress::date_of_day)
            .unwrap_or_default(),
        progress::date_of_secs(s.imported_at),
        s.reset_requested_at
            .map(progress::date_of_secs)
            .unwrap_or_default(),
    ]
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'`: emails come from users (OWASP "CSV injection").
fn defuse(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}
