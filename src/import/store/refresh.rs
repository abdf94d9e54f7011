//! Refreshing what an earlier import wrote, when Clerk says it changed: a
//! webhook (`crate::clerk_sync`) or a later `import` run. One writer for both,
//! next to the import's own insert-only writers, which it calls for anything
//! Kernia does not have yet (so a user first seen in a webhook is created
//! exactly as `import` would create them).
//!
//! What a change at Clerk may touch depends on where the user stands:
//!
//! | ledger state | Clerk change applied |
//! |---|---|
//! | not in the ledger, not in Kernia | created, as `import` creates users |
//! | `pending_password`, `pending_reset`, `social_only` | profile (email, name, image, username, phone, verified flags), ban and unban, password changed (digest stale), password added |
//! | `migrated` | a ban only (one way: an unban at Clerk never lifts a ban made in Kernia) |
//! | `removed`, or imported and since deleted from Kernia | nothing |
//!
//! A migrated user's profile is Kernia's now (they may have changed it there),
//! so Clerk's copy never overwrites it. Bans still apply: a ban is a security
//! decision the operator made at Clerk, and must not be lost because the user
//! happened to have moved. Even for pending users, a Kernia row changed later
//! than Clerk's `updated_at` is left alone.

use crate::db::ledger::LedgerState;
use crate::db::{Conn, DbError, now_secs, on_conn};
use crate::import::issue::{Entity, Issue, IssueKind};
use crate::import::plan::UserPlan;
use crate::import::report::Counters;

use super::ImportSchema;

/// What a refresh did to one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRefresh {
    /// New to Kernia: written as `import` writes users.
    Created,
    /// A pending user's data was checked against Clerk's; `profile` says
    /// whether their profile was newer at Clerk and was written.
    Updated { profile: bool },
    /// Migrated: only a ban could apply (`banned` says whether it did).
    Migrated { banned: bool },
    /// Nothing to do (removed, deleted from Kernia, Kernia's own user, a conflict).
    Skipped(&'static str),
}

/// The result, with what the caller must do after committing.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub outcome: UserRefresh,
    /// The exported digest became stale (password changed at Clerk).
    pub stale: bool,
    /// The user was banned by this change.
    pub banned: bool,
    /// Kernia session tokens deleted: broadcast their invalidation after commit.
    pub revoked_tokens: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct LedgerFacts {
    state: String,
    exported_at: i64,
    has_digest: bool,
}

