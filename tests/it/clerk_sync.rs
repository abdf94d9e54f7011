//! Live sync with Clerk while both run (issue 11), through a running cutover
//! against the real Kernia server on PostgreSQL and SQLite: Clerk's webhooks
//! signed as Svix signs them, and live password verification against the
//! Clerk emulator's Backend API.

use cutover::db::ledger::LedgerState;
use cutover::db::{Db, on_conn};
use serde_json::json;

use crate::both_engines;
use crate::harness::clerk_api::{ClerkApi, ClerkData, KEY};
use crate::harness::echo::Echo;
use crate::harness::kernia::{KerniaServer, client, session_cookie, session_user};
use crate::harness::pending::{credential, entry, seed, vector};
use crate::harness::server::{Cutover, toml};
use crate::harness::svix_sender::{self, SECRET, SvixSender, event, now, user};
use crate::harness::{Engine, unique};
use crate::migration::sign_in;

struct Fixture {
    kernia: KerniaServer,
    _legacy: Echo,
    cutover: Cutover,
    clerk: ClerkApi,
    db: Db,
    svix: SvixSender,
}

impl Fixture {
    fn hook(&self) -> String {
        self.cutover.url("/__cutover/clerk/webhooks")
    }

    /// Deliver one event as a new Svix message; returns (status, outcome).
    async fn deliver(&self, body: &str) -> (u16, String) {
        let id = unique("msg_");
        self.deliver_as(&id, body).await
    }

    async fn deliver_as(&self, id: &str, body: &str) -> (u16, String) {
        let resp = self.svix.send(&self.hook(), id, body).await;
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.unwrap_or(json!({}));
        (
            status,
            v["outcome"]
                .as_str()
                .or(v["code"].as_str())
                .unwrap_or("")
                .to_string(),
        )
    }
}

async fn fixture_with(engine: Engine, session_cache_ms: u64, extra: &str) -> Fixture {
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let clerk = ClerkApi::start(ClerkData {
        retry_after_secs: 7,
        ..ClerkData::default()
    })
    .await;
    let sync = format!(
        r#"
[clerk_sync]
webhook_secret = "{SECRET}"
secret_key = "{KEY}"
api_url = "{}"
live_timeout_ms = 3000
{extra}
"#,
        clerk.url()
    );
    let text = toml(&legacy.url(), &kernia.base_url, &kernia.db.url, &sync).replace(
        "session_cache_ms = 200",
        &format!("session_cache_ms = {session_cache_ms}"),
    );
    let cutover = Cutover::start(&text).await;
    let db = kernia.db.connect().await;
    Fixture {
        kernia,
        _legacy: legacy,
        cutover,
        clerk,
        db,
        svix: SvixSender::new(SECRET),
    }
}

async fn fixture(engine: Engine) -> Fixture {
    fixture_with(engine, 200, "breaker_failures = 1000").await
}

async fn kernia_name(db: &Db, user_id: &str) -> Option<String> {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| {
        sqlx::query_scalar::<_, Option<String>>(r#"SELECT name FROM "user" WHERE id = $1"#)
            .bind(user_id)
            .fetch_optional(c)
            .await
            .unwrap()
            .flatten()
    })
}

async fn kernia_banned(db: &Db, user_id: &str) -> bool {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| sqlx::query_scalar::<_, Option<bool>>(
        r#"SELECT banned FROM "user" WHERE id = $1"#
    )
    .bind(user_id)
    .fetch_one(c)
    .await
    .unwrap()
    .unwrap_or(false))
}

async fn recorded_events(db: &Db) -> i64 {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM cutover_clerk_events"
    )
    .fetch_one(c)
    .await
    .unwrap())
}

