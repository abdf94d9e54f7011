//! The rest of a newly imported user: the `"twoFactor"` row for an exported
//! TOTP secret, and the ledger row with the legacy digest and migration state.

use serde::Serialize;

use crate::db::{Conn, DbError, now_secs};
use crate::import::issue::{Entity, Issue, IssueKind};
use crate::import::plan::UserPlan;
use crate::import::report::Counters;

use super::ImportSchema;
use super::sql::{self, WHERE_TRUE};

#[derive(Serialize)]
struct TwoFactorRow<'a> {
    id: String,
    #[serde(rename = "userId")]
    user_id: &'a str,
    secret: &'a str,
}

#[derive(Serialize)]
struct LedgerRow<'a> {
    user_id: &'a str,
    email: Option<&'a str>,
    username: Option<&'a str>,
    phone: Option<&'a str>,
    secondary_emails: String,
    hasher: Option<&'a str>,
    digest: Option<&'a str>,
    state: &'a str,
    had_backup_codes: bool,
    had_passkeys: bool,
    now: i64,
}

pub(super) async fn write_two_factor(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    users: &[UserPlan],
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    let with_totp: Vec<&UserPlan> = users.iter().filter(|p| p.totp_secret.is_some()).collect();
    if with_totp.is_empty() {
        return Ok(());
    }
    if !schema.two_factor {
        for p in with_totp {
            c.warnings += 1;
            issues.push(Issue::new(IssueKind::Warning, Entity::User, Some(&p.user.id),
                "Kernia has no twoFactor table (two_factor plugin off): the TOTP secret was not imported"));
        }
        return Ok(());
    }
    let rows: Vec<TwoFactorRow> = with_totp
        .iter()
        .filter_map(|p| {
            Some(TwoFactorRow {
                id: crate::db::kernia::new_id(),
                user_id: &p.user.id,
                secret: p.totp_secret.as_ref()?.expose(),
            })
        })
        .collect();
    // `backupCodes` is NOT NULL: an empty JSON array, which Kernia reads as "no
    // backup codes" (Clerk's cannot be exported). `verified` is true: the user
    // had confirmed the factor at Clerk. The 0.1.0 table has no timestamps.
    const COLS: [(&str, &str); 3] = [("id", "text"), ("userId", "text"), ("secret", "text")];
    let (select, from) = sql::batch_rows(conn.engine(), &COLS);
    let sql = format!(
        r#"INSERT INTO "twoFactor" (id, "userId", secret, "backupCodes", verified) SELECT {select}, '[]', true FROM {from}"#
    );
    c.two_factor += sql::insert(conn, &sql, &COLS, &rows, "inserting two-factor rows").await?;
    Ok(())
}

pub(super) async fn write_ledger(conn: &mut Conn<'_>, users: &[UserPlan]) -> Result<(), DbError> {
    let now = now_secs();
    let rows: Vec<LedgerRow> = users
        .iter()
        .map(|p| {
            let l = &p.ledger;
            LedgerRow {
                user_id: &l.user_id,
                email: l.email.as_deref(),
                username: l.username.as_deref(),
                phone: l.phone.as_deref(),
                secondary_emails: serde_json::to_string(&l.secondary_emails)
                    .unwrap_or_else(|_| "[]".into()),
                hasher: l.hasher.as_deref(),
                digest: l.digest.as_deref(),
                state: l.state.map(|s| s.as_str()).unwrap_or("pending_reset"),
                had_backup_codes: l.had_backup_codes,
                had_passkeys: l.had_passkeys,
                now,
            }
        })
        .collect();
    let cols = [
        ("user_id", "text"),
        ("email", "text"),
        ("username", "text"),
        ("phone", "text"),
        ("secondary_emails", "text"),
        ("hasher", "text"),
        ("digest", "text"),
        ("state", "text"),
        ("had_backup_codes", "boolean"),
        ("had_passkeys", "boolean"),
        ("now", "bigint"),
    ];
    let (select, from) = sql::batch_rows(conn.engine(), &cols);
    let sql = format!(
        "INSERT INTO cutover_ledger (user_id, email, username, phone, secondary_emails, hasher, digest, state,
            had_backup_codes, had_passkeys, imported_at, updated_at)
         SELECT {select}, {now} FROM {from} {WHERE_TRUE} ON CONFLICT (user_id) DO NOTHING",
        now = sql::column(conn.engine(), &cols, "now")
    );
    sql::insert(conn, &sql, &cols, &rows, "writing ledger rows").await?;
    Ok(())
}
