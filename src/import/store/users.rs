//! Writing a batch of users: the `"user"` rows, their social `account` rows,
//! their `"twoFactor"` rows and their ledger rows.
//!
//! Never overwrite: a user whose id Kernia already has is left as it is (and so
//! are its accounts and factors); a user whose email, username or phone number
//! Kernia holds under another id is a conflict, reported, and neither row is
//! touched; a user the ledger knows but Kernia no longer has was imported before
//! and deleted since, and is not brought back.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::{Conn, DbError, now_secs};
use crate::import::issue::{Entity, Issue, IssueKind};
use crate::import::plan::UserPlan;
use crate::import::report::Counters;

use super::ImportSchema;
use super::sql::{self, WHERE_TRUE};

#[derive(Serialize)]
struct UserRow<'a> {
    id: &'a str,
    email: &'a str,
    #[serde(rename = "emailVerified")]
    email_verified: bool,
    name: Option<&'a str>,
    image: Option<&'a str>,
    username: Option<&'a str>,
    #[serde(rename = "displayUsername")]
    display_username: Option<&'a str>,
    #[serde(rename = "phoneNumber")]
    phone_number: Option<&'a str>,
    #[serde(rename = "phoneNumberVerified")]
    phone_number_verified: bool,
    #[serde(rename = "twoFactorEnabled")]
    two_factor_enabled: bool,
    banned: bool,
    role: &'a str,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

#[derive(Serialize)]
struct AccountRow<'a> {
    id: &'a str,
    #[serde(rename = "userId")]
    user_id: &'a str,
    #[serde(rename = "accountId")]
    account_id: &'a str,
    #[serde(rename = "providerId")]
    provider_id: &'a str,
    scope: Option<&'a str>,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

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

/// The `"user"` columns written, with their PostgreSQL types; plugin columns
/// only when the table has them.
fn user_columns(schema: &ImportSchema) -> Vec<(&'static str, &'static str)> {
    let mut cols = vec![
        ("id", "text"),
        ("email", "text"),
        ("emailVerified", "boolean"),
        ("name", "text"),
        ("image", "text"),
    ];
    for (c, t) in [
        ("username", "text"),
        ("displayUsername", "text"),
        ("phoneNumber", "text"),
        ("phoneNumberVerified", "boolean"),
        ("twoFactorEnabled", "boolean"),
        ("banned", "boolean"),
        ("role", "text"),
    ] {
        if schema.kernia.has_user_column(c) {
            cols.push((c, t));
        }
    }
    cols.push(("createdAt", "integer"));
    cols.push(("updatedAt", "integer"));
    cols
}

