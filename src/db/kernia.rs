//! Kernia 0.1.0's tables, read and written exactly as Kernia lays them out.
//!
//! - Tables `"user"`, `session`, `account`, `verification` (and plugin tables
//!   such as `organization`, `member`, `invitation`, `"twoFactor"`); columns are
//!   camelCase and must be quoted.
//! - No database-side defaults: Kernia fills them in Python, so every write here
//!   supplies each NOT NULL column and mirrors Kernia's defaults for the rest.
//! - Dates are integer epoch seconds; ids are 22-character URL-safe strings
//!   ([`new_id`]) unless the caller brings one (Clerk ids are kept).
//! - A password lives in the `account` row with `providerId = 'credential'` and
//!   `accountId = userId`, as an Argon2id PHC string.
//!
//! Plugins add columns to `"user"` (username, phone_number, two_factor, admin).
//! A deployment may run without some of them, so [`KerniaSchema`] reads which
//! columns exist once, and writes only name those.

use std::collections::HashSet;

use base64::Engine as _;
use rand::RngCore as _;

use super::{Conn, Db, DbError, Engine, now_secs, on_conn};

/// A fresh Kernia id: `secrets.token_urlsafe(16)`, 22 base64url characters.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider id of a password account.
pub const CREDENTIAL_PROVIDER: &str = "credential";

/// Which optional (plugin) columns the deployed `"user"` table has.
#[derive(Debug, Clone, Default)]
pub struct KerniaSchema {
    user_columns: HashSet<String>,
}

/// The `"user"` columns that plugins add, and Kernia's Python-side default for each.
const PLUGIN_USER_DEFAULTS: &[(&str, Option<bool>)] = &[
    ("username", None),
    ("displayUsername", None),
    ("phoneNumber", None),
    ("phoneNumberVerified", Some(false)),
    ("twoFactorEnabled", Some(false)),
    ("banned", Some(false)),
];

impl KerniaSchema {
    /// Read the deployed schema. Fails with a clear message when Kernia's core
    /// tables are missing (the Kernia app has not created them yet).
    pub async fn read(db: &Db) -> Result<KerniaSchema, DbError> {
        let columns: Vec<String> = match db {
            Db::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT column_name::TEXT FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = 'user'",
                )
                .fetch_all(pool)
                .await
            }
            Db::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info('user')")
                    .fetch_all(pool)
                    .await
            }
        }
        .map_err(DbError::query("reading Kernia's user table"))?;
        if columns.is_empty() {
            return Err(DbError::Schema(
                "Kernia's \"user\" table does not exist in this database; start the Kernia app once (it creates its schema) or check kernia.database_url".into(),
            ));
        }
        for required in [
            "id",
            "email",
            "emailVerified",
            "name",
            "image",
            "createdAt",
            "updatedAt",
        ] {
            if !columns.iter().any(|c| c == required) {
                return Err(DbError::Schema(format!(
                    "Kernia's \"user\" table has no \"{required}\" column: is this a Kernia 0.1.0 database?"
                )));
            }
        }
        Ok(KerniaSchema {
            user_columns: columns.into_iter().collect(),
        })
    }

    /// Whether the `"user"` table has this column (e.g. `username`).
    pub fn has_user_column(&self, column: &str) -> bool {
        self.user_columns.contains(column)
    }
}

/// A Kernia user as cutover writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub id: String,
    /// Already normalized (trimmed, lower-cased): Kernia compares bytes.
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub username: Option<String>,
    pub display_username: Option<String>,
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    pub two_factor_enabled: bool,
    pub banned: bool,
}

/// A Kernia user as cutover reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    #[sqlx(rename = "emailVerified")]
    pub email_verified: bool,
    pub name: Option<String>,
    pub image: Option<String>,
    #[sqlx(rename = "createdAt")]
    pub created_at: i64,
    #[sqlx(rename = "updatedAt")]
    pub updated_at: i64,
}

const USER_COLUMNS: &str = r#"id, email, "emailVerified", name, image,
    CAST("createdAt" AS BIGINT) AS "createdAt", CAST("updatedAt" AS BIGINT) AS "updatedAt""#;

