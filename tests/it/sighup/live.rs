//! What a SIGHUP swaps into the running proxy, on the real binary over plain
//! HTTP: the upstreams (a slow answer and a WebSocket begun before the reload
//! finish on the old upstream), `[limits]` (the body limit per request, the
//! connection limit down and up), the Clerk key (a token of the old key stops
//! being an identity at once), and a broken file, which changes none of them.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::{hup, wait_for_reloads};
use crate::harness::Engine;
use crate::harness::clerk::{ClerkInstance, ClerkKey};
use crate::harness::copies::{ADMIN_TOKEN_ENV, Copy};
use crate::harness::databases::TestDatabase;
use crate::harness::echo::{self, Echo};
use crate::harness::repo_root;

/// A plain-HTTP copy's configuration; `sections` is appended as it is.
fn config(legacy: &str, kernia: &str, db: &str, sections: &str) -> String {
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
{sections}
"#,
        secret = crate::harness::kernia::SECRET,
    )
}

/// A database with Kernia's schema (the CLI refuses one without).
async fn database() -> TestDatabase {
    let db = TestDatabase::create(Engine::Sqlite).await;
    db.add_kernia_schema().await;
    db
}

/// Replace `from` (which must be there) with `to` in the copy's file.
fn rewrite(copy: &Copy, from: &str, to: &str) {
    let text = std::fs::read_to_string(&copy.config).unwrap();
    assert!(text.contains(from), "`{from}` is not in:\n{text}");
    std::fs::write(&copy.config, text.replace(from, to)).unwrap();
}

/// Rewrite, SIGHUP, and wait until the reload counted as `outcome` for the
/// `count`-th time.
async fn reload(copy: &Copy, edits: &[(&str, &str)], outcome: &str, count: u64) {
    for (from, to) in edits {
        rewrite(copy, from, to);
    }
    hup(copy);
    wait_for_reloads(copy, outcome, count).await;
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap()
}

