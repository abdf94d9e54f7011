//! Where the migration stands: the numbers behind `cutover status`,
//! `GET /api/status`, the dashboard and the `cutover_ledger_users` gauge.
//!
//! All of it is a handful of `GROUP BY` queries over the ledger and
//! `cutover_user_seen`; nothing here writes except [`snapshot`], which keeps
//! one row per day in `cutover_progress_daily` so coverage can be charted over
//! time.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::{Db, DbError, ledger, now_secs, on_conn};

/// Users seen within this many days count as active unless told otherwise.
pub const DEFAULT_ACTIVE_DAYS: i64 = 30;

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Ledger rows not removed.
    pub users: i64,
    pub migrated: i64,
    /// `migrated / users`, 0–1.
    pub migrated_share: f64,
    pub by_state: BTreeMap<String, i64>,
    pub by_hasher: Vec<HasherCount>,
    /// How migrated users got there: `legacy_password` (exported digest
    /// verified by cutover), `clerk_verify` (checked live with Clerk),
    /// `kernia_password`, `reset`, `social`.
    pub migrated_by_method: BTreeMap<String, i64>,
    pub migrated_per_day: Vec<DayCount>,
    pub active: Active,
    pub stragglers: Stragglers,
    /// Daily snapshots (oldest first) for charts.
    pub history: Vec<Snapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HasherCount {
    pub hasher: String,
    pub users: i64,
    pub migrated: i64,
    pub pending: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCount {
    pub date: String,
    pub migrated: i64,
}

/// Active coverage: of the users seen through cutover in the last `days`
/// days, how many are migrated. The figure that says when to end the window.
#[derive(Debug, Clone, Serialize)]
pub struct Active {
    pub days: i64,
    pub seen: i64,
    pub migrated: i64,
    pub coverage: f64,
}

/// Users not migrated yet (and not removed).
#[derive(Debug, Clone, Serialize)]
pub struct Stragglers {
    pub total: i64,
    /// Seen within the active window: they will probably migrate by themselves.
    pub active: i64,
    /// Not seen within the window (or never): candidates for a reset campaign.
    pub inactive: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub date: String,
    pub users: i64,
    pub migrated: i64,
    pub active: i64,
    pub active_migrated: i64,
}

fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// Compute everything. `active_days` ≥ 1.
pub async fn compute(db: &Db, active_days: i64) -> Result<Progress, DbError> {
    let today = crate::control::seen::today();
    let since = today - active_days.max(1) + 1;
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let by_state = ledger::counts_by_state(&mut conn).await?;
    let hashers: Vec<(Option<String>, String, i64)>;
    let methods: Vec<(Option<String>, i64)>;
    let days: Vec<(i64, i64)>;
    let active: (i64, i64);
    let straggling_active: i64;
    let history: Vec<(i64, i64, i64, i64, i64)>;
    on_conn!(&mut conn, |c| {
        hashers = sqlx::query_as(
            "SELECT hasher, state, COUNT(*) FROM cutover_ledger
             WHERE state <> 'removed' GROUP BY hasher, state",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(DbError::query("counting the ledger by hasher"))?;
        methods = sqlx::query_as(
            "SELECT method, COUNT(*) FROM cutover_ledger WHERE state = 'migrated' GROUP BY method",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(DbError::query("counting migrations by method"))?;
        days = sqlx::query_as(
            "SELECT migrated_at / 86400 AS d, COUNT(*) FROM cutover_ledger
             WHERE state = 'migrated' AND migrated_at IS NOT NULL
             GROUP BY migrated_at / 86400 ORDER BY d DESC LIMIT 366",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(DbError::query("counting migrations per day"))?;
        active = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN l.state = 'migrated' THEN 1 ELSE 0 END), 0)
             FROM cutover_user_seen s JOIN cutover_ledger l ON l.user_id = s.user_id
             WHERE s.last_seen_day >= $1 AND l.state <> 'removed'",
        )
        .bind(since)
        .fetch_one(&mut *c)
        .await
        .map_err(DbError::query("measuring active coverage"))?;
        straggling_active = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cutover_user_seen s JOIN cutover_ledger l ON l.user_id = s.user_id
             WHERE s.last_seen_day >= $1 AND l.state IN ('pending_password', 'pending_reset', 'social_only')",
        )
        .bind(since)
        .fetch_one(&mut *c)
        .await
        .map_err(DbError::query("counting active stragglers"))?;
        history = sqlx::query_as(
            "SELECT day, users, migrated, active, active_migrated FROM cutover_progress_daily
             ORDER BY day DESC LIMIT 366",
        )
        .fetch_all(&mut *c)
        .await
        .map_err(DbError::query("reading progress snapshots"))?;
    });

    let state_map: BTreeMap<String, i64> = by_state
        .iter()
        .map(|(s, n)| (s.as_str().to_string(), *n))
        .collect();
    let count = |s: ledger::LedgerState| state_map.get(s.as_str()).copied().unwrap_or(0);
    let users: i64 = by_state
        .iter()
        .filter(|(s, _)| *s != ledger::LedgerState::Removed)
        .map(|(_, n)| n)
        .sum();
    let migrated = count(ledger::LedgerState::Migrated);
    let mut by_hasher: BTreeMap<String, HasherCount> = BTreeMap::new();
    for (hasher, state, n) in hashers {
        let name = hasher.unwrap_or_else(|| "(none)".into());
        let row = by_hasher.entry(name.clone()).or_insert(HasherCount {
            hasher: name,
            users: 0,
            migrated: 0,
            pending: 0,
        });
        row.users += n;
        if state == "migrated" {
            row.migrated += n;
        } else {
            row.pending += n;
        }
    }
    let mut by_hasher: Vec<HasherCount> = by_hasher.into_values().collect();
    by_hasher.sort_by(|a, b| b.users.cmp(&a.users).then(a.hasher.cmp(&b.hasher)));
    let stragglers_total = count(ledger::LedgerState::PendingPassword)
        + count(ledger::LedgerState::PendingReset)
        + count(ledger::LedgerState::SocialOnly);
    Ok(Progress {
        users,
        migrated,
        migrated_share: share(migrated, users),
        by_state: state_map,
        by_hasher,
        migrated_by_method: methods
            .into_iter()
            .map(|(m, n)| (m.unwrap_or_else(|| "(unknown)".into()), n))
            .collect(),
        migrated_per_day: days
            .into_iter()
            .rev()
            .map(|(d, n)| DayCount {
                date: date_of_day(d),
                migrated: n,
            })
            .collect(),
        active: Active {
            days: active_days,
            seen: active.0,
            migrated: active.1,
            coverage: share(active.1, active.0),
        },
        stragglers: Stragglers {
            total: stragglers_total,
            active: straggling_active,
            inactive: stragglers_total - straggling_active,
        },
        history: history
            .into_iter()
            .rev()
            .map(|(d, users, migrated, active, active_migrated)| Snapshot {
                date: date_of_day(d),
                users,
                migrated,
                active,
                active_migrated,
            })
            .collect(),
    })
}