/// Insert a user row. Plugin columns are written only when the table has them,
/// with Kernia's defaults where the caller has nothing to say.
pub async fn insert_user(
    conn: &mut Conn<'_>,
    schema: &KerniaSchema,
    u: &NewUser,
) -> Result<(), DbError> {
    enum Val<'a> {
        Text(Option<&'a str>),
        Bool(bool),
    }
    let mut columns: Vec<(&str, Val)> = vec![
        ("id", Val::Text(Some(&u.id))),
        ("email", Val::Text(Some(&u.email))),
        ("emailVerified", Val::Bool(u.email_verified)),
        ("name", Val::Text(u.name.as_deref())),
        ("image", Val::Text(u.image.as_deref())),
    ];
    for (column, _) in PLUGIN_USER_DEFAULTS {
        if !schema.has_user_column(column) {
            continue;
        }
        let value = match *column {
            "username" => Val::Text(u.username.as_deref()),
            "displayUsername" => Val::Text(u.display_username.as_deref()),
            "phoneNumber" => Val::Text(u.phone_number.as_deref()),
            "phoneNumberVerified" => Val::Bool(u.phone_number_verified),
            "twoFactorEnabled" => Val::Bool(u.two_factor_enabled),
            _ => Val::Bool(u.banned),
        };
        columns.push((column, value));
    }
    let with_role = schema.has_user_column("role");
    let mut sql = String::from(r#"INSERT INTO "user" ("#);
    for (column, _) in &columns {
        sql.push('"');
        sql.push_str(column);
        sql.push_str("\", ");
    }
    if with_role {
        sql.push_str(r#""role", "#);
    }
    sql.push_str(r#""createdAt", "updatedAt") VALUES ("#);
    let mut n = 0;
    for _ in 0..columns.len() + usize::from(with_role) + 2 {
        n += 1;
        if n > 1 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${n}"));
    }
    sql.push(')');
    on_conn!(conn, |c| {
        let mut q = sqlx::query(&sql);
        for (_, value) in &columns {
            q = match value {
                Val::Text(t) => q.bind(*t),
                Val::Bool(b) => q.bind(*b),
            };
        }
        if with_role {
            // The admin plugin's default role.
            q = q.bind("user");
        }
        q.bind(u.created_at)
            .bind(u.updated_at)
            .execute(c)
            .await
            .map_err(DbError::query("inserting a Kernia user"))?;
    });
    Ok(())
}

/// The user whose stored email is exactly `email` (Kernia compares bytes).
pub async fn find_user_by_email(conn: &mut Conn<'_>, email: &str) -> Result<Option<User>, DbError> {
    let sql = format!(r#"SELECT {USER_COLUMNS} FROM "user" WHERE email = $1"#);
    on_conn!(conn, |c| sqlx::query_as::<_, User>(&sql)
        .bind(email)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a Kernia user by email")))
}

/// The stored Argon2id PHC string of a user's password account, if any.
pub async fn credential_hash(
    conn: &mut Conn<'_>,
    user_id: &str,
) -> Result<Option<String>, DbError> {
    const SQL: &str = r#"SELECT password FROM account
        WHERE "userId" = $1 AND "providerId" = 'credential' ORDER BY "createdAt" LIMIT 1"#;
    let row: Option<Option<String>> = on_conn!(conn, |c| sqlx::query_scalar(SQL)
        .bind(user_id)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a credential"))?);
    Ok(row.flatten())
}

/// Write the user's password account: update the existing `credential` row, or
/// insert one (`accountId = userId`). Run it inside a transaction; on PostgreSQL
/// the user row is locked first so two writers cannot both insert.
pub async fn upsert_credential(
    conn: &mut Conn<'_>,
    user_id: &str,
    phc: &str,
) -> Result<CredentialWrite, DbError> {
    let now = now_secs();
    if conn.engine() == Engine::Postgres {
        on_conn!(conn, |c| {
            sqlx::query(r#"SELECT id FROM "user" WHERE id = $1 FOR UPDATE"#)
                .bind(user_id)
                .execute(c)
                .await
                .map_err(DbError::query("locking a Kernia user"))?;
        });
    }
    const UPDATE: &str = r#"UPDATE account SET password = $1, "updatedAt" = $2
        WHERE "userId" = $3 AND "providerId" = 'credential'"#;
    let updated = on_conn!(conn, |c| sqlx::query(UPDATE)
        .bind(phc)
        .bind(now)
        .bind(user_id)
        .execute(c)
        .await
        .map_err(DbError::query("updating a credential"))?
        .rows_affected());
    if updated > 0 {
        return Ok(CredentialWrite::Updated);
    }
    const INSERT: &str = r#"INSERT INTO account
        (id, "userId", "accountId", "providerId", password, "createdAt", "updatedAt")
        VALUES ($1, $2, $2, 'credential', $3, $4, $4)"#;
    on_conn!(conn, |c| {
        sqlx::query(INSERT)
            .bind(new_id())
            .bind(user_id)
            .bind(phc)
            .bind(now)
            .execute(c)
            .await
            .map_err(DbError::query("inserting a credential"))?;
    });
    Ok(CredentialWrite::Inserted)
}

/// What [`upsert_credential`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialWrite {
    Inserted,
    Updated,
}

/// A row of Kernia's `session` table, as the proxy needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    #[sqlx(rename = "userId")]
    pub user_id: String,
    #[sqlx(rename = "expiresAt")]
    pub expires_at: i64,
}

/// The session whose raw token is `token` (Kernia stores it unhashed).
pub async fn find_session(conn: &mut Conn<'_>, token: &str) -> Result<Option<Session>, DbError> {
    const SQL: &str = r#"SELECT id, "userId", CAST("expiresAt" AS BIGINT) AS "expiresAt"
        FROM session WHERE token = $1"#;
    on_conn!(conn, |c| sqlx::query_as::<_, Session>(SQL)
        .bind(token)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a Kernia session")))
}

/// Whether a Kernia user exists with this normalized identifier in `column`
/// (`email`, `username` or `phoneNumber`).
pub async fn user_id_by(
    conn: &mut Conn<'_>,
    column: UserKey,
    value: &str,
) -> Result<Option<String>, DbError> {
    let sql = match column {
        UserKey::Email => r#"SELECT id FROM "user" WHERE email = $1"#,
        UserKey::Username => r#"SELECT id FROM "user" WHERE username = $1"#,
        UserKey::Phone => r#"SELECT id FROM "user" WHERE "phoneNumber" = $1"#,
    };
    on_conn!(conn, |c| sqlx::query_scalar(sql)
        .bind(value)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("looking up a Kernia user")))
}

/// The `"user"` columns a sign-in can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey {
    Email,
    Username,
    Phone,
}

/// Insert a credential row only when the user has none (never replaces a
/// password). Returns whether a row was written.
pub async fn ensure_credential(
    conn: &mut Conn<'_>,
    user_id: &str,
    phc: &str,
) -> Result<bool, DbError> {
    if credential_hash(conn, user_id).await?.is_some() {
        return Ok(false);
    }
    // No row, or a row without a password: either way it gets this one.
    upsert_credential(conn, user_id, phc).await?;
    Ok(true)
}

/// A `verification` row, as Kernia's `/forget-password` writes it for a reset:
/// identifier `reset:<userId>`, value = the token in plaintext.
pub async fn insert_verification(
    conn: &mut Conn<'_>,
    identifier: &str,
    value: &str,
    expires_at: i64,
) -> Result<(), DbError> {
    const SQL: &str = r#"INSERT INTO verification (id, identifier, value, "expiresAt", "createdAt", "updatedAt")
        VALUES ($1, $2, $3, $4, $5, $5)"#;
    on_conn!(conn, |c| {
        sqlx::query(SQL)
            .bind(new_id())
            .bind(identifier)
            .bind(value)
            .bind(expires_at)
            .bind(now_secs())
            .execute(c)
            .await
            .map_err(DbError::query("writing a verification row"))?;
    });
    Ok(())
}

/// The identifier and expiry of the verification row holding `value`.
pub async fn find_verification(
    conn: &mut Conn<'_>,
    value: &str,
) -> Result<Option<(String, i64)>, DbError> {
    const SQL: &str =
        r#"SELECT identifier, CAST("expiresAt" AS BIGINT) FROM verification WHERE value = $1"#;
    on_conn!(conn, |c| sqlx::query_as::<_, (String, i64)>(SQL)
        .bind(value)
        .fetch_optional(c)
        .await
        .map_err(DbError::query("reading a verification row")))
}
