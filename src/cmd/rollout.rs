//! `cutover rollout …` — the live rollout, straight in the database.
//!
//! Works without any admin port: it needs only the configuration (for the
//! database, the salt and Redis). The first command on a fresh database seeds
//! the rollout from the file's `[rollout]`, exactly as the first `serve` would.
//! A change is written with its reason, then announced on Redis (when
//! configured) so every copy applies it at once; copies that miss the message
//! read it on their next poll.

use std::io::Write as _;

use anyhow::Context as _;

use crate::cli::{RolloutCommand, RolloutOverrideArgs};
use crate::config::Config;
use crate::control::rollout::{Rollout, Subject};
use crate::control::store::{self, Changed, Interface, Provenance, Stored};
use crate::control::{live, progress};
use crate::db::Db;

use super::{Exit, UsageError};

pub async fn run(cmd: RolloutCommand) -> anyhow::Result<Exit> {
    let path = match &cmd {
        RolloutCommand::Show(a) => &a.config.path,
        RolloutCommand::Set(a) => &a.config.path,
        RolloutCommand::Kill(a) => &a.config.path,
        RolloutCommand::Resume(a) => &a.config.path,
        RolloutCommand::Allow(a) | RolloutCommand::Deny(a) => &a.config.path,
        RolloutCommand::History(a) => &a.config.path,
    }
    .clone();
    let cfg = super::load_config(&path)?;
    let db = super::open_database(&cfg).await?;
    let file = Rollout::from_settings(&cfg.routing);
    let (stored, _) = store::seed(&db, &file)
        .await
        .context("reading the live rollout")?;
    let result = match cmd {
        RolloutCommand::Show(a) => show(&stored, &file, a.json),
        RolloutCommand::History(a) => history(&db, a.limit, a.json).await,
        RolloutCommand::Set(a) => {
            if a.percentage.is_none() && a.reauth_migrated_clerk_sessions.is_none() {
                return Err(UsageError(
                    "nothing to set: give --percentage and/or --reauth-migrated-clerk-sessions"
                        .into(),
                )
                .into());
            }
            let (pct, reauth) = (a.percentage, a.reauth_migrated_clerk_sessions);
            change(&cfg, &db, &a.reason, true, move |r| {
                let mut r = r.clone();
                if let Some(p) = pct {
                    r.percentage = p;
                }
                if let Some(b) = reauth {
                    r.reauth_migrated_clerk_sessions = b;
                }
                Ok(r)
            })
            .await
        }
        RolloutCommand::Kill(a) => {
            change(&cfg, &db, &a.reason, true, |r| {
                Ok(Rollout {
                    kill_switch: true,
                    ..r.clone()
                })
            })
            .await
        }
        RolloutCommand::Resume(a) => {
            change(&cfg, &db, &a.reason, false, |r| {
                Ok(Rollout {
                    kill_switch: false,
                    ..r.clone()
                })
            })
            .await
        }
        RolloutCommand::Allow(a) => override_change(&cfg, &db, true, a).await,
        RolloutCommand::Deny(a) => override_change(&cfg, &db, false, a).await,
    };
    db.close().await;
    result
}

async fn override_change(
    cfg: &Config,
    db: &Db,
    allow: bool,
    a: RolloutOverrideArgs,
) -> anyhow::Result<Exit> {
    let (subject, value) = match (&a.user, &a.domain, &a.org) {
        (Some(u), _, _) => (Subject::User, u.clone()),
        (_, Some(d), _) => (Subject::Domain, d.clone()),
        (_, _, Some(o)) => (Subject::Org, o.clone()),
        _ => return Err(UsageError("give --user, --domain or --org".into()).into()),
    };
    let remove = a.remove;
    change(cfg, db, &a.reason, false, move |r| {
        let mut r = r.clone();
        r.set_override(allow, subject, &value, remove);
        Ok(r)
    })
    .await
}

fn actor() -> Option<String> {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| u.chars().take(64).collect())
}

