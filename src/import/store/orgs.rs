//! Writing batches of organizations, members and invitations into the
//! organization plugin's tables.
//!
//! Same rules as for users: an id Kernia has is left alone; a slug held by
//! another organization is a conflict. Members and invitations need their user
//! and organization in Kernia (the foreign keys PostgreSQL enforces); without
//! them they are skipped with the reason. Only pending, unexpired invitations
//! move; an invitation whose inviter is not in Kernia names the organization's
//! owner instead (Kernia's `inviterId` is NOT NULL), or is skipped.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::db::{Conn, DbError};
use crate::import::issue::{Entity, Issue, IssueKind};
use crate::import::records::{InviteRecord, MemberRecord, OrgRecord};
use crate::import::report::Counters;
use crate::import::roles::RoleMap;

use super::sql::{self, WHERE_TRUE};

fn quoted(cols: &[(&str, &str)]) -> String {
    cols.iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which of `ids` the table has.
pub(super) async fn ids_in(
    conn: &mut Conn<'_>,
    table: &str,
    ids: &[String],
    doing: &'static str,
) -> Result<HashSet<String>, DbError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "SELECT id FROM {table} WHERE {}",
        sql::in_list(conn.engine(), "id", 1)
    );
    let rows: Vec<(String,)> = sql::fetch_with_lists(conn, &sql, &[ids], doing).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

#[derive(Serialize)]
struct OrgRow<'a> {
    id: &'a str,
    name: &'a str,
    slug: &'a str,
    logo: Option<&'a str>,
    metadata: Option<&'a str>,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

