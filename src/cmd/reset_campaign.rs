//! `cutover reset-campaign -c FILE --state pending_password [--inactive-since
//! DATE] --rate 5/s [--dry-run] [--json]` — how a migration window ends: a
//! password-reset link to every user who has not migrated yet (the Okta and
//! Cognito model).
//!
//! Each link is started exactly as a sign-in by a `pending_reset` user starts
//! one ([`crate::intercept::issue_reset`]): the ledger's claim
//! (`reset_requested_at`), the token and the queued mail/webhook commit in one
//! transaction, and the running `cutover serve` copies deliver it from the
//! outbox with retries. The claim makes the campaign idempotent and resumable:
//! a user whose reset was already requested (by a sign-in or an earlier run)
//! is skipped, so a run stopped halfway and started again sends only the rest,
//! and a second run sends nothing — unless `--resend-after-days` says an old
//! link may be replaced.
//!
//! Users are read in pages (keyset by user id) and links are queued at most at
//! `--rate`. `--dry-run` reads only.

use std::io::Write as _;
use std::time::Duration;

use crate::cli::ResetCampaignArgs;
use crate::control::progress::{self, Straggler};
use crate::db::now_secs;
use crate::intercept::{ResetStartError, issue_reset};

use super::{Exit, UsageError};

const PAGE: i64 = 500;

/// What a run did (or, with `--dry-run`, would do).
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    dry_run: bool,
    /// Users in the selected states (and inactive since the date).
    selected: u64,
    /// Links queued in the outbox (dry run: that would be).
    queued: u64,
    /// Skipped: a reset was already requested for them (this window).
    already_sent: u64,
    /// Skipped: no email address and no `[reset.webhook]` to reach them.
    unreachable: u64,
    /// Failed (database errors); run again to retry them.
    errors: u64,
}

pub async fn run(args: ResetCampaignArgs) -> anyhow::Result<Exit> {
    let period = parse_rate(&args.rate).map_err(|m| UsageError(format!("--rate: {m}")))?;
    let inactive_before = match &args.inactive_since {
        Some(d) => Some(
            progress::day_of_date(d).map_err(|m| UsageError(format!("--inactive-since: {m}")))?,
        ),
        None => None,
    };
    let cfg = super::load_config(&args.config.path)?;
    let Some(reset) = cfg.reset.clone() else {
        return Err(UsageError(format!(
            "{}: no [reset] section, so there is no channel to send reset links through; \
             add [reset] with `link` and [reset.smtp] and/or [reset.webhook] (see docs/RUNBOOK.md)",
            args.config.path.display()
        ))
        .into());
    };
    let states: Vec<&str> = args.states.iter().map(|s| s.as_str()).collect();
    // A reset requested at or before `now - window` may be replaced; with no
    // --resend-after-days the window reaches back to the epoch: never again.
    let now = now_secs();
    let window_secs = match args.resend_after_days {
        Some(d) => i64::from(d) * 86_400,
        None => now,
    };
    let db = super::open_database(&cfg).await?;
    let mut report = Report {
        dry_run: args.dry_run,
        ..Report::default()
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after = String::new();
    loop {
        let page = progress::stragglers_page(&db, &after, inactive_before, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.user_id.clone();
        let full = page.len() as i64 == PAGE;
        for s in page.iter().filter(|s| states.contains(&s.state.as_str())) {
            report.selected += 1;
            if already_sent(s, now, window_secs) {
                report.already_sent += 1;
                continue;
            }
            if reset.webhook.is_none() && s.email.is_none() {
                report.unreachable += 1;
                continue;
            }
            if args.dry_run {
                report.queued += 1;
                continue;
            }
            ticker.tick().await;
            match issue_reset(&db, &reset, &s.user_id, s.email.as_deref(), window_secs).await {
                Ok(true) => report.queued += 1,
                // Claimed in between (a sign-in, another run).
                Ok(false) => report.already_sent += 1,
                Err(ResetStartError::NoChannel) => report.unreachable += 1,
                Err(e) => {
                    tracing::error!(user_id = %s.user_id, error = %e, "cannot start a password reset");
                    report.errors += 1;
                }
            }
        }
        if !full {
            break;
        }
    }
    db.close().await;
    print_report(&args, &report)?;
    Ok(if report.errors > 0 {
        Exit::Failure
    } else {
        Exit::Success
    })
}

fn already_sent(s: &Straggler, now: i64, window_secs: i64) -> bool {
    s.reset_requested_at
        .is_some_and(|at| at > now - window_secs)
}

fn print_report(args: &ResetCampaignArgs, r: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(());
    }
    let states: Vec<&str> = args.states.iter().map(|s| s.as_str()).collect();
    writeln!(
        out,
        "{}reset campaign: {} user(s) {}{}",
        if r.dry_run { "dry run — " } else { "" },
        r.selected,
        states.join(" or "),
        match &args.inactive_since {
            Some(d) => format!(" not seen since {d}"),
            None => String::new(),
        }
    )?;
    writeln!(
        out,
        "  {:<14}{}",
        if r.dry_run { "would queue" } else { "queued" },
        r.queued
    )?;
    writeln!(out, "  {:<14}{}", "already sent", r.already_sent)?;
    writeln!(out, "  {:<14}{}", "unreachable", r.unreachable)?;
    writeln!(out, "  {:<14}{}", "errors", r.errors)?;
    if !r.dry_run && r.queued > 0 {
        writeln!(
            out,
            "links are delivered from the outbox by the running `cutover serve` copies (`cutover webhooks list` shows them)"
        )?;
    }
    Ok(())
}

/// `5/s`, `300/m`, `1000/h` or a bare `5` (per second): the pause between two links.
fn parse_rate(text: &str) -> Result<Duration, String> {
    let (n, per) = match text.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                other => return Err(format!("unknown unit `{other}` (use s, m or h)")),
            };
            (n, per)
        }
        None => (text, 1.0),
    };
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like 5/s"))?;
    if !(n.is_finite() && n > 0.0 && n <= 10_000.0) {
        return Err(format!(
            "`{text}`: the count must be above 0 and at most 10000"
        ));
    }
    Ok(Duration::from_secs_f64(per / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("5/s"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_rate("60/m"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_rate("2"), Ok(Duration::from_millis(500)));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/d").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