#[tokio::test]
async fn the_sender_signs_as_svix_does_and_cutover_verifies_what_svix_signs() {
    // Svix's published test vector (reference clerk.md §8.1).
    let vector = SvixSender::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    let body = r#"{"email":"test@example.com","username":"test_user"}"#;
    assert_eq!(
        vector.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );

    // The Svix library accepts what our sender signs, and refuses a tampered body.
    let sender = SvixSender::new(SECRET);
    let body = event(
        "user.created",
        now() * 1000,
        user("user_2o", "o@x.com", "O", 1),
    );
    let headers = sender.headers("msg_oracle1", now(), &body);
    let (ok, out) = svix_sender::oracle_verify(SECRET, &headers, &body).await;
    assert!(ok, "the Svix library refused our sender: {out}");
    let (ok, _) = svix_sender::oracle_verify(SECRET, &headers, &body.replace("o@x", "p@x")).await;
    assert!(!ok, "the oracle accepted a tampered body");

    // cutover's verifier accepts what the Svix library signs, and only that.
    let ts = now();
    let signature = svix_sender::oracle_sign(SECRET, "msg_oracle2", ts, &body).await;
    assert_eq!(signature, sender.sign("msg_oracle2", ts, &body));
    let secret = cutover::svix::SigningSecret::parse(SECRET).unwrap();
    let signed = cutover::svix::SignedHeaders {
        id: "msg_oracle2",
        timestamp: &ts.to_string(),
        signature: &signature,
    };
    assert!(secret.verify(&signed, body.as_bytes(), now()).is_ok());
    assert!(secret.verify(&signed, b"{}", now()).is_err());
}

