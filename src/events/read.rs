//! Kernia's rows as the events need them, read after Kernia answered (and,
//! for rows a request deletes, just before). Every list is bounded.

use crate::db::{Conn, DbError, KerniaSchema, on_conn};

/// Most organizations of one user looked at around one request.
pub const MAX_ORGS: i64 = 50;
/// Most members or invitations of one organization looked at.
pub const MAX_PER_ORG: i64 = 500;
/// Most sessions of one user looked at.
pub const MAX_SESSIONS: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub username: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    pub two_factor_enabled: bool,
    pub banned: bool,
    /// Whether a `credential` account holds a password.
    pub password_enabled: bool,
    /// `(providerId, accountId, createdAt, updatedAt)` of social accounts.
    pub social: Vec<(String, String, i64, i64)>,
    /// The newest session's creation time.
    pub last_sign_in_at: Option<i64>,
}

/// The user as Kernia holds it now, with what the Clerk shape needs besides.
pub async fn user(
    conn: &mut Conn<'_>,
    schema: &KerniaSchema,
    id: &str,
) -> Result<Option<UserRow>, DbError> {
    let opt = |col: &str, alias: &str, fallback: &str| {
        if schema.has_user_column(col) {
            format!(r#", "{col}" AS {alias}"#)
        } else {
            format!(", {fallback} AS {alias}")
        }
    };
    let sql = format!(
        r#"SELECT id, email, "emailVerified", name, image,
            CAST("createdAt" AS BIGINT), CAST("updatedAt" AS BIGINT){}{}{}{}{}
           FROM "user" WHERE id = $1"#,
        opt("username", "username", "NULL"),
        opt("phoneNumber", "phone", "NULL"),
        opt("phoneNumberVerified", "phone_verified", "FALSE"),
        opt("twoFactorEnabled", "two_factor", "FALSE"),
        opt("banned", "banned", "FALSE"),
    );
    type Raw = (
        String,
        String,
        bool,
        Option<String>,
        Option<String>,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<bool>,
        Option<bool>,
        Option<bool>,
    );
    let raw: Option<Raw> = on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a Kernia user for an event"))?);
    let Some(r) = raw else { return Ok(None) };
    let accounts: Vec<(String, String, Option<String>, i64, i64)> =
        on_conn!(conn, |c| sqlx::query_as(
            r#"SELECT "providerId", "accountId", password,
                  CAST("createdAt" AS BIGINT), CAST("updatedAt" AS BIGINT)
             FROM account WHERE "userId" = $1 ORDER BY "createdAt" LIMIT 50"#
        )
        .bind(id)
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading a Kernia user's accounts"))?);
    let last_sign_in_at: Option<i64> = on_conn!(conn, |c| sqlx::query_scalar(
        r#"SELECT MAX(CAST("createdAt" AS BIGINT)) FROM session WHERE "userId" = $1"#
    )
    .bind(id)
    .fetch_one(c)
    .await
    .map_err(DbError::query("reading a Kernia user's last sign-in"))?);
    let password_enabled = accounts
        .iter()
        .any(|a| a.0 == crate::db::kernia::CREDENTIAL_PROVIDER && a.2.is_some());
    let social = accounts
        .into_iter()
        .filter(|a| a.0 != crate::db::kernia::CREDENTIAL_PROVIDER)
        .map(|a| (a.0, a.1, a.3, a.4))
        .collect();
    Ok(Some(UserRow {
        id: r.0,
        email: r.1,
        email_verified: r.2,
        name: r.3,
        image: r.4,
        created_at: r.5,
        updated_at: r.6,
        username: r.7,
        phone_number: r.8,
        phone_number_verified: r.9.unwrap_or(false),
        two_factor_enabled: r.10.unwrap_or(false),
        banned: r.11.unwrap_or(false),
        password_enabled,
        social,
        last_sign_in_at,
    }))
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    #[sqlx(rename = "userId")]
    pub user_id: String,
    #[sqlx(rename = "expiresAt")]
    pub expires_at: i64,
    #[sqlx(rename = "createdAt")]
    pub created_at: i64,
    #[sqlx(rename = "updatedAt")]
    pub updated_at: i64,
}

const SESSION_SELECT: &str = r#"SELECT id, "userId", CAST("expiresAt" AS BIGINT) AS "expiresAt",
    CAST("createdAt" AS BIGINT) AS "createdAt", CAST("updatedAt" AS BIGINT) AS "updatedAt" FROM session"#;

/// A user's sessions (to see which a sign-out or revoke ended).
pub async fn sessions_of(conn: &mut Conn<'_>, user_id: &str) -> Result<Vec<SessionRow>, DbError> {
    let sql = format!(
        r#"{SESSION_SELECT} WHERE "userId" = $1 ORDER BY "createdAt" DESC LIMIT {MAX_SESSIONS}"#
    );
    on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(user_id)
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading a user's sessions")))
}

/// The session holding a raw token.
pub async fn session_by_token(
    conn: &mut Conn<'_>,
    token: &str,
) -> Result<Option<SessionRow>, DbError> {
    let sql = format!("{SESSION_SELECT} WHERE token = $1");
    on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(token)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a new session")))
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub logo: Option<String>,
    pub metadata: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRow {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub role: String,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub role: Option<String>,
    pub status: String,
    pub inviter_id: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

/// One organization with its members and invitations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgState {
    pub org: OrgRow,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
}

/// The organizations a user belongs to or is invited to (by email).
pub async fn org_ids_around(
    conn: &mut Conn<'_>,
    user_id: &str,
    email: Option<&str>,
) -> Result<Vec<String>, DbError> {
    let sql = format!(
        r#"SELECT "organizationId" FROM member WHERE "userId" = $1
           UNION
           SELECT "organizationId" FROM invitation WHERE email = $2 AND status = 'pending'
           LIMIT {MAX_ORGS}"#
    );
    on_conn!(conn, |c| sqlx::query_scalar(&sql)
        .bind(user_id)
        .bind(email.unwrap_or(""))
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading a user's organizations")))
}

/// An organization's current state, `None` when it does not exist.
pub async fn org_state(conn: &mut Conn<'_>, org_id: &str) -> Result<Option<OrgState>, DbError> {
    let org: Option<OrgRow> = on_conn!(conn, |c| {
        sqlx::query_as(
        r#"SELECT id, name, slug, logo, CAST(metadata AS TEXT) AS metadata,
                  CAST("createdAt" AS BIGINT) AS created_at, CAST("updatedAt" AS BIGINT) AS updated_at
             FROM organization WHERE id = $1"#
    )
    .bind(org_id)
    .fetch_optional(c)
    .await
    .map_err(DbError::query("reading an organization"))?
    });
    let Some(org) = org else { return Ok(None) };
    let members_sql = format!(
        r#"SELECT id, "organizationId" AS organization_id, "userId" AS user_id, role,
                  CAST("createdAt" AS BIGINT) AS created_at, CAST("updatedAt" AS BIGINT) AS updated_at
             FROM member WHERE "organizationId" = $1 ORDER BY "createdAt", id LIMIT {MAX_PER_ORG}"#
    );
    let members: Vec<MemberRow> = on_conn!(conn, |c| sqlx::query_as(&members_sql)
        .bind(org_id)
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading an organization's members"))?);
    let invitations_sql = format!(
        r#"SELECT id, "organizationId" AS organization_id, email, role, status, "inviterId" AS inviter_id,
                  CAST("expiresAt" AS BIGINT) AS expires_at, CAST("createdAt" AS BIGINT) AS created_at,
                  CAST("updatedAt" AS BIGINT) AS updated_at
             FROM invitation WHERE "organizationId" = $1 ORDER BY "createdAt", id LIMIT {MAX_PER_ORG}"#
    );
    let invitations: Vec<InvitationRow> = on_conn!(conn, |c| sqlx::query_as(&invitations_sql)
        .bind(org_id)
        .fetch_all(c)
        .await
        .map_err(DbError::query("reading an organization's invitations"))?);
    Ok(Some(OrgState {
        org,
        members,
        invitations,
    }))
}

/// Public data of the users named by memberships: `(id, name, image, email, username)`.
pub async fn member_users(
    conn: &mut Conn<'_>,
    schema: &KerniaSchema,
    ids: &[&str],
) -> Result<
    Vec<(
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    )>,
    DbError,
> {
    let mut out = Vec::new();
    let username = if schema.has_user_column("username") {
        "username"
    } else {
        "NULL"
    };
    let sql = format!(r#"SELECT id, name, image, email, {username} FROM "user" WHERE id = $1"#);
    for id in ids {
        let row: Option<super::shapes::PublicUser> = on_conn!(conn, |c| sqlx::query_as(&sql)
            .bind(*id)
            .fetch_optional(c)
            .await
            .map_err(DbError::query("reading a member's user"))?);
        out.extend(row);
    }
    Ok(out)
}
