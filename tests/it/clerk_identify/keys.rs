//! Clerk keys from the emulator's JWKS endpoint: rotation, the refetch rate
//! limit, coalesced misses, stale-while-error, the background refresh and the
//! Backend API's secret key.

use std::time::Duration;

use cutover::identify::clerk::{ClerkOutcome, ClerkVerifier, SignedOutReason};
use futures_util::future::join_all;

use super::{bearer, signed_in_as};
use crate::harness::clerk::{
    ClerkInstance, ClerkKey, JwksMode, JwksServer, bapi_jwks_keys, jwks_keys, now,
};

async fn verifier(
    clerk: &ClerkInstance,
    jwks: &JwksServer,
    refresh: Duration,
    min_refetch: Duration,
) -> ClerkVerifier {
    let keys = jwks_keys(jwks.url(), refresh, min_refetch);
    ClerkVerifier::new(&clerk.config(keys))
        .await
        .expect("verifier")
}

const LONG: Duration = Duration::from_secs(600);

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_the_rate_limit_holds() {
    let clerk = ClerkInstance::new();
    let (a, b) = (ClerkKey::a(), ClerkKey::b());
    let jwks = JwksServer::start(&[&a], None).await;
    let v = verifier(&clerk, &jwks, LONG, Duration::from_secs(60)).await;
    assert_eq!(jwks.requests(), 1, "fetched at start");

    // Clerk rotates to key B.
    jwks.set_keys(&[&b]);
    let rotated = clerk.token("user_1").signed_with(&b).build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&rotated), now()).await),
        "user_1"
    );
    assert_eq!(jwks.requests(), 2, "one refetch for the new kid");

    // Another unknown kid within min_refetch: refused without a fetch.
    let stranger = clerk
        .token("user_1")
        .signed_with(&ClerkKey::b().with_kid("ins_unknown"))
        .build();
    assert_eq!(
        v.identify(&bearer(&stranger), now()).await,
        ClerkOutcome::SignedOut(SignedOutReason::UnknownKeyId)
    );
    assert_eq!(jwks.requests(), 2, "rate-limited");
    // Key A left the set with the rotation.
    let old = clerk.token("user_1").build();
    assert_eq!(
        v.identify(&bearer(&old), now()).await,
        ClerkOutcome::SignedOut(SignedOutReason::UnknownKeyId)
    );
    assert_eq!(jwks.requests(), 2);
}

#[tokio::test]
async fn the_refetch_is_allowed_again_after_min_refetch() {
    let clerk = ClerkInstance::new();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    let v = verifier(&clerk, &jwks, LONG, Duration::from_secs(1)).await;
    let stranger = clerk.token("user_1").signed_with(&ClerkKey::b()).build();
    v.identify(&bearer(&stranger), now()).await;
    v.identify(&bearer(&stranger), now()).await;
    assert_eq!(jwks.requests(), 2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    jwks.set_keys(&[&clerk.key, &ClerkKey::b()]);
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&stranger), now()).await),
        "user_1"
    );
    assert_eq!(jwks.requests(), 3);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let clerk = ClerkInstance::new();
    let b = ClerkKey::b();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    let v = verifier(&clerk, &jwks, LONG, Duration::from_secs(60)).await;
    jwks.set_keys(&[&clerk.key, &b]);
    jwks.set_delay(Duration::from_millis(300));
    let tokens: Vec<String> = (0..8)
        .map(|i| clerk.token(&format!("user_{i}")).signed_with(&b).build())
        .collect();
    let outcomes = join_all(tokens.iter().map(|t| {
        let headers = bearer(t);
        let v = &v;
        async move { v.identify(&headers, now()).await }
    }))
    .await;
    for outcome in &outcomes {
        signed_in_as(outcome);
    }
    assert_eq!(jwks.requests(), 2, "start + one coalesced refetch");
}