async fn change(
    cfg: &Config,
    db: &Db,
    reason: &str,
    reason_required: bool,
    next: impl Fn(&Rollout) -> Result<Rollout, String>,
) -> anyhow::Result<Exit> {
    if reason_required && reason.trim().is_empty() {
        return Err(UsageError("--reason must say why (it goes in the audit trail)".into()).into());
    }
    let actor = actor();
    let who = Provenance {
        reason,
        interface: Interface::Cli,
        actor: actor.as_deref(),
    };
    let changed = match store::change(db, next, &who).await {
        Ok(c) => c,
        Err(store::ControlError::Invalid(m)) => return Err(UsageError(m).into()),
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    match changed {
        Changed::Unchanged(s) => {
            writeln!(
                out,
                "nothing to change: the rollout (version {}) already says so",
                s.version
            )?;
        }
        Changed::Done {
            before,
            after,
            diff,
            ..
        } => {
            crate::metrics::record_rollout_change("cli");
            writeln!(
                out,
                "rollout version {} → {}: {}",
                before.version,
                after.version,
                crate::control::rollout::describe(&diff)
            )?;
            // Announce first: copies apply it while the count below runs.
            announce(cfg, after.version, &mut out).await?;
            let (old, new) = (before.rollout.percentage, after.rollout.percentage);
            if old != new {
                let (low, high) = (old.min(new), old.max(new));
                let n =
                    store::users_between(db, &cfg.routing.salt, &after.rollout, low, high).await?;
                let share = if high > 0.0 {
                    (high - low) / high * 100.0
                } else {
                    0.0
                };
                if new < old {
                    writeln!(
                        out,
                        "lowering moves {n} known user(s) not yet migrated back to legacy, and about {share:.1}% of the anonymous browsers now on kernia; migrated users stay on kernia"
                    )?;
                } else {
                    writeln!(
                        out,
                        "raising sends {n} more known user(s) not yet migrated to kernia; nobody on kernia moves back"
                    )?;
                }
            }
        }
    }
    Ok(Exit::Success)
}

/// Publish the new version so copies apply it at once; polling is the fallback.
async fn announce(cfg: &Config, version: i64, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let poll_ms = cfg.rollout_poll.as_millis();
    if matches!(cfg.state.backend, crate::config::StateBackend::Memory) {
        writeln!(
            out,
            "every copy applies it within {poll_ms} ms (database polling)"
        )?;
        return Ok(());
    }
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        crate::state::SharedState::connect(&cfg.state),
    )
    .await;
    let sent = match connected {
        Ok(Ok(state)) => live::announce(&state, version).await,
        _ => false,
    };
    if sent {
        writeln!(out, "announced on Redis: running copies apply it now")?;
    } else {
        writeln!(
            out,
            "Redis is unreachable: running copies apply it by database polling within {poll_ms} ms"
        )?;
    }
    Ok(())
}

fn show(stored: &Stored, file: &Rollout, json: bool) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "version": stored.version,
            "updated_at": stored.updated_at,
            "rollout": stored.rollout,
            "file_differs": &stored.rollout != file,
        });
        writeln!(out, "{v}")?;
        return Ok(Exit::Success);
    }
    write_rollout(&mut out, stored)?;
    if &stored.rollout != file {
        writeln!(
            out,
            "note: [rollout] in the file says otherwise; it only seeded the first version — the database wins"
        )?;
    }
    Ok(Exit::Success)
}

pub(super) fn write_rollout(out: &mut impl std::io::Write, s: &Stored) -> std::io::Result<()> {
    let r = &s.rollout;
    writeln!(
        out,
        "rollout version {} (changed {} UTC)",
        s.version,
        timestamp(s.updated_at * 1000)
    )?;
    writeln!(out, "  percentage        {}% to kernia", r.percentage)?;
    writeln!(
        out,
        "  kill switch       {}",
        if r.kill_switch {
            "ON: everyone without a Kernia session goes to legacy"
        } else {
            "off"
        }
    )?;
    writeln!(
        out,
        "  reauth migrated   {}",
        if r.reauth_migrated_clerk_sessions {
            "on"
        } else {
            "off"
        }
    )?;
    for (side, l) in [("allow", &r.allow), ("deny", &r.deny)] {
        for (kind, set) in [
            ("users", &l.users),
            ("domains", &l.email_domains),
            ("orgs", &l.orgs),
        ] {
            if !set.is_empty() {
                let list: Vec<&str> = set.iter().map(String::as_str).collect();
                writeln!(out, "  {side} {kind:<12} {}", list.join(", "))?;
            }
        }
    }
    Ok(())
}

async fn history(db: &Db, limit: i64, json: bool) -> anyhow::Result<Exit> {
    let entries = store::history(db, limit).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&entries)?)?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "{:>7}  {:<20}  {:<9}  {:<12}  change — reason",
        "version", "when (UTC)", "via", "by"
    )?;
    for e in entries {
        let changes = if e.fields == ["seed"] {
            "seeded from the file".to_string()
        } else {
            e.fields
                .iter()
                .map(|f| format!("{f} {} → {}", e.from[f.as_str()], e.to[f.as_str()]))
                .collect::<Vec<_>>()
                .join("; ")
        };
        writeln!(
            out,
            "{:>7}  {:<20}  {:<9}  {:<12}  {changes} — {}",
            e.version,
            timestamp(e.changed_at_ms),
            e.interface,
            e.actor.as_deref().unwrap_or("-"),
            if e.reason.is_empty() { "-" } else { &e.reason }
        )?;
    }
    Ok(Exit::Success)
}

/// `YYYY-MM-DD HH:MM:SS` of epoch milliseconds, UTC.
pub(crate) fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let t = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}",
        progress::date_of_secs(secs),
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}
