//! The admin listener: probes, Prometheus metrics read by a real parser, the
//! rollout API (token, partial changes, audit), status, and the dashboard in
//! a real headless Chromium (screenshot kept; kill switch behind a confirmation).

use std::time::Duration;

use cutover::admin::{self, Admin};
use cutover::config::{AdminConfig, Secret};
use cutover::db::ledger::{self, LedgerState, NewLedgerEntry};
use serde_json::json;
use tokio::sync::oneshot;

use crate::harness::browser::Browser;
use crate::harness::databases::TestDatabase;
use crate::harness::echo::Echo;
use crate::harness::server::{Cutover, toml};
use crate::harness::{Engine, clerk::ClerkInstance};

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

struct AdminServer {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn start_admin(cutover: &Cutover) -> AdminServer {
    let cfg = AdminConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_env: "UNUSED".into(),
        max_connections: 16,
        request_timeout: Duration::from_secs(10),
        max_body_bytes: 64 * 1024,
    };
    let listener = admin::bind(&cfg).await.unwrap();
    let addr = admin::local_addr(&listener).unwrap();
    let a = Admin::new(
        cutover.app.clone(),
        cfg,
        &Secret::new(TOKEN.to_string()),
        "cutover".into(),
    );
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(admin::serve(a, listener, async {
        let _ = rx.await;
    }));
    AdminServer {
        base: format!("http://{addr}"),
        _stop: tx,
    }
}

struct Stack {
    _legacy: Echo,
    _kernia: Echo,
    db: TestDatabase,
    cutover: Cutover,
    admin: AdminServer,
}

