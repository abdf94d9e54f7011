//! The live rollout shared by every copy: a change made with the CLI reaches
//! three real `cutover serve` processes on PostgreSQL + Redis (delay measured
//! and printed), polling delivers when Redis is down, a copy that cannot read
//! the database keeps routing with its last rollout, and the kill switch
//! sends everyone without a Kernia session to legacy on every copy.

use std::time::{Duration, Instant};

use cutover::control::rollout::Rollout;
use cutover::control::store::{self, Interface, Provenance};

use crate::both_engines;
use crate::harness::copies::{ADMIN_TOKEN_ENV, Copy, PrivateRedis, cli};
use crate::harness::databases::TestDatabase;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::KerniaServer;
use crate::harness::relay::Relay;
use crate::harness::server::{Cutover, toml};
use crate::harness::{Engine, unique};

/// A copy's configuration: public and admin listeners, the shared database,
/// Redis (when given) and `[rollout]`.
fn copy_config(legacy: &str, kernia: &str, db: &str, redis: Option<&str>, rollout: &str) -> String {
    let state = match redis {
        Some(url) => format!(
            "[state]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{}:\"\n",
            unique("ctl")
        ),
        None => String::new(),
    };
    format!(
        r#"
[server]
plain_listen = "@PUBLIC@"
shutdown_grace_secs = 1
[upstreams]
legacy = "{legacy}"
kernia = "{kernia}"
[kernia]
secret = "{secret}"
database_url = "{db}"
[log]
level = "info"
[admin]
listen = "@ADMIN@"
token_env = "{ADMIN_TOKEN_ENV}"
{state}
[rollout]
{rollout}
"#,
        secret = crate::harness::kernia::SECRET
    )
}

