//! The identity handed to the app, signed: the `x-cutover-assertion` header.
//!
//! Whichever provider signed the user in, the app's backend can protect its
//! routes with one check: verify this short-lived JWT (HS256 with a shared
//! secret, or EdDSA/Ed25519 with cutover's public key) and read its claims:
//!
//! | claim | value |
//! |---|---|
//! | `iss` | `[assertion].issuer` (default `cutover`) |
//! | `aud` | `[assertion].audience`, when set |
//! | `sub` | the user id (a Clerk id is kept as the Kernia id, so it is the same id on both sides) |
//! | `provider` | `clerk` or `kernia` |
//! | `sid` | the session id at that provider |
//! | `org_id`, `org_role`, `org_permissions` | the active Clerk organization, when there is one |
//! | `act` | the impersonating actor's user id (Clerk `act.sub`), when there is one |
//! | `iat`, `exp` | issued now, valid for `[assertion].ttl_secs` (default 60) |
//!
//! Anonymous requests carry no assertion. Signed tokens are cached per session
//! for half their lifetime, so signing is not paid on every request.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::{AssertionConfig, AssertionKey};

/// The facts an assertion carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    pub provider: &'a str,
    pub user_id: &'a str,
    pub session_id: &'a str,
    pub org_id: Option<&'a str>,
    pub org_role: Option<&'a str>,
    pub org_permissions: &'a [String],
    pub actor: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    sub: &'a str,
    provider: &'a str,
    sid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_role: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    org_permissions: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a str>,
    iat: u64,
    exp: u64,
}

pub struct Signer {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: Option<String>,
    ttl: Duration,
    cache: moka::sync::Cache<String, Arc<str>>,
}

impl Signer {
    pub fn new(cfg: &AssertionConfig) -> Result<Signer, jsonwebtoken::errors::Error> {
        let (key, alg) = match &cfg.key {
            AssertionKey::Hs256(secret) => (
                EncodingKey::from_secret(secret.expose().as_bytes()),
                Algorithm::HS256,
            ),
            AssertionKey::Ed25519 { pem, .. } => (
                EncodingKey::from_ed_pem(pem.expose().as_bytes())?,
                Algorithm::EdDSA,
            ),
        };
        Ok(Signer {
            key,
            header: Header::new(alg),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl: cfg.ttl,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cfg.ttl / 2)
                .build(),
        })
    }

    /// A signed assertion for these facts, from the cache when a fresh one exists.
    pub fn sign(&self, facts: &Facts<'_>, now: u64) -> Option<Arc<str>> {
        let key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            facts.provider,
            facts.session_id,
            facts.user_id,
            facts.org_id.unwrap_or(""),
            facts.org_role.unwrap_or(""),
            facts.actor.unwrap_or("")
        );
        if let Some(hit) = self.cache.get(&key) {
            return Some(hit);
        }
        let claims = Claims {
            iss: &self.issuer,
            aud: self.audience.as_deref(),
            sub: facts.user_id,
            provider: facts.provider,
            sid: facts.session_id,
            org_id: facts.org_id,
            org_role: facts.org_role,
            org_permissions: facts.org_permissions,
            act: facts.actor,
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        match jsonwebtoken::encode(&self.header, &claims, &self.key) {
            Ok(token) => {
                let token: Arc<str> = token.into();
                self.cache.insert(key, token.clone());
                Some(token)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the identity assertion");
                None
            }
        }
    }
}
