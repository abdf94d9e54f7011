//! Social accounts of newly imported users: one `account` row per Clerk
//! external account (`providerId` without `oauth_`, `accountId` = the
//! provider's user id, no tokens). A provider account that another Kernia user
//! already holds is a conflict and is not linked again.
//!
//! The accounts of users Kernia already had are counted too (so a re-run says
//! what it saw): already present when linked to that user, skipped otherwise,
//! since a user already in Kernia is left as it is.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::{Conn, DbError};
use crate::import::issue::{Entity, Issue, IssueKind};
use crate::import::plan::UserPlan;
use crate::import::records::ExternalAccount;
use crate::import::report::Counters;

use super::sql::{self, WHERE_TRUE};
use super::users::quoted;

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

/// What to do with accounts not linked yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// The users were just imported: link them.
    Link,
    /// The users were already in Kernia: count them, link nothing.
    Count,
}

pub(super) async fn write(
    conn: &mut Conn<'_>,
    users: &[UserPlan],
    mode: Mode,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    let all: Vec<(&str, &ExternalAccount, i64)> = users
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
    const PAIR: [(&str, &str); 2] = [("providerId", "text"), ("accountId", "text")];
    let (_, from) = sql::batch_rows(engine, &PAIR);
    let (pl, al) = (
        sql::column(engine, &PAIR, "providerId"),
        sql::column(engine, &PAIR, "accountId"),
    );
    let check_sql = format!(
        r#"SELECT a."providerId", a."accountId", a."userId" FROM {from}
           JOIN account a ON a."providerId" = {pl} AND a."accountId" = {al}"#
    );
    let held: Vec<(String, String, String)> = sql::fetch_rows(
        conn,
        &check_sql,
        &PAIR,
        &pairs,
        "looking for linked social accounts",
    )
    .await?;
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
            None if mode == Mode::Count => {
                c.accounts.skipped += 1;
                *c.skipped_reasons
                    .entry("account: its user was already in Kernia (left as it is)".into())
                    .or_default() += 1;
                issues.push(Issue::new(
                    IssueKind::Skipped,
                    Entity::Account,
                    Some(row.user_id),
                    format!(
                        "{} account {} not linked: the user was already in Kernia and is left as it is",
                        row.provider_id, row.account_id
                    ),
                ));
            }
            None => rows.push(row),
        }
    }
    if rows.is_empty() {
        return Ok(());
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
    let (select, from) = sql::batch_rows(engine, &cols);
    let insert_sql = format!(
        "INSERT INTO account ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT (id) DO NOTHING RETURNING id",
        quoted(&cols)
    );
    let written =
        sql::insert_returning(conn, &insert_sql, &cols, &rows, "inserting social accounts").await?;
    c.accounts.imported += written.len() as u64;
    c.accounts.already_present += (rows.len() - written.len()) as u64;
    let written: HashSet<String> = written.into_iter().collect();
    for row in rows.iter().filter(|r| written.contains(r.id)) {
        *c.providers.entry(row.provider_id.to_string()).or_default() += 1;
    }
    Ok(())
}