async fn webhooks_apply_once_in_order_and_refuse_bad_signatures(engine: Engine) {
    let f = fixture(engine).await;
    let (digest, _) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2jane",
        "jane@x.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let t = now() * 1000;

    // A change at Clerk reaches the pending user's Kernia row and ledger row.
    let newer = event(
        "user.updated",
        t,
        user("user_2jane", "jane.new@x.com", "Newer", t),
    );
    let (status, outcome) = f.deliver_as("msg_newer", &newer).await;
    assert_eq!(
        (status, outcome.as_str()),
        (200, "applied"),
        "{}",
        f.kernia.stderr()
    );
    assert_eq!(
        kernia_name(&f.db, "user_2jane").await.as_deref(),
        Some("Newer Tester")
    );
    let e = entry(&f.db, "user_2jane").await;
    assert_eq!(e.email.as_deref(), Some("jane.new@x.com"));
    assert_eq!(
        e.state,
        LedgerState::PendingPassword,
        "no password change: the digest stays"
    );
    assert_eq!(e.digest.as_deref(), Some(digest.as_str()));

    // Svix retries the same message: nothing happens again.
    let (status, outcome) = f.deliver_as("msg_newer", &newer).await;
    assert_eq!((status, outcome.as_str()), (200, "duplicate"));

    // An older change delivered late does not overwrite the newer one.
    let older = event(
        "user.updated",
        t - 5000,
        user("user_2jane", "jane.old@x.com", "Older", t - 5000),
    );
    let (status, outcome) = f.deliver(&older).await;
    assert_eq!((status, outcome.as_str()), (200, "stale"));
    assert_eq!(
        kernia_name(&f.db, "user_2jane").await.as_deref(),
        Some("Newer Tester")
    );
    assert_eq!(
        entry(&f.db, "user_2jane").await.email.as_deref(),
        Some("jane.new@x.com")
    );

    // Forged, tampered, replayed-too-late and unsigned deliveries: 4xx, nothing touched.
    let events_before = recorded_events(&f.db).await;
    let forged_body = event(
        "user.updated",
        t + 9000,
        user("user_2jane", "evil@x.com", "Evil", t + 9000),
    );
    let forger = SvixSender::new("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let resp = forger.send(&f.hook(), "msg_forged", &forged_body).await;
    assert_eq!(resp.status(), 401);
    let mut tampered = f.svix.headers("msg_tampered", now(), &newer);
    let resp = f.svix.post(&f.hook(), &tampered, &forged_body).await;
    assert_eq!(resp.status(), 401, "a signature of another body");
    tampered = f.svix.headers("msg_late", now() - 600, &forged_body);
    let resp = f.svix.post(&f.hook(), &tampered, &forged_body).await;
    assert_eq!(resp.status(), 401, "outside the five-minute window");
    let unbranded: Vec<(String, String)> = f
        .svix
        .headers("msg_unbranded", now(), &forged_body)
        .into_iter()
        .map(|(k, v)| (k.replace("svix-", "webhook-"), v))
        .collect();
    let resp = f.svix.post(&f.hook(), &unbranded, &forged_body).await;
    assert_eq!(
        resp.status(),
        400,
        "Clerk's verifyWebhook needs the svix-* names"
    );
    assert_eq!(
        kernia_name(&f.db, "user_2jane").await.as_deref(),
        Some("Newer Tester")
    );
    assert_eq!(
        entry(&f.db, "user_2jane").await.email.as_deref(),
        Some("jane.new@x.com")
    );
    assert_eq!(
        recorded_events(&f.db).await,
        events_before,
        "a refused delivery is not recorded"
    );

    // Limits: a body over the limit, and any method but POST.
    let huge = "x".repeat(2 * 1024 * 1024);
    let resp = f.svix.send(&f.hook(), "msg_huge", &huge).await;
    assert_eq!(resp.status(), 413);
    let resp = client().get(f.hook()).send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // Organizations, memberships and invitations go through the import's writers.
    let org = json!({"object": "organization", "id": "org_2acme", "name": "Acme", "slug": "acme",
        "has_image": false, "public_metadata": {}, "created_by": "user_2jane",
        "created_at": t, "updated_at": t});
    assert_eq!(
        f.deliver(&event("organization.created", t, org.clone()))
            .await
            .1,
        "applied"
    );
    let member = json!({"object": "organization_membership", "id": "orgmem_2j", "role": "org:admin",
        "organization": org, "public_user_data": {"user_id": "user_2jane"},
        "created_at": t, "updated_at": t});
    assert_eq!(
        f.deliver(&event("organizationMembership.created", t, member))
            .await
            .1,
        "applied"
    );
    let invite = json!({"object": "organization_invitation", "id": "orginv_2b", "email_address": "bob@x.com",
        "role": "org:member", "organization_id": "org_2acme", "inviter_id": "user_2jane",
        "status": "pending", "expires_at": (now() + 86_400) * 1000, "created_at": t, "updated_at": t});
    assert_eq!(
        f.deliver(&event("organizationInvitation.created", t, invite))
            .await
            .1,
        "applied"
    );
    let revoked = json!({"object": "organization_invitation", "id": "orginv_2b", "status": "revoked", "updated_at": t + 1});
    assert_eq!(
        f.deliver(&event("organizationInvitation.revoked", t + 1, revoked))
            .await
            .1,
        "applied"
    );
    let mut conn = f.db.acquire().await.unwrap();
    let (role, status): (String, String) = on_conn!(&mut conn.conn(), |c| {
        sqlx::query_as(
        r#"SELECT m.role, i.status FROM member m, invitation i WHERE m.id = 'orgmem_2j' AND i.id = 'orginv_2b'"#
    )
    .fetch_one(c)
    .await
    .unwrap()
    });
    assert_eq!((role.as_str(), status.as_str()), ("owner", "canceled"));
    drop(conn);
    let gone = json!({"object": "organization_membership", "id": "orgmem_2j", "role": "org:admin",
        "organization": {"id": "org_2acme"}, "public_user_data": {"user_id": "user_2jane"}, "updated_at": t + 2});
    assert_eq!(
        f.deliver(&event("organizationMembership.deleted", t + 2, gone))
            .await
            .1,
        "applied"
    );
    let mut conn = f.db.acquire().await.unwrap();
    let members: i64 = on_conn!(&mut conn.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM member WHERE id = 'orgmem_2j'"
    )
    .fetch_one(c)
    .await
    .unwrap());
    assert_eq!(members, 0);
}
both_engines!(webhooks_apply_once_in_order_and_refuse_bad_signatures);