/// Record today's figures (idempotent; the last writer of the day wins).
pub async fn snapshot(db: &Db, p: &Progress) -> Result<(), DbError> {
    let today = crate::control::seen::today();
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    on_conn!(&mut conn, |c| {
        sqlx::query(
            "INSERT INTO cutover_progress_daily (day, users, migrated, active, active_migrated, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (day) DO UPDATE SET users = excluded.users, migrated = excluded.migrated,
             active = excluded.active, active_migrated = excluded.active_migrated,
             updated_at = excluded.updated_at",
        )
        .bind(today)
        .bind(p.users)
        .bind(p.migrated)
        .bind(p.active.seen)
        .bind(p.active.migrated)
        .bind(now_secs())
        .execute(c)
        .await
        .map_err(DbError::query("recording a progress snapshot"))?;
    });
    Ok(())
}

/// One not-yet-migrated user, for `cutover stragglers --export`.
#[derive(Debug, Clone)]
pub struct Straggler {
    pub user_id: String,
    pub email: Option<String>,
    pub state: String,
    pub hasher: Option<String>,
    pub last_seen_day: Option<i64>,
    pub imported_at: i64,
    pub reset_requested_at: Option<i64>,
}

type StragglerRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
);

/// Stragglers after `after` (keyset pagination by user id), `limit` at a time;
/// with `inactive_before`, only those not seen on or after that day.
pub async fn stragglers_page(
    db: &Db,
    after: &str,
    inactive_before: Option<i64>,
    limit: i64,
) -> Result<Vec<Straggler>, DbError> {
    let mut conn = db.acquire().await?;
    let mut conn = conn.conn();
    let rows: Vec<StragglerRow> = on_conn!(&mut conn, |c| sqlx::query_as(
        "SELECT l.user_id, l.email, l.state, l.hasher, s.last_seen_day, l.imported_at,
                l.reset_requested_at
         FROM cutover_ledger l LEFT JOIN cutover_user_seen s ON s.user_id = l.user_id
         WHERE l.state IN ('pending_password', 'pending_reset', 'social_only')
           AND l.user_id > $1
           AND ($2 IS NULL OR s.last_seen_day IS NULL OR s.last_seen_day < $2)
         ORDER BY l.user_id LIMIT $3"
    )
    .bind(after)
    .bind(inactive_before)
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::query("listing stragglers"))?);
    Ok(rows
        .into_iter()
        .map(
            |(user_id, email, state, hasher, last_seen_day, imported_at, reset_requested_at)| {
                Straggler {
                    user_id,
                    email,
                    state,
                    hasher,
                    last_seen_day,
                    imported_at,
                    reset_requested_at,
                }
            },
        )
        .collect())
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01), proleptic Gregorian.
/// (Howard Hinnant's `civil_from_days`.)
pub fn date_of_day(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`, or why not. (`days_from_civil`.)
pub fn day_of_date(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a date such as 2026-03-01");
    let mut parts = text.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    if date_of_day(day) != format!("{y:04}-{m:02}-{d:02}") {
        return Err(bad()); // 2026-02-30 and the like
    }
    Ok(day)
}

/// Epoch seconds → `YYYY-MM-DD`.
pub fn date_of_secs(secs: i64) -> String {
    date_of_day(secs.div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_day_numbers_agree() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(19_723), "2024-01-01");
        assert_eq!(date_of_day(19_782), "2024-02-29");
        assert_eq!(day_of_date("2024-02-29"), Ok(19_782));
        assert_eq!(day_of_date("1970-01-01"), Ok(0));
        for d in [0, 59, 60, 365, 10_000, 20_424, 40_000] {
            assert_eq!(day_of_date(&date_of_day(d)), Ok(d));
        }
        assert!(day_of_date("2026-02-30").is_err());
        assert!(day_of_date("2026-13-01").is_err());
        assert!(day_of_date("yesterday").is_err());
    }
}