fn quoted(cols: &[(&str, &str)]) -> String {
    cols.iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which unique value of a user another Kernia row already holds.
fn conflict_of(
    plan: &UserPlan,
    taken: &HashMap<(&'static str, String), String>,
) -> Option<(&'static str, String, String)> {
    let u = &plan.user;
    let mut keys = vec![("email", u.email.clone())];
    if let Some(n) = &u.username {
        keys.push(("username", n.clone()));
    }
    if let Some(p) = &u.phone_number {
        keys.push(("phone number", p.clone()));
    }
    keys.into_iter()
        .find_map(|k| taken.get(&k).map(|owner| (k.0, k.1, owner.clone())))
}

/// Write one batch of planned users. Counts and issues go to `c` and `issues`.
pub async fn write(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plans: Vec<UserPlan>,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    if plans.is_empty() {
        return Ok(());
    }
    let engine = conn.engine();
    let ids: Vec<String> = plans.iter().map(|p| p.user.id.clone()).collect();
    let emails: Vec<String> = plans.iter().map(|p| p.user.email.clone()).collect();
    let usernames: Vec<String> = plans
        .iter()
        .filter_map(|p| p.user.username.clone())
        .collect();
    let phones: Vec<String> = plans
        .iter()
        .filter_map(|p| p.user.phone_number.clone())
        .collect();
    let has_username = schema.kernia.has_user_column("username");
    let has_phone = schema.kernia.has_user_column("phoneNumber");
    let mut conds = vec![
        sql::in_list(engine, "id", 1),
        sql::in_list(engine, "email", 2),
    ];
    let mut lists: Vec<&[String]> = vec![&ids, &emails];
    if has_username {
        conds.push(sql::in_list(engine, "username", lists.len() + 1));
        lists.push(&usernames);
    }
    if has_phone {
        conds.push(sql::in_list(engine, "\"phoneNumber\"", lists.len() + 1));
        lists.push(&phones);
    }
    let existing_sql = format!(
        r#"SELECT id, email, {}, {} FROM "user" WHERE {}"#,
        if has_username {
            "username"
        } else {
            "CAST(NULL AS TEXT)"
        },
        if has_phone {
            "\"phoneNumber\""
        } else {
            "CAST(NULL AS TEXT)"
        },
        conds.join(" OR ")
    );
    let existing: Vec<(String, String, Option<String>, Option<String>)> = sql::fetch_with_lists(
        conn,
        &existing_sql,
        &lists,
        "looking for users Kernia already has",
    )
    .await?;
    let ledgered_sql = format!(
        "SELECT user_id FROM cutover_ledger WHERE {}",
        sql::in_list(engine, "user_id", 1)
    );
    let ledgered: Vec<(String,)> =
        sql::fetch_with_lists(conn, &ledgered_sql, &[&ids], "reading the ledger").await?;
    let ledgered: HashSet<String> = ledgered.into_iter().map(|r| r.0).collect();

    let present: HashSet<&str> = existing.iter().map(|r| r.0.as_str()).collect();
    let mut taken: HashMap<(&'static str, String), String> = HashMap::new();
    for (id, email, username, phone) in &existing {
        taken.insert(("email", email.clone()), id.clone());
        if let Some(u) = username {
            taken.insert(("username", u.clone()), id.clone());
        }
        if let Some(p) = phone {
            taken.insert(("phone number", p.clone()), id.clone());
        }
    }

    let mut to_insert: Vec<UserPlan> = Vec::with_capacity(plans.len());
    for plan in plans {
        let id = plan.user.id.clone();
        if present.contains(id.as_str()) {
            c.users.already_present += 1;
        } else if ledgered.contains(&id) {
            c.users.skipped += 1;
            issues.push(Issue::new(
                IssueKind::Skipped,
                Entity::User,
                Some(&id),
                "imported before and deleted from Kernia since: not created again",
            ));
        } else if let Some((field, value, owner)) = conflict_of(&plan, &taken) {
            c.users.conflicts += 1;
            issues.push(Issue::new(
                IssueKind::Conflict,
                Entity::User,
                Some(&id),
                format!(
                    "{field} {value:?} already belongs to Kernia user {owner}; neither was changed"
                ),
            ));
        } else {
            taken.insert(("email", plan.user.email.clone()), id.clone());
            if let Some(u) = &plan.user.username {
                taken.insert(("username", u.clone()), id.clone());
            }
            if let Some(p) = &plan.user.phone_number {
                taken.insert(("phone number", p.clone()), id.clone());
            }
            to_insert.push(plan);
        }
    }

    let cols = user_columns(schema);
    let (select, from) = sql::json_rows(engine, &cols);
    let insert_sql = format!(
        r#"INSERT INTO "user" ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT DO NOTHING RETURNING id"#,
        quoted(&cols)
    );
    let rows: Vec<UserRow> = to_insert
        .iter()
        .map(|p| {
            let u = &p.user;
            UserRow {
                id: &u.id,
                email: &u.email,
                email_verified: u.email_verified,
                name: u.name.as_deref(),
                image: u.image.as_deref(),
                username: u.username.as_deref(),
                display_username: u.display_username.as_deref(),
                phone_number: u.phone_number.as_deref(),
                phone_number_verified: u.phone_number_verified,
                two_factor_enabled: u.two_factor_enabled && schema.two_factor,
                banned: u.banned,
                // The admin plugin's default role.
                role: "user",
                created_at: u.created_at,
                updated_at: u.updated_at,
            }
        })
        .collect();
    let inserted: HashSet<String> =
        sql::insert_returning(conn, &insert_sql, &rows, "inserting Kernia users")
            .await?
            .into_iter()
            .collect();
    drop(rows);
    let (written, raced): (Vec<UserPlan>, Vec<UserPlan>) = to_insert
        .into_iter()
        .partition(|p| inserted.contains(&p.user.id));
    for p in raced {
        c.users.conflicts += 1;
        issues.push(Issue::new(IssueKind::Conflict, Entity::User, Some(&p.user.id),
            "a Kernia user with the same id, email, username or phone number appeared while importing; neither was changed"));
    }
    c.users.imported += written.len() as u64;

    write_accounts(conn, &written, c, issues).await?;
    write_two_factor(conn, schema, &written, c, issues).await?;
    write_ledger(conn, &written).await?;
    for p in written {
        let state = p
            .ledger
            .state
            .map(|s| s.as_str())
            .unwrap_or("pending_reset");
        *c.ledger.entry(state.to_string()).or_default() += 1;
        let hasher = p.ledger.hasher.clone().unwrap_or_else(|| "none".into());
        *c.hashers.entry(hasher).or_default() += 1;
        for note in p.notes {
            if note.kind == IssueKind::Reenrol {
                c.count_reenrol(&note.message);
            } else {
                c.warnings += 1;
            }
            issues.push(note);
        }
    }
    Ok(())
}

async fn write_accounts(
    conn: &mut Conn<'_>,
    users: &[UserPlan],
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    let all: Vec<(&str, &crate::import::records::ExternalAccount, i64)> = users
        .iter()
        .flat_map(|p| {
            p.accounts
                .iter()
                .map(move |a| (p.user.id.as_str(), a, p.user.created_at))
        })
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    c.accounts.input += all.len() as u64;
    let engine = conn.engine();
    // Another Kernia user may hold the same provider account (a social sign-up
    // during the dual run): that pair is a conflict.
    let pairs: Vec<AccountRow> = all
        .iter()
        .map(|(user_id, a, created)| AccountRow {
            id: &a.id,
            user_id,
            account_id: &a.account_id,
            provider_id: &a.provider_id,
            scope: a.scope.as_deref(),
            created_at: a.created_at.unwrap_or(*created),
            updated_at: a.updated_at.or(a.created_at).unwrap_or(*created),
        })
        .collect();
    let (_, from) = sql::json_rows(engine, &[("providerId", "text"), ("accountId", "text")]);
    let (pl, al) = match engine {
        crate::db::Engine::Postgres => (
            "x.\"providerId\"".to_string(),
            "x.\"accountId\"".to_string(),
        ),
        crate::db::Engine::Sqlite => (
            "json_extract(x.value, '$.providerId')".to_string(),
            "json_extract(x.value, '$.accountId')".to_string(),
        ),
    };
    let check_sql = format!(
        r#"SELECT a."providerId", a."accountId", a."userId" FROM {from}
           JOIN account a ON a."providerId" = {pl} AND a."accountId" = {al}"#
    );
    let json = serde_json::to_string(&pairs).map_err(|e| DbError::Schema(e.to_string()))?;
    let held: Vec<(String, String, String)> =
        crate::db::on_conn!(conn, |x| sqlx::query_as(&check_sql)
            .bind(&json)
            .fetch_all(x)
            .await
            .map_err(DbError::query("looking for linked social accounts"))?);
    let held: HashMap<(String, String), String> =
        held.into_iter().map(|(p, a, u)| ((p, a), u)).collect();
    let mut rows = Vec::with_capacity(pairs.len());
    for row in pairs {
        match held.get(&(row.provider_id.to_string(), row.account_id.to_string())) {
            Some(owner) if owner != row.user_id => {
                c.accounts.conflicts += 1;
                issues.push(Issue::new(
                    IssueKind::Conflict,
                    Entity::Account,
                    Some(row.user_id),
                    format!(
                        "{} account {} is already linked to Kernia user {owner}: not linked again",
                        row.provider_id, row.account_id
                    ),
                ));
            }
            Some(_) => c.accounts.already_present += 1,
            None => rows.push(row),
        }
    }
    let cols = [
        ("id", "text"),
        ("userId", "text"),
        ("accountId", "text"),
        ("providerId", "text"),
        ("scope", "text"),
        ("createdAt", "integer"),
        ("updatedAt", "integer"),
    ];
    let (select, from) = sql::json_rows(engine, &cols);
    let insert_sql = format!(
        "INSERT INTO account ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT (id) DO NOTHING RETURNING id",
        quoted(&cols)
    );
    let written =
        sql::insert_returning(conn, &insert_sql, &rows, "inserting social accounts").await?;
    c.accounts.imported += written.len() as u64;
    c.accounts.already_present += (rows.len() - written.len()) as u64;
    let written: HashSet<String> = written.into_iter().collect();
    for row in rows.iter().filter(|r| written.contains(r.id)) {
        *c.providers.entry(row.provider_id.to_string()).or_default() += 1;
    }
    Ok(())
}

async fn write_two_factor(
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
    let (select, from) = sql::json_rows(
        conn.engine(),
        &[("id", "text"), ("userId", "text"), ("secret", "text")],
    );
    let sql = format!(
        r#"INSERT INTO "twoFactor" (id, "userId", secret, "backupCodes", verified) SELECT {select}, '[]', true FROM {from}"#
    );
    c.two_factor += sql::insert(conn, &sql, &rows, "inserting two-factor rows").await?;
    Ok(())
}

async fn write_ledger(conn: &mut Conn<'_>, users: &[UserPlan]) -> Result<(), DbError> {
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
    let (select, from) = sql::json_rows(conn.engine(), &cols);
    let sql = format!(
        "INSERT INTO cutover_ledger (user_id, email, username, phone, secondary_emails, hasher, digest, state,
            had_backup_codes, had_passkeys, imported_at, updated_at)
         SELECT {select}, {now} FROM {from} {WHERE_TRUE} ON CONFLICT (user_id) DO NOTHING",
        now = match conn.engine() {
            crate::db::Engine::Postgres => "x.\"now\"".to_string(),
            crate::db::Engine::Sqlite => "json_extract(x.value, '$.now')".to_string(),
        }
    );
    sql::insert(conn, &sql, &rows, "writing ledger rows").await?;
    Ok(())
}