async fn password_changed_at_clerk_makes_the_digest_stale_and_the_new_one_migrates_live(
    engine: Engine,
) {
    let f = fixture(engine).await;
    let (digest, old_password) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2pat",
        "pat@x.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    f.clerk
        .data()
        .passwords
        .insert("user_2pat".into(), Some("the-new-password-9".into()));

    // Clerk says the password changed after the export.
    let t = now() * 1000 + 1000;
    let mut changed = user("user_2pat", "pat@x.com", "Pat", t);
    changed["password_last_updated_at"] = json!(t);
    assert_eq!(
        f.deliver(&event("user.updated", t, changed)).await.1,
        "applied"
    );
    let e = entry(&f.db, "user_2pat").await;
    assert_eq!(e.state, LedgerState::PendingReset);
    assert!(
        e.digest.is_none(),
        "a stale digest is dropped, never used again"
    );

    // The old password no longer migrates: Clerk says 422, Kernia's 401 stands.
    let old = sign_in(&f.cutover, "pat@x.com", &old_password).await;
    assert_eq!(old.status(), 401);
    assert!(credential(&f.db, "user_2pat").await.is_none());
    assert_eq!(
        entry(&f.db, "user_2pat").await.state,
        LedgerState::PendingReset
    );

    // The new one does, live, and Kernia issues its own session.
    let new = sign_in(&f.cutover, "pat@x.com", "the-new-password-9").await;
    assert_eq!(new.status(), 200, "{}", f.kernia.stderr());
    let cookie = session_cookie(&new).unwrap();
    assert_eq!(
        session_user(&f.cutover.url(""), &cookie).await.as_deref(),
        Some("user_2pat")
    );
    let e = entry(&f.db, "user_2pat").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("clerk_password"));
    assert!(
        credential(&f.db, "user_2pat")
            .await
            .unwrap()
            .starts_with("$argon2id$")
    );
    // From now on Kernia checks it; Clerk is not asked again.
    let calls = f.cutover.app.intercept.live.as_ref().unwrap().calls();
    assert_eq!(
        sign_in(&f.cutover, "pat@x.com", "the-new-password-9")
            .await
            .status(),
        200
    );
    assert_eq!(
        f.cutover.app.intercept.live.as_ref().unwrap().calls(),
        calls
    );
}
both_engines!(password_changed_at_clerk_makes_the_digest_stale_and_the_new_one_migrates_live);