async fn ledger_facts(conn: &mut Conn<'_>, user_id: &str) -> Result<Option<LedgerFacts>, DbError> {
    const SQL: &str =
        "SELECT state, CAST(COALESCE(digest_exported_at, imported_at) AS BIGINT) AS exported_at,
        (digest IS NOT NULL) AS has_digest FROM cutover_ledger WHERE user_id = $1";
    on_conn!(conn, |c| sqlx::query_as::<_, LedgerFacts>(SQL)
        .bind(user_id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading the ledger")))
}

/// Kernia's `updatedAt` for a user, when the row exists.
async fn kernia_updated_at(conn: &mut Conn<'_>, user_id: &str) -> Result<Option<i64>, DbError> {
    const SQL: &str = r#"SELECT CAST("updatedAt" AS BIGINT) FROM "user" WHERE id = $1"#;
    on_conn!(conn, |c| sqlx::query_scalar::<_, i64>(SQL)
        .bind(user_id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a Kernia user")))
}

/// Delete every Kernia session of a user; returns their tokens so the caller
/// can tell every cutover copy to forget them.
pub async fn revoke_sessions(conn: &mut Conn<'_>, user_id: &str) -> Result<Vec<String>, DbError> {
    const SQL: &str = r#"DELETE FROM session WHERE "userId" = $1 RETURNING token"#;
    on_conn!(conn, |c| sqlx::query_scalar::<_, String>(SQL)
        .bind(user_id)
        .fetch_all(c)
        .await
        .map_err(DbError::query("revoking Kernia sessions")))
}

/// Set Kernia's `banned` flag (admin plugin); false when the column is absent.
pub async fn set_banned(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    user_id: &str,
    banned: bool,
    reason: &str,
) -> Result<bool, DbError> {
    if !schema.kernia.has_user_column("banned") {
        return Ok(false);
    }
    let with_reason = schema.kernia.has_user_column("banReason");
    let sql = if with_reason {
        r#"UPDATE "user" SET banned = $1, "banReason" = $2 WHERE id = $3 AND banned IS DISTINCT FROM $1"#
    } else {
        r#"UPDATE "user" SET banned = $1 WHERE id = $2 AND banned IS DISTINCT FROM $1"#
    };
    let sql = match conn.engine() {
        crate::db::Engine::Postgres => sql.to_string(),
        crate::db::Engine::Sqlite => sql.replace("IS DISTINCT FROM", "IS NOT"),
    };
    let reason = banned.then_some(reason);
    let n = on_conn!(conn, |c| {
        let q = sqlx::query(&sql).bind(banned);
        let q = if with_reason { q.bind(reason) } else { q };
        q.bind(user_id)
            .execute(c)
            .await
            .map_err(DbError::query("banning a Kernia user"))?
            .rows_affected()
    });
    Ok(n > 0)
}

/// Bring one user up to date with what Clerk says now, mapped into `plan`.
/// Without Backend API data (`plan.clerk` is `None`: a CSV-only run) only a
/// newer digest can apply ([`replace_digest`]); the profile, bans and
/// password changes need the API's word.
pub async fn user(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plan: UserPlan,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<Refreshed, DbError> {
    let id = plan.user.id.clone();
    let api = plan.clerk.unwrap_or_default();
    let from_api = plan.clerk.is_some();
    let mut out = Refreshed {
        outcome: UserRefresh::Skipped("unchanged"),
        stale: false,
        banned: false,
        revoked_tokens: Vec::new(),
    };
    let facts = ledger_facts(conn, &id).await?;
    let kernia_at = kernia_updated_at(conn, &id).await?;
    let facts = match (facts, kernia_at) {
        (None, None) => {
            let before = c.users.imported;
            // Neither the ledger nor Kernia has the user.
            let ledgered = std::collections::HashSet::new();
            super::users::write(conn, schema, vec![plan], &ledgered, c, issues).await?;
            out.outcome = if c.users.imported > before {
                UserRefresh::Created
            } else {
                UserRefresh::Skipped("conflict")
            };
            return Ok(out);
        }
        (None, Some(_)) => {
            out.outcome = UserRefresh::Skipped("a Kernia user cutover did not import");
            return Ok(out);
        }
        (Some(_), None) => {
            out.outcome = UserRefresh::Skipped("deleted from Kernia since the import");
            return Ok(out);
        }
        (Some(f), Some(_)) => f,
    };
    let state: LedgerState = facts.state.parse().map_err(DbError::Schema)?;
    match state {
        LedgerState::Removed => {
            out.outcome = UserRefresh::Skipped("removed");
            return Ok(out);
        }
        LedgerState::Migrated => {
            if api.banned && set_banned(conn, schema, &id, true, "banned at Clerk").await? {
                out.banned = true;
                out.revoked_tokens = revoke_sessions(conn, &id).await?;
            }
            out.outcome = UserRefresh::Migrated { banned: out.banned };
            return Ok(out);
        }
        LedgerState::PendingPassword | LedgerState::PendingReset | LedgerState::SocialOnly => {}
    }

    if !from_api {
        out.outcome = UserRefresh::Skipped("no Backend API data");
        return Ok(out);
    }
    // Profile: only when Kernia's row is not newer than Clerk's change.
    let clerk_at = plan.user.updated_at;
    let mut profile = false;
    if kernia_at.is_some_and(|k| k < clerk_at) {
        match taken_by_other(conn, schema, &plan).await? {
            Some(what) => {
                c.users.conflicts += 1;
                issues.push(Issue::new(
                    IssueKind::Conflict,
                    Entity::User,
                    Some(&id),
                    format!("{what} already belongs to another Kernia user; the profile was not refreshed"),
                ));
            }
            None => {
                update_profile(conn, schema, &plan).await?;
                profile = true;
            }
        }
    }
    if set_banned(conn, schema, &id, api.banned, "banned at Clerk").await? && api.banned {
        out.banned = true;
        out.revoked_tokens = revoke_sessions(conn, &id).await?;
    }

    // Password changed at Clerk after the export: the digest is stale.
    if let Some(changed) = api.password_changed_at
        && facts.has_digest
        && changed > facts.exported_at
    {
        out.stale = mark_stale(conn, &id, changed).await?;
    }
    // A user with no password at export who set one at Clerk since: their
    // password can now be checked live (or reset).
    if state == LedgerState::SocialOnly && api.password_enabled == Some(true) {
        set_state_from(
            conn,
            &id,
            LedgerState::SocialOnly,
            LedgerState::PendingReset,
        )
        .await?;
    }
    out.outcome = UserRefresh::Updated { profile };
    Ok(out)
}

/// Which unique value of the planned user another Kernia row holds.
async fn taken_by_other(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plan: &UserPlan,
) -> Result<Option<String>, DbError> {
    let u = &plan.user;
    let mut checks: Vec<(&str, &str, String)> = vec![("email", "email", u.email.clone())];
    if schema.kernia.has_user_column("username")
        && let Some(n) = &u.username
    {
        checks.push(("username", "username", n.clone()));
    }
    if schema.kernia.has_user_column("phoneNumber")
        && let Some(p) = &u.phone_number
    {
        checks.push(("phone number", "\"phoneNumber\"", p.clone()));
    }
    for (what, column, value) in checks {
        let sql = format!(r#"SELECT id FROM "user" WHERE {column} = $1 AND id <> $2 LIMIT 1"#);
        let other: Option<String> = on_conn!(conn, |c| sqlx::query_scalar(&sql)
            .bind(&value)
            .bind(&u.id)
            .fetch_optional(c)
            .await
            .map_err(DbError::query("looking for a conflicting user"))?);
        if other.is_some() {
            return Ok(Some(format!("{what} {value:?}")));
        }
    }
    Ok(None)
}

/// Write the planned profile over a pending user's Kernia row and ledger row.
async fn update_profile(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plan: &UserPlan,
) -> Result<(), DbError> {
    enum Val<'a> {
        Text(Option<&'a str>),
        Bool(bool),
        Int(i64),
    }
    let u = &plan.user;
    let mut sets: Vec<(&str, Val)> = vec![
        ("email", Val::Text(Some(&u.email))),
        ("emailVerified", Val::Bool(u.email_verified)),
        ("name", Val::Text(u.name.as_deref())),
        ("image", Val::Text(u.image.as_deref())),
    ];
    for (column, value) in [
        ("username", Val::Text(u.username.as_deref())),
        ("displayUsername", Val::Text(u.display_username.as_deref())),
        ("phoneNumber", Val::Text(u.phone_number.as_deref())),
        ("phoneNumberVerified", Val::Bool(u.phone_number_verified)),
    ] {
        if schema.kernia.has_user_column(column) {
            sets.push((column, value));
        }
    }
    sets.push(("updatedAt", Val::Int(u.updated_at)));
    let assignments: Vec<String> = sets
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("\"{c}\" = ${}", i + 1))
        .collect();
    let sql = format!(
        r#"UPDATE "user" SET {} WHERE id = ${}"#,
        assignments.join(", "),
        sets.len() + 1
    );
    on_conn!(conn, |c| {
        let mut q = sqlx::query(&sql);
        for (_, v) in &sets {
            q = match v {
                Val::Text(t) => q.bind(*t),
                Val::Bool(b) => q.bind(*b),
                Val::Int(n) => q.bind(*n),
            };
        }
        q.bind(&u.id)
            .execute(c)
            .await
            .map_err(DbError::query("refreshing a Kernia user"))?;
    });
    let l = &plan.ledger;
    let secondary = serde_json::to_string(&l.secondary_emails).unwrap_or_else(|_| "[]".into());
    const LEDGER: &str = "UPDATE cutover_ledger SET email = $1, username = $2, phone = $3,
        secondary_emails = $4, updated_at = $5 WHERE user_id = $6";
    on_conn!(conn, |c| {
        sqlx::query(LEDGER)
            .bind(&l.email)
            .bind(&l.username)
            .bind(&l.phone)
            .bind(&secondary)
            .bind(now_secs())
            .bind(&l.user_id)
            .execute(c)
            .await
            .map_err(DbError::query("refreshing a ledger row"))?;
    });
    Ok(())
}

/// Drop a pending user's exported digest: the password changed at Clerk at
/// `changed_at` (epoch seconds). The user then has no usable digest.
pub async fn mark_stale(
    conn: &mut Conn<'_>,
    user_id: &str,
    changed_at: i64,
) -> Result<bool, DbError> {
    const SQL: &str = "UPDATE cutover_ledger SET digest = NULL, state = 'pending_reset',
        digest_stale_at = $1, updated_at = $2
        WHERE user_id = $3 AND digest IS NOT NULL AND state IN ('pending_password', 'pending_reset')";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(changed_at)
        .bind(now_secs())
        .bind(user_id)
        .execute(c)
        .await
        .map_err(DbError::query("marking a digest stale"))?
        .rows_affected());
    Ok(n > 0)
}

async fn set_state_from(
    conn: &mut Conn<'_>,
    user_id: &str,
    from: LedgerState,
    to: LedgerState,
) -> Result<(), DbError> {
    const SQL: &str =
        "UPDATE cutover_ledger SET state = $1, updated_at = $2 WHERE user_id = $3 AND state = $4";
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(to.as_str())
            .bind(now_secs())
            .bind(user_id)
            .bind(from.as_str())
            .execute(c)
            .await
            .map_err(DbError::query("changing a ledger state"))?;
    });
    Ok(())
}

/// A user deleted at Clerk: the ledger says `removed` (no routing, no
/// migration), every Kernia session is revoked and the Kernia user is banned
/// so no sign-in succeeds; the row itself stays (the app's data may point at
/// it). Returns the revoked session tokens, or `None` when cutover never
/// imported this user.
pub async fn remove_user(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    user_id: &str,
) -> Result<Option<Vec<String>>, DbError> {
    const SQL: &str = "UPDATE cutover_ledger SET state = 'removed', digest = NULL, updated_at = $1
        WHERE user_id = $2";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(now_secs())
        .bind(user_id)
        .execute(c)
        .await
        .map_err(DbError::query("marking a user removed"))?
        .rows_affected());
    if n == 0 {
        return Ok(None);
    }
    set_banned(conn, schema, user_id, true, "deleted at Clerk").await?;
    Ok(Some(revoke_sessions(conn, user_id).await?))
}

/// A pending user's digest from a newer CSV export: replaces the stored one
/// when this export is newer than both the stored digest's export and any
/// password change Clerk reported. Returns whether it was replaced.
pub async fn replace_digest(
    conn: &mut Conn<'_>,
    user_id: &str,
    hasher: &str,
    digest: &str,
    verifiable: bool,
    exported_at: i64,
) -> Result<bool, DbError> {
    let state = if verifiable {
        "pending_password"
    } else {
        "pending_reset"
    };
    const SQL: &str = "UPDATE cutover_ledger SET digest = $1, hasher = $2, state = $3,
        digest_exported_at = $4, digest_stale_at = NULL, updated_at = $5
        WHERE user_id = $6 AND state IN ('pending_password', 'pending_reset', 'social_only')
          AND COALESCE(digest_exported_at, imported_at) < $4
          AND COALESCE(digest_stale_at, 0) < $4
          AND (digest IS NULL OR digest <> $1)";
    let n = on_conn!(conn, |c| sqlx::query(SQL)
        .bind(digest)
        .bind(hasher)
        .bind(state)
        .bind(exported_at)
        .bind(now_secs())
        .bind(user_id)
        .execute(c)
        .await
        .map_err(DbError::query("replacing a digest"))?
        .rows_affected());
    Ok(n > 0)
}

/// What a refresh of an organization, membership or invitation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRefresh {
    Created,
    Updated,
    /// Kernia's row changed later than Clerk's, or nothing differed.
    Unchanged,
    /// Not written (see the issue recorded).
    Skipped,
    Deleted,
}