async fn stack(engine: Engine, extra: &str) -> Stack {
    let (legacy, kernia) = (Echo::start("legacy").await, Echo::start("kernia").await);
    let db = TestDatabase::create(engine).await;
    let cutover = Cutover::start(&toml(&legacy.url(), &kernia.url(), &db.url, extra)).await;
    let admin = start_admin(&cutover).await;
    Stack {
        _legacy: legacy,
        _kernia: kernia,
        db,
        cutover,
        admin,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_token_and_every_change_is_audited() {
    let s = stack(Engine::Postgres, "[rollout]\npercentage = 5\n").await;
    let url = |p: &str| format!("{}{p}", s.admin.base);
    let c = client();
    // Probes and metrics: no token.
    assert_eq!(c.get(url("/healthz")).send().await.unwrap().status(), 200);
    let ready = c.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    // Everything else: the token, as Bearer or as Basic's password.
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer "),
        Some("Basic Og=="),
    ] {
        let mut req = c.get(url("/api/rollout"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.headers().contains_key("www-authenticate"));
    }
    let got: serde_json::Value = c
        .get(url("/api/rollout"))
        .basic_auth("ops", Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["rollout"]["percentage"], 5.0);
    let v1 = got["version"].as_i64().unwrap();

    // Changes: JSON only, same origin only, reason required, validated.
    let put = |body: serde_json::Value| c.put(url("/api/rollout")).bearer_auth(TOKEN).json(&body);
    assert_eq!(
        put(json!({"percentage": 10}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        put(json!({"percentage": 101, "reason": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        put(json!({"percentag": 10, "reason": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let form = c
        .put(url("/api/rollout"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("percentage=10&reason=x");
    assert_eq!(form.send().await.unwrap().status(), 415);
    let foreign =
        put(json!({"kill_switch": true, "reason": "x"})).header("origin", "https://evil.example");
    assert_eq!(foreign.send().await.unwrap().status(), 403);
    assert_eq!(
        c.get(url("/api/rollout"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["version"],
        v1,
        "refused changes wrote nothing"
    );

    let r: serde_json::Value = put(json!({"percentage": 25.5, "allow": {"email_domains": ["@Beta.Example"]}, "reason": "phase 2"}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(r["version"], v1 + 1);
    assert_eq!(r["changed"], json!(["allow.email_domains", "percentage"]));
    assert_eq!(r["from"]["percentage"], 5.0);
    assert_eq!(r["to"]["percentage"], 25.5);
    assert_eq!(r["direction"], "to_kernia");
    assert_eq!(r["users_moved"], 0);
    // This copy applied it at once.
    let live = s.cutover.app.routing.settings();
    assert_eq!(live.percentage, 25.5);
    assert!(live.overrides.allow_email_domains.contains("beta.example"));
    // A partial change leaves the rest alone.
    let r: serde_json::Value = put(json!({"kill_switch": true, "reason": "drill"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["rollout"]["percentage"], 25.5);
    assert_eq!(r["rollout"]["kill_switch"], true);
    let h: serde_json::Value = c
        .get(url("/api/rollout/history?limit=2"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = h["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["reason"], "drill");
    assert_eq!(h[0]["interface"], "api");
    assert_eq!(h[1]["reason"], "phase 2");
    assert!(h[0]["changed_at_ms"].as_i64().unwrap() >= h[1]["changed_at_ms"].as_i64().unwrap());
    let status: serde_json::Value = c
        .get(url("/api/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["rollout"]["rollout"]["kill_switch"], true);
    assert!(status["progress"]["users"].is_i64());
    assert_eq!(
        c.get(url("/api/nothing"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(url("/api/rollout"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    // Bodies are capped.
    let big = c
        .put(url("/api/rollout"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024]);
    assert_eq!(big.send().await.unwrap().status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_what_is_not_ready() {
    // Clerk keys from a JWKS URL nobody answers: loaded keys = none.
    let clerk = ClerkInstance::new();
    let extra = format!(
        "[clerk]\npublishable_key = \"{}\"\njwks_url = \"http://127.0.0.1:9/jwks.json\"\n",
        clerk.publishable_key()
    );
    let s = stack(Engine::Sqlite, &extra).await;
    let resp = client()
        .get(format!("{}/readyz", s.admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["failed"], json!(["clerk_keys"]));
    assert_eq!(v["checks"]["database"], "ok");

    // A schema behind this binary is not ready either.
    let s = stack(Engine::Sqlite, "").await;
    let pool = s.db.connect().await;
    let mut conn = pool.acquire().await.unwrap();
    cutover::db::on_conn!(&mut conn.conn(), |c| {
        sqlx::query("DELETE FROM cutover_schema_migrations WHERE version = 4")
            .execute(c)
            .await
            .unwrap();
    });
    let resp = client()
        .get(format!("{}/readyz", s.admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["failed"], json!(["database"]));
    assert!(
        v["checks"]["database"].as_str().unwrap().contains("[4]"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text() {
    let clerk = ClerkInstance::new();
    let extra = format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\n[rollout]\npercentage = 42.5\n",
        clerk.publishable_key(),
        crate::harness::repo_root()
            .join("tests/fixtures/clerk/key_a.pub.pem")
            .display()
    );
    // The real Kernia app behind cutover, so a password really migrates.
    let f = crate::migration::fixture(Engine::Sqlite, &extra).await;
    let admin = start_admin(&f.cutover).await;
    let (digest, password) = crate::harness::pending::vector("bcrypt", "realistic");
    crate::harness::pending::seed(
        &f.db,
        "user_2metrics",
        "metrics@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let signed_in = crate::migration::sign_in(&f.cutover, "metrics@example.com", &password).await;
    assert_eq!(signed_in.status(), 200);
    // An expired Clerk token: counted as a refusal reason, never as a user.
    let now = crate::harness::clerk::now();
    let token = clerk
        .token("user_metrics")
        .issued_at(now - 120)
        .expires_at(now - 60)
        .build();
    let _ = client()
        .get(f.cutover.url("/x"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    // Per-request metrics come from the observe phase: the sign-in above
    // went to Kernia and was answered 200.

    let resp = client()
        .get(format!("{}/metrics", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    let names: std::collections::HashSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in [
        "cutover_requests_total",
        "cutover_request_duration_seconds",
        "cutover_identify_total",
        "cutover_migrations_total",
        "cutover_hash_queue_depth",
        "cutover_hash_wait_seconds",
        "cutover_reset_deliveries_total",
        "cutover_ledger_users",
        "cutover_rollout_percentage",
        "cutover_kill_switch",
        "cutover_jwks_refresh_total",
        "cutover_config_reloads_total",
    ] {
        assert!(names.contains(family), "{family} missing from:\n{text}");
    }
    let migrated = scrape.samples.iter().find(|x| {
        x.metric == "cutover_migrations_total"
            && x.labels.get("hasher") == Some("bcrypt")
            && x.labels.get("outcome") == Some("migrated")
    });
    assert!(
        matches!(migrated.map(|m| &m.value), Some(prometheus_parse::Value::Counter(n)) if *n >= 1.0),
        "the sign-in's migration is counted:\n{text}"
    );
    let refusal = scrape.samples.iter().find(|x| {
        x.metric == "cutover_identify_total"
            && x.labels.get("provider") == Some("clerk")
            && x.labels.get("outcome") == Some("expired")
    });
    assert!(
        refusal.is_some(),
        "an expired token counts as outcome=expired:\n{text}"
    );
    let migrated_users = scrape
        .samples
        .iter()
        .find(|x| x.metric == "cutover_ledger_users" && x.labels.get("state") == Some("migrated"));
    assert!(
        matches!(migrated_users.map(|m| &m.value), Some(prometheus_parse::Value::Gauge(n)) if *n == 1.0),
        "the ledger gauge counts this database's migrated user:\n{text}"
    );
    let counted = scrape.samples.iter().any(|x| {
        x.metric == "cutover_requests_total"
            && x.labels.get("upstream") == Some("legacy")
            && x.labels.get("status") == Some("200")
    });
    assert!(counted, "the request through cutover is counted:\n{text}");
    assert!(!text.contains("user_metrics"), "no user id in labels");
    assert!(!text.contains("/x\""), "no path in labels");
}

/// Ledger rows migrated on three different days, plus stragglers.
async fn seed_progress(db: &TestDatabase) -> (i64, i64) {
    let pool = db.connect().await;
    let mut conn = pool.acquire().await.unwrap();
    let today = cutover::control::seen::today();
    let mut migrated = 0;
    for i in 0..30 {
        let user = format!("user_dash_{i:02}");
        let entry = NewLedgerEntry {
            user_id: user.clone(),
            email: Some(format!("{user}@example.com")),
            hasher: Some(if i % 2 == 0 { "bcrypt" } else { "argon2id" }.into()),
            state: Some(LedgerState::PendingPassword),
            ..NewLedgerEntry::default()
        };
        ledger::insert_if_absent(&mut conn.conn(), &entry)
            .await
            .unwrap();
        if i < 12 {
            let method = ["legacy_password", "reset", "social"][i % 3];
            ledger::mark_migrated(&mut conn.conn(), &user, method)
                .await
                .unwrap();
            let day = today - (i as i64 % 3) * 2;
            cutover::db::on_conn!(&mut conn.conn(), |c| {
                sqlx::query("UPDATE cutover_ledger SET migrated_at = $1 WHERE user_id = $2")
                    .bind(day * 86_400 + 3600)
                    .bind(&user)
                    .execute(c)
                    .await
                    .unwrap();
            });
            migrated += 1;
        }
    }
    (30, migrated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_in_chromium_and_the_kill_switch_asks_first() {
    let s = stack(Engine::Sqlite, "[rollout]\npercentage = 20\n").await;
    let (users, migrated) = seed_progress(&s.db).await;
    let p = cutover::control::progress::compute(&s.cutover.app.db, 30)
        .await
        .unwrap();
    cutover::control::progress::snapshot(&s.cutover.app.db, &p)
        .await
        .unwrap();
    // A change through the API, to show in the history.
    let _ = client()
        .put(format!("{}/api/rollout", s.admin.base))
        .bearer_auth(TOKEN)
        .json(&json!({"percentage": 30, "reason": "<b>phase</b> 3"}))
        .send()
        .await
        .unwrap();

    let browser = Browser::launch().await;
    let auth = json!({ "Authorization": format!("Bearer {TOKEN}") });
    browser.open(&format!("{}/", s.admin.base), auth).await;
    let dom = browser.eval(r#"JSON.stringify({
        users: document.getElementById('n-users').textContent,
        migrated: document.getElementById('n-migrated').textContent,
        bars: document.querySelectorAll('svg#progress-chart rect.bar').length,
        barSum: [...document.querySelectorAll('svg#progress-chart rect.bar')].reduce((a, r) => a + Number(r.dataset.migrated), 0),
        barHeights: [...document.querySelectorAll('svg#progress-chart rect.bar')].map(r => r.getBBox().height),
        shareLine: !!document.querySelector('svg#progress-chart polyline.share'),
        chartWidth: document.getElementById('progress-chart').getBoundingClientRect().width,
        hashers: document.getElementById('hashers').textContent,
        methods: document.getElementById('methods').textContent,
        history: document.getElementById('history').innerHTML,
        kill: !!document.getElementById('kill'),
    })"#).await;
    let dom: serde_json::Value = serde_json::from_str(dom.as_str().unwrap()).unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    browser.screenshot(&shot).await;
    println!("dashboard screenshot: {}", shot.display());
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    assert_eq!(dom["users"], users.to_string());
    assert_eq!(dom["migrated"], migrated.to_string());
    assert_eq!(dom["bars"], 3, "three days with migrations: {dom}");
    assert_eq!(dom["barSum"], migrated);
    assert!(
        dom["barHeights"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h.as_f64().unwrap() > 0.0),
        "bars are drawn: {dom}"
    );
    assert_eq!(dom["shareLine"], true);
    assert!(dom["chartWidth"].as_f64().unwrap() > 300.0);
    assert!(dom["hashers"].as_str().unwrap().contains("bcrypt"));
    assert!(dom["methods"].as_str().unwrap().contains("legacy_password"));
    let history = dom["history"].as_str().unwrap();
    assert!(
        history.contains("&lt;b&gt;phase&lt;/b&gt; 3"),
        "reasons are escaped: {history}"
    );
    assert_eq!(dom["kill"], true);

    // The kill switch: declining the confirmation changes nothing…
    let v_before = s.cutover.app.routing.applied().version;
    browser
        .eval("document.getElementById('reason').value = 'drill'")
        .await;
    let click = browser
        .send(
            "Runtime.evaluate",
            json!({"expression": "document.getElementById('kill').click()"}),
        )
        .await;
    let dialog = browser.event("Page.javascriptDialogOpening").await;
    assert_eq!(dialog["type"], "confirm");
    assert!(dialog["message"].as_str().unwrap().contains("kill switch"));
    browser
        .call("Page.handleJavaScriptDialog", json!({"accept": false}))
        .await;
    let _ = click.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.cutover.app.routing.applied().version, v_before);
    assert!(!s.cutover.app.routing.applied().rollout.kill_switch);
    // …accepting it pulls the switch, and the page says so after reloading.
    let click = browser
        .send(
            "Runtime.evaluate",
            json!({"expression": "document.getElementById('kill').click()"}),
        )
        .await;
    browser.event("Page.javascriptDialogOpening").await;
    browser
        .call("Page.handleJavaScriptDialog", json!({"accept": true}))
        .await;
    let _ = click.await;
    browser.event("Page.loadEventFired").await;
    assert!(s.cutover.app.routing.applied().rollout.kill_switch);
    let state = browser
        .eval("document.getElementById('kill-state').textContent")
        .await;
    assert_eq!(state, "ON");
    let h = cutover::control::store::history(&s.cutover.app.db, 1)
        .await
        .unwrap();
    assert_eq!(h[0].reason, "drill");
    assert_eq!(h[0].interface, "api");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-killed.png");
    browser.screenshot(&shot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_coverage_and_stragglers_export_as_csv() {
    let clerk = ClerkInstance::new();
    let extra = format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\n",
        clerk.publishable_key(),
        crate::harness::repo_root()
            .join("tests/fixtures/clerk/key_a.pub.pem")
            .display()
    );
    let s = stack(Engine::Sqlite, &extra).await;
    // The CLI refuses a database Kernia has not set up: give it Kernia's tables.
    crate::import_support::create_kernia_schema(&s.db.connect().await, Engine::Sqlite).await;
    seed_progress(&s.db).await;
    // Two users seen through cutover today (a Clerk session each, many
    // requests): one migrated, one not.
    for user in ["user_dash_00", "user_dash_20"] {
        let token = clerk.token(user).build();
        for _ in 0..5 {
            let _ = client()
                .get(s.cutover.url("/app"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        s.cutover.app.seen.pending(),
        2,
        "one sighting per user per day, however many requests"
    );
    s.cutover.app.seen.flush(&s.cutover.app.db).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        toml("http://127.0.0.1:9", "http://127.0.0.1:9", &s.db.url, ""),
    )
    .unwrap();
    let cfg = path.to_str().unwrap();
    let (ok, out, err) = crate::harness::copies::cli(&["status", "-c", cfg, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["users"], 30);
    assert_eq!(v["migrated"], 12);
    assert_eq!(v["by_state"]["migrated"], 12);
    assert_eq!(v["active"]["seen"], 2);
    assert_eq!(v["active"]["migrated"], 1);
    assert_eq!(v["active"]["coverage"], 0.5);
    assert_eq!(v["stragglers"]["total"], 18);
    assert_eq!(v["stragglers"]["active"], 1);
    assert_eq!(v["migrated_by_method"]["legacy_password"], 4);
    assert_eq!(v["migrated_per_day"].as_array().unwrap().len(), 3);
    let bcrypt = v["by_hasher"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hasher"] == "bcrypt")
        .unwrap();
    assert_eq!(bcrypt["users"], 15);
    let (ok, out, _) = crate::harness::copies::cli(&["status", "-c", cfg]);
    assert!(ok);
    assert!(out.contains("active coverage"), "{out}");
    assert!(
        out.contains("1 of 2 users seen in the last 30 days are migrated (50.0%)"),
        "{out}"
    );

    // Every straggler, then only those not seen since today.
    let csv_path = dir.path().join("stragglers.csv");
    let csv = csv_path.to_str().unwrap();
    let (ok, _, err) = crate::harness::copies::cli(&["stragglers", "-c", cfg, "--export", csv]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "user_id",
            "email",
            "state",
            "hasher",
            "last_seen",
            "imported_at",
            "reset_requested_at"
        ]
    );
    assert_eq!(rows.records().count(), 18);
    let today = cutover::control::progress::date_of_day(cutover::control::seen::today());
    let (ok, _, err) = crate::harness::copies::cli(&[
        "stragglers",
        "-c",
        cfg,
        "--export",
        csv,
        "--inactive-since",
        &today,
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count(),
        17,
        "user_dash_20 was seen today"
    );
    assert!(!text.contains("user_dash_20"));
    let (ok, _, err) = crate::harness::copies::cli(&[
        "stragglers",
        "-c",
        cfg,
        "--export",
        csv,
        "--inactive-since",
        "2026-02-30",
    ]);
    assert!(!ok);
    assert!(err.contains("not a date"), "{err}");
}