async fn awscognito_user_migrates_live_and_a_clerk_outage_only_holds_those_sign_ins(
    engine: Engine,
) {
    let f = fixture(engine).await;
    seed(
        &f.db,
        "user_2cog",
        "cog@x.com",
        LedgerState::PendingReset,
        Some("awscognito"),
        Some("awscognito#eu-west-1_pool#client#cog@x.com"),
    )
    .await;
    let (digest, bcrypt_password) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2bee",
        "bee@x.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    seed(
        &f.db,
        "user_2nop",
        "nop@x.com",
        LedgerState::PendingReset,
        None,
        None,
    )
    .await;
    {
        let mut d = f.clerk.data();
        d.passwords
            .insert("user_2cog".into(), Some("cognito-pass-1".into()));
        d.passwords.insert("user_2nop".into(), None);
    }

    // Clerk is down (5xx): only the sign-in that needs Clerk answers 503.
    f.clerk.data().verify_status = Some(503);
    let down = sign_in(&f.cutover, "cog@x.com", "cognito-pass-1").await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().get("retry-after").is_some());
    assert_eq!(
        entry(&f.db, "user_2cog").await.state,
        LedgerState::PendingReset
    );
    let local = sign_in(&f.cutover, "bee@x.com", &bcrypt_password).await;
    assert_eq!(
        local.status(),
        200,
        "a pending bcrypt user still migrates locally"
    );
    assert_eq!(entry(&f.db, "user_2bee").await.state, LedgerState::Migrated);

    // Clerk rate-limits: 503 with Clerk's Retry-After, for this sign-in only.
    f.clerk.data().verify_status = Some(429);
    let limited = sign_in(&f.cutover, "cog@x.com", "cognito-pass-1").await;
    assert_eq!(limited.status(), 503);
    assert_eq!(limited.headers()["retry-after"], "7");

    // Clerk is back: a wrong password is Kernia's 401, the right one migrates.
    f.clerk.data().verify_status = None;
    assert_eq!(
        sign_in(&f.cutover, "cog@x.com", "not-it").await.status(),
        401
    );
    let ok = sign_in(&f.cutover, "cog@x.com", "cognito-pass-1").await;
    assert_eq!(ok.status(), 200, "{}", f.kernia.stderr());
    let e = entry(&f.db, "user_2cog").await;
    assert_eq!(
        (e.state, e.method.as_deref()),
        (LedgerState::Migrated, Some("clerk_password"))
    );

    // Clerk says the user has no password: the forced-reset path.
    let none = sign_in(&f.cutover, "nop@x.com", "whatever-1").await;
    assert_eq!(none.status(), 403);
    assert_eq!(
        none.json::<serde_json::Value>().await.unwrap()["code"],
        "PASSWORD_RESET_REQUIRED"
    );
}
both_engines!(awscognito_user_migrates_live_and_a_clerk_outage_only_holds_those_sign_ins);

async fn a_user_created_at_clerk_after_the_import_signs_in(engine: Engine) {
    let f = fixture(engine).await;
    f.clerk
        .data()
        .passwords
        .insert("user_2late".into(), Some("late-comer-pass".into()));
    let t = now() * 1000;
    let created = event(
        "user.created",
        t,
        user("user_2late", "Late@X.com", "Late", t),
    );
    assert_eq!(f.deliver(&created).await.1, "applied");
    let e = entry(&f.db, "user_2late").await;
    assert_eq!(
        e.state,
        LedgerState::PendingReset,
        "created as import creates a user without a digest"
    );
    assert_eq!(e.email.as_deref(), Some("late@x.com"));
    assert_eq!(
        kernia_name(&f.db, "user_2late").await.as_deref(),
        Some("Late Tester")
    );

    let ok = sign_in(&f.cutover, "late@x.com", "late-comer-pass").await;
    assert_eq!(ok.status(), 200, "{}", f.kernia.stderr());
    let cookie = session_cookie(&ok).unwrap();
    assert_eq!(
        session_user(&f.cutover.url(""), &cookie).await.as_deref(),
        Some("user_2late")
    );
}
both_engines!(a_user_created_at_clerk_after_the_import_signs_in);

