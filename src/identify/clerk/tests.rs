//! The whole verifier in networkless (PEM) mode: no sockets, a fixed clock.

use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::test_support::{KEY_A_PUBLIC, KEY_B_PRIVATE, default_header, mint, mint_with};
use super::*;
use crate::config::{ClerkConfig, ClerkKeys};

const NOW: u64 = 1_713_158_400;
const PK: &str = "pk_test_Y2xlcmsuZXhhbXBsZS50ZXN0JA"; // clerk.example.test$
const ISS: &str = "https://clerk.example.test";

fn config() -> ClerkConfig {
    ClerkConfig {
        publishable_key: Some(PK.into()),
        keys: ClerkKeys::Pem(KEY_A_PUBLIC.into()),
        issuers: vec![ISS.into()],
        authorized_parties: vec!["https://app.example.test".into()],
        clock_skew: Duration::from_secs(5),
    }
}

fn claims() -> Value {
    json!({
        "azp": "https://app.example.test", "exp": NOW + 60, "fva": [0, -1], "iat": NOW,
        "iss": ISS, "nbf": NOW - 5, "sid": "sess_1", "sub": "user_1", "v": 2, "sts": "active"
    })
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn cookies(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(value).unwrap());
    h
}

async fn verifier() -> ClerkVerifier {
    ClerkVerifier::new(&config()).await.unwrap()
}

fn user(outcome: &ClerkOutcome) -> Option<&str> {
    match outcome {
        ClerkOutcome::SignedIn(id) => Some(&id.user_id),
        _ => None,
    }
}

#[tokio::test]
async fn a_valid_header_token_signs_in_and_the_pem_mode_ignores_kid() {
    let v = verifier().await;
    let mut header = default_header();
    header["kid"] = json!("ins_whatever");
    let out = v.identify(&bearer(&mint(&header, &claims())), NOW).await;
    assert_eq!(user(&out), Some("user_1"));
    let mut no_kid = default_header();
    no_kid.as_object_mut().unwrap().remove("kid");
    let out = v.identify(&bearer(&mint(&no_kid, &claims())), NOW).await;
    assert_eq!(user(&out), Some("user_1"));
}