#[tokio::test]
async fn a_failing_endpoint_keeps_the_last_good_keys() {
    let clerk = ClerkInstance::new();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    let v = verifier(
        &clerk,
        &jwks,
        Duration::from_millis(200),
        Duration::from_secs(60),
    )
    .await;
    jwks.set_mode(JwksMode::Status(503));
    tokio::time::sleep(Duration::from_millis(500)).await; // refreshes fail meanwhile
    let stats = v.stats();
    assert!(stats.jwks_failures >= 1, "{stats:?}");
    assert_eq!(stats.keys, 1);
    // An unknown kid's refetch fails too; known keys still verify.
    let stranger = clerk.token("user_1").signed_with(&ClerkKey::b()).build();
    assert_eq!(
        v.identify(&bearer(&stranger), now()).await,
        ClerkOutcome::SignedOut(SignedOutReason::UnknownKeyId)
    );
    let token = clerk.token("user_1").build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&token), now()).await),
        "user_1"
    );
    // Garbage, empty and oversized bodies do not replace the keys either.
    for body in [
        "<html>oops</html>".to_string(),
        r#"{"keys":[]}"#.to_string(),
        " ".repeat(300 * 1024),
    ] {
        jwks.set_mode(JwksMode::Body(body));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(v.stats().keys, 1);
    }
    let failures = v.stats().jwks_failures;
    let fresh = clerk.token("user_2").build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&fresh), now()).await),
        "user_2"
    );
    assert!(failures >= 2, "{failures}");
}

#[tokio::test]
async fn the_background_refresh_picks_up_new_keys() {
    let clerk = ClerkInstance::new();
    let b = ClerkKey::b();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    let v = verifier(
        &clerk,
        &jwks,
        Duration::from_millis(200),
        Duration::from_secs(60),
    )
    .await;
    jwks.set_keys(&[&clerk.key, &b]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(v.stats().keys, 2);
    let before = jwks.requests();
    assert!(before >= 2);
    let token = clerk.token("user_1").signed_with(&b).build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&token), now()).await),
        "user_1"
    );
    drop(v);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_drop = jwks.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        jwks.requests(),
        after_drop,
        "the refresh task ends with the verifier"
    );
}

#[tokio::test]
async fn a_verifier_started_while_the_endpoint_is_down_recovers_on_the_first_miss() {
    let clerk = ClerkInstance::new();
    let jwks = JwksServer::start(&[&clerk.key], None).await;
    jwks.set_mode(JwksMode::Status(500));
    let v = verifier(&clerk, &jwks, LONG, Duration::from_secs(60)).await;
    assert_eq!((v.stats().keys, v.stats().jwks_failures), (0, 1));
    jwks.set_mode(JwksMode::Serve);
    let token = clerk.token("user_1").build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&token), now()).await),
        "user_1"
    );
    assert_eq!(jwks.requests(), 2);
}

#[tokio::test]
async fn the_backend_api_jwks_gets_the_secret_key_as_bearer() {
    let clerk = ClerkInstance::new();
    let jwks = JwksServer::start(&[&clerk.key], Some("sk_test_cutover")).await;
    let v = ClerkVerifier::new(&clerk.config(bapi_jwks_keys(jwks.bapi_url(), "sk_test_cutover")))
        .await
        .expect("verifier");
    let token = clerk.token("user_1").build();
    assert_eq!(
        signed_in_as(&v.identify(&bearer(&token), now()).await),
        "user_1"
    );
    assert_eq!(
        jwks.authorizations(),
        [Some("Bearer sk_test_cutover".to_string())]
    );
    // Without the secret key the Backend API answers 401 and no key is known.
    let keys = jwks_keys(jwks.bapi_url(), LONG, Duration::from_secs(60));
    let anonymous = ClerkVerifier::new(&clerk.config(keys))
        .await
        .expect("verifier");
    assert_eq!(anonymous.stats().keys, 0);
}