async fn a_user_deleted_at_clerk_loses_their_kernia_session(engine: Engine) {
    // A long session cache: only the broadcast can make cutover forget in time.
    let f = fixture_with(engine, 300_000, "breaker_failures = 1000").await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2del",
        "del@x.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    seed(
        &f.db,
        "user_2ban",
        "ban@x.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let signed_in = sign_in(&f.cutover, "del@x.com", &password).await;
    assert_eq!(signed_in.status(), 200);
    let cookie = session_cookie(&signed_in).unwrap();
    let banned_in = sign_in(&f.cutover, "ban@x.com", &password).await;
    let ban_cookie = session_cookie(&banned_in).unwrap();

    // With a Kernia session, an app request goes to the Kernia upstream.
    let served_by = |cookie: String| {
        let url = f.cutover.url("/app/whoami");
        async move {
            let resp = client()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let body = resp.text().await.unwrap_or_default();
            if body.contains("\"served_by\":\"legacy\"") {
                "legacy"
            } else {
                "kernia"
            }
        }
    };
    assert_eq!(served_by(cookie.clone()).await, "kernia");
    assert_eq!(served_by(ban_cookie.clone()).await, "kernia");

    let t = now() * 1000;
    let deleted = event(
        "user.deleted",
        t,
        json!({"object": "user", "id": "user_2del", "deleted": true}),
    );
    assert_eq!(f.deliver(&deleted).await.1, "applied");
    let e = entry(&f.db, "user_2del").await;
    assert_eq!(e.state, LedgerState::Removed);
    assert_eq!(
        served_by(cookie.clone()).await,
        "legacy",
        "the session is gone, cache included"
    );
    assert_eq!(session_user(&f.cutover.url(""), &cookie).await, None);
    assert_eq!(
        sign_in(&f.cutover, "del@x.com", &password).await.status(),
        403,
        "banned in Kernia"
    );
    // A late update for the deleted user changes nothing.
    let late = event(
        "user.updated",
        t + 5000,
        user("user_2del", "del@x.com", "Back", t + 5000),
    );
    assert_eq!(f.deliver(&late).await.1, "stale");
    assert_eq!(entry(&f.db, "user_2del").await.state, LedgerState::Removed);

    // A ban at Clerk bans a migrated user in Kernia and ends their sessions.
    let mut banned = user("user_2ban", "ban@x.com", "Ban", t);
    banned["banned"] = json!(true);
    assert_eq!(
        f.deliver(&event("user.updated", t, banned)).await.1,
        "applied"
    );
    assert!(kernia_banned(&f.db, "user_2ban").await);
    assert_eq!(served_by(ban_cookie).await, "legacy");
    let refused = sign_in(&f.cutover, "ban@x.com", &password).await;
    assert_eq!(refused.status(), 403);
}
both_engines!(a_user_deleted_at_clerk_loses_their_kernia_session);

