//! The request path's hostile and client-shaped inputs, through cutover in
//! front of the real Kernia server: bodies read the way Kernia reads them,
//! bounded body reads, the Better Auth JS client's body shapes, migration
//! completed after Kernia answered (social callbacks, phone resets), and the
//! per-address throttle in front of the dummy verify.

use cutover::db::kernia::NewUser;
use cutover::db::ledger::{LedgerState, NewLedgerEntry};
use cutover::db::on_conn;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::Engine;
use crate::harness::echo::Echo;
use crate::harness::kernia::{client, session_cookie, session_user};
use crate::harness::pending::{entry, seed, seed_with, vector};
use crate::harness::server::{Cutover, toml};
use crate::harness::smtp::SmtpSink;
use crate::import_support::KerniaWithGoogle;
use crate::migration::{decode_quoted_printable, fixture, sign_in};

const CHEAP_ARGON: &str = "argon2_memory_kib = 1024\nargon2_iterations = 1\nargon2_parallelism = 1";

async fn post(c: &Cutover, path: &str, body: Value) -> reqwest::Response {
    client().post(c.url(path)).json(&body).send().await.unwrap()
}

async fn user_count(db: &cutover::db::Db, email_lower: &str) -> i64 {
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |c| sqlx::query_scalar::<_, i64>(
        r#"SELECT COUNT(*) FROM "user" WHERE LOWER(email) = $1"#
    )
    .bind(email_lower)
    .fetch_one(c)
    .await
    .unwrap())
}

/// #8 defect 5: Kernia maps `Email` and `EMAIL` onto `email`; cutover must
/// read (and normalize) the same field, so one address stays one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_spellings_kernia_accepts_cannot_split_one_address_into_accounts() {
    let f = fixture(Engine::Sqlite, "").await;
    let password = "a-long-password-9";
    let first = post(
        &f.cutover,
        "/api/auth/sign-up/email",
        json!({"email": "bob@example.com", "password": password, "name": "Bob"}),
    )
    .await;
    assert_eq!(first.status(), 200, "{}", f.kernia.stderr());
    for (key, typed) in [("EMAIL", "BOB@EXAMPLE.COM"), ("Email", "Bob@example.COM")] {
        let mut body = serde_json::Map::new();
        body.insert(key.into(), json!(typed));
        body.insert("password".into(), json!(password));
        body.insert("name".into(), json!("Bob again"));
        let again = post(&f.cutover, "/api/auth/sign-up/email", Value::Object(body)).await;
        assert_eq!(again.status(), 409, "{key}: {typed} is bob@example.com");
    }
    assert_eq!(user_count(&f.db, "bob@example.com").await, 1);

    // Signing in with such a key reaches the same account.
    let ok = post(
        &f.cutover,
        "/api/auth/sign-in/email",
        json!({"EMAIL": "BOB@EXAMPLE.COM", "password": password}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    // A body Kernia would read but serde cannot is refused, not forwarded raw.
    for raw in [
        r#"{"email":"BOB@example.com","password":"a-long-password-9","rememberMe":NaN}"#,
        r#"{"email":"BOB@example.com","password":"a-long-password-9","n":1e400}"#,
    ] {
        let resp = client()
            .post(f.cutover.url("/api/auth/sign-up/email"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{raw}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "INVALID_REQUEST");
    }
    assert_eq!(user_count(&f.db, "bob@example.com").await, 1);
}

/// #8 defect 5, a pending user: an aliased key still goes through migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_user_signing_in_with_an_aliased_key_is_migrated() {
    let f = fixture(Engine::Sqlite, "").await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2alias",
        "alias@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let ok = post(
        &f.cutover,
        "/api/auth/sign-in/email",
        json!({"Email": "ALIAS@example.com", "PASSWORD": password}),
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", f.kernia.stderr());
    assert_eq!(
        entry(&f.db, "user_2alias").await.state,
        LedgerState::Migrated
    );
}

/// #8 defect 3: an intercepted body that stops arriving gets 408, not a
/// connection held forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_body_that_stops_arriving_is_answered_408() {
    let f = fixture(Engine::Sqlite, "[limits]\nauth_body_timeout_secs = 1\n").await;
    let mut s = tokio::net::TcpStream::connect(f.cutover.http)
        .await
        .unwrap();
    s.write_all(
        b"POST /api/auth/sign-in/email HTTP/1.1\r\nHost: app.test\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded only so that a regression fails instead of hanging the suite.
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer: the body read has no deadline");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"REQUEST_TIMEOUT""#), "{text}");
}

/// #8 defect 8: made-up identifiers are throttled per client address before
/// the dummy verify reaches the hashing pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_identifiers_is_throttled_before_hashing() {
    let extra = format!("[migration]\nip_attempts = 3\n{CHEAP_ARGON}");
    let f = fixture(Engine::Sqlite, &extra).await;
    let pool = f.cutover.app.intercept.pool();
    for i in 0..3 {
        let jobs = pool.started();
        let resp = sign_in(&f.cutover, &format!("nobody{i}@example.com"), "guess-1").await;
        assert_eq!(resp.status(), 401);
        assert_eq!(
            pool.started(),
            jobs + 1,
            "a dummy verify per unknown identifier"
        );
    }
    let jobs = pool.started();
    let resp = sign_in(&f.cutover, "nobody9@example.com", "guess-1").await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(pool.started(), jobs, "throttled before hashing");
}