pub async fn write_organizations(
    conn: &mut Conn<'_>,
    orgs: Vec<OrgRecord>,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    if orgs.is_empty() {
        return Ok(());
    }
    let engine = conn.engine();
    let ids: Vec<String> = orgs.iter().map(|o| o.id.clone()).collect();
    let slugs: Vec<String> = orgs.iter().map(|o| o.slug.clone()).collect();
    let sql_text = format!(
        "SELECT id, slug FROM organization WHERE {} OR {}",
        sql::in_list(engine, "id", 1),
        sql::in_list(engine, "slug", 2)
    );
    let existing: Vec<(String, String)> = sql::fetch_with_lists(
        conn,
        &sql_text,
        &[&ids, &slugs],
        "looking for organizations",
    )
    .await?;
    let present: HashSet<String> = existing.iter().map(|e| e.0.clone()).collect();
    let mut slug_owner: HashMap<String, String> =
        existing.into_iter().map(|(id, slug)| (slug, id)).collect();
    let mut rows = Vec::new();
    for o in &orgs {
        if present.contains(&o.id) {
            c.organizations.already_present += 1;
        } else if let Some(owner) = slug_owner.get(&o.slug) {
            c.organizations.conflicts += 1;
            issues.push(Issue::new(
                IssueKind::Conflict,
                Entity::Organization,
                Some(&o.id),
                format!(
                    "slug {:?} already belongs to Kernia organization {owner}; neither was changed",
                    o.slug
                ),
            ));
        } else {
            slug_owner.insert(o.slug.clone(), o.id.clone());
            let mut logo = o.logo.as_deref();
            if logo.is_some_and(|l| l.len() > crate::import::normalize::MAX_TEXT) {
                logo = None;
                c.warnings += 1;
                issues.push(Issue::new(
                    IssueKind::Warning,
                    Entity::Organization,
                    Some(&o.id),
                    "the logo URL is longer than Kernia's 255 bytes and was left out",
                ));
            }
            let created_at = o.created_at.unwrap_or(now);
            rows.push(OrgRow {
                id: &o.id,
                name: &o.name,
                slug: &o.slug,
                logo,
                metadata: o.metadata.as_deref(),
                created_at,
                updated_at: o.updated_at.unwrap_or(created_at),
            });
        }
    }
    let cols = [
        ("id", "text"),
        ("name", "text"),
        ("slug", "text"),
        ("logo", "text"),
        ("metadata", "json"),
        ("createdAt", "integer"),
        ("updatedAt", "integer"),
    ];
    let (select, from) = sql::batch_rows(engine, &cols);
    let insert = format!(
        "INSERT INTO organization ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT DO NOTHING RETURNING id",
        quoted(&cols)
    );
    let written =
        sql::insert_returning(conn, &insert, &cols, &rows, "inserting organizations").await?;
    c.organizations.imported += written.len() as u64;
    let raced = rows.len() - written.len();
    if raced > 0 {
        let written: HashSet<String> = written.into_iter().collect();
        for r in rows.iter().filter(|r| !written.contains(r.id)) {
            c.organizations.conflicts += 1;
            issues.push(Issue::new(IssueKind::Conflict, Entity::Organization, Some(r.id),
                "an organization with the same id or slug appeared while importing; neither was changed"));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct MemberRow<'a> {
    id: &'a str,
    #[serde(rename = "organizationId")]
    organization_id: &'a str,
    #[serde(rename = "userId")]
    user_id: &'a str,
    role: String,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

fn skip(
    c: &mut Counters,
    issues: &mut Vec<Issue>,
    entity: Entity,
    id: &str,
    reason: &str,
    detail: String,
) {
    match entity {
        Entity::Invitation => c.invitations.skipped += 1,
        _ => c.memberships.skipped += 1,
    }
    *c.skipped_reasons
        .entry(format!("{}: {reason}", entity.as_str()))
        .or_default() += 1;
    issues.push(Issue::new(IssueKind::Skipped, entity, Some(id), detail));
}

pub async fn write_members(
    conn: &mut Conn<'_>,
    members: Vec<MemberRecord>,
    roles: &RoleMap,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    if members.is_empty() {
        return Ok(());
    }
    let user_ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    let org_ids: Vec<String> = members.iter().map(|m| m.organization_id.clone()).collect();
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let users = ids_in(conn, "\"user\"", &user_ids, "looking for members' users").await?;
    let orgs = ids_in(
        conn,
        "organization",
        &org_ids,
        "looking for members' organizations",
    )
    .await?;
    let present = ids_in(conn, "member", &ids, "looking for members").await?;
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for m in &members {
        if present.contains(&m.id) || !seen.insert(m.id.as_str()) {
            c.memberships.already_present += 1;
        } else if !orgs.contains(&m.organization_id) {
            skip(
                c,
                issues,
                Entity::Membership,
                &m.id,
                "organization not in Kernia",
                format!(
                    "organization {} is not in Kernia (not imported)",
                    m.organization_id
                ),
            );
        } else if !users.contains(&m.user_id) {
            skip(
                c,
                issues,
                Entity::Membership,
                &m.id,
                "user not in Kernia",
                format!(
                    "user {} is not in Kernia (not imported: see the user's own entry)",
                    m.user_id
                ),
            );
        } else {
            let mapped = roles.map(&m.role, m.is_creator);
            if mapped.custom {
                *c.custom_roles.entry(mapped.role.clone()).or_default() += 1;
            }
            let created_at = m.created_at.unwrap_or(now);
            rows.push(MemberRow {
                id: &m.id,
                organization_id: &m.organization_id,
                user_id: &m.user_id,
                role: mapped.role,
                created_at,
                updated_at: m.updated_at.unwrap_or(created_at),
            });
        }
    }
    let cols = [
        ("id", "text"),
        ("organizationId", "text"),
        ("userId", "text"),
        ("role", "text"),
        ("createdAt", "integer"),
        ("updatedAt", "integer"),
    ];
    let (select, from) = sql::batch_rows(conn.engine(), &cols);
    let insert = format!(
        "INSERT INTO member ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT (id) DO NOTHING RETURNING id",
        quoted(&cols)
    );
    let written: HashSet<String> =
        sql::insert_returning(conn, &insert, &cols, &rows, "inserting members")
            .await?
            .into_iter()
            .collect();
    for r in &rows {
        if written.contains(r.id) {
            c.memberships.imported += 1;
            *c.roles.entry(r.role.clone()).or_default() += 1;
        } else {
            c.memberships.already_present += 1;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct InviteRow<'a> {
    id: &'a str,
    #[serde(rename = "organizationId")]
    organization_id: &'a str,
    email: &'a str,
    role: String,
    status: &'a str,
    #[serde(rename = "inviterId")]
    inviter_id: String,
    #[serde(rename = "expiresAt")]
    expires_at: Option<i64>,
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
}

pub async fn write_invitations(
    conn: &mut Conn<'_>,
    invites: Vec<InviteRecord>,
    roles: &RoleMap,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<(), DbError> {
    if invites.is_empty() {
        return Ok(());
    }
    let engine = conn.engine();
    let ids: Vec<String> = invites.iter().map(|i| i.id.clone()).collect();
    let org_ids: Vec<String> = invites.iter().map(|i| i.organization_id.clone()).collect();
    let inviters: Vec<String> = invites
        .iter()
        .filter_map(|i| i.inviter_id.clone())
        .collect();
    let present = ids_in(conn, "invitation", &ids, "looking for invitations").await?;
    let orgs = ids_in(
        conn,
        "organization",
        &org_ids,
        "looking for invitations' organizations",
    )
    .await?;
    let users = ids_in(conn, "\"user\"", &inviters, "looking for inviters").await?;
    // Organizations that need a stand-in inviter: their first owner, else admin.
    let orphaned: Vec<String> = invites
        .iter()
        .filter(|i| !i.inviter_id.as_ref().is_some_and(|u| users.contains(u)))
        .map(|i| i.organization_id.clone())
        .collect();
    let mut stand_in: HashMap<String, String> = HashMap::new();
    if !orphaned.is_empty() {
        let q = format!(
            r#"SELECT "organizationId", "userId", role FROM member WHERE {} AND role IN ('owner', 'admin') ORDER BY "createdAt", id"#,
            sql::in_list(engine, "\"organizationId\"", 1)
        );
        let rows: Vec<(String, String, String)> =
            sql::fetch_with_lists(conn, &q, &[&orphaned], "looking for organization owners")
                .await?;
        let owners = rows.iter().filter(|r| r.2 == "owner");
        for (org, user, _) in owners.chain(rows.iter().filter(|r| r.2 != "owner")) {
            stand_in.entry(org.clone()).or_insert_with(|| user.clone());
        }
    }
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for i in &invites {
        if present.contains(&i.id) || !seen.insert(i.id.as_str()) {
            c.invitations.already_present += 1;
        } else if i.status != "pending" {
            skip(
                c,
                issues,
                Entity::Invitation,
                &i.id,
                "not pending",
                format!("status is {:?}: only pending invitations move", i.status),
            );
        } else if i.expires_at.is_some_and(|e| e <= now) {
            skip(
                c,
                issues,
                Entity::Invitation,
                &i.id,
                "expired",
                "expired before the import".into(),
            );
        } else if !orgs.contains(&i.organization_id) {
            skip(
                c,
                issues,
                Entity::Invitation,
                &i.id,
                "organization not in Kernia",
                format!(
                    "organization {} is not in Kernia (not imported)",
                    i.organization_id
                ),
            );
        } else {
            let inviter = match &i.inviter_id {
                Some(u) if users.contains(u) => Some(u.clone()),
                _ => stand_in.get(&i.organization_id).cloned(),
            };
            let Some(inviter_id) = inviter else {
                skip(
                    c,
                    issues,
                    Entity::Invitation,
                    &i.id,
                    "no inviter in Kernia",
                    "neither the inviter nor an owner or admin of the organization is in Kernia"
                        .into(),
                );
                continue;
            };
            if i.inviter_id.as_ref() != Some(&inviter_id) {
                c.warnings += 1;
                issues.push(Issue::new(
                    IssueKind::Warning,
                    Entity::Invitation,
                    Some(&i.id),
                    format!(
                        "the inviter is not in Kernia; {inviter_id} (an owner or admin) stands in"
                    ),
                ));
            }
            if let Some(ms) = i.expiry_clamped_from {
                c.warnings += 1;
                issues.push(Issue::new(
                    IssueKind::Warning,
                    Entity::Invitation,
                    Some(&i.id),
                    format!(
                        "expires_at {ms} (ms) is outside what Kernia's integer column holds; stored as {} instead",
                        i.expires_at.unwrap_or_default()
                    ),
                ));
            }
            let created_at = i.created_at.unwrap_or(now);
            rows.push(InviteRow {
                id: &i.id,
                organization_id: &i.organization_id,
                email: &i.email,
                role: roles.map(&i.role, false).role,
                status: "pending",
                inviter_id,
                expires_at: i.expires_at,
                created_at,
                updated_at: i.updated_at.unwrap_or(created_at),
            });
        }
    }
    let cols = [
        ("id", "text"),
        ("organizationId", "text"),
        ("email", "text"),
        ("role", "text"),
        ("status", "text"),
        ("inviterId", "text"),
        ("expiresAt", "integer"),
        ("createdAt", "integer"),
        ("updatedAt", "integer"),
    ];
    let (select, from) = sql::batch_rows(engine, &cols);
    let insert = format!(
        "INSERT INTO invitation ({}) SELECT {select} FROM {from} {WHERE_TRUE} ON CONFLICT (id) DO NOTHING RETURNING id",
        quoted(&cols)
    );
    let written =
        sql::insert_returning(conn, &insert, &cols, &rows, "inserting invitations").await?;
    c.invitations.imported += written.len() as u64;
    c.invitations.already_present += (rows.len() - written.len()) as u64;
    Ok(())
}
