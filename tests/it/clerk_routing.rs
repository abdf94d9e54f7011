//! Clerk sessions through a running cutover: identity handed to the app,
//! sticky per-user pins, overrides, migrated users, both sessions at once.

use cutover::db::ledger::{self, LedgerState, NewLedgerEntry};

use crate::harness::clerk::{ClerkInstance, now};
use crate::harness::databases::TestDatabase;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::{KerniaServer, client, sign_up};
use crate::harness::server::{Cutover, toml};
use crate::harness::{Engine, repo_root};

const ASSERTION_SECRET: &str = "assertion-secret-for-tests-0123456789abcdef";

fn clerk_section(instance: &ClerkInstance) -> String {
    format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\nauthorized_parties = [\"{}\"]\n",
        instance.publishable_key(),
        repo_root()
            .join("tests/fixtures/clerk/key_a.pub.pem")
            .display(),
        instance.app_origin
    )
}

struct Stack {
    legacy: Echo,
    kernia: Echo,
    db: TestDatabase,
    cutover: Cutover,
    clerk: ClerkInstance,
}

async fn stack(extra: &str) -> Stack {
    let clerk = ClerkInstance::new();
    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let extra = format!(
        "{}{extra}\n[assertion]\nsecret = \"{ASSERTION_SECRET}\"\n",
        clerk_section(&clerk)
    );
    let cutover = Cutover::start(&toml(&legacy.url(), &kernia.url(), &db.url, &extra)).await;
    Stack {
        legacy,
        kernia,
        db,
        cutover,
        clerk,
    }
}

fn pin_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cutover_route="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

async fn seed(db: &TestDatabase, user_id: &str, email: &str, state: LedgerState) {
    let pool = db.connect().await;
    let mut conn = pool.acquire().await.unwrap();
    let entry = NewLedgerEntry {
        user_id: user_id.into(),
        email: Some(email.into()),
        state: Some(state),
        ..NewLedgerEntry::default()
    };
    assert!(
        ledger::insert_if_absent(&mut conn.conn(), &entry)
            .await
            .unwrap()
    );
}

#[derive(serde::Deserialize)]
struct Assertion {
    sub: String,
    provider: String,
    sid: String,
    org_id: Option<String>,
    org_role: Option<String>,
    #[serde(default)]
    org_permissions: Vec<String>,
}

