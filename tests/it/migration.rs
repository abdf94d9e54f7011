//! Lazy password migration through cutover, against the real Kernia server on
//! PostgreSQL and SQLite: users seeded as the import leaves them, with digests
//! made by independent libraries.

use cutover::db::Db;
use cutover::db::ledger::LedgerState;

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::echo::Echo;
use crate::harness::kernia::{KerniaServer, client, session_cookie, session_user};
use crate::harness::pending::{self, credential, credential_rows, entry, seed, vector};
use crate::harness::server::{Cutover, toml};
use crate::harness::smtp::SmtpSink;

pub(crate) struct Fixture {
    pub kernia: KerniaServer,
    pub _legacy: Echo,
    pub cutover: Cutover,
    pub db: Db,
}

pub(crate) async fn fixture(engine: Engine, extra: &str) -> Fixture {
    let kernia = KerniaServer::start(engine).await;
    let legacy = Echo::start("legacy").await;
    let cutover = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        extra,
    ))
    .await;
    let db = kernia.db.connect().await;
    Fixture {
        kernia,
        _legacy: legacy,
        cutover,
        db,
    }
}

pub(crate) async fn sign_in(c: &Cutover, email: &str, password: &str) -> reqwest::Response {
    client()
        .post(c.url("/api/auth/sign-in/email"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn each_hasher_family_migrates_at_first_sign_in(engine: Engine) {
    let f = fixture(engine, "").await;
    let families = [
        ("bcrypt", "realistic"),
        ("argon2id", "m=64,t=1,p=1"),
        ("pbkdf2_sha256_django", "1000 iterations"),
        ("scrypt_firebase", "published vector"),
        ("phpass", "log2 8"),
    ];
    for (i, (hasher, note)) in families.iter().enumerate() {
        let (digest, password) = vector(hasher, note);
        let user_id = format!("user_2{hasher}{i}");
        let email = format!("{hasher}@example.com");
        seed(
            &f.db,
            &user_id,
            &email,
            LedgerState::PendingPassword,
            Some(hasher),
            Some(&digest),
        )
        .await;
        let pool = f.cutover.app.intercept.pool();

        // Wrong password: Kernia's 401, and the user is still pending with the digest intact.
        let wrong = sign_in(&f.cutover, &email, "definitely-not-it").await;
        assert_eq!(wrong.status(), 401, "{hasher}");
        assert_eq!(
            wrong.json::<serde_json::Value>().await.unwrap()["code"],
            "INVALID_CREDENTIALS"
        );
        let e = entry(&f.db, &user_id).await;
        assert_eq!(e.state, LedgerState::PendingPassword, "{hasher}");
        assert_eq!(e.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(e.legacy_failures, 1);
        assert!(credential(&f.db, &user_id).await.is_none());

        // Right password, the email typed in another case: Kernia's own session.
        let typed = email.to_uppercase();
        let ok = sign_in(&f.cutover, &typed, &password).await;
        assert_eq!(ok.status(), 200, "{hasher}: {}", f.kernia.stderr());
        let cookie = session_cookie(&ok).expect("Kernia's session cookie");
        assert_eq!(
            session_user(&f.cutover.url(""), &cookie).await.as_deref(),
            Some(user_id.as_str())
        );
        let e = entry(&f.db, &user_id).await;
        assert_eq!(e.state, LedgerState::Migrated, "{hasher}");
        assert_eq!(e.method.as_deref(), Some("legacy_password"));
        let phc = credential(&f.db, &user_id).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{phc}");
        assert_eq!(credential_rows(&f.db, &user_id).await, 1);

        // The next sign-in goes straight to Kernia: cutover hashes nothing.
        let jobs = pool.started();
        let again = sign_in(&f.cutover, &email, &password).await;
        assert_eq!(again.status(), 200);
        assert_eq!(
            pool.started(),
            jobs,
            "{hasher}: cutover hashed again for a migrated user"
        );
    }
}
both_engines!(each_hasher_family_migrates_at_first_sign_in);

async fn totp_users_get_kernias_challenge_after_migration(engine: Engine) {
    let f = fixture(engine, "").await;
    let (digest, password) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2totp",
        "totp@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    pending::enable_totp(&f.db, "user_2totp", secret).await;

    let resp = sign_in(&f.cutover, "totp@example.com", &password).await;
    assert_eq!(resp.status(), 200);
    let challenge_cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["twoFactorRedirect"], true, "{body}");
    assert_eq!(
        entry(&f.db, "user_2totp").await.state,
        LedgerState::Migrated
    );

    let code = pending::totp_now(secret).await;
    let verified = client()
        .post(f.cutover.url("/api/auth/two-factor/verify-totp"))
        .header("cookie", challenge_cookies.join("; "))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{}", f.kernia.stderr());
    let cookie = session_cookie(&verified).expect("a session after the TOTP step");
    assert_eq!(
        session_user(&f.cutover.url(""), &cookie).await.as_deref(),
        Some("user_2totp")
    );
}
both_engines!(totp_users_get_kernias_challenge_after_migration);

async fn unverifiable_digests_force_a_reset_delivered_by_mail(engine: Engine) {
    let smtp = SmtpSink::start().await;
    let extra = format!(
        "[reset]\nlink = \"https://app.example.test/reset?token={{token}}\"\n[reset.smtp]\nurl = \"{}\"\nfrom = \"Accounts <no-reply@example.test>\"\n",
        smtp.url()
    );
    let f = fixture(engine, &extra).await;
    let cognito = "awscognito#us-east-1_abc#client#user";
    seed(
        &f.db,
        "user_2cognito",
        "cog@example.com",
        LedgerState::PendingReset,
        Some("awscognito"),
        Some(cognito),
    )
    .await;

    let resp = sign_in(&f.cutover, "Cog@Example.com", "whatever-they-had").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "PASSWORD_RESET_REQUIRED"
    );
    // At most one reset per window: a second attempt sends no second mail.
    let again = sign_in(&f.cutover, "cog@example.com", "again").await;
    assert_eq!(again.status(), 403);
    let mail = smtp.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "one reset mail per window");
    assert!(
        mail[0].contains("X-Envelope-To: cog@example.com"),
        "{}",
        mail[0]
    );
    let text = decode_quoted_printable(&mail[0]);
    let token = text
        .split("token=")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .expect("the mail carries the reset link");
    assert_eq!(token.len(), 43, "{}", mail[0]);

    // The link's token works with Kernia's real /reset-password, through cutover.
    let reset = client()
        .post(f.cutover.url("/api/auth/reset-password"))
        .json(&serde_json::json!({ "token": token, "password": "my-new-password-7" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200, "{}", f.kernia.stderr());
    let e = entry(&f.db, "user_2cognito").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("reset"));
    let ok = sign_in(&f.cutover, "cog@example.com", "my-new-password-7").await;
    assert_eq!(ok.status(), 200);
    assert!(session_cookie(&ok).is_some());
}
both_engines!(unverifiable_digests_force_a_reset_delivered_by_mail);

/// Mail bodies come quoted-printable (long lines are wrapped): undo it.
pub(crate) fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn a_reset_done_directly_at_kernia_is_honoured(engine: Engine) {
    let f = fixture(engine, "").await;
    let (digest, _old) = vector("bcrypt", "cost 4");
    seed(
        &f.db,
        "user_2direct",
        "direct@example.com",
        LedgerState::PendingPassword,
        Some("bcrypt"),
        Some(&digest),
    )
    .await;
    // Someone resets the password at Kernia itself, around cutover: a credential
    // row and a reset token (as /forget-password makes), then Kernia's own route.
    {
        let mut tx = f.db.begin().await.unwrap();
        cutover::db::kernia::ensure_credential(&mut tx.conn(), "user_2direct", "$argon2id$v=19$m=65536,t=3,p=4$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .unwrap();
        cutover::db::kernia::insert_verification(
            &mut tx.conn(),
            "reset:user_2direct",
            "direct-token-0123456789",
            cutover::db::now_secs() + 600,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let reset = client()
        .post(f.kernia.url("/api/auth/reset-password"))
        .json(&serde_json::json!({ "token": "direct-token-0123456789", "password": "set-at-kernia-99" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(
        entry(&f.db, "user_2direct").await.state,
        LedgerState::PendingPassword,
        "the ledger is stale now"
    );

    // Through cutover: the legacy digest does not match, Kernia's answer stands.
    let ok = sign_in(&f.cutover, "direct@example.com", "set-at-kernia-99").await;
    assert_eq!(ok.status(), 200, "a stale ledger must not lock anyone out");
    assert!(session_cookie(&ok).is_some());
    let e = entry(&f.db, "user_2direct").await;
    assert_eq!(e.state, LedgerState::Migrated);
    assert_eq!(e.method.as_deref(), Some("kernia_password"));
}
both_engines!(a_reset_done_directly_at_kernia_is_honoured);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_through_cutover_store_one_form_of_the_email() {
    let f = fixture(Engine::Sqlite, "").await;
    let resp = client()
        .post(f.cutover.url("/api/auth/sign-up/email"))
        .json(&serde_json::json!({"email": "  New.User@Example.COM ", "password": "a-long-password-9", "name": "New"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], "new.user@example.com");
    for typed in [
        "new.user@example.com",
        "NEW.USER@EXAMPLE.COM",
        " New.User@example.com",
    ] {
        assert_eq!(
            sign_in(&f.cutover, typed, "a-long-password-9")
                .await
                .status(),
            200,
            "{typed}"
        );
    }
    // Unknown identifiers get a dummy verify (same time as a wrong password).
    let jobs = f.cutover.app.intercept.pool().started();
    assert_eq!(
        sign_in(&f.cutover, "nobody@example.com", "x-password")
            .await
            .status(),
        401
    );
    assert_eq!(f.cutover.app.intercept.pool().started(), jobs + 1);
}

/// A tiny HTTP endpoint that keeps what it is sent (the app's webhook receiver).
struct Receiver {
    url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        use http_body_util::BodyExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/reset", listener.local_addr().unwrap());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let sink = sink.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let sink = sink.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                sink.lock().unwrap().push((parts.headers, bytes));
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { url, got }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_links_can_go_to_the_app_as_a_signed_webhook() {
    let receiver = Receiver::start().await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let extra = format!(
        "[reset]\nlink = \"https://app.example.test/reset?token={{token}}\"\n[reset.webhook]\nurl = \"{}\"\nsecret = \"{secret}\"\n",
        receiver.url
    );
    let f = fixture(Engine::Sqlite, &extra).await;
    seed(
        &f.db,
        "user_2hook",
        "hook@example.com",
        LedgerState::PendingReset,
        None,
        None,
    )
    .await;
    assert_eq!(
        sign_in(&f.cutover, "hook@example.com", "x").await.status(),
        403
    );
    let (headers, body) = receiver
        .got
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the webhook was called");
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    assert_eq!(
        headers["webhook-signature"].to_str().unwrap(),
        cutover::intercept::notify::sign_webhook(secret, id, ts, text),
        "Standard Webhooks signature over id.timestamp.body"
    );
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "password_reset.required");
    assert_eq!(event["data"]["user_id"], "user_2hook");
    let link = event["data"]["link"].as_str().unwrap();
    let token = link.split("token=").nth(1).unwrap();
    // The token is a real Kernia reset token: the credential row exists, so it resets.
    let reset = client()
        .post(f.cutover.url("/api/auth/reset-password"))
        .json(&serde_json::json!({"token": token, "password": "hooked-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(
        sign_in(&f.cutover, "hook@example.com", "hooked-password-1")
            .await
            .status(),
        200
    );
    assert_eq!(
        entry(&f.db, "user_2hook").await.state,
        LedgerState::Migrated
    );
}