#[tokio::test]
async fn rs384_and_rs512_are_refused_though_signed_by_the_instance_key() {
    let v = verifier().await;
    for alg in ["RS384", "RS512"] {
        let mut header = default_header();
        header["alg"] = json!(alg);
        assert_eq!(
            v.identify(&bearer(&mint(&header, &claims())), NOW).await,
            ClerkOutcome::SignedOut(SignedOutReason::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn another_keys_signature_is_refused() {
    let v = verifier().await;
    let token = mint_with(KEY_B_PRIVATE, &default_header(), &claims());
    assert_eq!(
        v.identify(&bearer(&token), NOW).await,
        ClerkOutcome::SignedOut(SignedOutReason::BadSignature)
    );
}

#[tokio::test]
async fn no_token_and_client_uat_rules() {
    let v = verifier().await;
    assert_eq!(
        v.identify(&HeaderMap::new(), NOW).await,
        ClerkOutcome::NoToken
    );
    let token = mint(&default_header(), &claims());
    let out = v
        .identify(&cookies(&format!("__session={token}")), NOW)
        .await;
    assert_eq!(
        out,
        ClerkOutcome::SignedOut(SignedOutReason::ClientUatMissing)
    );
    let out = v
        .identify(&cookies(&format!("__session={token}; __client_uat=0")), NOW)
        .await;
    assert_eq!(out, ClerkOutcome::SignedOut(SignedOutReason::ClientUatZero));
    let out = v
        .identify(
            &cookies(&format!("__session={token}; __client_uat={}", NOW + 1)),
            NOW,
        )
        .await;
    assert_eq!(
        out,
        ClerkOutcome::SignedOut(SignedOutReason::IssuedBeforeClientUat)
    );
    let out = v
        .identify(
            &cookies(&format!("__session={token}; __client_uat={NOW}")),
            NOW,
        )
        .await;
    assert_eq!(user(&out), Some("user_1"));
    // The header token skips the client_uat rule.
    let mut h = bearer(&token);
    h.insert(COOKIE, HeaderValue::from_static("__client_uat=0"));
    assert_eq!(user(&v.identify(&h, NOW).await), Some("user_1"));
}

#[tokio::test]
async fn the_cache_pays_the_signature_once_and_still_applies_the_clock() {
    let v = verifier().await;
    let mut c = claims();
    c["nbf"] = json!(NOW + 20); // not valid yet
    let headers = bearer(&mint(&default_header(), &c));
    let out = v.identify(&headers, NOW).await;
    assert_eq!(out, ClerkOutcome::SignedOut(SignedOutReason::NotYetValid));
    assert_eq!(v.stats().signature_checks, 1);
    assert_eq!(user(&v.identify(&headers, NOW + 15).await), Some("user_1"));
    assert_eq!(user(&v.identify(&headers, NOW + 64).await), Some("user_1"));
    let out = v.identify(&headers, NOW + 65).await;
    assert_eq!(out, ClerkOutcome::SignedOut(SignedOutReason::Expired));
    let stats = v.stats();
    assert_eq!((stats.signature_checks, stats.cache_hits), (1, 3));
}

#[tokio::test]
async fn the_cache_applies_client_uat_per_request() {
    let v = verifier().await;
    let token = mint(&default_header(), &claims());
    let ok = cookies(&format!("__session={token}; __client_uat={}", NOW - 30));
    let signed_out_elsewhere = cookies(&format!("__session={token}; __client_uat={}", NOW + 2));
    assert_eq!(user(&v.identify(&ok, NOW).await), Some("user_1"));
    assert_eq!(
        v.identify(&signed_out_elsewhere, NOW + 3).await,
        ClerkOutcome::SignedOut(SignedOutReason::IssuedBeforeClientUat)
    );
    assert_eq!(v.stats().signature_checks, 1);
}

#[tokio::test]
async fn lasting_refusals_are_cached_and_failures_are_not() {
    let v = verifier().await;
    let mut pending = claims();
    pending["sts"] = json!("pending");
    let headers = bearer(&mint(&default_header(), &pending));
    for _ in 0..3 {
        assert_eq!(
            v.identify(&headers, NOW).await,
            ClerkOutcome::SignedOut(SignedOutReason::PendingSession)
        );
    }
    assert_eq!(v.stats().signature_checks, 1);
    let forged = bearer(&mint_with(KEY_B_PRIVATE, &default_header(), &claims()));
    for _ in 0..3 {
        v.identify(&forged, NOW).await;
    }
    assert_eq!(v.stats().signature_checks, 4);
}

#[tokio::test]
async fn claims_that_are_not_json_after_a_good_signature_are_malformed() {
    let v = verifier().await;
    let token = mint(&default_header(), &json!("just a string"));
    assert_eq!(
        v.identify(&bearer(&token), NOW).await,
        ClerkOutcome::SignedOut(SignedOutReason::Malformed)
    );
    let mut no_iat = claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(
        v.identify(&bearer(&mint(&default_header(), &no_iat)), NOW)
            .await,
        ClerkOutcome::SignedOut(SignedOutReason::MissingTimes)
    );
}

#[tokio::test]
async fn a_bad_pem_is_a_setup_error() {
    let mut cfg = config();
    cfg.keys =
        ClerkKeys::Pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into());
    assert!(matches!(
        ClerkVerifier::new(&cfg).await,
        Err(ClerkSetupError::BadPem(_))
    ));
}

#[tokio::test]
async fn the_verifier_is_shareable_and_identify_is_a_send_future() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let v = verifier().await;
    shareable(&v);
    let headers = HeaderMap::new();
    let future = v.identify(&headers, NOW);
    send(&future);
    assert_eq!(future.await, ClerkOutcome::NoToken);
}
