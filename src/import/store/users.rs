//! Writing a batch of users: the `"user"` rows, their social `account` rows,
//! their `"twoFactor"` rows and their ledger rows.
//!
//! Never overwrite: a user whose id Kernia already has is left as it is (and so
//! are its accounts and factors); a user who shares an email, username or phone
//! number with another user of the export and loses it by the rule of
//! [`crate::import::duplicates`] is a conflict naming the user who keeps it; a
//! user whose email, username or phone number Kernia holds under another id is
//! a conflict, reported, and neither row is touched; a user the ledger knows but
//! Kernia no longer has was imported before and deleted since, and is not
//! brought back.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::{Conn, DbError};
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

pub(super) fn quoted(cols: &[(&str, &str)]) -> String {
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
    if taken.is_empty() {
        return None;
    }
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

/// Which of `plans`' ids Kernia has, and who holds their unique values.
struct Holders {
    present: HashSet<String>,
    taken: HashMap<(&'static str, String), String>,
}

/// Look up, in one statement, the `"user"` rows holding the id, email,
/// username or phone number of any of `plans`.
async fn holders(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plans: &[&UserPlan],
) -> Result<Holders, DbError> {
    let mut found = Holders {
        present: HashSet::new(),
        taken: HashMap::new(),
    };
    if plans.is_empty() {
        return Ok(found);
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
    for (id, email, username, phone) in existing {
        found.taken.insert(("email", email), id.clone());
        if let Some(u) = username {
            found.taken.insert(("username", u), id.clone());
        }
        if let Some(p) = phone {
            found.taken.insert(("phone number", p), id.clone());
        }
        found.present.insert(id);
    }
    Ok(found)
}

fn conflict_issue(id: &str, (field, value, owner): (&str, String, String)) -> Issue {
    Issue::new(
        IssueKind::Conflict,
        Entity::User,
        Some(id),
        format!("{field} {value:?} already belongs to Kernia user {owner}; neither was changed"),
    )
}

/// Write one batch of planned users; `ledgered` are those of them the ledger
/// holds, as the caller read it ([`super::refresh::known_users`]). Counts and
/// issues go to `c` and `issues`.
///
/// The checks, in order: a user whose id Kernia has is already present; one
/// the ledger knows (and Kernia not) was deleted since; one that lost a shared
/// value to another user of the export is a conflict; one whose email,
/// username or phone number Kernia holds under another id is a conflict.
///
/// When Kernia's unique indexes cover those values
/// ([`ImportSchema::unique_user_values`]), the last two checks of a user who is
/// neither in the ledger nor a loser are left to the insert itself (`ON
/// CONFLICT DO NOTHING`), and only the users it skipped are looked up: on a
/// fresh Kernia database that is none, and the look-up took about a quarter of
/// a batch on PostgreSQL. Without those indexes every user is looked up first,
/// as the database would not refuse a second holder.
pub async fn write(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plans: Vec<UserPlan>,
    ledgered: &HashSet<String>,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    if plans.is_empty() {
        return Ok(());
    }
    let engine = conn.engine();

    // Who is looked up before inserting: everyone, or only those whose check
    // comes before the insert's. Users in the ledger reach this writer when
    // Kernia no longer had them (`refresh::known_users` took the others): they
    // were deleted since, unless the id came back meanwhile. A loser may be
    // present all the same.
    let before: Vec<&UserPlan> = plans
        .iter()
        .filter(|p| {
            !schema.unique_user_values || p.loses_to.is_some() || ledgered.contains(&p.user.id)
        })
        .collect();
    let Holders { present, mut taken } = holders(conn, schema, &before).await?;
    drop(before);

    let mut to_insert: Vec<UserPlan> = Vec::with_capacity(plans.len());
    let mut already: Vec<UserPlan> = Vec::new();
    for plan in plans {
        let id = plan.user.id.clone();
        if present.contains(id.as_str()) {
            c.users.already_present += 1;
            already.push(plan);
        } else if ledgered.contains(&id) {
            c.users.skipped += 1;
            issues.push(Issue::new(
                IssueKind::Skipped,
                Entity::User,
                Some(&id),
                "imported before and deleted from Kernia since: not created again",
            ));
        } else if let Some(loss) = &plan.loses_to {
            c.users.conflicts += 1;
            issues.push(Issue::new(
                IssueKind::Conflict,
                Entity::User,
                Some(&id),
                format!(
                    "{} {:?} is shared with user {} of the export, who keeps it (a verified address or number wins, then the older account, then the smaller id): not imported",
                    loss.field, loss.value, loss.winner
                ),
            ));
        } else if let Some(conflict) = conflict_of(&plan, &taken) {
            c.users.conflicts += 1;
            issues.push(conflict_issue(&id, conflict));
        } else {
            // Without unique indexes, nothing else keeps two users of one
            // batch from sharing a value.
            if !schema.unique_user_values {
                taken.insert(("email", plan.user.email.clone()), id.clone());
                if let Some(u) = &plan.user.username {
                    taken.insert(("username", u.clone()), id.clone());
                }
                if let Some(p) = &plan.user.phone_number {
                    taken.insert(("phone number", p.clone()), id.clone());
                }
            }
            to_insert.push(plan);
        }
    }
    drop(taken);

    let cols = user_columns(schema);
    let (select, from) = sql::batch_rows(engine, &cols);
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
        sql::insert_returning(conn, &insert_sql, &cols, &rows, "inserting Kernia users")
            .await?
            .into_iter()
            .collect();
    drop(rows);
    let (written, skipped): (Vec<UserPlan>, Vec<UserPlan>) = to_insert
        .into_iter()
        .partition(|p| inserted.contains(&p.user.id));
    // What the insert skipped: Kernia has the id, or another user holds a value.
    let after = holders(conn, schema, &skipped.iter().collect::<Vec<_>>()).await?;
    for p in skipped {
        if after.present.contains(&p.user.id) {
            c.users.already_present += 1;
            already.push(p);
        } else if let Some(conflict) = conflict_of(&p, &after.taken) {
            c.users.conflicts += 1;
            issues.push(conflict_issue(&p.user.id, conflict));
        } else {
            // Held when the insert ran, gone by the look-up.
            c.users.conflicts += 1;
            issues.push(Issue::new(IssueKind::Conflict, Entity::User, Some(&p.user.id),
                "a Kernia user with the same id, email, username or phone number appeared while importing; neither was changed"));
        }
    }
    c.users.imported += written.len() as u64;

    super::accounts::write(conn, &written, super::accounts::Mode::Link, c, issues).await?;
    super::accounts::write(conn, &already, super::accounts::Mode::Count, c, issues).await?;
    super::factors::write_two_factor(conn, schema, &written, c, issues).await?;
    super::factors::write_ledger(conn, &written).await?;
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