/// Where a fresh browser (no cookies) lands on this copy.
async fn lands_on(url: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("{url}/page"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    echo::read(resp).await["served_by"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The version number the CLI reports: "rollout version 1 → 2: …".
fn new_version(stdout: &str) -> i64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("rollout version"))
        .unwrap_or_else(|| panic!("no version in {stdout}"));
    line.split('→')
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Wait until every copy routes by `version`; each copy's delay in ms from
/// the change's commit (from the audit trail) to its own `applied_at_ms`.
async fn delays(copies: &[&Copy], version: i64) -> Vec<i64> {
    let history = copies[0].admin_json("/api/rollout/history?limit=20").await;
    let changed_at = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == version)
        .unwrap_or_else(|| panic!("version {version} not in {history}"))["changed_at_ms"]
        .as_i64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    for c in copies {
        loop {
            let r = c.admin_json("/api/rollout").await;
            if r["version"].as_i64() >= Some(version) {
                out.push(r["applied_at_ms"].as_i64().unwrap() - changed_at);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never applied version {version}: {r}",
                c.admin
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_change_reaches_three_copies_on_postgres_and_redis_and_the_kill_switch_holds_everywhere()
 {
    let kernia_app = KerniaServer::start(Engine::Postgres).await; // Kernia's schema
    let (legacy, kernia) = (Echo::start("legacy").await, Echo::start("kernia").await);
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::harness::redis::redis_url();
    let config = copy_config(
        &legacy.url(),
        &kernia.url(),
        &kernia_app.db.url,
        Some(&redis),
        "percentage = 0",
    );
    // One prefix for all three: they share one Redis channel.
    let copies: Vec<Copy> = (0..3)
        .map(|i| Copy::start(dir.path(), &format!("copy{i}"), &config))
        .collect();
    let all: Vec<&Copy> = copies.iter().collect();
    for c in &all {
        assert_eq!(lands_on(&c.url).await, "legacy", "0% to start with");
    }

    // Load on every copy while the rollout changes: no request may fail.
    let urls: Vec<String> = copies.iter().map(|c| c.url.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut sent, mut failed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for u in &urls {
                    sent += 1;
                    match client.get(format!("{u}/load")).send().await {
                        Ok(r) if r.status() == 200 => {}
                        _ => failed += 1,
                    }
                }
            }
            (sent, failed)
        })
    };

    let cfg = copies[0].config.to_str().unwrap().to_string();
    let (ok, out, err) = cli(&[
        "rollout",
        "set",
        "-c",
        &cfg,
        "--percentage",
        "100",
        "--reason",
        "all in",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("announced on Redis"), "{out}");
    assert!(out.contains("raising sends"), "{out}");
    let raised = delays(&all, new_version(&out)).await;
    for c in &all {
        assert_eq!(lands_on(&c.url).await, "kernia", "100% on {}", c.url);
    }

    let (ok, out, err) = cli(&["rollout", "kill", "-c", &cfg, "--reason", "incident 42"]);
    assert!(ok, "{out}{err}");
    let killed = delays(&all, new_version(&out)).await;
    for c in &all {
        assert_eq!(lands_on(&c.url).await, "legacy", "kill switch on {}", c.url);
        // A browser pinned to Kernia by the rollout goes to legacy too.
        let resp = reqwest::Client::new()
            .get(format!("{}/pinned", c.url))
            .header("cookie", "cutover_route=b.0123456789abcdef0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(echo::read(resp).await["served_by"], "legacy");
        let m = reqwest::get(format!("{}/metrics", c.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(m.contains("cutover_kill_switch 1"), "{m}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, failed) = load.await.unwrap();
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed while the rollout changed"
    );

    // The audit trail: both changes, with reason and interface.
    let (ok, out, _) = cli(&["rollout", "history", "-c", &cfg, "--json"]);
    assert!(ok);
    let h: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let latest = &h[0];
    assert_eq!(latest["fields"], serde_json::json!(["kill_switch"]));
    assert_eq!(latest["reason"], "incident 42");
    assert_eq!(latest["interface"], "cli");
    assert_eq!(latest["from"]["kill_switch"], false);
    assert_eq!(latest["to"]["kill_switch"], true);
    assert_eq!(h[1]["to"]["percentage"], 100.0);
    assert_eq!(
        h.as_array().unwrap().last().unwrap()["fields"],
        serde_json::json!(["seed"])
    );
    println!(
        "rollout propagation over Redis pub/sub, 3 copies under load ({sent} requests, 0 failed): raise {raised:?} ms, kill switch {killed:?} ms (commit → applied, per copy)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_stopped_changes_still_arrive_by_polling() {
    let kernia_app = KerniaServer::start(Engine::Postgres).await;
    let (legacy, kernia) = (Echo::start("legacy").await, Echo::start("kernia").await);
    let mut redis = PrivateRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = copy_config(
        &legacy.url(),
        &kernia.url(),
        &kernia_app.db.url,
        Some(&redis.url()),
        "percentage = 0",
    );
    let copies: Vec<Copy> = (0..3)
        .map(|i| Copy::start(dir.path(), &format!("copy{i}"), &config))
        .collect();
    let all: Vec<&Copy> = copies.iter().collect();
    redis.stop();

    let cfg = copies[1].config.to_str().unwrap().to_string();
    let (ok, out, err) = cli(&[
        "rollout",
        "set",
        "-c",
        &cfg,
        "--percentage",
        "100",
        "--reason",
        "redis is down",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Redis is unreachable"), "{out}");
    let polled = delays(&all, new_version(&out)).await;
    for c in &all {
        assert_eq!(lands_on(&c.url).await, "kernia");
    }
    println!(
        "rollout propagation by database polling (Redis stopped, poll_ms = 250, the default), 3 copies: {polled:?} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_cannot_read_the_database_keeps_routing_by_its_last_rollout() {
    let db = TestDatabase::create(Engine::Postgres).await;
    // A relay in front of the test's PostgreSQL server, wherever it is.
    let url = reqwest::Url::parse(&db.url).unwrap();
    let server = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let pg = tokio::net::lookup_host(&server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(pg).await;
    let relayed = db.url.replacen(&server, &relay.addr.to_string(), 1);
    assert_ne!(relayed, db.url);
    let (legacy, kernia) = (Echo::start("legacy").await, Echo::start("kernia").await);
    let cutover = Cutover::start(&toml(
        &legacy.url(),
        &kernia.url(),
        &relayed,
        "[rollout]\npercentage = 0\npoll_ms = 100\n",
    ))
    .await;
    let direct = db.connect().await;
    let who = Provenance {
        reason: "test",
        interface: Interface::Cli,
        actor: None,
    };
    let set = |f: fn(&Rollout) -> Rollout| {
        let direct = direct.clone();
        let who = who.clone();
        async move { store::change(&direct, |r| Ok(f(r)), &who).await.unwrap() }
    };
    set(|r| Rollout {
        percentage: 100.0,
        ..r.clone()
    })
    .await;
    wait_until(|| cutover.app.routing.applied().rollout.percentage == 100.0).await;
    assert_eq!(lands_on(&cutover.url("")).await, "kernia");

    relay.sever();
    wait_until(|| cutover.app.routing.is_stale()).await;
    // Meanwhile someone pulls the kill switch: this copy cannot know yet.
    set(|r| Rollout {
        kill_switch: true,
        ..r.clone()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cutover.app.routing.is_stale());
    for _ in 0..5 {
        assert_eq!(
            lands_on(&cutover.url("")).await,
            "kernia",
            "the last rollout it read stands"
        );
    }

    relay.restore();
    wait_until(|| cutover.app.routing.applied().rollout.kill_switch).await;
    assert!(!cutover.app.routing.is_stale());
    assert_eq!(lands_on(&cutover.url("")).await, "legacy");
}

async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_the_file_seeds_once_then_the_database_wins() {
    let db = TestDatabase::create(Engine::Sqlite).await;
    db.add_kernia_schema().await;
    let (legacy, kernia) = (Echo::start("legacy").await, Echo::start("kernia").await);
    let dir = tempfile::tempdir().unwrap();
    let text = toml(
        &legacy.url(),
        &kernia.url(),
        &db.url,
        "[rollout]\npercentage = 100\npoll_ms = 100\n",
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = path.to_str().unwrap();

    // The CLI works before any copy ever ran: it seeds from the file.
    let (ok, out, err) = cli(&[
        "rollout",
        "set",
        "-c",
        cfg,
        "--percentage",
        "12.5",
        "--reason",
        "start small",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("percentage 100.0 → 12.5"), "{out}");
    assert!(out.contains("lowering moves 0 known user(s)"), "{out}");

    // A copy starting with `percentage = 100` in its file routes by the database's 12.5.
    let cutover = Cutover::start(&text).await;
    assert_eq!(cutover.app.routing.applied().rollout.percentage, 12.5);
    let (ok, out, _) = cli(&["serve", "--check", "-c", cfg]);
    assert!(ok);
    assert!(out.contains("rollout (file)   100% to kernia"), "{out}");
    assert!(out.contains("percentage        12.5% to kernia"), "{out}");
    assert!(out.contains("the file's [rollout] differs"), "{out}");

    // Overrides by user, domain and org; a second change with no effect writes nothing.
    for args in [
        ["allow", "--user", "user_vip"],
        ["deny", "--domain", "@Partner.EXAMPLE"],
        ["allow", "--org", "org_beta"],
    ] {
        let (ok, out, err) = cli(&[
            "rollout", args[0], "-c", cfg, args[1], args[2], "--reason", "override",
        ]);
        assert!(ok, "{out}{err}");
    }
    let (ok, out, _) = cli(&["rollout", "allow", "-c", cfg, "--user", "user_vip"]);
    assert!(ok);
    assert!(out.contains("nothing to change"), "{out}");
    wait_until(|| cutover.app.routing.applied().version == 5).await;
    let live = cutover.app.routing.settings();
    assert!(live.overrides.allow_users.contains("user_vip"));
    assert!(
        live.overrides
            .deny_email_domains
            .contains("partner.example")
    );
    assert!(live.overrides.allow_orgs.contains("org_beta"));
    assert_eq!(live.percentage, 12.5);

    // Bad input says what is wrong and changes nothing.
    let (ok, _, err) = cli(&[
        "rollout",
        "set",
        "-c",
        cfg,
        "--percentage",
        "150",
        "--reason",
        "x",
    ]);
    assert!(!ok);
    assert!(
        err.contains("percentage must be between 0 and 100"),
        "{err}"
    );
    let (ok, _, err) = cli(&["rollout", "kill", "-c", cfg, "--reason", " "]);
    assert!(!ok);
    assert!(err.contains("--reason"), "{err}");
    let (ok, out, _) = cli(&["rollout", "show", "-c", cfg, "--json"]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["version"], 5);
    assert_eq!(shown["file_differs"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_says_how_many_known_users_go_back_to_legacy() {
    use cutover::db::ledger::{self, LedgerState, NewLedgerEntry};
    use cutover::route::rollout::{Pin, bucket};
    let db = TestDatabase::create(Engine::Sqlite).await;
    db.add_kernia_schema().await;
    let pool = db.connect().await;
    pool.migrate().await.unwrap();
    let mut expected = 0;
    for i in 0..200 {
        let user = format!("user_{i}");
        let state = if i % 10 == 0 {
            LedgerState::Migrated
        } else {
            LedgerState::PendingPassword
        };
        let mut conn = pool.acquire().await.unwrap();
        ledger::insert_if_absent(
            &mut conn.conn(),
            &NewLedgerEntry {
                user_id: user.clone(),
                state: Some(state),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let b = bucket("cutover", &Pin::for_user(&user, false));
        if state != LedgerState::Migrated && (0.10..0.50).contains(&b) {
            expected += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        toml(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            &db.url,
            "[rollout]\npercentage = 50\n",
        ),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let (ok, out, err) = cli(&[
        "rollout",
        "set",
        "-c",
        cfg,
        "--percentage",
        "10",
        "--reason",
        "errors up",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "lowering moves {expected} known user(s) not yet migrated back to legacy"
        )),
        "expected {expected}: {out}"
    );
    assert!(expected > 0);
}

/// The "last seen" flush writes any number of users with one statement whose
/// text never changes, so it takes one place in a connection's statement cache
/// however many flushes of however many users there are (a text per batch
/// size filled the cache with one-off statements, pushing out the ones
/// requests use), and it never moves a user's day backwards.
async fn last_seen_flushes_of_any_size_are_one_cached_statement(engine: Engine) {
    use cutover::control::seen::{SeenMark, SeenRecorder, today};
    use cutover::db::on_conn;
    use sqlx::Connection as _;

    let database = TestDatabase::create(engine).await;
    // One connection: every flush runs on it, and its cache can be read.
    let db = cutover::db::Db::connect(&database.url, 1).await.unwrap();
    db.migrate().await.unwrap();
    let cached = |db: cutover::db::Db| async move {
        let mut pc = db.acquire().await.unwrap();
        on_conn!(&mut pc.conn(), |c| c.cached_statements_size())
    };
    let day = today();
    // Seen on a later day already (another copy's clock, say): kept.
    {
        let mut pc = db.acquire().await.unwrap();
        let sql = "INSERT INTO cutover_user_seen (user_id, last_seen_day) VALUES ($1, $2)";
        on_conn!(&mut pc.conn(), |c| {
            sqlx::query(sql)
                .bind("user_later")
                .bind(day + 3)
                .execute(c)
                .await
                .unwrap();
        });
    }
    let before = cached(db.clone()).await;
    let seen = SeenRecorder::new();
    let mut users = vec!["user_later".to_string(), "user_\"quoted\", é\\".to_string()];
    let mut written = 0;
    for size in [2, 1, 3, 7, 50, 399, 401, 1] {
        while users.len() < size {
            users.push(format!("user_{written}_{}", users.len()));
        }
        for user in &users {
            seen.note_marked(user, &SeenMark::default());
        }
        written += seen.flush(&db).await.unwrap();
        users.clear();
    }
    assert_eq!(written, 2 + 1 + 3 + 7 + 50 + 399 + 401 + 1);
    let after = cached(db.clone()).await;
    assert!(
        after <= before + 1,
        "eight flushes of eight sizes left {} statements in the cache (before: {before})",
        after
    );

    let mut pc = db.acquire().await.unwrap();
    let count = "SELECT COUNT(*) FROM cutover_user_seen WHERE last_seen_day = $1";
    let day_of = "SELECT last_seen_day FROM cutover_user_seen WHERE user_id = $1";
    let (today_rows, later, quoted): (i64, i64, i64) = on_conn!(&mut pc.conn(), |c| (
        sqlx::query_scalar(count)
            .bind(day)
            .fetch_one(&mut *c)
            .await
            .unwrap(),
        sqlx::query_scalar(day_of)
            .bind("user_later")
            .fetch_one(&mut *c)
            .await
            .unwrap(),
        sqlx::query_scalar(day_of)
            .bind("user_\"quoted\", é\\")
            .fetch_one(&mut *c)
            .await
            .unwrap(),
    ));
    assert_eq!(today_rows, 863, "every user but the one seen later, today");
    assert_eq!(later, day + 3, "a flush never moves a day backwards");
    assert_eq!(quoted, day);
}
both_engines!(last_seen_flushes_of_any_size_are_one_cached_statement);