async fn exists(conn: &mut Conn<'_>, table: &str, id: &str) -> Result<bool, DbError> {
    let sql = format!("SELECT id FROM {table} WHERE id = $1");
    let row: Option<String> = on_conn!(conn, |c| sqlx::query_scalar(&sql)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("looking for a row"))?);
    Ok(row.is_some())
}

async fn execute(
    conn: &mut Conn<'_>,
    sql: &str,
    binds: &[Option<&str>],
    ints: &[i64],
    doing: &'static str,
) -> Result<u64, DbError> {
    on_conn!(conn, |c| {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        for n in ints {
            q = q.bind(*n);
        }
        Ok(q.execute(c)
            .await
            .map_err(DbError::query(doing))?
            .rows_affected())
    })
}

/// An organization created or changed at Clerk.
pub async fn organization(
    conn: &mut Conn<'_>,
    org: crate::import::records::OrgRecord,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<RowRefresh, DbError> {
    if !exists(conn, "organization", &org.id).await? {
        let before = c.organizations.imported;
        super::orgs::write_organizations(conn, vec![org], now, c, issues).await?;
        return Ok(if c.organizations.imported > before {
            RowRefresh::Created
        } else {
            RowRefresh::Skipped
        });
    }
    let slug_owner: Option<String> = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT id FROM organization WHERE slug = $1 AND id <> $2"
    )
    .bind(&org.slug)
    .bind(&org.id)
    .fetch_optional(c)
    .await
    .map_err(DbError::query("looking for an organization's slug"))?);
    if let Some(owner) = slug_owner {
        c.organizations.conflicts += 1;
        issues.push(Issue::new(
            IssueKind::Conflict,
            Entity::Organization,
            Some(&org.id),
            format!(
                "slug {:?} already belongs to Kernia organization {owner}; not refreshed",
                org.slug
            ),
        ));
        return Ok(RowRefresh::Skipped);
    }
    let updated_at = org.updated_at.or(org.created_at).unwrap_or(now);
    let logo = org
        .logo
        .as_deref()
        .filter(|l| l.len() <= crate::identifier::MAX_TEXT);
    let sql = match conn.engine() {
        crate::db::Engine::Postgres => {
            r#"UPDATE organization SET name = $1, slug = $2, logo = $3, metadata = CAST($4 AS JSON),
            "updatedAt" = $6 WHERE id = $5 AND COALESCE("updatedAt", 0) <= $6"#
        }
        crate::db::Engine::Sqlite => {
            r#"UPDATE organization SET name = $1, slug = $2, logo = $3, metadata = $4,
            "updatedAt" = $6 WHERE id = $5 AND COALESCE("updatedAt", 0) <= $6"#
        }
    };
    let n = execute(
        conn,
        sql,
        &[
            Some(&org.name),
            Some(&org.slug),
            logo,
            org.metadata.as_deref(),
            Some(&org.id),
        ],
        &[updated_at],
        "refreshing an organization",
    )
    .await?;
    Ok(if n > 0 {
        RowRefresh::Updated
    } else {
        RowRefresh::Unchanged
    })
}