/// #8 defect 7: Kernia's social callback answers 302; a `social_only` user
/// signing in with the (stand-in) Google provider through cutover is migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_social_sign_in_through_cutover_migrates_a_social_only_user() {
    let kernia = KerniaWithGoogle::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let root = kernia.url("");
    let cutover = Cutover::start(&toml(&legacy.url(), &root, &kernia.db.url, "")).await;
    let db = kernia.db.connect().await;
    seed(
        &db,
        "user_2social",
        "social@example.com",
        LedgerState::SocialOnly,
        None,
        None,
    )
    .await;
    {
        let mut conn = db.acquire().await.unwrap();
        on_conn!(&mut conn.conn(), |c| {
            sqlx::query(
                r#"INSERT INTO account (id, "userId", "accountId", "providerId", "createdAt", "updatedAt")
                   VALUES ('acc_social', 'user_2social', 'google-sub-77', 'google', 1, 1)"#,
            )
            .execute(c)
            .await
            .unwrap();
        });
    }

    let start = post(
        &cutover,
        "/api/auth/sign-in/social",
        json!({"provider": "google", "callbackURL": "/"}),
    )
    .await;
    assert_eq!(start.status(), 200, "{}", kernia.stderr());
    let url = start.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let state = url
        .split("state=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap()
        .to_string();
    let callback = client()
        .get(cutover.url("/api/auth/callback/google"))
        .query(&[("code", "google-sub-77"), ("state", state.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        callback.status().is_redirection(),
        "{} {}",
        callback.status(),
        kernia.stderr()
    );
    let cookie = session_cookie(&callback).expect("a session for the social sign-in");
    assert_eq!(
        session_user(&cutover.url(""), &cookie).await.as_deref(),
        Some("user_2social")
    );
    let e = entry(&db, "user_2social").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("social"));
}

/// The latest phone OTP Kernia stored (it keeps them in plaintext).
async fn phone_otp(db: &cutover::db::Db) -> String {
    let mut conn = db.acquire().await.unwrap();
    let value: String = on_conn!(&mut conn.conn(), |c| {
        sqlx::query_scalar(
        r#"SELECT value FROM verification WHERE identifier LIKE 'phone-number:%' ORDER BY "createdAt" DESC, id DESC LIMIT 1"#
    )
    .fetch_one(c)
    .await
    .unwrap()
    });
    value.split(':').next().unwrap().to_string()
}

async fn seed_phone_user(
    db: &cutover::db::Db,
    id: &str,
    phone: &str,
    state: LedgerState,
    digest: Option<&str>,
) {
    seed_with(
        db,
        NewUser {
            phone_number_verified: true,
            ..NewUser::default()
        },
        NewLedgerEntry {
            user_id: id.into(),
            email: Some(format!("{id}@example.com")),
            phone: Some(phone.into()),
            hasher: digest.map(|_| "bcrypt".to_string()),
            digest: digest.map(str::to_string),
            state: Some(state),
            ..NewLedgerEntry::default()
        },
    )
    .await;
}

/// #9 item 1: the Better Auth client's phone sign-in `{phoneNumber, password,
/// rememberMe}` migrates a pending user (Kernia reads `phone_number` only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_sign_in_with_the_better_auth_clients_body_migrates() {
    let f = fixture(Engine::Sqlite, "").await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed_phone_user(
        &f.db,
        "user_2phone",
        "+14155550123",
        LedgerState::PendingPassword,
        Some(&digest),
    )
    .await;
    let ok = post(
        &f.cutover,
        "/api/auth/sign-in/phone-number",
        json!({"phoneNumber": "+1 415 555 0123", "password": password, "rememberMe": true}),
    )
    .await;
    assert_eq!(ok.status(), 200, "{}", f.kernia.stderr());
    assert!(session_cookie(&ok).is_some());
    let e = entry(&f.db, "user_2phone").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("legacy_password"));
}

