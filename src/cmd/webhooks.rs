//! `cutover webhooks …` — the outbox for operators: what is queued, what
//! failed, replaying a range, a test event, re-enabling an endpoint.
//!
//! These commands only read and write the outbox tables; the running
//! `cutover serve` copies deliver (within `[outbox] poll_ms`).

use anyhow::Context as _;

use crate::cli::{
    WebhooksCommand, WebhooksEnableArgs, WebhooksListArgs, WebhooksReplayArgs, WebhooksSendTestArgs,
};
use crate::outbox::{self, store};

use super::{Exit, UsageError};

pub async fn run(command: WebhooksCommand) -> anyhow::Result<Exit> {
    match command {
        WebhooksCommand::List(args) => list(args).await,
        WebhooksCommand::Replay(args) => replay(args).await,
        WebhooksCommand::SendTest(args) => send_test(args).await,
        WebhooksCommand::Enable(args) => enable(args).await,
    }
}

async fn list(args: WebhooksListArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let since_ms = args
        .since
        .as_deref()
        .map(|t| parse_time(t, outbox::now_ms()).map_err(|e| UsageError(format!("--since: {e}"))))
        .transpose()?;
    let db = super::open_database(&cfg).await?;
    let mut conn = db.acquire().await?;
    let filter = store::ListFilter {
        status: args.status.clone(),
        kind: None,
        event_type: args.event_type.clone(),
        since_ms,
        limit: args.limit,
    };
    let rows = store::list(&mut conn.conn(), &filter).await?;
    let counts = store::counts(&mut conn.conn(), outbox::now_ms()).await?;
    let disabled = store::disabled_destinations(&mut conn.conn()).await?;
    drop(conn);
    if args.json {
        for r in &rows {
            let line = serde_json::json!({
                "seq": r.seq, "msg_id": r.msg_id, "kind": r.kind, "type": r.event_type,
                "destination": outbox::worker::redact_destination(&r.destination),
                "status": r.status, "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                "last_status": r.last_status, "last_error": r.last_error,
                "created_at": r.created_at, "delivered_at": r.delivered_at,
            });
            println!("{line}");
        }
    } else {
        println!(
            "queue: {} pending ({} due now), {} delivered, {} failed",
            counts.pending, counts.due, counts.delivered, counts.failed
        );
        for (d, at) in &disabled {
            println!(
                "DISABLED since {}: {} (`cutover webhooks enable --endpoint …` turns it back on)",
                format_ms(*at),
                outbox::worker::redact_destination(d)
            );
        }
        println!(
            "{:<31} {:<32} {:<9} {:>3} {:<20} {:<24} last",
            "svix-id", "type", "status", "try", "created", "destination"
        );
        for r in &rows {
            let last = match (&r.last_status, &r.last_error) {
                (_, Some(e)) => e.clone(),
                (Some(s), None) => s.to_string(),
                _ => String::new(),
            };
            println!(
                "{:<31} {:<32} {:<9} {:>3} {:<20} {:<24} {}",
                r.msg_id,
                r.event_type,
                r.status,
                r.attempts,
                format_ms(r.created_at),
                outbox::worker::redact_destination(&r.destination),
                last
            );
        }
    }
    db.close().await;
    Ok(Exit::Success)
}

async fn replay(args: WebhooksReplayArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let now = outbox::now_ms();
    let since_ms = parse_time(&args.since, now).map_err(|e| UsageError(format!("--since: {e}")))?;
    let until_ms = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now).map_err(|e| UsageError(format!("--until: {e}"))))
        .transpose()?;
    let Some(webhooks) = &cfg.webhooks else {
        return Err(UsageError(
            "[webhooks] is not configured: there is nowhere to replay to".into(),
        )
        .into());
    };
    for t in &args.types {
        if !crate::events::KNOWN_TYPES.contains(&t.as_str()) {
            return Err(UsageError(format!("--type {t}: not an event cutover sends")).into());
        }
    }
    let endpoints: Vec<&crate::config::EndpointConfig> = match &args.endpoint {
        Some(url) => match webhooks.endpoints.iter().find(|e| &e.url == url) {
            Some(e) => vec![e],
            None => {
                return Err(UsageError(format!(
                    "--endpoint {url} is not one of the [[webhooks.endpoints]] urls"
                ))
                .into());
            }
        },
        None => webhooks.endpoints.iter().collect(),
    };
    let db = super::open_database(&cfg).await?;
    let filter = store::ReplayFilter {
        since_ms,
        until_ms,
        types: args.types.clone(),
    };
    let messages = {
        let mut conn = db.acquire().await?;
        store::messages_in_range(&mut conn.conn(), &filter, args.limit).await?
    };
    let mut rows = 0usize;
    let mut tx = db.begin().await?;
    for m in &messages {
        for e in endpoints.iter().filter(|e| e.wants(&m.event_type)) {
            if !args.dry_run {
                store::requeue(&mut tx.conn(), m, &e.url, now)
                    .await
                    .context("requeuing an event")?;
            }
            rows += 1;
        }
    }
    if args.dry_run {
        drop(tx);
        for m in &messages {
            println!("{} {} {}", m.msg_id, m.event_type, format_ms(m.created_at));
        }
        println!(
            "dry run: {} event(s), {rows} delivery(ies) would be queued again",
            messages.len()
        );
    } else {
        tx.commit().await?;
        println!(
            "queued {} event(s) again as {rows} delivery(ies), same svix-id each; running cutover copies send them",
            messages.len()
        );
    }
    db.close().await;
    Ok(Exit::Success)
}

