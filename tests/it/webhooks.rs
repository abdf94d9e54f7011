//! Clerk-shaped webhooks out (issue #12): real flows through cutover against
//! the real Kernia server reach a consumer written the way apps write them
//! (`verifyWebhook` from `@clerk/backend`), and every delivery verifies with
//! the Python `svix` library too.

use std::collections::HashMap;
use std::time::Duration;

use cutover::db::ledger::LedgerState;
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::consumer::{Consumer, accepted, summary, verify_with_python_svix};
use crate::harness::echo::Echo;
use crate::harness::kernia::{KerniaServer, client, session_cookie};
use crate::harness::pending::{seed, vector};
use crate::harness::process::Process;
use crate::harness::server::{Cutover, toml};

/// `[outbox]` for tests: retries a second apart, a short poll.
pub(crate) const FAST_OUTBOX: &str = "[outbox]\nretry_schedule_secs = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]\npoll_ms = 100\ndelivery_timeout_secs = 2\nlease_secs = 3\n";

pub(crate) fn webhooks_section(consumer_url: &str, secret: &str) -> String {
    format!(
        "{FAST_OUTBOX}[webhooks]\ninstance_id = \"ins_test123\"\n[[webhooks.endpoints]]\nurl = \"{consumer_url}\"\nsecret = \"{secret}\"\n"
    )
}