/// An organization deleted at Clerk: its invitations, members and row go, as
/// Kernia's own organization deletion removes them.
pub async fn delete_organization(conn: &mut Conn<'_>, id: &str) -> Result<RowRefresh, DbError> {
    for sql in [
        r#"DELETE FROM invitation WHERE "organizationId" = $1"#,
        r#"DELETE FROM member WHERE "organizationId" = $1"#,
    ] {
        execute(conn, sql, &[Some(id)], &[], "deleting an organization").await?;
    }
    let n = execute(
        conn,
        "DELETE FROM organization WHERE id = $1",
        &[Some(id)],
        &[],
        "deleting an organization",
    )
    .await?;
    Ok(if n > 0 {
        RowRefresh::Deleted
    } else {
        RowRefresh::Unchanged
    })
}

/// A membership created or changed at Clerk (its role).
pub async fn member(
    conn: &mut Conn<'_>,
    m: crate::import::records::MemberRecord,
    roles: &crate::import::RoleMap,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<RowRefresh, DbError> {
    if !exists(conn, "member", &m.id).await? {
        let before = c.memberships.imported;
        super::orgs::write_members(conn, vec![m], roles, now, c, issues).await?;
        return Ok(if c.memberships.imported > before {
            RowRefresh::Created
        } else {
            RowRefresh::Skipped
        });
    }
    let role = roles.map(&m.role, m.is_creator).role;
    let updated_at = m.updated_at.or(m.created_at).unwrap_or(now);
    let n = execute(
        conn,
        r#"UPDATE member SET role = $1, "updatedAt" = $3 WHERE id = $2 AND COALESCE("updatedAt", 0) <= $3 AND role <> $1"#,
        &[Some(&role), Some(&m.id)],
        &[updated_at],
        "refreshing a membership",
    )
    .await?;
    Ok(if n > 0 {
        RowRefresh::Updated
    } else {
        RowRefresh::Unchanged
    })
}

pub async fn delete_member(conn: &mut Conn<'_>, id: &str) -> Result<RowRefresh, DbError> {
    let n = execute(
        conn,
        "DELETE FROM member WHERE id = $1",
        &[Some(id)],
        &[],
        "deleting a membership",
    )
    .await?;
    Ok(if n > 0 {
        RowRefresh::Deleted
    } else {
        RowRefresh::Unchanged
    })
}

/// A pending invitation created at Clerk.
pub async fn invitation(
    conn: &mut Conn<'_>,
    i: crate::import::records::InviteRecord,
    roles: &crate::import::RoleMap,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<RowRefresh, DbError> {
    if exists(conn, "invitation", &i.id).await? {
        if i.status != "pending" {
            let status = if i.status == "revoked" {
                "canceled"
            } else {
                i.status.as_str()
            };
            return close_invitation(conn, &i.id, status).await;
        }
        return Ok(RowRefresh::Unchanged);
    }
    let before = c.invitations.imported;
    super::orgs::write_invitations(conn, vec![i], roles, now, c, issues).await?;
    Ok(if c.invitations.imported > before {
        RowRefresh::Created
    } else {
        RowRefresh::Skipped
    })
}

/// An invitation accepted or revoked at Clerk: no longer pending in Kernia.
pub async fn close_invitation(
    conn: &mut Conn<'_>,
    id: &str,
    status: &str,
) -> Result<RowRefresh, DbError> {
    let n = execute(
        conn,
        "UPDATE invitation SET status = $1 WHERE id = $2 AND status = 'pending'",
        &[Some(status), Some(id)],
        &[],
        "closing an invitation",
    )
    .await?;
    Ok(if n > 0 {
        RowRefresh::Updated
    } else {
        RowRefresh::Unchanged
    })
}

/// When the dashboard CSV of a run was exported, as well as cutover can tell:
/// the newest modification time of its files (the download, which follows
/// the export). `None` without a CSV.
pub fn csv_exported_at(csv: &[std::path::PathBuf]) -> Option<i64> {
    csv.iter()
        .filter_map(|p| std::fs::metadata(p).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .max()
}

/// The users of an import batch that are not Kernia's yet (for the import's
/// insert-only writer), and which of them the ledger holds all the same.
pub struct NotKnown {
    pub plans: Vec<UserPlan>,
    /// Imported before and deleted from Kernia since (or the ledger row of a
    /// webhook whose user Kernia never got).
    pub ledgered: std::collections::HashSet<String>,
}

/// An import batch: refresh the users an earlier run (or a webhook) already
/// wrote, and hand back the others for the import's insert-only writer. Each
/// refreshed user is counted `already_present` and its changes in
/// `refreshed`.
pub async fn known_users(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    plans: Vec<UserPlan>,
    csv_exported_at: Option<i64>,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<NotKnown, DbError> {
    let mut ledgered = std::collections::HashSet::new();
    if plans.is_empty() {
        return Ok(NotKnown { plans, ledgered });
    }
    let ids: Vec<String> = plans.iter().map(|p| p.user.id.clone()).collect();
    // One look-up for both questions the batch asks of the ledger.
    let sql = format!(
        r#"SELECT l.user_id, CASE WHEN u.id IS NULL THEN 0 ELSE 1 END FROM cutover_ledger l LEFT JOIN "user" u ON u.id = l.user_id WHERE {}"#,
        super::sql::in_list(conn.engine(), "l.user_id", 1)
    );
    let rows: Vec<(String, i32)> =
        super::sql::fetch_with_lists(conn, &sql, &[&ids], "reading the ledger").await?;
    drop(ids);
    let mut known = std::collections::HashSet::new();
    for (id, in_kernia) in rows {
        if in_kernia == 1 {
            known.insert(id);
        } else {
            ledgered.insert(id);
        }
    }
    let (present, fresh): (Vec<UserPlan>, Vec<UserPlan>) =
        plans.into_iter().partition(|p| known.contains(&p.user.id));
    // Their social accounts are counted (already linked, or left alone), so a
    // re-run says what it saw.
    super::accounts::write(conn, &present, super::accounts::Mode::Count, c, issues).await?;
    for plan in present {
        c.users.already_present += 1;
        let id = plan.user.id.clone();
        let digest = plan
            .ledger
            .digest
            .clone()
            .zip(plan.ledger.hasher.clone())
            .zip(csv_exported_at);
        let replaced = match digest {
            Some(((digest, hasher), exported_at)) => {
                let verifiable = crate::import::hashers::is_verifiable(&hasher);
                replace_digest(conn, &id, &hasher, &digest, verifiable, exported_at).await?
            }
            None => false,
        };
        let r = user(conn, schema, plan, c, issues).await?;
        let mut count = |k: &str| *c.refreshed.entry(k.to_string()).or_default() += 1;
        if replaced {
            count("users: newer digest");
        }
        if r.stale {
            count("users: digest stale (password changed at Clerk)");
        }
        if r.banned {
            count("users: banned");
        }
        if r.outcome == (UserRefresh::Updated { profile: true }) {
            count("users: profile");
        }
    }
    Ok(NotKnown {
        plans: fresh,
        ledgered,
    })
}

/// An import batch of organizations: refresh those Kernia has (Clerk's newer
/// name, slug, logo, metadata), hand back the rest for the insert-only writer.
pub async fn known_organizations(
    conn: &mut Conn<'_>,
    orgs: Vec<crate::import::records::OrgRecord>,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<Vec<crate::import::records::OrgRecord>, DbError> {
    let mut fresh = Vec::with_capacity(orgs.len());
    // One lookup for the batch, not one per record (a round trip each).
    let ids: Vec<String> = orgs.iter().map(|o| o.id.clone()).collect();
    let known =
        super::orgs::ids_in(conn, "organization", &ids, "looking for organizations").await?;
    for o in orgs {
        if !known.contains(&o.id) {
            fresh.push(o);
            continue;
        }
        let before = c.organizations.conflicts;
        let r = organization(conn, o, now, c, issues).await?;
        if c.organizations.conflicts == before {
            c.organizations.already_present += 1;
        }
        if r == RowRefresh::Updated {
            *c.refreshed
                .entry("organizations: updated".into())
                .or_default() += 1;
        }
    }
    Ok(fresh)
}

/// An import batch of memberships: refresh the role of those Kernia has.
pub async fn known_members(
    conn: &mut Conn<'_>,
    members: Vec<crate::import::records::MemberRecord>,
    roles: &crate::import::RoleMap,
    now: i64,
    c: &mut Counters,
    issues: &mut Vec<Issue>,
) -> Result<Vec<crate::import::records::MemberRecord>, DbError> {
    let mut fresh = Vec::with_capacity(members.len());
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let known = super::orgs::ids_in(conn, "member", &ids, "looking for members").await?;
    for m in members {
        if !known.contains(&m.id) {
            fresh.push(m);
            continue;
        }
        c.memberships.already_present += 1;
        if member(conn, m, roles, now, c, issues).await? == RowRefresh::Updated {
            *c.refreshed.entry("memberships: role".into()).or_default() += 1;
        }
    }
    Ok(fresh)
}

/// What a complete Backend API pull no longer lists, gone at Clerk since the
/// last run: users (→ `removed`, sessions revoked, banned), memberships
/// (deleted) and pending invitations (no longer pending: `canceled`). Only
/// rows cutover imported (Clerk ids) are considered. A pull that would remove
/// more than `max_share` of the ledger's users is refused as a likely mistake
/// (another Clerk instance, a filtered key), and nothing is changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gone {
    pub users: u64,
    pub memberships: u64,
    pub invitations: u64,
    /// Kernia session tokens revoked (to broadcast, when a proxy is listening).
    pub revoked_tokens: Vec<String>,
}

/// Why [`absent`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AbsentError {
    #[error(
        "the pull lists {listed} users but {absent} of the {ledgered} users cutover imported are missing from it; refusing to mark them removed (wrong instance or key?)"
    )]
    TooMany {
        listed: usize,
        absent: usize,
        ledgered: usize,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

pub async fn absent(
    conn: &mut Conn<'_>,
    schema: &ImportSchema,
    users: &std::collections::HashSet<String>,
    memberships: &std::collections::HashSet<String>,
    pending_invitations: &std::collections::HashSet<String>,
    max_share: f64,
) -> Result<Gone, AbsentError> {
    let ledgered: Vec<String> = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT user_id FROM cutover_ledger WHERE state <> 'removed'"
    )
    .fetch_all(c)
    .await
    .map_err(DbError::query("reading the ledger"))?);
    let gone_users: Vec<&String> = ledgered.iter().filter(|u| !users.contains(*u)).collect();
    if !ledgered.is_empty() && gone_users.len() as f64 > max_share * ledgered.len() as f64 {
        return Err(AbsentError::TooMany {
            listed: users.len(),
            absent: gone_users.len(),
            ledgered: ledgered.len(),
        });
    }
    let mut out = Gone::default();
    for u in gone_users {
        if let Some(tokens) = remove_user(conn, schema, u).await? {
            out.users += 1;
            out.revoked_tokens.extend(tokens);
        }
    }
    if schema.organizations() {
        let members: Vec<String> = on_conn!(conn, |c| sqlx::query_scalar(
            "SELECT id FROM member WHERE id LIKE 'orgmem\\_%' ESCAPE '\\'"
        )
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading members"))?);
        for m in members.iter().filter(|m| !memberships.contains(*m)) {
            if delete_member(conn, m).await? == RowRefresh::Deleted {
                out.memberships += 1;
            }
        }
        let invites: Vec<String> = on_conn!(conn, |c| {
            sqlx::query_scalar(
            "SELECT id FROM invitation WHERE status = 'pending' AND id LIKE 'orginv\\_%' ESCAPE '\\'"
        )
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading invitations"))?
        });
        for i in invites.iter().filter(|i| !pending_invitations.contains(*i)) {
            if close_invitation(conn, i, "canceled").await? == RowRefresh::Updated {
                out.invitations += 1;
            }
        }
    }
    Ok(out)
}
