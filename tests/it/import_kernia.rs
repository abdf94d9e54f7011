//! After `cutover import`, the real Kernia 0.1.0 server (on PostgreSQL and on
//! SQLite) works with what was imported: a social sign-in finds the imported
//! account row, an organization member has the mapped role, a TOTP user passes
//! Kernia's two-factor challenge with a code from the exported secret, a
//! pending invitation is listed for its invitee, a banned user stays out.

use cutover::import::{self, ImportOptions};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::kernia::{client, session_cookie, sign_up};
use crate::import_support::{
    KerniaWithGoogle, cookies, set_kernia_password, small_inputs, totp_now,
};

/// Alice's TOTP secret in `tests/fixtures/import/small/users.csv`.
const ALICE_TOTP: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// Bob's Google account in `users-1.json`.
const BOB_GOOGLE: &str = "109876543210987654321";

async fn post(url: String, cookie: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = client().post(url).json(&body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

async fn get(url: String, cookie: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn sign_in(k: &KerniaWithGoogle, email: &str, password: &str) -> reqwest::Response {
    post(
        format!("{}/sign-in/email", k.base_url),
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

async fn imported_users_work_in_real_kernia(engine: Engine) {
    let k = KerniaWithGoogle::start(engine).await;
    let db = k.db.connect().await;
    db.migrate().await.unwrap();
    let out = import::run(&db, &ImportOptions::new(small_inputs()))
        .await
        .unwrap();
    assert_eq!(out.counters.users.imported, 8, "{}", out.summary);

    // A social sign-in through Kernia's own OAuth callback lands on the
    // imported user: Kernia finds the account row by (providerId, accountId).
    let resp = post(
        format!("{}/sign-in/social", k.base_url),
        None,
        json!({"provider": "google", "callbackURL": "/"}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", k.stderr());
    let url = resp.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let resp = client()
        .get(format!("{}/callback/google", k.base_url))
        .query(&[("code", BOB_GOOGLE), ("state", &state)])
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_redirection(),
        "{} {}",
        resp.status(),
        k.stderr()
    );
    let bob = session_cookie(&resp).expect("a session for the social sign-in");
    let session: Value = get(format!("{}/get-session", k.base_url), &bob)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["id"], "user_bob");
    assert_eq!(session["user"]["email"], "bob@example.com");
    let accounts: Value = get(format!("{}/list-accounts", k.base_url), &bob)
        .await
        .json()
        .await
        .unwrap();
    let google = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["providerId"] == "google")
        .expect("google account listed");
    assert_eq!(google["accountId"], BOB_GOOGLE);
    let users = k.db.connect().await;
    let n: i64 = match &users {
        cutover::db::Db::Postgres(p) => sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
            .fetch_one(p)
            .await
            .unwrap(),
        cutover::db::Db::Sqlite(p) => sqlx::query_scalar(r#"SELECT COUNT(*) FROM "user""#)
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!(n, 8, "the social sign-in must not create a new user");

    // An organization admin: set-active, then the active member has the mapped role.
    set_kernia_password(&db, "user_dave", "dave-password-1").await;
    let resp = sign_in(&k, "dave@example.com", "dave-password-1").await;
    assert_eq!(resp.status(), 200, "{}", k.stderr());
    let dave = session_cookie(&resp).unwrap();
    let resp = post(
        format!("{}/organization/set-active", k.base_url),
        Some(&dave),
        json!({"organizationId": "org_beta"}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", k.stderr());
    let member: Value = get(
        format!("{}/organization/get-active-member", k.base_url),
        &dave,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (member["role"].as_str(), member["userId"].as_str()),
        (Some("admin"), Some("user_dave")),
        "{member}"
    );
    // And the creator of Acme is its owner.
    set_kernia_password(&db, "user_bob", "bob-password-1").await;
    let bob = session_cookie(&sign_in(&k, "bob@example.com", "bob-password-1").await).unwrap();
    assert_eq!(
        post(
            format!("{}/organization/set-active", k.base_url),
            Some(&bob),
            json!({"organizationId": "org_acme"})
        )
        .await
        .status(),
        200
    );
    let member: Value = get(
        format!("{}/organization/get-active-member", k.base_url),
        &bob,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(member["role"], "member");

    // TOTP: once the password is in Kernia, sign-in asks for the second factor
    // and a code computed from the exported secret passes it.
    set_kernia_password(&db, "user_alice", "alice-password-1").await;
    let resp = sign_in(&k, "alice@example.com", "alice-password-1").await;
    assert_eq!(resp.status(), 200, "{}", k.stderr());
    let challenge = cookies(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["twoFactorRedirect"], true, "{body}");
    let wrong = post(
        format!("{}/two-factor/verify-totp", k.base_url),
        Some(&challenge),
        json!({"code": "000000"}),
    )
    .await;
    assert_ne!(wrong.status(), 200);
    let code = totp_now(ALICE_TOTP).await;
    let resp = post(
        format!("{}/two-factor/verify-totp", k.base_url),
        Some(&challenge),
        json!({"code": code}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", k.stderr());
    let alice = session_cookie(&resp).expect("a session after the second factor");
    let session: Value = get(format!("{}/get-session", k.base_url), &alice)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"]["id"], "user_alice");
    assert_eq!(
        post(
            format!("{}/organization/set-active", k.base_url),
            Some(&alice),
            json!({"organizationId": "org_acme"})
        )
        .await
        .status(),
        200
    );
    let member: Value = get(
        format!("{}/organization/get-active-member", k.base_url),
        &alice,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(member["role"], "owner");

    // The invitee signs up in Kernia and finds the pending invitation.
    let (_, invitee) = sign_up(
        k.base_url.trim_end_matches("/api/auth"),
        "new.hire@example.org",
        "a-long-password-1",
        "New Hire",
    )
    .await;
    let invitations: Value = get(
        format!("{}/organization/list-invitations", k.base_url),
        &invitee,
    )
    .await
    .json()
    .await
    .unwrap();
    let list = invitations.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{invitations}");
    assert_eq!(
        (
            list[0]["id"].as_str(),
            list[0]["organizationId"].as_str(),
            list[0]["role"].as_str(),
            list[0]["inviterId"].as_str()
        ),
        (
            Some("orginv_1"),
            Some("org_acme"),
            Some("member"),
            Some("user_alice")
        )
    );

    // A user banned at Clerk is banned in Kernia.
    set_kernia_password(&db, "user_judy", "judy-password-1").await;
    let resp = sign_in(&k, "judy@example.com", "judy-password-1").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "BANNED_USER");
    db.close().await;
    users.close().await;
}

both_engines!(imported_users_work_in_real_kernia);
