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
        // Every claim but the times is part of the key: a permission revoked
        // at Clerk must not linger in a cached assertion.
        let key = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            facts.provider,
            facts.session_id,
            facts.user_id,
            facts.org_id.unwrap_or(""),
            facts.org_role.unwrap_or(""),
            facts.actor.unwrap_or(""),
            facts.org_permissions.join("\u{1}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AssertionConfig, AssertionKey, Secret};

    #[derive(serde::Deserialize)]
    struct Read {
        sub: String,
        provider: String,
        org_role: Option<String>,
        exp: u64,
        iat: u64,
    }

    fn facts<'a>(perms: &'a [String]) -> Facts<'a> {
        Facts {
            provider: "clerk",
            user_id: "user_2abc",
            session_id: "sess_1",
            org_id: Some("org_1"),
            org_role: Some("org:admin"),
            org_permissions: perms,
            actor: None,
        }
    }

    #[test]
    fn ed25519_assertions_verify_with_the_public_key() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cfg = AssertionConfig {
            key: AssertionKey::Ed25519 {
                pem: Secret::new(pair.serialize_pem()),
                path: "k.pem".into(),
            },
            ttl: Duration::from_secs(60),
            issuer: "cutover".into(),
            audience: Some("app".into()),
        };
        let signer = Signer::new(&cfg).unwrap();
        let perms = vec!["org:reports:read".to_string()];
        let jwt = signer.sign(&facts(&perms), 1_800_000_000).unwrap();
        let key = jsonwebtoken::DecodingKey::from_ed_der(pair.public_key_raw());
        let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        v.set_audience(&["app"]);
        v.validate_exp = false;
        let read = jsonwebtoken::decode::<Read>(jwt.as_bytes(), &key, &v)
            .unwrap()
            .claims;
        assert_eq!(
            (read.sub.as_str(), read.provider.as_str()),
            ("user_2abc", "clerk")
        );
        assert_eq!(read.org_role.as_deref(), Some("org:admin"));
        assert_eq!(read.exp - read.iat, 60);
    }

    #[test]
    fn a_signed_assertion_is_reused_for_the_same_session_only() {
        let cfg = AssertionConfig {
            key: AssertionKey::Hs256(Secret::new("x".repeat(32))),
            ttl: Duration::from_secs(60),
            issuer: "cutover".into(),
            audience: None,
        };
        let signer = Signer::new(&cfg).unwrap();
        let perms = Vec::new();
        let a = signer.sign(&facts(&perms), 1_800_000_000).unwrap();
        let b = signer.sign(&facts(&perms), 1_800_000_001).unwrap();
        assert_eq!(a, b, "cached");
        let mut other = facts(&perms);
        other.session_id = "sess_2";
        assert_ne!(signer.sign(&other, 1_800_000_001).unwrap(), a);
    }

    #[test]
    fn a_revoked_permission_is_not_served_from_the_cache() {
        #[derive(serde::Deserialize)]
        struct Perms {
            #[serde(default)]
            org_permissions: Vec<String>,
        }
        let cfg = AssertionConfig {
            key: AssertionKey::Hs256(Secret::new("x".repeat(32))),
            ttl: Duration::from_secs(60),
            issuer: "cutover".into(),
            audience: None,
        };
        let signer = Signer::new(&cfg).unwrap();
        let read = |jwt: &str| {
            let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
            v.validate_exp = false;
            v.required_spec_claims.clear();
            let key = jsonwebtoken::DecodingKey::from_secret("x".repeat(32).as_bytes());
            jsonwebtoken::decode::<Perms>(jwt.as_bytes(), &key, &v)
                .unwrap()
                .claims
                .org_permissions
        };
        let granted = vec![
            "org:billing:manage".to_string(),
            "org:reports:read".to_string(),
        ];
        let a = signer.sign(&facts(&granted), 1_800_000_000).unwrap();
        assert_eq!(read(&a), granted);
        let revoked = vec!["org:reports:read".to_string()];
        let b = signer.sign(&facts(&revoked), 1_800_000_001).unwrap();
        assert_eq!(
            read(&b),
            revoked,
            "the revoked permission is still asserted"
        );
    }
}