/// #8 defect 7 (second half) and the Better Auth client's phone reset shapes:
/// `/phone-number/request-password-reset {phoneNumber}`, then
/// `/phone-number/reset-password {phoneNumber, otp, newPassword}` through
/// cutover marks a `pending_reset` user migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_reset_through_cutover_marks_the_user_migrated() {
    let f = fixture(Engine::Sqlite, "").await;
    seed_phone_user(
        &f.db,
        "user_2phreset",
        "+14155550124",
        LedgerState::PendingReset,
        None,
    )
    .await;
    let asked = post(
        &f.cutover,
        "/api/auth/phone-number/request-password-reset",
        json!({"phoneNumber": "+14155550124"}),
    )
    .await;
    assert_eq!(asked.status(), 200, "{}", f.kernia.stderr());
    let otp = phone_otp(&f.db).await;
    let reset = post(
        &f.cutover,
        "/api/auth/phone-number/reset-password",
        json!({"phoneNumber": "+14155550124", "otp": otp, "newPassword": "phone-new-password-1"}),
    )
    .await;
    assert_eq!(reset.status(), 200, "{}", f.kernia.stderr());
    let e = entry(&f.db, "user_2phreset").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("reset"));
    let ok = post(
        &f.cutover,
        "/api/auth/sign-in/phone-number",
        json!({"phoneNumber": "+14155550124", "password": "phone-new-password-1"}),
    )
    .await;
    assert_eq!(ok.status(), 200);
}

fn reset_token(mail: &str) -> String {
    decode_quoted_printable(mail)
        .split("token=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .expect("the mail carries the reset link")
}

/// #9 item 2: `resetPassword({newPassword, token})` completes the reset, and
/// a reset that fails does not leave the user waiting an hour for a new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_better_auth_clients_reset_completes_and_a_failed_one_leaves_a_way_in() {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "[reset]\nlink = \"https://app.example.test/reset?token={{token}}\"\n[reset.smtp]\nurl = \"{}\"\nfrom = \"Accounts <no-reply@example.test>\"\n",
        smtp.url()
    );
    let f = fixture(Engine::Sqlite, &extra).await;
    seed(
        &f.db,
        "user_2stuck",
        "stuck@example.com",
        LedgerState::PendingReset,
        None,
        None,
    )
    .await;
    assert_eq!(
        sign_in(&f.cutover, "stuck@example.com", "old")
            .await
            .status(),
        403
    );
    let first = reset_token(&smtp.wait_for(1).await[0]);

    // A reset Kernia refuses (too short a password).
    let failed = post(
        &f.cutover,
        "/api/auth/reset-password",
        json!({"newPassword": "short", "token": first}),
    )
    .await;
    assert_eq!(failed.status(), 400);
    let e = entry(&f.db, "user_2stuck").await;
    assert_eq!(e.state, LedgerState::PendingReset);
    assert_eq!(
        e.reset_requested_at, None,
        "the failed reset reopens the window"
    );

    // So the next sign-in sends a fresh link at once.
    assert_eq!(
        sign_in(&f.cutover, "stuck@example.com", "old")
            .await
            .status(),
        403
    );
    let mails = smtp.wait_for(2).await;
    let second = reset_token(&mails[1]);
    let done = post(
        &f.cutover,
        "/api/auth/reset-password",
        json!({"newPassword": "a-long-new-password-1", "token": second}),
    )
    .await;
    assert_eq!(done.status(), 200, "{}", f.kernia.stderr());
    let e = entry(&f.db, "user_2stuck").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("reset"));
    let ok = sign_in(&f.cutover, "stuck@example.com", "a-long-new-password-1").await;
    assert_eq!(ok.status(), 200);
}

/// #9 item 3: `requestPasswordReset` calls `/request-password-reset`, which
/// Kernia 0.1.0 serves as `/forget-password`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_password_reset_reaches_kernias_forget_password() {
    let f = fixture(Engine::Sqlite, "").await;
    let (user_id, _) = crate::harness::kernia::sign_up(
        &f.cutover.url(""),
        "native@example.com",
        "a-long-password-9",
        "Native",
    )
    .await;
    let resp = post(
        &f.cutover,
        "/api/auth/request-password-reset",
        json!({"email": "Native@Example.com", "redirectTo": "/reset-password"}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", f.kernia.stderr());
    let mut conn = f.db.acquire().await.unwrap();
    let n: i64 = on_conn!(&mut conn.conn(), |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM verification WHERE identifier = $1"
    )
    .bind(format!("reset:{user_id}"))
    .fetch_one(c)
    .await
    .unwrap());
    assert_eq!(n, 1, "Kernia's /forget-password made a reset token");
}
