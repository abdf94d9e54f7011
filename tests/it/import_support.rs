//! Helpers for the import tests: a fresh database of either engine holding
//! Kernia 0.1.0's schema (as the sample Kernia app creates it, from
//! `tests/fixtures/import/`), cutover's own tables, and a dump of everything
//! an import writes, to compare two runs.

use std::path::{Path, PathBuf};

use cutover::db::{Conn, Db, on_conn};

pub use crate::harness::Engine;
use crate::harness::databases::TestDatabase;

/// A fresh database (dropped with the value) holding Kernia's schema.
pub struct TestDb {
    pub db: Db,
    pub inner: TestDatabase,
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

/// Kernia 0.1.0's schema on `db` (as the sample app creates it).
pub async fn create_kernia_schema(db: &Db, engine: Engine) {
    create_kernia_schema_edited(db, engine, |ddl| ddl).await
}

/// Kernia 0.1.0's schema on `db`, its DDL text changed by `edit` first.
pub async fn create_kernia_schema_edited(db: &Db, engine: Engine, edit: impl Fn(String) -> String) {
    let ddl = edit(
        std::fs::read_to_string(fixture(match engine {
            Engine::Sqlite => "kernia_schema.sqlite.sql",
            Engine::Postgres => "kernia_schema.pg.sql",
        }))
        .unwrap(),
    );
    match db {
        Db::Postgres(p) => sqlx::raw_sql(&ddl).execute(p).await.map(|_| ()),
        Db::Sqlite(p) => sqlx::raw_sql(&ddl).execute(p).await.map(|_| ()),
    }
    .unwrap();
}

impl TestDb {
    /// A new database with Kernia's tables (when `kernia_schema`) and cutover's.
    pub async fn fresh(engine: Engine, kernia_schema: bool) -> TestDb {
        let inner = TestDatabase::create(engine).await;
        let db = inner.connect().await;
        if kernia_schema {
            create_kernia_schema(&db, engine).await;
        }
        db.migrate().await.unwrap();
        TestDb { db, inner }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub async fn drop_db(self) {
        self.db.close().await;
    }

    /// Run a statement (test setup).
    pub async fn exec(&self, sql: &str) {
        let mut pc = self.db.acquire().await.unwrap();
        on_conn!(&mut pc.conn(), |c| {
            sqlx::raw_sql(sql).execute(c).await.unwrap();
        });
    }

    /// Rows of a query whose every column is text (or NULL).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut pc = self.db.acquire().await.unwrap();
        let mut conn = pc.conn();
        rows(&mut conn, sql).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}");
        self.rows(&sql).await[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Everything an import writes, one line per row, ids and values that
    /// depend on when the run happened left out.
    pub async fn dump(&self) -> Vec<String> {
        let b = |col: &str| format!("CASE WHEN {col} THEN 'true' WHEN NOT {col} THEN 'false' END");
        let queries = [
            format!(r#"SELECT 'user', id, email, {}, name, image, CAST("createdAt" AS TEXT), CAST("updatedAt" AS TEXT), username, "displayUsername", "phoneNumber", {}, {}, {}, role FROM "user""#,
                b(r#""emailVerified""#), b(r#""phoneNumberVerified""#), b(r#""twoFactorEnabled""#), b("banned")),
            r#"SELECT 'account', id, "userId", "accountId", "providerId", scope, password, CAST("createdAt" AS TEXT) FROM account"#.to_string(),
            format!(r#"SELECT 'twoFactor', "userId", secret, "backupCodes", {} FROM "twoFactor""#, b("verified")),
            r#"SELECT 'organization', id, name, slug, logo, CAST(metadata AS TEXT), CAST("createdAt" AS TEXT) FROM organization"#.to_string(),
            r#"SELECT 'member', id, "organizationId", "userId", role, CAST("createdAt" AS TEXT) FROM member"#.to_string(),
            r#"SELECT 'invitation', id, "organizationId", email, role, status, "inviterId", CAST("expiresAt" AS TEXT) FROM invitation"#.to_string(),
            format!("SELECT 'ledger', user_id, email, username, phone, secondary_emails, hasher, digest, state, {}, {} FROM cutover_ledger",
                b("had_backup_codes"), b("had_passkeys")),
        ];
        let mut out = Vec::new();
        for q in queries {
            for row in self.rows(&q).await {
                out.push(
                    row.into_iter()
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .collect::<Vec<_>>()
                        .join("|"),
                );
            }
        }
        out.sort();
        out
    }
}

pub async fn rows(conn: &mut Conn<'_>, sql: &str) -> Vec<Vec<Option<String>>> {
    use sqlx::Row as _;
    on_conn!(conn, |c| {
        let rows = sqlx::query(sql).fetch_all(c).await.unwrap();
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect()
    })
}

/// The small hand-made export under `tests/fixtures/import/small/`.
pub fn small_inputs() -> cutover::import::Inputs {
    let f = |n: &str| fixture(&format!("small/{n}"));
    cutover::import::Inputs {
        csv: vec![f("users.csv")],
        users: vec![f("users-1.json"), f("users-2.json")],
        organizations: vec![f("organizations.json")],
        memberships: vec![f("memberships.json")],
        invitations: vec![f("invitations.json")],
    }
}

/// Rows a Kernia deployment already had before the import: a user who signed
/// up natively with Frank's email, and an organization holding slug `taken`.
pub async fn seed_native_rows(t: &TestDb) {
    t.exec(r#"INSERT INTO "user" (id, email, "emailVerified", name, "createdAt", "updatedAt", role) VALUES ('native_frank', 'frank@example.com', true, 'Frank (native)', 1, 1, 'user')"#).await;
    t.exec(r#"INSERT INTO organization (id, name, slug, "createdAt") VALUES ('org_native', 'Native', 'taken', 1)"#).await;
}

/// The sample Kernia app with a stand-in Google provider
/// (`tests/fixtures/import/kernia_app_with_fake_google.py`), on its own
/// database, killed when dropped. `base_url` includes Kernia's base path.
pub struct KerniaWithGoogle {
    pub base_url: String,
    server: crate::harness::kernia::KerniaServer,
}

impl std::ops::Deref for KerniaWithGoogle {
    type Target = crate::harness::kernia::KerniaServer;

    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl KerniaWithGoogle {
    pub async fn start(engine: Engine) -> KerniaWithGoogle {
        let options = crate::harness::kernia::Options {
            app: Some(fixture("kernia_app_with_fake_google.py")),
            env: vec![(
                "CUTOVER_KERNIA_APP".into(),
                crate::harness::repo_root()
                    .join("deploy/kernia-app/app.py")
                    .display()
                    .to_string(),
            )],
            ..Default::default()
        };
        let server = crate::harness::kernia::KerniaServer::start_with(
            TestDatabase::create(engine).await,
            options,
        )
        .await;
        KerniaWithGoogle {
            base_url: server.url("/api/auth"),
            server,
        }
    }
}

/// Write a user's password into Kernia as cutover's lazy migration does: an
/// Argon2id PHC string with Kernia's parameters in the `credential` account row.
pub async fn set_kernia_password(db: &Db, user_id: &str, password: &str) {
    let phc = cutover::hash::kernia_argon2id(password.as_bytes(), &Default::default()).unwrap();
    let mut tx = db.begin().await.unwrap();
    cutover::db::kernia::upsert_credential(&mut tx.conn(), user_id, &phc)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub use crate::harness::pending::totp_now;

/// Every `name=value` a response sets, joined for a `Cookie` header.
pub fn cookies(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}
