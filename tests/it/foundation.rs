//! Proof that the harness is real and cutover's database layer speaks Kernia's
//! schema: on PostgreSQL and on SQLite, a user who signs up through the real
//! Kernia server is read back by cutover, and a user plus credential written by
//! cutover signs in through Kernia's real routes.

use std::time::Duration;

use argon2::PasswordHasher as _;
use base64::Engine as _;
use cutover::db::kernia::{self, CredentialWrite, NewUser};
use cutover::db::ledger::{self, Identifier, LedgerState, NewLedgerEntry};
use cutover::db::{Db, KerniaSchema, now_secs};
use hmac::Mac as _;

use crate::both_engines;
use crate::harness::kernia::{self as k, KerniaServer};
use crate::harness::{Engine, databases::TestDatabase, redis as test_redis};

/// Kernia's own hash: Argon2id v19, m=65536, t=3, p=4, 16-byte salt, 32-byte hash.
fn kernia_hash(password: &str) -> String {
    let params = argon2::Params::new(65536, 3, 4, Some(32)).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt =
        argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

async fn migrated(server: &KerniaServer) -> (Db, KerniaSchema) {
    let db = server.db.connect().await;
    db.migrate().await.expect("migrations");
    let schema = KerniaSchema::read(&db).await.expect("Kernia schema");
    (db, schema)
}

async fn kernia_signup_is_read_back_by_cutover(engine: Engine) {
    let server = KerniaServer::start(engine).await;
    let (id, _cookie) = k::sign_up(
        &server.base_url,
        "Ada.Lovelace@Example.com",
        "correct horse 1",
        "Ada",
    )
    .await;
    let (db, _) = migrated(&server).await;
    let mut conn = db.acquire().await.unwrap();
    // Kernia keeps the case it was given at sign-up and compares bytes.
    let user = kernia::find_user_by_email(&mut conn.conn(), "Ada.Lovelace@Example.com")
        .await
        .unwrap()
        .expect("the signed-up user is in Kernia's table");
    assert_eq!(user.id, id);
    assert_eq!(user.id.len(), 22, "Kernia ids are 22 URL-safe characters");
    assert_eq!(user.name.as_deref(), Some("Ada"));
    assert!(!user.email_verified);
    assert!(
        (user.created_at - now_secs()).abs() < 120,
        "dates are epoch seconds"
    );
    assert!(
        kernia::find_user_by_email(&mut conn.conn(), "ada.lovelace@example.com")
            .await
            .unwrap()
            .is_none(),
        "lookups are exact, like Kernia's"
    );
    let hash = kernia::credential_hash(&mut conn.conn(), &id)
        .await
        .unwrap();
    assert!(hash.unwrap().starts_with("$argon2id$v=19$m=65536,t=3,p=4$"));
}
both_engines!(kernia_signup_is_read_back_by_cutover);

async fn user_written_by_cutover_signs_in_at_kernia(engine: Engine) {
    let server = KerniaServer::start(engine).await;
    let (db, schema) = migrated(&server).await;
    let user_id = "user_2YDryYFVMM1W1plDDKz7Gzf4we6";
    let now = now_secs();
    let mut tx = db.begin().await.unwrap();
    kernia::insert_user(
        &mut tx.conn(),
        &schema,
        &NewUser {
            id: user_id.into(),
            email: "grace@example.com".into(),
            email_verified: true,
            name: Some("Grace Hopper".into()),
            created_at: now - 86_400,
            updated_at: now,
            username: Some("grace".into()),
            display_username: Some("Grace".into()),
            ..NewUser::default()
        },
    )
    .await
    .unwrap();
    let write =
        kernia::upsert_credential(&mut tx.conn(), user_id, &kernia_hash("cobol-forever-59"))
            .await
            .unwrap();
    assert_eq!(write, CredentialWrite::Inserted);
    tx.commit().await.unwrap();

    let client = k::client();
    let wrong = client
        .post(server.url("/api/auth/sign-in/email"))
        .json(&serde_json::json!({"email": "grace@example.com", "password": "not-it-at-all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let resp = client
        .post(server.url("/api/auth/sign-in/email"))
        .json(&serde_json::json!({"email": "grace@example.com", "password": "cobol-forever-59"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", server.stderr());
    let cookie = k::session_cookie(&resp).expect("Kernia sets its session cookie");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["user"]["id"], user_id,
        "the Clerk id is kept as the Kernia id"
    );
    assert_eq!(
        k::session_user(&server.base_url, &cookie).await.as_deref(),
        Some(user_id)
    );

    // The cookie is `token.sig` with sig = base64url(HMAC-SHA256(secret, token)),
    // and the session row is found by the raw token: what cutover's identify relies on.
    let value = cookie.trim_start_matches("better-auth.session_token=");
    let (token, sig) = value.rsplit_once('.').unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(k::SECRET.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    let expected =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(sig, expected);
    let mut conn = db.acquire().await.unwrap();
    let session = kernia::find_session(&mut conn.conn(), token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.user_id, user_id);
    assert!(session.expires_at > now_secs());

    // Rewriting the credential updates the one row; the new password works, the old does not.
    let mut tx = db.begin().await.unwrap();
    let write = kernia::upsert_credential(&mut tx.conn(), user_id, &kernia_hash("new-password-60"))
        .await
        .unwrap();
    assert_eq!(write, CredentialWrite::Updated);
    tx.commit().await.unwrap();
    for (password, status) in [("cobol-forever-59", 401), ("new-password-60", 200)] {
        let resp = client
            .post(server.url("/api/auth/sign-in/email"))
            .json(&serde_json::json!({"email": "grace@example.com", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "password {password}");
    }
}
both_engines!(user_written_by_cutover_signs_in_at_kernia);

async fn migrations_are_safe_from_several_processes_at_once(engine: Engine) {
    let db = TestDatabase::create(engine).await;
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(db.connect().await);
    }
    let results = futures_util::future::join_all(pools.iter().map(|p| p.migrate())).await;
    for r in results {
        r.expect("every concurrent migration run succeeds");
    }
    pools[0].migrate().await.expect("a rerun is a no-op");
    let mut conn = pools[0].acquire().await.unwrap();
    let n: i64 = cutover::db::on_conn!(&mut conn.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM cutover_schema_migrations WHERE version = 1"
    )
    .fetch_one(c)
    .await
    .unwrap());
    assert_eq!(n, 1);
}
both_engines!(migrations_are_safe_from_several_processes_at_once);

async fn ledger_rows_round_trip(engine: Engine) {
    let db = TestDatabase::create(engine).await;
    let pool = db.connect().await;
    pool.migrate().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let entry = NewLedgerEntry {
        user_id: "user_1".into(),
        email: Some("a@example.com".into()),
        username: Some("ada".into()),
        hasher: Some("bcrypt".into()),
        digest: Some("$2b$10$U4C0ZY8OG8y41F9LusfKyu3HRMBL0rCZcKBVsXhgr.n8Ou6FPhzO2".into()),
        state: Some(LedgerState::PendingPassword),
        secondary_emails: vec!["ada@work.example".into()],
        ..NewLedgerEntry::default()
    };
    assert!(
        ledger::insert_if_absent(&mut conn.conn(), &entry)
            .await
            .unwrap()
    );
    assert!(
        !ledger::insert_if_absent(&mut conn.conn(), &entry)
            .await
            .unwrap(),
        "idempotent"
    );
    let found = ledger::find(&mut conn.conn(), Identifier::Username("ada"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.state, LedgerState::PendingPassword);
    assert!(
        !format!("{found:?}").contains("$2b$"),
        "Debug never shows the digest"
    );
    assert!(
        ledger::mark_migrated(&mut conn.conn(), "user_1", "legacy_password")
            .await
            .unwrap()
    );
    assert!(
        !ledger::mark_migrated(&mut conn.conn(), "user_1", "legacy_password")
            .await
            .unwrap()
    );
    let counts = ledger::counts_by_state(&mut conn.conn()).await.unwrap();
    assert!(counts.contains(&(LedgerState::Migrated, 1)));
    assert!(counts.contains(&(LedgerState::PendingPassword, 0)));
}
both_engines!(ledger_rows_round_trip);

#[tokio::test]
async fn redis_state_is_shared_between_copies() {
    let cfg = test_redis::state_config();
    let a = test_redis::connect(&cfg).await;
    let b = test_redis::connect(&cfg).await;
    assert_eq!(a.backend_name(), "redis");
    let window = Duration::from_secs(30);
    assert_eq!(a.hit("signin:ip:10.0.0.1", window).await.unwrap(), 1);
    assert_eq!(b.hit("signin:ip:10.0.0.1", window).await.unwrap(), 2);

    let token = a
        .try_lock("migrate:user_1", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        b.try_lock("migrate:user_1", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none()
    );
    let stranger = b
        .try_lock("migrate:user_2", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !b.unlock("migrate:user_1", &stranger).await.unwrap(),
        "only the owner unlocks"
    );
    assert!(a.unlock("migrate:user_1", &token).await.unwrap());
    assert!(
        b.try_lock("migrate:user_1", Duration::from_secs(10))
            .await
            .unwrap()
            .is_some()
    );

    // Invalidation messages reach every copy, the sender included.
    let mut rx_a = a.invalidations();
    let mut rx_b = b.invalidations();
    // The relay subscribes in the background; publish until it is listening.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        a.invalidate("session:tok").await.unwrap();
        if let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_millis(200), rx_b.recv()).await {
            break msg;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no invalidation arrived"
        );
    };
    assert_eq!(got, "session:tok");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), rx_a.recv())
            .await
            .unwrap()
            .unwrap(),
        "session:tok"
    );
}

#[tokio::test]
async fn redis_counters_expire_with_their_window() {
    let cfg = test_redis::state_config();
    let a = test_redis::connect(&cfg).await;
    let w = Duration::from_millis(300);
    assert_eq!(a.hit("k", w).await.unwrap(), 1);
    assert_eq!(a.hit("k", w).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(a.hit("k", w).await.unwrap(), 1);
}

#[tokio::test]
async fn redis_locks_are_renewed_only_by_their_owner() {
    let cfg = test_redis::state_config();
    let a = test_redis::connect(&cfg).await;
    let b = test_redis::connect(&cfg).await;
    let ttl = Duration::from_millis(1_000);
    let token = a.try_lock("migrate:u", ttl).await.unwrap().unwrap();
    let stranger = b.try_lock("migrate:other", ttl).await.unwrap().unwrap();
    assert!(
        !b.renew("migrate:u", &stranger, Duration::from_secs(60))
            .await
            .unwrap(),
        "only the owner renews"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(a.renew("migrate:u", &token, ttl).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.try_lock("migrate:u", ttl).await.unwrap().is_none(),
        "held past its first TTL"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let next = b
        .try_lock("migrate:u", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(next.is_some(), "unrenewed, it expires");
    assert!(
        !a.renew("migrate:u", &token, Duration::from_secs(60))
            .await
            .unwrap(),
        "an expired owner cannot renew the new holder's lock"
    );
    assert!(
        b.unlock("migrate:u", &next.unwrap()).await.unwrap(),
        "the new holder's lock was left alone"
    );
    assert!(
        !a.renew("migrate:u", &token, ttl).await.unwrap(),
        "nothing to renew"
    );
}

/// A holder whose work takes several lease TTLs keeps its lock: a second copy
/// waits rather than doing the same migration at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_holder_keeps_its_redis_lease_past_the_ttl() {
    let cfg = test_redis::state_config();
    let a = test_redis::connect(&cfg).await;
    let b = test_redis::connect(&cfg).await;
    let ttl = Duration::from_millis(450);
    let lease = a.try_lease("migrate:u", ttl).await.unwrap().unwrap();
    let until = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while tokio::time::Instant::now() < until {
        assert!(
            b.try_lease("migrate:u", ttl).await.unwrap().is_none(),
            "a slow but alive holder was overtaken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lease.release().await.unwrap(),
        "still ours when the work ends"
    );
    assert!(b.try_lease("migrate:u", ttl).await.unwrap().is_some());
}

#[tokio::test]
async fn unreachable_redis_is_a_typed_error_not_a_panic() {
    let mut cfg = test_redis::state_config();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.backend = cutover::config::StateBackend::Redis {
        url: cutover::config::Secret::new(format!("redis://127.0.0.1:{port}")),
    };
    let started = std::time::Instant::now();
    let err = cutover::state::SharedState::connect(&cfg)
        .await
        .err()
        .expect("connect fails");
    assert!(matches!(err, cutover::state::StateError::Redis(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The ledger's email, username and phone indexes hold only rows that have a
/// value (an import of a million users otherwise writes an index entry for
/// every NULL), and a sign-in's look-up by any of them is still served from
/// its index. A database migrated before the indexes became partial gets them
/// replaced.
async fn ledger_identifier_indexes_skip_nulls_and_serve_look_ups(engine: Engine) {
    let db = TestDatabase::create(engine).await;
    let pool = db.connect().await;
    pool.migrate().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for (i, (email, username, phone)) in [
        (Some("a@example.com"), Some("ada"), None),
        (Some("b@example.com"), None, Some("+15550100")),
        (None, None, Some("+15550101")),
        (Some("c@example.com"), None, None),
    ]
    .into_iter()
    .enumerate()
    {
        let entry = NewLedgerEntry {
            user_id: format!("user_{i}"),
            email: email.map(Into::into),
            username: username.map(Into::into),
            phone: phone.map(Into::into),
            state: Some(LedgerState::PendingReset),
            ..NewLedgerEntry::default()
        };
        assert!(
            ledger::insert_if_absent(&mut conn.conn(), &entry)
                .await
                .unwrap()
        );
    }
    partial_and_used(&mut conn).await;
    for (id, user) in [
        (Identifier::Email("b@example.com"), "user_1"),
        (Identifier::Username("ada"), "user_0"),
        (Identifier::Phone("+15550101"), "user_2"),
    ] {
        let found = ledger::find(&mut conn.conn(), id).await.unwrap();
        assert_eq!(found.map(|e| e.user_id).as_deref(), Some(user), "{id:?}");
    }
    // A database from before the change: the full indexes, migration 6 not yet applied.
    cutover::db::on_conn!(&mut conn.conn(), |c| {
        for column in ["email", "username", "phone"] {
            sqlx::query(&format!("DROP INDEX cutover_ledger_{column}"))
                .execute(&mut *c)
                .await
                .unwrap();
            sqlx::query(&format!(
                "CREATE INDEX cutover_ledger_{column} ON cutover_ledger ({column})"
            ))
            .execute(&mut *c)
            .await
            .unwrap();
        }
        sqlx::query("DELETE FROM cutover_schema_migrations WHERE version = 6")
            .execute(&mut *c)
            .await
            .unwrap();
    });
    drop(conn);
    pool.migrate().await.unwrap();
    partial_and_used(&mut pool.acquire().await.unwrap()).await;
}
both_engines!(ledger_identifier_indexes_skip_nulls_and_serve_look_ups);

/// Each identifier index's definition, and the plan of a look-up by its column
/// (the statement shape of `ledger::find`).
async fn partial_and_used(conn: &mut cutover::db::PoolConn) {
    use cutover::db::Conn;
    for column in ["email", "username", "phone"] {
        let index = format!("cutover_ledger_{column}");
        let look_up = format!(
            "SELECT user_id FROM cutover_ledger WHERE {column} = $1 AND state <> 'removed' LIMIT 1"
        );
        let (definition, plan) = match conn.conn() {
            Conn::Postgres(c) => {
                let def: String =
                    sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE indexname = $1")
                        .bind(&index)
                        .fetch_one(&mut *c)
                        .await
                        .unwrap();
                // Four rows: with sequential scans priced out, only a plan that
                // cannot use the index still scans the table.
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut *c)
                    .await
                    .unwrap();
                let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {look_up}"))
                    .bind("x")
                    .fetch_all(&mut *c)
                    .await
                    .unwrap();
                sqlx::query("RESET enable_seqscan")
                    .execute(&mut *c)
                    .await
                    .unwrap();
                (def, plan.join("\n"))
            }
            Conn::Sqlite(c) => {
                let def: String = sqlx::query_scalar(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = $1",
                )
                .bind(&index)
                .fetch_one(&mut *c)
                .await
                .unwrap();
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(&format!("EXPLAIN QUERY PLAN {look_up}"))
                        .bind("x")
                        .fetch_all(&mut *c)
                        .await
                        .unwrap();
                (
                    def,
                    rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"),
                )
            }
        };
        let def = definition.to_lowercase();
        assert!(
            def.contains(&format!("where ({column} is not null)"))
                || def.contains(&format!("where {column} is not null")),
            "{index} is partial: {definition}"
        );
        assert!(
            plan.contains(&index),
            "a look-up by {column} uses {index}:\n{plan}"
        );
    }
}

/// The pool pings a connection before handing it out only when it has been idle
/// for `PING_AFTER_IDLE` (a connection in steady use is not pinged before every
/// query). A connection whose server process died while it was idle longer
/// than that is found dead and replaced without a failed query; one that died
/// within the window fails at most one query, and the pool heals behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_killed_by_the_server_is_replaced() {
    use cutover::db::{Conn, PING_AFTER_IDLE};
    let database = TestDatabase::create(Engine::Postgres).await;
    let pool = Db::connect(&database.url, 1).await.unwrap();
    let killer = database.connect().await;
    let pid = |pool: Db| async move {
        let mut pc = pool.acquire().await.map_err(|e| e.to_string())?;
        let Conn::Postgres(c) = pc.conn() else {
            unreachable!("a PostgreSQL URL")
        };
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&mut *c)
            .await
            .map_err(|e| e.to_string())
    };
    let kill = |victim: i32| {
        let killer = killer.clone();
        async move {
            let mut pc = killer.acquire().await.unwrap();
            let Conn::Postgres(c) = pc.conn() else {
                unreachable!("a PostgreSQL URL")
            };
            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(victim)
                .fetch_one(&mut *c)
                .await
                .unwrap();
            assert!(killed, "backend {victim} terminated");
            // Until the process is gone, it could still answer a query.
            for _ in 0..500 {
                let alive: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
                )
                .bind(victim)
                .fetch_one(&mut *c)
                .await
                .unwrap();
                if !alive {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("backend {victim} still running a second after pg_terminate_backend");
        }
    };

    // Killed, then idle past the window: pinged, found dead, replaced.
    let first = pid(pool.clone()).await.unwrap();
    kill(first).await;
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(300)).await;
    let second = pid(pool.clone())
        .await
        .expect("a connection idle past the window is checked and replaced before use");
    assert_ne!(second, first, "a new server process");

    // Killed and asked again at once: at most one query fails, then a new one serves.
    kill(second).await;
    let mut failures = 0;
    let third = loop {
        match pid(pool.clone()).await {
            Ok(p) => break p,
            Err(_) if failures == 0 => failures += 1,
            Err(e) => panic!("the pool did not heal after one failed query: {e}"),
        }
    };
    assert_ne!(third, second);
}