async fn send_test(args: WebhooksSendTestArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let Some(webhooks) = &cfg.webhooks else {
        return Err(UsageError("[webhooks] is not configured".into()).into());
    };
    let db = super::open_database(&cfg).await?;
    let schema = crate::db::KerniaSchema::read(&db).await?;
    let events = crate::events::Events::new(webhooks, db.clone(), schema, outbox::Waker::default());
    let id = events.send_test().await?;
    println!(
        "queued cutover.test {id} to {} endpoint(s); see `cutover webhooks list` for the outcome",
        webhooks.endpoints.len()
    );
    db.close().await;
    Ok(Exit::Success)
}

async fn enable(args: WebhooksEnableArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    let db = super::open_database(&cfg).await?;
    let mut conn = db.acquire().await?;
    let changed =
        store::enable_destination(&mut conn.conn(), &args.endpoint, outbox::now_ms()).await?;
    drop(conn);
    db.close().await;
    if changed {
        println!(
            "enabled {}",
            outbox::worker::redact_destination(&args.endpoint)
        );
        Ok(Exit::Success)
    } else {
        eprintln!(
            "cutover: {} is not disabled",
            outbox::worker::redact_destination(&args.endpoint)
        );
        Ok(Exit::Failure)
    }
}

/// A point in time: RFC 3339 (`2026-12-01T10:00:00Z`, offsets allowed), Unix
/// milliseconds, or a duration before `now_ms` (`90s`, `30m`, `2h`, `7d`).
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Some((n, unit)) = t
        .char_indices()
        .last()
        .filter(|(_, c)| matches!(c, 's' | 'm' | 'h' | 'd'))
        .and_then(|(i, c)| t[..i].parse::<u64>().ok().map(|n| (n, c)))
    {
        let secs = match unit {
            's' => n,
            'm' => n * 60,
            'h' => n * 3_600,
            _ => n * 86_400,
        };
        return Ok(now_ms - (secs as i64) * 1000);
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().map_err(|e| e.to_string());
    }
    rfc3339_ms(t).ok_or_else(|| {
        format!("`{t}` is not a time: use RFC 3339 (2026-12-01T10:00:00Z), Unix milliseconds, or an age such as 2h or 7d")
    })
}

fn rfc3339_ms(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac_ms = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let digits: String = f.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let padded = format!("{digits:0<3}");
        frac_ms = padded[..3].parse().ok()?;
        rest = &f[digits.len()..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1000 + frac_ms)
}

/// Milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_accepted_form() {
        assert_eq!(parse_time("2022-04-07T21:39:13Z", 0), Ok(1_649_367_553_000));
        assert_eq!(
            parse_time("2022-04-07T23:39:13.5+02:00", 0),
            Ok(1_649_367_553_500)
        );
        assert_eq!(parse_time("1649367553000", 0), Ok(1_649_367_553_000));
        assert_eq!(parse_time("2h", 10_000_000), Ok(10_000_000 - 7_200_000));
        assert_eq!(
            parse_time("7d", 1_000_000_000),
            Ok(1_000_000_000 - 604_800_000)
        );
        assert!(parse_time("yesterday", 0).is_err());
        assert!(parse_time("2022-13-07T21:39:13Z", 0).is_err());
        assert!(parse_time("2022-04-07T21:39:13", 0).is_err());
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(format_ms(1_649_367_553_000), "2022-04-07 21:39:13");
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
    }
}
