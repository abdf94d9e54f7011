//! Kernia sessions through cutover, from the real Kernia server: valid,
//! tampered, signed out, expired; and the identity the app receives.

use std::time::Duration;

use cutover::db::on_conn;

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::{KerniaServer, client, session_cookie};
use crate::harness::server::{Cutover, toml};

const ASSERTION_SECRET: &str = "assertion-secret-for-tests-0123456789abcdef";

#[derive(serde::Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
    provider: String,
    sid: String,
    exp: u64,
    iat: u64,
}

async fn whoami(c: &Cutover, cookie: Option<&str>) -> serde_json::Value {
    let mut req = client().get(c.url("/whoami"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn kernia_sessions_through_cutover(engine: Engine) {
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let extra =
        format!("[rollout]\npercentage = 0\n[assertion]\nsecret = \"{ASSERTION_SECRET}\"\n");
    let c = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &extra,
    ))
    .await;

    // Sign up through cutover: Kernia's routes always go to Kernia.
    let resp = client()
        .post(c.url("/api/auth/sign-up/email"))
        .json(&serde_json::json!({"email": "lin@example.com", "password": "a-long-password-1", "name": "Lin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", kernia.stderr());
    let cookie = session_cookie(&resp).unwrap();
    let user_id = resp.json::<serde_json::Value>().await.unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A valid session: the Kernia app, with the identity headers.
    let me = whoami(&c, Some(&cookie)).await;
    assert_eq!(me["served_by"], "kernia-app");
    assert_eq!(me["provider"], "kernia");
    assert_eq!(me["user_id"], user_id.as_str());
    let headers = &me["identity_headers"];
    let session_id = headers["x-cutover-session-id"].as_str().unwrap();
    let jwt = headers["x-cutover-assertion"]
        .as_str()
        .expect("a signed assertion");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Assertion>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &validation,
    )
    .expect("the assertion verifies with the configured secret")
    .claims;
    assert_eq!(claims.iss, "cutover");
    assert_eq!(claims.sub, user_id);
    assert_eq!(claims.provider, "kernia");
    assert_eq!(claims.sid, session_id);
    assert!(claims.exp > claims.iat && claims.exp - claims.iat <= 60);
    // The X-Forwarded-For Kernia sees is the real client, not a spoof.
    assert_eq!(me["forwarding_headers"]["x-forwarded-for"], "127.0.0.1");

    // A tampered signature is nobody: rollout at 0% sends it to legacy.
    let (name_token, sig) = cookie.rsplit_once('.').unwrap();
    let tampered = format!("{name_token}.{}", sig.chars().rev().collect::<String>());
    let e = echo::read(
        client()
            .get(c.url("/whoami"))
            .header("cookie", &tampered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["served_by"], "legacy");
    assert_eq!(echo::header(&e, "x-cutover-provider"), Some("anonymous"));

    // Signed out through cutover: the cached session is dropped at once.
    let out = client()
        .post(c.url("/api/auth/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let e = echo::read(
        client()
            .get(c.url("/whoami"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        e["served_by"], "legacy",
        "a signed-out session is not an identity"
    );

    // Expired: sign in again, then age the session row past its expiry.
    let resp = client()
        .post(c.url("/api/auth/sign-in/email"))
        .json(&serde_json::json!({"email": "lin@example.com", "password": "a-long-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = session_cookie(&resp).unwrap();
    assert_eq!(whoami(&c, Some(&cookie)).await["provider"], "kernia");
    let token = cookie
        .trim_start_matches("better-auth.session_token=")
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    let db = kernia.db.connect().await;
    let mut conn = db.acquire().await.unwrap();
    on_conn!(&mut conn.conn(), |x| sqlx::query(
        r#"UPDATE session SET "expiresAt" = $1 WHERE token = $2"#
    )
    .bind(cutover::db::now_secs() - 10)
    .bind(&token)
    .execute(x)
    .await
    .map(|_| ())
    .unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await; // the test config caches sessions for 200 ms
    let e = echo::read(
        client()
            .get(c.url("/whoami"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        e["served_by"], "legacy",
        "an expired session is not an identity"
    );
}
both_engines!(kernia_sessions_through_cutover);

#[tokio::test]
async fn kill_switch_keeps_kernia_sessions_on_kernia() {
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let extra = "[rollout]\npercentage = 100\nkill_switch = true\n";
    let c = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        extra,
    ))
    .await;
    let (_, cookie) =
        crate::harness::kernia::sign_up(&c.url(""), "kim@example.com", "a-long-password-2", "Kim")
            .await;
    let me = whoami(&c, Some(&cookie)).await;
    assert_eq!(me["served_by"], "kernia-app");
    let e = echo::read(client().get(c.url("/whoami")).send().await.unwrap()).await;
    assert_eq!(e["served_by"], "legacy");
}
