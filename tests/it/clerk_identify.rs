//! Clerk identification against the emulator's real JWKS endpoint: tokens as
//! Clerk mints them, and the ways they must be refused.

mod keys;

use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};
use serde_json::json;

use cutover::identify::clerk::{ClerkOrg, ClerkOutcome, ClerkVerifier, SignedOutReason};

use crate::harness::clerk::{ClerkInstance, JwksServer, jwks_keys, now};

/// An instance, its JWKS endpoint (key A) and a verifier fed by it.
struct Setup {
    clerk: ClerkInstance,
    jwks: JwksServer,
    verifier: ClerkVerifier,
}

async fn setup() -> Setup {
    let clerk = ClerkInstance::new();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    let keys = jwks_keys(
        jwks.url(),
        Duration::from_secs(300),
        Duration::from_secs(60),
    );
    let verifier = ClerkVerifier::new(&clerk.config(keys))
        .await
        .expect("verifier");
    Setup {
        clerk,
        jwks,
        verifier,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn cookies(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
    h
}

fn signed_in_as(outcome: &ClerkOutcome) -> &str {
    match outcome {
        ClerkOutcome::SignedIn(identity) => &identity.user_id,
        other => panic!("expected signed in, got {other:?}"),
    }
}

impl Setup {
    async fn header(&self, token: &str) -> ClerkOutcome {
        self.verifier.identify(&bearer(token), now()).await
    }

    async fn refused(&self, token: &str) -> SignedOutReason {
        match self.header(token).await {
            ClerkOutcome::SignedOut(reason) => reason,
            other => panic!("expected signed out, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_v2_token_with_org_claims_signs_in_with_decoded_permissions() {
    let s = setup().await;
    let token = s
        .clerk
        .token("user_2v2")
        .org_v2(
            "org_1",
            "acme",
            "admin",
            "read,manage",
            "1,3",
            "o:impersonation,o:memberships",
        )
        .actor("user_support")
        .build();
    let outcome = s.header(&token).await;
    let ClerkOutcome::SignedIn(identity) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(identity.user_id, "user_2v2");
    assert!(identity.session_id.starts_with("sess_"));
    assert_eq!(identity.actor.as_deref(), Some("user_support"));
    assert!(identity.expires_at > now());
    assert_eq!(
        identity.org,
        Some(ClerkOrg {
            id: "org_1".into(),
            slug: Some("acme".into()),
            role: Some("org:admin".into()),
            permissions: vec![
                "org:impersonation:read".into(),
                "org:memberships:read".into(),
                "org:memberships:manage".into(),
            ],
        })
    );
}

#[tokio::test]
async fn a_v1_token_with_org_claims_signs_in_from_the_suffixed_cookie() {
    let s = setup().await;
    let token = s
        .clerk
        .token("user_2v1")
        .v1()
        .org_v1("org_9", "globex", "org:member", &["org:teams:read"])
        .build();
    let cookie = format!(
        "{}={token}; {}={}",
        s.clerk.session_cookie(),
        s.clerk.client_uat_cookie(),
        now() - 100
    );
    let outcome = s.verifier.identify(&cookies(&cookie), now()).await;
    assert_eq!(signed_in_as(&outcome), "user_2v1");
    let ClerkOutcome::SignedIn(identity) = outcome else {
        unreachable!()
    };
    let org = identity.org.clone().expect("org");
    assert_eq!(
        (org.id.as_str(), org.role.as_deref()),
        ("org_9", Some("org:member"))
    );
    assert_eq!(org.permissions, ["org:teams:read"]);
}

#[tokio::test]
async fn time_claims_are_enforced_with_five_seconds_of_skew() {
    let s = setup().await;
    let t = now();
    let expired = s.clerk.token("user_1").issued_at(t - 70).build(); // exp = t - 10
    assert_eq!(s.refused(&expired).await, SignedOutReason::Expired);
    let just_expired_within_skew = s.clerk.token("user_1").issued_at(t - 62).build(); // exp = t - 2
    signed_in_as(&s.header(&just_expired_within_skew).await);
    let future = s.clerk.token("user_1").not_before(t + 30).build();
    assert_eq!(s.refused(&future).await, SignedOutReason::NotYetValid);
    let issued_later = s
        .clerk
        .token("user_1")
        .issued_at(t + 30)
        .not_before(t)
        .build();
    assert_eq!(
        s.refused(&issued_later).await,
        SignedOutReason::IssuedInFuture
    );
}

#[tokio::test]
async fn issuer_and_authorized_party_are_pinned() {
    let s = setup().await;
    let other = s
        .clerk
        .token("user_1")
        .issuer("https://clerk.other.test")
        .build();
    assert_eq!(s.refused(&other).await, SignedOutReason::WrongIssuer);
    let no_azp = s.clerk.token("user_1").azp(None).build();
    assert_eq!(
        s.refused(&no_azp).await,
        SignedOutReason::MissingAuthorizedParty
    );
    let wrong_azp = s
        .clerk
        .token("user_1")
        .azp(Some("https://evil.example"))
        .build();
    assert_eq!(
        s.refused(&wrong_azp).await,
        SignedOutReason::UnauthorizedParty
    );
}

#[tokio::test]
async fn forged_and_foreign_signatures_are_refused() {
    let s = setup().await;
    let none = s.clerk.token("user_1").unsigned().build();
    assert_eq!(
        s.refused(&none).await,
        SignedOutReason::UnsupportedAlgorithm
    );
    let hmac = s
        .clerk
        .token("user_1")
        .hs256_with_public_key(&s.clerk.key)
        .build();
    assert_eq!(
        s.refused(&hmac).await,
        SignedOutReason::UnsupportedAlgorithm
    );
    let es = s.clerk.token("user_1").alg("ES256").build();
    assert_eq!(s.refused(&es).await, SignedOutReason::UnsupportedAlgorithm);
    let tampered = s.clerk.token("user_1").tampered().build();
    assert_eq!(s.refused(&tampered).await, SignedOutReason::BadSignature);
    // Signed with another key but naming ours.
    let impostor = crate::harness::clerk::ClerkKey::b().with_kid(&s.clerk.key.kid);
    let wrong_key = s.clerk.token("user_1").signed_with(&impostor).build();
    assert_eq!(s.refused(&wrong_key).await, SignedOutReason::BadSignature);
    let no_kid = s.clerk.token("user_1").without_header("kid").build();
    assert_eq!(s.refused(&no_kid).await, SignedOutReason::MissingKeyId);
}

#[tokio::test]
async fn other_token_kinds_are_not_sessions() {
    let s = setup().await;
    for typ in ["at+jwt", "application/at+jwt"] {
        let oauth = s.clerk.token("user_1").header("typ", json!(typ)).build();
        assert_eq!(
            s.refused(&oauth).await,
            SignedOutReason::WrongTokenType,
            "{typ}"
        );
    }
    for cat in ["cl_B7d4PD222AAA", "cl_B7d4PD333AAA"] {
        let other = s.clerk.token("user_1").header("cat", json!(cat)).build();
        assert_eq!(
            s.refused(&other).await,
            SignedOutReason::WrongCategory,
            "{cat}"
        );
    }
    let machine = s.clerk.token("mch_2worker").build();
    assert_eq!(s.refused(&machine).await, SignedOutReason::MachineToken);
    let pending = s.clerk.token("user_1").pending().build();
    assert_eq!(s.refused(&pending).await, SignedOutReason::PendingSession);
    // Still a session: no typ, no cat, the "ignore" cat, an unknown numeric header field.
    let plain = s
        .clerk
        .token("user_1")
        .without_header("typ")
        .without_header("cat")
        .build();
    signed_in_as(&s.header(&plain).await);
    let ignore = s
        .clerk
        .token("user_1")
        .header("cat", json!("cl_I7d4PD111III"))
        .build();
    signed_in_as(&s.header(&ignore).await);
    let oiat = s.clerk.token("user_1").header("oiat", json!(now())).build();
    signed_in_as(&s.header(&oiat).await);
}

#[tokio::test]
async fn client_uat_signs_cookie_tokens_out() {
    let s = setup().await;
    let token = s.clerk.token("user_1").build();
    let (session, uat) = (s.clerk.session_cookie(), s.clerk.client_uat_cookie());
    let ask = |cookie: String| {
        let v = &s.verifier;
        async move { v.identify(&cookies(&cookie), now()).await }
    };
    assert_eq!(
        ask(format!("{session}={token}; {uat}=0")).await,
        ClerkOutcome::SignedOut(SignedOutReason::ClientUatZero)
    );
    assert_eq!(
        ask(format!("{session}={token}")).await,
        ClerkOutcome::SignedOut(SignedOutReason::ClientUatMissing)
    );
    assert_eq!(
        ask(format!("{session}={token}; {uat}={}", now() + 1)).await,
        ClerkOutcome::SignedOut(SignedOutReason::IssuedBeforeClientUat)
    );
    signed_in_as(&ask(format!("{session}={token}; {uat}={}", now() - 1)).await);
}

#[tokio::test]
async fn suffixed_cookies_win_and_unsuffixed_ones_are_the_fallback() {
    let s = setup().await;
    let (session, uat) = (s.clerk.session_cookie(), s.clerk.client_uat_cookie());
    let t = now() - 30;
    let suffixed = s.clerk.token("user_suffixed").issued_at(t + 20).build();
    // Older than the suffixed token: Clerk would read the newer of the two.
    let plain = s.clerk.token("user_plain").issued_at(t + 10).build();
    let both = format!("__session={plain}; __client_uat={t}; {session}={suffixed}; {uat}={t}");
    assert_eq!(
        signed_in_as(&s.verifier.identify(&cookies(&both), now()).await),
        "user_suffixed"
    );
    let only_plain = format!("__session={plain}; __client_uat={t}");
    assert_eq!(
        signed_in_as(&s.verifier.identify(&cookies(&only_plain), now()).await),
        "user_plain"
    );
    // A suffixed session without its own client_uat: the unsuffixed pair is read.
    let half = format!("{session}={suffixed}; __session={plain}; __client_uat={t}");
    assert_eq!(
        signed_in_as(&s.verifier.identify(&cookies(&half), now()).await),
        "user_plain"
    );
    // A garbage suffixed cookie next to a valid unsuffixed session does not
    // sign the user out (Clerk's SDK reads the unsuffixed one: it has an `iat`).
    for garbage in ["garbage", "x.y.z", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"] {
        let jammed = format!("{session}={garbage}; {uat}={t}; __session={plain}; __client_uat={t}");
        assert_eq!(
            signed_in_as(&s.verifier.identify(&cookies(&jammed), now()).await),
            "user_plain",
            "{garbage}"
        );
    }
    // The suffix is the instance's: another instance's cookie is not ours.
    let foreign = format!("__session_AAAAAAAA={suffixed}; __client_uat_AAAAAAAA={t}");
    assert_eq!(
        s.verifier.identify(&cookies(&foreign), now()).await,
        ClerkOutcome::NoToken
    );
}

#[tokio::test]
async fn a_bearer_token_wins_over_cookies() {
    let s = setup().await;
    let from_header = s.clerk.token("user_header").build();
    let from_cookie = s.clerk.token("user_cookie").build();
    let mut h = bearer(&from_header);
    let cookie = format!(
        "{}={from_cookie}; {}={}",
        s.clerk.session_cookie(),
        s.clerk.client_uat_cookie(),
        now()
    );
    h.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
    assert_eq!(
        signed_in_as(&s.verifier.identify(&h, now()).await),
        "user_header"
    );
    // A bad header token is not rescued by a good cookie.
    let mut h = bearer("not-a-jwt");
    h.insert(COOKIE, HeaderValue::from_str(&cookie).unwrap());
    assert_eq!(
        s.verifier.identify(&h, now()).await,
        ClerkOutcome::SignedOut(SignedOutReason::Malformed)
    );
}

#[tokio::test]
async fn the_cache_verifies_each_token_once() {
    let s = setup().await;
    let token = s.clerk.token("user_1").build();
    for _ in 0..5 {
        signed_in_as(&s.header(&token).await);
    }
    let stats = s.verifier.stats();
    assert_eq!((stats.signature_checks, stats.cache_hits), (1, 4));
    let another = s.clerk.token("user_1").build();
    signed_in_as(&s.header(&another).await);
    assert_eq!(s.verifier.stats().signature_checks, 2);
    assert_eq!(s.jwks.requests(), 1, "no JWKS traffic for known keys");
}

#[tokio::test]
async fn pem_keys_need_no_network() {
    let clerk = ClerkInstance::dev();
    assert!(clerk.publishable_key().starts_with("pk_test_"));
    let verifier = ClerkVerifier::new(&clerk.config(clerk.pem_keys()))
        .await
        .expect("verifier");
    let token = clerk
        .token("user_1")
        .header("kid", json!("ins_not_compared"))
        .build();
    assert_eq!(
        signed_in_as(&verifier.identify(&bearer(&token), now()).await),
        "user_1"
    );
    assert_eq!(verifier.stats().jwks_fetches, 0);
}