async fn get(http: &reqwest::Client, copy: &Copy, path: &str) -> serde_json::Value {
    echo::read(
        http.get(format!("{}{path}", copy.url))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_sends_new_requests_to_new_upstreams_and_lets_those_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (legacy_a, kernia_a) = (Echo::start("legacy-a").await, Echo::start("kernia-a").await);
    let (legacy_b, kernia_b) = (Echo::start("legacy-b").await, Echo::start("kernia-b").await);
    let db = database().await;
    let copy = Copy::start(
        dir.path(),
        "upstreams",
        &config(&legacy_a.url(), &kernia_a.url(), &db.url, ""),
    );
    let http = reqwest::Client::new();
    assert_eq!(get(&http, &copy, "/page").await["served_by"], "legacy-a");
    assert_eq!(
        get(&http, &copy, "/api/auth/get-session").await["served_by"],
        "kernia-a"
    );

    // In flight across the reload: a slow answer and a WebSocket.
    let slow = {
        let url = format!("{}/slow?ms=4000", copy.url);
        tokio::spawn(async move { echo::read(reqwest::get(url).await.unwrap()).await })
    };
    let ws_url = format!("{}/ws", copy.url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let echoed = |ws_next: Option<Result<Message, _>>| ws_next.unwrap().unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(echoed(ws.next().await), Message::text("before"));
    // The page, the WebSocket handshake and the slow request have arrived.
    tokio::time::timeout(Duration::from_secs(10), async {
        while legacy_a.served() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the slow request reached the old upstream");

    reload(
        &copy,
        &[
            (&legacy_a.url(), &legacy_b.url()),
            (&kernia_a.url(), &kernia_b.url()),
        ],
        "ok",
        1,
    )
    .await;
    assert!(
        !slow.is_finished(),
        "the slow request must still be in flight after the reload"
    );
    // New requests, on the same client connection, reach the new upstreams.
    assert_eq!(get(&http, &copy, "/page").await["served_by"], "legacy-b");
    assert_eq!(
        get(&http, &copy, "/api/auth/get-session").await["served_by"],
        "kernia-b"
    );
    // What began before finishes on the old ones.
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(echoed(ws.next().await), Message::text("after"));
    let answer = slow.await.unwrap();
    assert_eq!(answer["served_by"], "legacy-a");
    assert_eq!(answer["path"], "/slow");
    // A new WebSocket goes to the new legacy upstream.
    let served_b = legacy_b.served();
    let (mut ws_b, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    ws_b.send(Message::text("new")).await.unwrap();
    assert_eq!(echoed(ws_b.next().await), Message::text("new"));
    assert_eq!(legacy_b.served(), served_b + 1);
    assert_eq!(legacy_a.served(), 3, "nothing new reached the old upstream");

    let log = log(dir.path(), "upstreams");
    assert!(
        log.lines()
            .any(|l| l.contains("configuration reloaded") && l.contains("upstreams")),
        "{log}"
    );
    assert!(!log.contains("cannot change while running"), "{log}");
}

async fn post(http: &reqwest::Client, copy: &Copy, bytes: usize) -> reqwest::StatusCode {
    http.post(format!("{}/upload", copy.url))
        .body(vec![b'x'; bytes])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_limits_of_new_requests_and_resizes_the_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = Echo::start("legacy").await;
    let db = database().await;
    let copy = Copy::start(
        dir.path(),
        "limits",
        &config(
            &legacy.url(),
            &legacy.url(),
            &db.url,
            "[limits]\nmax_body_bytes = 100000\n",
        ),
    );
    // One client throughout: its kept-alive connection sees every change.
    let http = reqwest::Client::new();
    assert_eq!(post(&http, &copy, 50_000).await, 200);

    reload(
        &copy,
        &[("max_body_bytes = 100000", "max_body_bytes = 1000")],
        "ok",
        1,
    )
    .await;
    assert_eq!(post(&http, &copy, 50_000).await, 413);
    assert_eq!(post(&http, &copy, 500).await, 200);

    reload(
        &copy,
        &[("max_body_bytes = 1000", "max_body_bytes = 100000")],
        "ok",
        2,
    )
    .await;
    assert_eq!(post(&http, &copy, 50_000).await, 200);

    // Down to one connection while none is open: the next one is served,
    // one more waits (not refused, not dropped)…
    drop(http);
    tokio::time::sleep(Duration::from_millis(200)).await;
    reload(
        &copy,
        &[(
            "max_body_bytes = 100000",
            "max_body_bytes = 100000\nmax_connections = 1",
        )],
        "ok",
        3,
    )
    .await;
    let held = reqwest::Client::new();
    assert_eq!(get(&held, &copy, "/first").await["path"], "/first");
    let waiting = {
        let url = format!("{}/second", copy.url);
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .timeout(Duration::from_secs(30))
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "a second connection must wait while max_connections = 1"
    );
    assert_eq!(get(&held, &copy, "/again").await["path"], "/again");

    // … until the limit is raised: then it is served at once.
    reload(
        &copy,
        &[("max_connections = 1", "max_connections = 4")],
        "ok",
        4,
    )
    .await;
    let second = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting connection is served once the limit is raised")
        .unwrap()
        .unwrap();
    assert_eq!(echo::read(second).await["path"], "/second");
    assert_eq!(get(&held, &copy, "/still").await["path"], "/still");
}

/// The `[clerk]` section for `instance` with the key in `key_file`.
fn clerk_section(instance: &ClerkInstance, key_file: &Path) -> String {
    format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\nauthorized_parties = [\"{}\"]\n",
        instance.publishable_key(),
        key_file.display(),
        instance.app_origin
    )
}

/// Who the app is told the bearer of `token` is: (provider, user id).
async fn who(copy: &Copy, token: &str) -> (String, Option<String>) {
    let e = echo::read(
        reqwest::Client::new()
            .get(format!("{}/me", copy.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        echo::header(&e, "x-cutover-provider").unwrap().to_string(),
        echo::header(&e, "x-cutover-user-id").map(str::to_string),
    )
}

fn clerk_user(id: &str) -> (String, Option<String>) {
    ("clerk".into(), Some(id.into()))
}

fn anonymous() -> (String, Option<String>) {
    ("anonymous".into(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_clerk_key_and_a_token_of_the_old_key_stops_being_an_identity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixtures = repo_root().join("tests/fixtures/clerk");
    let (key_a, key_b) = (d.join("a.pub.pem"), d.join("b.pub.pem"));
    std::fs::copy(fixtures.join("key_a.pub.pem"), &key_a).unwrap();
    std::fs::copy(fixtures.join("key_b.pub.pem"), &key_b).unwrap();
    let clerk = ClerkInstance::new();
    let legacy = Echo::start("legacy").await;
    let db = database().await;
    let copy = Copy::start(
        d,
        "clerk",
        &config(
            &legacy.url(),
            &legacy.url(),
            &db.url,
            &clerk_section(&clerk, &key_a),
        ),
    );
    let token_a = clerk.token("user_a").build();
    let token_b = clerk.token("user_b").signed_with(&ClerkKey::b()).build();
    assert_eq!(who(&copy, &token_a).await, clerk_user("user_a"));
    assert_eq!(who(&copy, &token_a).await, clerk_user("user_a")); // cached now
    assert_eq!(who(&copy, &token_b).await, anonymous());

    // `jwt_key_file` now names key B: the cached key-A token is refused.
    let (a, b) = (key_a.display().to_string(), key_b.display().to_string());
    reload(&copy, &[(&a, &b)], "ok", 1).await;
    assert_eq!(who(&copy, &token_a).await, anonymous());
    assert_eq!(who(&copy, &token_b).await, clerk_user("user_b"));

    // The key file rewritten in place (the configuration unchanged): key A again.
    std::fs::copy(&key_a, &key_b).unwrap();
    reload(&copy, &[], "ok", 2).await;
    assert_eq!(who(&copy, &token_a).await, clerk_user("user_a"));
    assert_eq!(who(&copy, &token_b).await, anonymous());

    // `[clerk]` removed: no Clerk sessions at all.
    let section = clerk_section(&clerk, &key_b);
    reload(&copy, &[(&section, "")], "ok", 3).await;
    assert_eq!(who(&copy, &token_a).await, anonymous());

    let log = log(d, "clerk");
    assert!(!log.contains("cannot change while running"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_file_keeps_the_upstreams_limits_and_clerk_key_and_counts_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_a = repo_root().join("tests/fixtures/clerk/key_a.pub.pem");
    let clerk = ClerkInstance::new();
    let (legacy_a, legacy_b) = (Echo::start("legacy-a").await, Echo::start("legacy-b").await);
    let db = database().await;
    let sections = format!(
        "[limits]\nmax_body_bytes = 1000\n{}",
        clerk_section(&clerk, &key_a)
    );
    let copy = Copy::start(
        d,
        "broken",
        &config(&legacy_a.url(), &legacy_a.url(), &db.url, &sections),
    );
    let http = reqwest::Client::new();
    let token = clerk.token("user_a").build();
    // What the file started with is what applies.
    let unchanged = async || {
        assert_eq!(get(&http, &copy, "/page").await["served_by"], "legacy-a");
        assert_eq!(post(&http, &copy, 500).await, 200);
        assert_eq!(post(&http, &copy, 5000).await, 413);
        assert_eq!(who(&copy, &token).await, clerk_user("user_a"));
    };
    unchanged().await;

    // A legacy URL that is not one, beside a lower limit: refused whole.
    let legacy_line = format!("legacy = \"{}\"", legacy_a.url());
    reload(
        &copy,
        &[
            (&legacy_line, "legacy = \"ftp://legacy.example\""),
            ("max_body_bytes = 1000", "max_body_bytes = 100"),
        ],
        "error",
        1,
    )
    .await;
    unchanged().await;

    // A good URL, but the Clerk key file is gone.
    let missing = d.join("missing.pem").display().to_string();
    reload(
        &copy,
        &[
            (
                "legacy = \"ftp://legacy.example\"",
                &format!("legacy = \"{}\"", legacy_b.url()),
            ),
            (&key_a.display().to_string(), &missing),
        ],
        "error",
        2,
    )
    .await;
    unchanged().await;

    // A file that validates, but its JWKS URL gives no key: refused after
    // the new upstream client and limits were built, before any swapped.
    reload(
        &copy,
        &[(
            &format!("jwt_key_file = \"{missing}\""),
            "jwks_url = \"http://127.0.0.1:1/.well-known/jwks.json\"",
        )],
        "error",
        3,
    )
    .await;
    unchanged().await;
    assert_eq!(legacy_b.served(), 0);
    wait_for_reloads(&copy, "ok", 0).await;

    let log = log(d, "broken");
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("configuration reload refused; nothing changed"))
        .collect();
    assert_eq!(refused.len(), 3, "{log}");
    assert!(refused[0].contains("upstreams.legacy"), "{}", refused[0]);
    assert!(refused[1].contains("clerk.jwt_key_file"), "{}", refused[1]);
    assert!(refused[2].contains("clerk.jwks_url"), "{}", refused[2]);
}