#[tokio::test]
async fn a_clerk_session_goes_to_legacy_with_its_identity_and_org() {
    let s = stack("[rollout]\npercentage = 100\n").await;
    let token = s
        .clerk
        .token("user_2clerkA")
        .session("sess_2A")
        .org_v2("org_acme", "acme", "admin", "read,manage", "3", "o:reports")
        .build();
    let resp = client()
        .get(s.cutover.url("/dashboard"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-cutover-user-id", "user_admin")
        .send()
        .await
        .unwrap();
    let pin = pin_of(&resp).expect("the browser is pinned to the user");
    assert!(pin.starts_with("cutover_route=u."), "{pin}");
    assert!(!pin.contains("user_2clerkA"));
    let e = echo::read(resp).await;
    assert_eq!(
        e["served_by"], "legacy",
        "a Clerk session stays on legacy even at 100%"
    );
    assert_eq!(echo::header(&e, "x-cutover-provider"), Some("clerk"));
    assert_eq!(echo::header(&e, "x-cutover-user-id"), Some("user_2clerkA"));
    assert_eq!(echo::header(&e, "x-cutover-session-id"), Some("sess_2A"));
    assert_eq!(echo::header(&e, "x-cutover-org-id"), Some("org_acme"));
    assert_eq!(echo::header(&e, "x-cutover-org-role"), Some("org:admin"));
    let jwt = echo::header(&e, "x-cutover-assertion").unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Assertion>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims.sub, "user_2clerkA");
    assert_eq!(claims.provider, "clerk");
    assert_eq!(claims.sid, "sess_2A");
    assert_eq!(claims.org_id.as_deref(), Some("org_acme"));
    assert_eq!(claims.org_role.as_deref(), Some("org:admin"));
    assert_eq!(
        claims.org_permissions,
        vec!["org:reports:read", "org:reports:manage"]
    );

    // The user's own bucket now decides this browser, whatever it was before.
    let later = client()
        .get(s.cutover.url("/"))
        .header("cookie", &pin)
        .send()
        .await
        .unwrap();
    assert!(pin_of(&later).is_none());
    assert_eq!(
        echo::read(later).await["served_by"],
        "kernia",
        "at 100% the user's bucket is kernia"
    );
    assert_eq!(s.kernia.served(), 1);
}

#[tokio::test]
async fn clerk_cookies_honour_client_uat() {
    let s = stack("").await;
    let token = s.clerk.token("user_2cookie").v1().build();
    let cookies = |uat: u64| {
        format!(
            "{}={token}; {}={uat}",
            s.clerk.session_cookie(),
            s.clerk.client_uat_cookie()
        )
    };
    let signed_in = echo::read(
        client()
            .get(s.cutover.url("/"))
            .header("cookie", cookies(now() - 30))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        echo::header(&signed_in, "x-cutover-user-id"),
        Some("user_2cookie")
    );
    for uat in [0, now() + 30] {
        let e = echo::read(
            client()
                .get(s.cutover.url("/"))
                .header("cookie", cookies(uat))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            echo::header(&e, "x-cutover-provider"),
            Some("anonymous"),
            "client_uat={uat}"
        );
        assert_eq!(echo::header(&e, "x-cutover-user-id"), None);
    }
    let expired = s
        .clerk
        .token("user_2cookie")
        .issued_at(now() - 600)
        .expires_at(now() - 300)
        .build();
    let e = echo::read(
        client()
            .get(s.cutover.url("/"))
            .header("authorization", format!("Bearer {expired}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo::header(&e, "x-cutover-provider"), Some("anonymous"));
    assert_eq!(s.legacy.served(), 3 + 1);
}

#[tokio::test]
async fn overrides_by_org_and_email_domain_pin_known_users() {
    let s = stack(
        "[rollout]\npercentage = 50\nallow_orgs = [\"org_beta\"]\ndeny_email_domains = [\"vip.example\"]\n",
    )
    .await;
    seed(
        &s.db,
        "user_vip",
        "ceo@VIP.example",
        LedgerState::PendingPassword,
    )
    .await;
    let beta = s
        .clerk
        .token("user_beta")
        .v1()
        .org_v1("org_beta", "beta", "org:member", &[])
        .build();
    let resp = client()
        .get(s.cutover.url("/"))
        .header("authorization", format!("Bearer {beta}"))
        .send()
        .await
        .unwrap();
    let allowed = pin_of(&resp).unwrap();
    assert!(allowed.starts_with("cutover_route=k."), "{allowed}");
    let vip = s.clerk.token("user_vip").build();
    let resp = client()
        .get(s.cutover.url("/"))
        .header("authorization", format!("Bearer {vip}"))
        .send()
        .await
        .unwrap();
    let denied = pin_of(&resp).unwrap();
    assert!(denied.starts_with("cutover_route=l."), "{denied}");
    for (pin, side) in [(&allowed, "kernia"), (&denied, "legacy")] {
        for _ in 0..3 {
            let e = echo::read(
                client()
                    .get(s.cutover.url("/"))
                    .header("cookie", pin)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(e["served_by"], side, "{pin}");
        }
    }
}

#[tokio::test]
async fn migrated_users_on_a_clerk_session_sign_in_again_at_kernia_when_configured() {
    let s = stack("[rollout]\npercentage = 0\nreauth_migrated_clerk_sessions = true\n").await;
    seed(
        &s.db,
        "user_moved",
        "moved@example.com",
        LedgerState::Migrated,
    )
    .await;
    let token = s.clerk.token("user_moved").build();
    let page = client()
        .get(s.cutover.url("/account"))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/sign-in");
    let pin = pin_of(&page).unwrap();
    assert!(pin.starts_with("cutover_route=m."), "{pin}");
    let api = client()
        .get(s.cutover.url("/api/items"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["code"],
        "REAUTHENTICATE"
    );
    // Not migrated: legacy as usual.
    let other = s.clerk.token("user_waiting").build();
    let e = echo::read(
        client()
            .get(s.cutover.url("/account"))
            .header("authorization", format!("Bearer {other}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["served_by"], "legacy");
    // Signed out later, the migrated user's browser lands on Kernia even at 0%.
    let e = echo::read(
        client()
            .get(s.cutover.url("/"))
            .header("cookie", &pin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["served_by"], "kernia");
}

#[tokio::test]
async fn a_request_with_both_sessions_is_a_kernia_request() {
    let clerk = ClerkInstance::new();
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let c = Cutover::start(&toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        &clerk_section(&clerk),
    ))
    .await;
    let (user_id, cookie) =
        sign_up(&c.url(""), "both@example.com", "a-long-password-3", "Both").await;
    let token = clerk.token("user_2someoneelse").build();
    let me: serde_json::Value = client()
        .get(c.url("/whoami"))
        .header("cookie", &cookie)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["served_by"], "kernia-app");
    assert_eq!(me["provider"], "kernia");
    assert_eq!(me["user_id"], user_id.as_str());
}
