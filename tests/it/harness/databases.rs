//! A fresh database per test: a SQLite file in a temporary directory, or a
//! PostgreSQL database created for the test and dropped (with its connections)
//! when the guard goes away.

use std::time::Duration;

use sqlx::Connection as _;

use super::{Engine, unique};

/// The admin URL tests use to create and drop PostgreSQL databases.
pub fn pg_admin_url() -> String {
    std::env::var("CUTOVER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct TestDatabase {
    /// sqlx-style URL, also understood by the Kernia app.
    pub url: String,
    pub engine: Engine,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(engine: Engine) -> TestDatabase {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let path = dir.path().join("kernia.db");
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    engine,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Engine::Postgres => {
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is needed for this test but {admin} is unreachable ({e}). \
                         Start it (scripts/test.sh does) or set CUTOVER_TEST_PG_URL."
                        )
                    });
                let name = unique("cutover_t_");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("creating the test database");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    engine,
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Kernia 0.1.0's tables, as the Kernia app creates them: cutover's
    /// commands refuse a database without them (and a SQLite file that does
    /// not exist).
    pub async fn add_kernia_schema(&self) {
        let db = self.connect().await;
        crate::import_support::create_kernia_schema(&db, self.engine).await;
        db.close().await;
    }

    /// cutover's connection pool on this database.
    pub async fn connect(&self) -> cutover::db::Db {
        cutover::db::Db::connect(&self.url, 8)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside async code: use a thread with its own runtime.
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(20),
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn),
                    )
                    .await;
                }
            });
        })
        .join();
    }
}