/// `cutover import` as an operator runs it, against the emulator.
fn import_cmd(
    config: &std::path::Path,
    dir: &std::path::Path,
    csv: &std::path::Path,
) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["import", "--from-clerk-api", "--progress", "none", "-c"])
        .arg(config)
        .arg("--csv")
        .arg(csv)
        .arg("--api-dir")
        .arg(dir.join("pulled"))
        .env("TEST_CLERK_KEY", KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

const CSV_HEADER: &str = "id,first_name,last_name,username,primary_email_address,primary_phone_number,verified_email_addresses,unverified_email_addresses,verified_phone_numbers,unverified_phone_numbers,totp_secret,password_digest,password_hasher\n";

fn csv_row(id: &str, email: &str, digest: &str) -> String {
    format!("{id},,,,{email},,{email},,,,,{digest},bcrypt\n")
}

async fn a_missed_webhook_gap_is_closed_by_the_next_pull(engine: Engine) {
    let kernia = KerniaServer::start(engine).await;
    let db = kernia.db.connect().await;
    let t0 = (now() - 3600) * 1000;
    let ids = [
        "user_2a", "user_2b", "user_2c", "user_2d", "user_2e", "user_2f",
    ];
    let org = json!({"object": "organization", "id": "org_2gap", "name": "Gap Inc", "slug": "gap",
        "has_image": false, "public_metadata": {}, "created_by": "user_2a",
        "created_at": t0, "updated_at": t0});
    let mut data = ClerkData {
        retry_after_secs: 1,
        ..ClerkData::default()
    };
    for id in ids {
        data.users.push(user(id, &format!("{id}@x.com"), id, t0));
    }
    data.organizations.push(org.clone());
    data.memberships.push(
        json!({"object": "organization_membership", "id": "orgmem_2f",
        "role": "org:member", "organization": org, "public_user_data": {"user_id": "user_2f"},
        "created_at": t0, "updated_at": t0}),
    );
    data.invitations.push(
        json!({"object": "organization_invitation", "id": "orginv_2gap",
        "email_address": "guest@x.com", "role": "org:member", "organization_id": "org_2gap",
        "inviter_id": "user_2a", "status": "pending", "expires_at": (now() + 86_400) * 1000,
        "created_at": t0, "updated_at": t0}),
    );
    let api = ClerkApi::start(data).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    let extra = format!(
        "[import]\nclerk_api_url = \"{}\"\nclerk_secret_key_env = \"TEST_CLERK_KEY\"\n",
        api.url()
    );
    std::fs::write(
        &config,
        toml(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            &kernia.db.url,
            &extra,
        ),
    )
    .unwrap();
    let (old_digest, _) = vector("bcrypt", "cost 4");
    let (new_digest, _) = vector("bcrypt", "realistic");
    let csv = dir.path().join("users.csv");
    let mut text = CSV_HEADER.to_string();
    for id in ids {
        text.push_str(&csv_row(id, &format!("{id}@x.com"), &old_digest));
    }
    std::fs::write(&csv, &text).unwrap();
    import_cmd(&config, dir.path(), &csv);
    assert_eq!(
        entry(&db, "user_2b").await.state,
        LedgerState::PendingPassword
    );

    // Meanwhile at Clerk, with every webhook missed (the endpoint was down):
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t1 = now() * 1000;
    {
        let mut d = api.data();
        d.users[0]["first_name"] = json!("Renamed"); // user_2a's profile
        d.users[0]["updated_at"] = json!(t1);
        d.users[1]["password_last_updated_at"] = json!(t1); // user_2b changed their password
        d.users[1]["updated_at"] = json!(t1);
        d.users[2]["banned"] = json!(true); // user_2c banned
        d.users[2]["updated_at"] = json!(t1);
        d.users.retain(|u| u["id"] != "user_2d"); // user_2d deleted
        d.memberships[0]["role"] = json!("org:admin");
        d.memberships[0]["updated_at"] = json!(t1);
        d.invitations.clear(); // revoked: no longer pending
        d.organizations[0]["name"] = json!("Gap Renamed");
        d.organizations[0]["updated_at"] = json!(t1);
    }
    // ... and a fresh dashboard export has user_2e's new digest.
    std::fs::write(
        &csv,
        text.replace(
            &csv_row("user_2e", "user_2e@x.com", &old_digest),
            &csv_row("user_2e", "user_2e@x.com", &new_digest),
        ),
    )
    .unwrap();

    let (stdout, stderr) = import_cmd(&config, dir.path(), &csv);
    assert!(stderr.contains("pulling again to catch up"), "{stderr}");
    assert!(stdout.contains("refreshed:"), "{stdout}");
    assert!(
        stdout.contains("1 users removed, 0 memberships deleted, 1 invitations no longer pending"),
        "{stdout}"
    );

    assert_eq!(
        kernia_name(&db, "user_2a").await.as_deref(),
        Some("Renamed Tester")
    );
    let b = entry(&db, "user_2b").await;
    assert_eq!(
        (b.state, b.digest.is_none()),
        (LedgerState::PendingReset, true),
        "stale digest dropped"
    );
    assert!(kernia_banned(&db, "user_2c").await);
    assert_eq!(entry(&db, "user_2d").await.state, LedgerState::Removed);
    assert_eq!(
        entry(&db, "user_2e").await.digest.as_deref(),
        Some(new_digest.as_str())
    );
    assert_eq!(
        entry(&db, "user_2f").await.digest.as_deref(),
        Some(old_digest.as_str()),
        "unchanged users keep theirs"
    );
    let mut conn = db.acquire().await.unwrap();
    let (org_name, role, status): (String, String, String) =
        on_conn!(&mut conn.conn(), |c| sqlx::query_as(
            "SELECT o.name, m.role, i.status FROM organization o, member m, invitation i
         WHERE o.id = 'org_2gap' AND m.id = 'orgmem_2f' AND i.id = 'orginv_2gap'"
        )
        .fetch_one(c)
        .await
        .unwrap());
    assert_eq!(
        (org_name.as_str(), role.as_str(), status.as_str()),
        ("Gap Renamed", "admin", "canceled")
    );
}
both_engines!(a_missed_webhook_gap_is_closed_by_the_next_pull);