async fn post(c: &Cutover, path: &str, cookie: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = client().post(c.url(path)).json(&body);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

async fn sign_up(c: &Cutover, email: &str, name: &str) -> (String, String) {
    let resp = post(
        c,
        "/api/auth/sign-up/email",
        None,
        json!({"email": email, "password": "a-long-password-1", "name": name}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let cookie = session_cookie(&resp).unwrap();
    let body: Value = resp.json().await.unwrap();
    (body["user"]["id"].as_str().unwrap().to_string(), cookie)
}

fn types(deliveries: &[Value]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| d["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The accepted deliveries whose events belong to `user`'s requests, in
/// arrival order (the consumer's view names the user in different fields).
fn of_user<'a>(deliveries: &'a [Value], svix_ids: &[String]) -> Vec<&'a Value> {
    deliveries
        .iter()
        .filter(|d| svix_ids.iter().any(|id| d["svix_id"] == id.as_str()))
        .collect()
}

async fn kernia_side_changes_reach_an_apps_webhook_consumer(engine: Engine) {
    let secret = cutover::svix::SigningSecret::generate();
    let consumer = Consumer::start(&secret, None).await;
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let cfg = toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &webhooks_section(&consumer.url(), &secret),
    );
    let cutover = Cutover::start(&cfg).await;
    let db = kernia.db.connect().await;

    // Sign-up → user.created, session.created.
    let (ada, ada_cookie) = sign_up(&cutover, "ada@example.com", "Ada Lovelace").await;
    consumer
        .wait_until("Ada's sign-up events", |g| accepted(g).len() >= 2)
        .await;

    // Profile update, and the consumer fails it once with a 500: the same
    // svix-id comes again, and Ada's later events wait for it.
    consumer.fail_next(1, 500).await;
    let r = post(
        &cutover,
        "/api/auth/update-user",
        Some(&ada_cookie),
        json!({"name": "Ada King"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        &cutover,
        "/api/auth/organization/create",
        Some(&ada_cookie),
        json!({"name": "Acme", "slug": "acme"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", kernia.stderr());
    let org_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Bob signs up, Ada invites him, he accepts.
    let (bob, bob_cookie) = sign_up(&cutover, "bob@example.com", "Bob").await;
    let r = post(
        &cutover,
        "/api/auth/organization/invite-member",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "email": "bob@example.com", "role": "member"}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", kernia.stderr());
    let invitation_id = r.json::<Value>().await.unwrap()["invitation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        &cutover,
        "/api/auth/organization/accept-invitation",
        Some(&bob_cookie),
        json!({"invitationId": invitation_id}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", kernia.stderr());

    // A pending Clerk user migrates at sign-in: user.updated under the Clerk id.
    let (digest, password) = vector("bcrypt", "realistic");
    seed(
        &db,
        "user_2carolClerk",
        "carol@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let r = post(
        &cutover,
        "/api/auth/sign-in/email",
        None,
        json!({"email": "carol@example.com", "password": password}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let carol_cookie = session_cookie(&r).unwrap();

    // Bob signs out; Carol deletes her account.
    assert_eq!(
        post(&cutover, "/api/auth/sign-out", Some(&bob_cookie), json!({}))
            .await
            .status(),
        200
    );
    let r = post(
        &cutover,
        "/api/auth/delete-user",
        Some(&carol_cookie),
        json!({"current_password": password}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", kernia.stderr());

    let expected_total = 2 // Ada: user.created, session.created
        + 1 // user.updated (after one 500)
        + 2 // organization.created, organizationMembership.created
        + 2 // Bob: user.created, session.created
        + 1 // organizationInvitation.created
        + 2 // organizationInvitation.accepted, organizationMembership.created
        + 2 // Carol: user.updated (migration), session.created
        + 1 // session.ended
        + 1; // user.deleted
    let got = consumer
        .wait_until("every event", |g| accepted(g).len() >= expected_total)
        .await;
    // Wait until nothing is left to send (the last answers recorded): no
    // later duplicate can come.
    let outbox = cutover.app.outbox.as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let counts = outbox.counts().await.unwrap();
        if counts.pending == 0 {
            assert_eq!(counts.failed, 0, "{counts:?}");
            assert_eq!(
                counts.delivered as usize,
                expected_total,
                "{counts:?}: {:#?}",
                summary(&got)
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{counts:?}: {:#?}",
            summary(&got)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = consumer.received().await;

    // Every delivery verifies with @clerk/backend (in the consumer) …
    assert!(
        got.iter().all(|d| d["verified"] == true),
        "{:#?}",
        summary(&got)
    );
    // … and with the Python svix library.
    let python = verify_with_python_svix(&secret, &got).await;
    assert_eq!(python.len(), got.len());
    assert!(python.iter().all(|(_, ok)| *ok), "{python:?}");

    // Exactly once on 2xx.
    let ok = accepted(&got);
    assert_eq!(ok.len(), expected_total, "{:#?}", summary(&got));
    let mut seen = HashMap::new();
    for d in &ok {
        *seen
            .entry(d["svix_id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");

    // The one 500: the same svix-id again, then accepted.
    let failed: Vec<&Value> = got.iter().filter(|d| d["answered"] == 500).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["type"], "user.updated");
    let retried_id = failed[0]["svix_id"].as_str().unwrap();
    assert!(ok.iter().any(|d| d["svix_id"] == retried_id));

    // Types and the fields a consumer reads.
    let by_type = |t: &str| -> Vec<&Value> { ok.iter().filter(|d| d["type"] == t).collect() };
    let created = by_type("user.created");
    assert_eq!(created.len(), 2, "{:#?}", summary(&got));
    assert_eq!(created[0]["view"]["user_id"], ada.as_str());
    assert_eq!(created[0]["view"]["email"], "ada@example.com");
    assert_eq!(created[0]["view"]["first_name"], "Ada");
    assert_eq!(created[0]["view"]["last_name"], "Lovelace");
    assert_eq!(
        created[1]["view"]["user_id"],
        bob.as_str(),
        "{:#?}",
        summary(&got)
    );
    let updated = by_type("user.updated");
    assert_eq!(updated.len(), 2);
    let updated_of = |user: &str| {
        *updated
            .iter()
            .find(|d| d["view"]["user_id"] == user)
            .unwrap_or_else(|| panic!("no user.updated for {user}: {:#?}", summary(&got)))
    };
    assert_eq!(updated_of(&ada)["view"]["last_name"], "King");
    // A migrated user keeps the Clerk id.
    let carol = updated_of("user_2carolClerk");
    assert_eq!(carol["view"]["email"], "carol@example.com");
    assert_eq!(carol["view"]["password_enabled"], true);
    let org = by_type("organization.created");
    assert_eq!(org[0]["view"]["org_id"], org_id.as_str());
    assert_eq!(org[0]["view"]["name"], "Acme");
    // Across users there is no order: find each user's membership.
    let memberships = by_type("organizationMembership.created");
    assert_eq!(memberships.len(), 2);
    let membership_of = |user: &str| {
        *memberships
            .iter()
            .find(|d| d["view"]["user_id"] == user)
            .unwrap_or_else(|| panic!("no membership for {user}: {:#?}", summary(&got)))
    };
    let ada_m = membership_of(&ada);
    assert_eq!(ada_m["view"]["role"], "org:admin");
    assert_eq!(ada_m["view"]["org_id"], org_id.as_str());
    let bob_m = membership_of(&bob);
    assert_eq!(bob_m["view"]["role"], "org:member");
    assert_eq!(bob_m["view"]["org_id"], org_id.as_str());
    assert_eq!(bob_m["view"]["identifier"], "bob@example.com");
    let invited = by_type("organizationInvitation.created");
    assert_eq!(invited[0]["view"]["email"], "bob@example.com");
    assert_eq!(invited[0]["view"]["org_id"], org_id.as_str());
    assert_eq!(invited[0]["view"]["status"], "pending");
    let accepted_inv = by_type("organizationInvitation.accepted");
    assert_eq!(accepted_inv[0]["view"]["user_id"], bob.as_str());
    assert_eq!(accepted_inv[0]["view"]["status"], "accepted");
    let ended = by_type("session.ended");
    assert_eq!(ended[0]["view"]["user_id"], bob.as_str());
    assert_eq!(ended[0]["view"]["status"], "ended");
    let deleted = by_type("user.deleted");
    assert_eq!(deleted[0]["view"]["user_id"], "user_2carolClerk");
    assert_eq!(deleted[0]["view"]["deleted"], true);
    // The envelope as Clerk sends it.
    let envelope: Value = serde_json::from_str(ok[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["object"], "event");
    assert_eq!(envelope["instance_id"], "ins_test123");
    assert!(
        envelope["timestamp"].as_i64().unwrap() > 1_000_000_000_000,
        "milliseconds"
    );

    // In order per user: Ada's events arrived in the order she acted, the
    // 500'd update holding back her organization's events.
    let ada_order: Vec<&str> = ok
        .iter()
        .filter(|d| {
            let v = &d["view"];
            (v["user_id"] == ada.as_str() && d["type"] != "organizationMembership.created")
                || d["type"] == "organization.created"
                || (d["type"] == "organizationMembership.created" && v["user_id"] == ada.as_str())
                || d["type"] == "organizationInvitation.created"
        })
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        ada_order,
        vec![
            "user.created",
            "session.created",
            "user.updated",
            "organization.created",
            "organizationMembership.created",
            "organizationInvitation.created"
        ]
    );
    let bob_order: Vec<&str> = ok
        .iter()
        .filter(|d| {
            let v = &d["view"];
            v["user_id"] == bob.as_str() || d["type"] == "organizationInvitation.accepted"
        })
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        bob_order,
        vec![
            "user.created",
            "session.created",
            "organizationInvitation.accepted",
            "organizationMembership.created",
            "session.ended"
        ]
    );
    let carol: Vec<&str> = ok
        .iter()
        .filter(|d| d["view"]["user_id"] == "user_2carolClerk")
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        carol,
        vec!["user.updated", "session.created", "user.deleted"]
    );

    // Replay: `cutover webhooks replay` re-sends a range, same svix-ids.
    let created_ids: Vec<String> = created
        .iter()
        .map(|d| d["svix_id"].as_str().unwrap().to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "webhooks",
            "replay",
            "--since",
            "1h",
            "--type",
            "user.created",
            "-c",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued 2 event(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let again = consumer
        .wait_until("the replayed events", |g| {
            accepted(g).len() >= expected_total + 2
        })
        .await;
    let replayed = &accepted(&again)[expected_total..];
    assert_eq!(types(replayed), vec!["user.created", "user.created"]);
    assert_eq!(
        of_user(replayed, &created_ids).len(),
        2,
        "same svix-ids as the originals"
    );

    // `cutover webhooks list` shows them, none failed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["webhooks", "list", "--status", "failed", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 failed"), "{text}");
    cutover.stop().await;
}
both_engines!(kernia_side_changes_reach_an_apps_webhook_consumer);

/// kill -9 at the two worst moments: mid-delivery (the consumer has the
/// request, cutover never hears the answer) and between the commit and any
/// successful delivery (the consumer is down). Nothing is lost; the
/// redelivery keeps its svix-id.
async fn a_killed_cutover_delivers_after_restart(engine: Engine) {
    let secret = cutover::svix::SigningSecret::generate();
    let consumer = Consumer::start(&secret, None).await;
    let port = consumer.port;
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let cfg = toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &webhooks_section(&consumer.url(), &secret),
    );

    // 1. Mid-delivery.
    consumer.hold(true).await;
    let mut p = Process::start(&cfg);
    let r = client()
        .post(format!("{}/api/auth/sign-up/email", p.url))
        .json(
            &json!({"email": "kill@example.com", "password": "a-long-password-1", "name": "Kill"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = consumer
        .wait_until("the held delivery", |g| !g.is_empty())
        .await;
    let first_id = got[0]["svix_id"].as_str().unwrap().to_string();
    assert_eq!(got[0]["type"], "user.created");
    p.kill9();
    consumer.hold(false).await;
    let p = Process::start(&cfg);
    let got = consumer
        .wait_until("the redelivery after restart", |g| {
            accepted(g)
                .iter()
                .any(|d| d["svix_id"] == first_id.as_str())
        })
        .await;
    assert_eq!(got[0]["answered"], "peer_gone", "{:#?}", summary(&got));
    // session.created waited for user.created (same user) and follows it.
    let got = consumer
        .wait_until("session.created", |g| accepted(g).len() >= 2)
        .await;
    assert_eq!(
        types(&accepted(&got)),
        vec!["user.created", "session.created"]
    );

    // 2. Between commit and delivery: the consumer is down.
    consumer.kill().await;
    let r = client()
        .post(format!("{}/api/auth/sign-up/email", p.url))
        .json(
            &json!({"email": "down@example.com", "password": "a-long-password-1", "name": "Down"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a sign-up never waits for a consumer");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut p = p;
    p.kill9();
    let consumer = Consumer::start(&secret, Some(port)).await;
    let _p = Process::start(&cfg);
    let got = consumer
        .wait_until("the queued events after restart", |g| {
            accepted(g).len() >= 2
        })
        .await;
    assert_eq!(
        types(&accepted(&got)),
        vec!["user.created", "session.created"]
    );
    assert!(got.iter().all(|d| d["verified"] == true));
    let python = verify_with_python_svix(&secret, &got).await;
    assert!(python.iter().all(|(_, ok)| *ok), "{python:?}");
}
both_engines!(a_killed_cutover_delivers_after_restart);

/// The rest of the organization and session events through the real routes:
/// update, invitation cancelled, role change, removal, revoked sessions,
/// deletion — and `cutover webhooks send-test`.
async fn organization_and_session_changes_become_clerk_events(engine: Engine) {
    let secret = cutover::svix::SigningSecret::generate();
    let consumer = Consumer::start(&secret, None).await;
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let cfg = toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &webhooks_section(&consumer.url(), &secret),
    );
    let cutover = Cutover::start(&cfg).await;

    let (ada, ada_cookie) = sign_up(&cutover, "ada@example.com", "Ada").await;
    let (bob, bob_cookie) = sign_up(&cutover, "bob@example.com", "Bob").await;
    let ok = |r: reqwest::Response| async move {
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{body}");
        body
    };
    let org = ok(post(
        &cutover,
        "/api/auth/organization/create",
        Some(&ada_cookie),
        json!({"name": "Acme", "slug": "acme"}),
    )
    .await)
    .await;
    let org_id = org["id"].as_str().unwrap().to_string();
    ok(post(
        &cutover,
        "/api/auth/organization/update",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "data": {"name": "Acme Inc"}}),
    )
    .await)
    .await;
    let stray = ok(post(
        &cutover,
        "/api/auth/organization/invite-member",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "email": "stray@example.com", "role": "member"}),
    )
    .await)
    .await;
    ok(post(
        &cutover,
        "/api/auth/organization/cancel-invitation",
        Some(&ada_cookie),
        json!({"invitationId": stray["invitation"]["id"]}),
    )
    .await)
    .await;
    let inv = ok(post(
        &cutover,
        "/api/auth/organization/invite-member",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "email": "bob@example.com", "role": "member"}),
    )
    .await)
    .await;
    let accepted_body = ok(post(
        &cutover,
        "/api/auth/organization/accept-invitation",
        Some(&bob_cookie),
        json!({"invitationId": inv["invitation"]["id"]}),
    )
    .await)
    .await;
    let member_id = accepted_body["member"]["id"].as_str().unwrap().to_string();
    ok(post(
        &cutover,
        "/api/auth/organization/update-member-role",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "memberId": member_id, "role": "admin"}),
    )
    .await)
    .await;
    ok(post(
        &cutover,
        "/api/auth/organization/remove-member",
        Some(&ada_cookie),
        json!({"organizationId": org_id, "memberIdOrEmail": member_id}),
    )
    .await)
    .await;
    // Ada signs in a second time, then revokes her other sessions.
    let r = post(
        &cutover,
        "/api/auth/sign-in/email",
        None,
        json!({"email": "ada@example.com", "password": "a-long-password-1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let second = session_cookie(&r).unwrap();
    ok(post(
        &cutover,
        "/api/auth/revoke-other-sessions",
        Some(&second),
        json!({}),
    )
    .await)
    .await;
    ok(post(
        &cutover,
        "/api/auth/organization/delete",
        Some(&second),
        json!({"organizationId": org_id}),
    )
    .await)
    .await;

    let expected = [
        ("user.created", 2),
        ("session.created", 3),
        ("organization.created", 1),
        ("organizationMembership.created", 2),
        ("organization.updated", 1),
        ("organizationInvitation.created", 2),
        ("organizationInvitation.revoked", 1),
        ("organizationInvitation.accepted", 1),
        ("organizationMembership.updated", 1),
        ("organizationMembership.deleted", 1),
        ("session.revoked", 1),
        ("organization.deleted", 1),
    ];
    let total: usize = expected.iter().map(|(_, n)| n).sum();
    let got = consumer
        .wait_until("every event", |g| accepted(g).len() >= total)
        .await;
    let ok_deliveries = accepted(&got);
    for (ty, n) in expected {
        let found: Vec<&Value> = ok_deliveries.iter().filter(|d| d["type"] == ty).collect();
        assert_eq!(found.len(), n, "{ty}: {:#?}", summary(&got));
    }
    let find = |ty: &str| ok_deliveries.iter().find(|d| d["type"] == ty).unwrap();
    assert_eq!(find("organization.updated")["view"]["name"], "Acme Inc");
    assert_eq!(
        find("organizationInvitation.revoked")["view"]["email"],
        "stray@example.com"
    );
    assert_eq!(
        find("organizationInvitation.revoked")["view"]["status"],
        "revoked"
    );
    let role = find("organizationMembership.updated");
    assert_eq!(
        (
            role["view"]["user_id"].as_str(),
            role["view"]["role"].as_str()
        ),
        (Some(bob.as_str()), Some("org:admin"))
    );
    assert_eq!(
        find("organizationMembership.deleted")["view"]["user_id"],
        bob.as_str()
    );
    let revoked = find("session.revoked");
    assert_eq!(revoked["view"]["user_id"], ada.as_str());
    assert_eq!(revoked["view"]["status"], "revoked");
    assert_eq!(
        find("organization.deleted")["view"]["org_id"],
        org_id.as_str()
    );
    assert_eq!(find("organization.deleted")["view"]["deleted"], true);
    assert!(got.iter().all(|d| d["verified"] == true));

    // `cutover webhooks send-test`: a verified cutover.test arrives.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["webhooks", "send-test", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = consumer
        .wait_until("the test event", |g| {
            g.iter().any(|d| d["type"] == "cutover.test")
        })
        .await;
    let test_event = got.iter().find(|d| d["type"] == "cutover.test").unwrap();
    assert_eq!(test_event["verified"], true);
    assert_eq!(test_event["answered"], 200);
    cutover.stop().await;
}
both_engines!(organization_and_session_changes_become_clerk_events);

/// SIGTERM with a delivery in flight: cutover finishes it and records it
/// before exiting, so the next start does not send it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_delivery_in_flight() {
    let secret = cutover::svix::SigningSecret::generate();
    let consumer = Consumer::start(&secret, None).await;
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let cfg = toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &webhooks_section(&consumer.url(), &secret),
    );
    consumer.hold(true).await;
    let mut p = Process::start(&cfg);
    let r = client()
        .post(format!("{}/api/auth/sign-up/email", p.url))
        .json(
            &json!({"email": "term@example.com", "password": "a-long-password-1", "name": "Term"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = consumer
        .wait_until("the held delivery", |g| !g.is_empty())
        .await;
    let held_id = got[0]["svix_id"].as_str().unwrap().to_string();
    p.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "cutover waits for the delivery in hand"
    );
    consumer.hold(false).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "cutover exited with {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "cutover did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(consumer.received().await[0]["answered"], 200);
    // The next start sends what was left (session.created), not the delivered one again.
    let _p = Process::start(&cfg);
    let got = consumer
        .wait_until("session.created", |g| accepted(g).len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got2 = consumer.received().await;
    assert_eq!(got2.len(), got.len(), "{:#?}", summary(&got2));
    assert_eq!(
        types(&accepted(&got2)),
        vec!["user.created", "session.created"]
    );
    assert_eq!(
        got2.iter()
            .filter(|d| d["svix_id"] == held_id.as_str())
            .count(),
        1
    );
}
