//! Lazy migration under stress and failure: throttling, a saturated hashing
//! pool, concurrent sign-ins (one copy, and two copies on PostgreSQL + Redis),
//! Redis or the database going away, and a cutover killed mid-migration (its
//! user's lock left behind in Redis, too).

use std::time::Duration;

use cutover::db::ledger::LedgerState;

use crate::harness::Engine;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::{KerniaServer, client, session_cookie};
use crate::harness::pending::{credential, credential_rows, entry, seed, vector};
use crate::harness::process::Process;
use crate::harness::redis as test_redis;
use crate::harness::server::{Cutover, toml};
use crate::migration::{fixture, sign_in};

/// Small Argon2 parameters: these tests are about concurrency, not cost.
const CHEAP_ARGON: &str =
    "argon2_memory_kib = 1024\nargon2_iterations = 1\nargon2_parallelism = 1\n";

fn slow_bcrypt(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_of_pending_users_are_throttled_per_account_and_per_address() {
    let extra = format!("[migration]\naccount_attempts = 3\nip_attempts = 5\n{CHEAP_ARGON}");
    let f = fixture(Engine::Sqlite, &extra).await;
    let (digest, _) = vector("bcrypt", "cost 4");
    for i in 0..3 {
        seed(
            &f.db,
            &format!("user_t{i}"),
            &format!("t{i}@example.com"),
            LedgerState::PendingPassword,
            Some("bcrypt"),
            Some(&digest),
        )
        .await;
    }
    for _ in 0..3 {
        assert_eq!(
            sign_in(&f.cutover, "t0@example.com", "wrong")
                .await
                .status(),
            401
        );
    }
    let limited = sign_in(&f.cutover, "t0@example.com", "wrong").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        limited.json::<serde_json::Value>().await.unwrap()["code"],
        "TOO_MANY_ATTEMPTS"
    );
    // Per address: two more attempts on another account reach the limit of 5 hits.
    assert_eq!(
        sign_in(&f.cutover, "t1@example.com", "wrong")
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&f.cutover, "t2@example.com", "wrong")
            .await
            .status(),
        429,
        "6th attempt from one address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_pool_answers_503_and_ordinary_traffic_keeps_flowing() {
    let extra = format!("[migration]\nhash_pool_size = 1\nqueue_limit = 0\n{CHEAP_ARGON}");
    let f = fixture(Engine::Sqlite, &extra).await;
    let digest = slow_bcrypt("slow-password", 13);
    for i in 0..4 {
        seed(
            &f.db,
            &format!("user_s{i}"),
            &format!("s{i}@example.com"),
            LedgerState::PendingPassword,
            Some("bcrypt"),
            Some(&digest),
        )
        .await;
    }
    let started = f.cutover.app.intercept.pool().started();
    let storm: Vec<_> = (0..4)
        .map(|i| {
            let url = f.cutover.url("/api/auth/sign-in/email");
            tokio::spawn(async move {
                client()
                    .post(url)
                    .json(&serde_json::json!({"email": format!("s{i}@example.com"), "password": "slow-password"}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    // While the one hashing thread is busy, ordinary requests are answered.
    while f.cutover.app.intercept.pool().started() == started {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ordinary = client()
        .get(f.cutover.url("/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(ordinary.status(), 200);
    let busy_while_served = storm.iter().any(|h| !h.is_finished());
    assert!(
        busy_while_served,
        "the ordinary request waited for the hashing to end"
    );
    let mut statuses = Vec::new();
    for h in storm {
        let resp = h.await.unwrap();
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
        }
        statuses.push(resp.status().as_u16());
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_sign_ins_of_one_user_both_succeed_with_one_write() {
    let f = fixture(Engine::Sqlite, &format!("[migration]\n{CHEAP_ARGON}")).await;
    let digest = slow_bcrypt("race-password", 10);
    seed(
        &f.db,
        "user_race",
        "race@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let (a, b) = tokio::join!(
        sign_in(&f.cutover, "race@example.com", "race-password"),
        sign_in(&f.cutover, "race@example.com", "race-password")
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(
        f.cutover.app.intercept.pool().started(),
        1,
        "one verify, one credential write"
    );
    assert_eq!(credential_rows(&f.db, "user_race").await, 1);
    assert_eq!(entry(&f.db, "user_race").await.state, LedgerState::Migrated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_copies_on_postgres_and_redis_migrate_a_user_once() {
    let kernia = KerniaServer::start(Engine::Postgres).await;
    let legacy = Echo::start("legacy").await;
    let state = test_redis::state_config();
    let prefix = state.key_prefix.clone();
    let extra = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n[migration]\n{CHEAP_ARGON}",
        test_redis::redis_url()
    );
    let text = toml(&legacy.url(), &kernia.base_url, &kernia.db.url, &extra);
    let one = Cutover::start(&text).await;
    let two = Cutover::start(&text).await;
    let db = kernia.db.connect().await;
    let digest = slow_bcrypt("shared-password", 10);
    seed(
        &db,
        "user_pair",
        "pair@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let (a, b) = tokio::join!(
        sign_in(&one, "pair@example.com", "shared-password"),
        sign_in(&two, "Pair@Example.com", "shared-password")
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let hashed = one.app.intercept.pool().started() + two.app.intercept.pool().started();
    assert_eq!(hashed, 1, "exactly one copy verified and wrote");
    assert_eq!(credential_rows(&db, "user_pair").await, 1);
    assert_eq!(entry(&db, "user_pair").await.state, LedgerState::Migrated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_pending_sign_ins_fail_closed_and_the_rest_flows() {
    let redis = PrivateRedis::start();
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let extra = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
        redis.port
    );
    let c = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &extra,
    ))
    .await;
    let db = kernia.db.connect().await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed(
        &db,
        "user_redis",
        "redis@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let (_, _) = crate::harness::kernia::sign_up(
        &c.url(""),
        "native@example.com",
        "native-password-1",
        "Native",
    )
    .await;
    drop(redis); // Redis goes away.

    let pending = sign_in(&c, "redis@example.com", &password).await;
    assert_eq!(pending.status(), 503);
    assert!(pending.headers().contains_key("retry-after"));
    assert_eq!(
        entry(&db, "user_redis").await.state,
        LedgerState::PendingPassword
    );
    assert!(credential(&db, "user_redis").await.is_none());
    // Everything else keeps flowing: pages, and sign-ins that need no migration.
    let page = echo::read(client().get(c.url("/")).send().await.unwrap()).await;
    assert_eq!(page["served_by"], "legacy");
    let native = sign_in(&c, "native@example.com", "native-password-1").await;
    assert_eq!(native.status(), 200);
    assert!(session_cookie(&native).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_pending_sign_ins_fail_closed_and_pages_flow() {
    let kernia = KerniaServer::start(Engine::Postgres).await;
    let legacy = Echo::start("legacy").await;
    let clerk = crate::harness::clerk::ClerkInstance::new();
    let clerk_section = format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\n",
        clerk.publishable_key(),
        crate::harness::repo_root()
            .join("tests/fixtures/clerk/key_a.pub.pem")
            .display()
    );
    let c = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &clerk_section,
    ))
    .await;
    let db = kernia.db.connect().await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed(
        &db,
        "user_db",
        "db@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    db.close().await;
    let name = kernia.db.url.rsplit('/').next().unwrap().to_string();
    let admin = crate::harness::databases::pg_admin_url();
    let set_connections = |allow: bool| {
        let admin = admin.clone();
        let name = name.clone();
        async move {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
                .execute(&mut conn)
                .await
                .unwrap();
            if !allow {
                sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
                    .bind(&name)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    };
    set_connections(false).await;
    let pending = sign_in(&c, "db@example.com", &password).await;
    assert_eq!(pending.status(), 503);
    assert!(pending.headers().contains_key("retry-after"));
    let page = echo::read(client().get(c.url("/home")).send().await.unwrap()).await;
    assert_eq!(page["served_by"], "legacy");
    // A Clerk session still reaches legacy, with its identity (the ledger read fails: not migrated).
    let token = clerk.token("user_2onclerk").build();
    let e = echo::read(
        client()
            .get(c.url("/home"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["served_by"], "legacy");
    assert_eq!(echo::header(&e, "x-cutover-user-id"), Some("user_2onclerk"));
    set_connections(true).await;
    // Kernia's own pool may answer 500 once or twice on its dead connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = sign_in(&c, "db@example.com", &password).await.status();
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {status} after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        entry(&kernia.db.connect().await, "user_db").await.state,
        LedgerState::Migrated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutover_killed_mid_migration_never_leaves_a_user_without_a_way_in() {
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let db = kernia.db.connect().await;
    db.migrate().await.unwrap();
    let config = toml(&legacy.url(), &kernia.base_url, &kernia.db.url, "");
    let digest = slow_bcrypt("kill-password", 12);
    let delays_ms = [0u64, 30, 120, 250, 400, 600, 900];
    let mut outcomes = Vec::new();
    for (i, delay) in delays_ms.iter().enumerate() {
        let user = format!("user_kill{i}");
        let email = format!("kill{i}@example.com");
        seed(
            &db,
            &user,
            &email,
            LedgerState::PendingPassword,
            Some("bcrypt"),
            Some(&digest),
        )
        .await;
        let mut p = Process::start(&config);
        let url = format!("{}/api/auth/sign-in/email", p.url);
        let body = serde_json::json!({"email": email, "password": "kill-password"});
        let attempt = tokio::spawn(async move { client().post(url).json(&body).send().await });
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        p.kill9();
        let _ = attempt.await;

        // Either still pending with the digest intact, or migrated with the credential.
        let e = entry(&db, &user).await;
        let cred = credential(&db, &user).await;
        match e.state {
            LedgerState::PendingPassword => {
                assert_eq!(
                    e.digest.as_deref(),
                    Some(digest.as_str()),
                    "digest lost (delay {delay} ms)"
                );
                assert!(
                    cred.is_none(),
                    "credential without the ledger saying so (delay {delay} ms)"
                );
            }
            LedgerState::Migrated => {
                assert!(
                    cred.is_some_and(|c| c.starts_with("$argon2id$")),
                    "migrated without a credential (delay {delay} ms)"
                );
            }
            other => panic!("unexpected state {other} after a kill at {delay} ms"),
        }
        outcomes.push(e.state);
        // And the user gets in on the next try, through a fresh cutover.
        let p = Process::start(&config);
        let resp = client()
            .post(format!("{}/api/auth/sign-in/email", p.url))
            .json(&serde_json::json!({"email": format!("kill{i}@example.com"), "password": "kill-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "locked out after a kill at {delay} ms");
        assert_eq!(entry(&db, &user).await.state, LedgerState::Migrated);
    }
    eprintln!("states right after the kill, by delay {delays_ms:?}: {outcomes:?}");
}

/// A copy SIGKILLed while it holds a user's migration lock leaves that lock in
/// Redis. With the default configuration, the user's retry on another copy
/// waits it out and migrates them: no 503 (`lock_timeout`) for a dead holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_holding_a_users_lock_does_not_lock_them_out() {
    let kernia = KerniaServer::start(Engine::Postgres).await;
    let legacy = Echo::start("legacy").await;
    let state = test_redis::state_config();
    let prefix = state.key_prefix.clone();
    // [migration] is left at its defaults: that is what is under test.
    let extra = format!(
        "[state]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        test_redis::redis_url()
    );
    let config = toml(&legacy.url(), &kernia.base_url, &kernia.db.url, &extra);
    let db = kernia.db.connect().await;
    db.migrate().await.unwrap();
    // Slow enough that the copy is killed while it hashes, holding the lock.
    let digest = slow_bcrypt("dead-holder", 13);
    seed(
        &db,
        "user_dead",
        "dead@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;

    let mut doomed = Process::start(&config);
    let url = format!("{}/api/auth/sign-in/email", doomed.url);
    let body = serde_json::json!({"email": "dead@example.com", "password": "dead-holder"});
    let attempt = tokio::spawn(async move { client().post(url).json(&body).send().await });
    // The lock as the copy writes it (state::redis: `<prefix>lock:<key>`).
    let lock = format!("{prefix}lock:migrate:user_dead");
    let mut redis = redis::Client::open(test_redis::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let held: bool = redis::cmd("EXISTS")
            .arg(&lock)
            .query_async(&mut redis)
            .await
            .unwrap();
        if held {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy never took the user's lock"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.kill9();
    let _ = attempt.await;
    let left: i64 = redis::cmd("PTTL")
        .arg(&lock)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        left > 0,
        "the killed copy left no lock behind (PTTL {left})"
    );
    assert_eq!(
        entry(&db, "user_dead").await.state,
        LedgerState::PendingPassword,
        "killed before it wrote"
    );

    // The user retries; the front sends them to another copy.
    let other = Cutover::start(&config).await;
    let started = std::time::Instant::now();
    let resp = sign_in(&other, "dead@example.com", "dead-holder").await;
    let waited = started.elapsed();
    assert_eq!(
        resp.status(),
        200,
        "locked out by a dead copy's lock ({left} ms left) after {waited:?}"
    );
    assert_eq!(entry(&db, "user_dead").await.state, LedgerState::Migrated);
    assert_eq!(credential_rows(&db, "user_dead").await, 1);
    eprintln!("the dead copy's lock had {left} ms left; the retry took {waited:?}");
}

/// A Redis server of the test's own, to stop at will.
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect(
                "redis-server must be installed for this test (scripts/services.sh installs it)",
            );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
