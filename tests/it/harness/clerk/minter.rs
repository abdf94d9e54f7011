//! The session-token minter: v1 and v2 tokens exactly as Clerk signs them
//! (Clerk's session-token rules), with every field open to change.
//!
//! Defaults (a v2 token of an active session, issued now):
//! - header: `alg: RS256`, `typ: JWT`, `kid: <instance key id>`, `cat: cl_B7d4PD111AAA`;
//! - claims: `azp`, `exp = iat + 60`, `fva: [0, -1]`, `iat`, `iss`, `jti`,
//!   `nbf = iat − 5`, `sid`, `sub`, `v: 2`, `sts: active`.
//!
//! The JSON is built and signed here by hand (base64url, RSASSA-PKCS1-v1_5), so
//! tokens can carry anything a real or hostile issuer might put in them.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};

use super::{ClerkInstance, ClerkKey};

#[derive(Clone, Debug)]
enum Signer {
    Rsa(ClerkKey),
    /// HMAC with these bytes as the secret (the public-key confusion attack).
    Hmac(Vec<u8>),
    /// `alg: none`, empty signature.
    Unsigned,
}

/// Builds one session token; [`TokenBuilder::build`] signs it.
#[derive(Clone, Debug)]
pub struct TokenBuilder {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signer: Signer,
    tamper: bool,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! object"),
    }
}

impl TokenBuilder {
    pub fn new(instance: &ClerkInstance, user_id: &str, now: u64) -> Self {
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        TokenBuilder {
            header: object(json!({
                "alg": "RS256", "typ": "JWT", "kid": instance.key.kid, "cat": "cl_B7d4PD111AAA"
            })),
            claims: object(json!({
                "azp": instance.app_origin,
                "exp": now + 60,
                "fva": [0, -1],
                "iat": now,
                "iss": instance.issuer(),
                "jti": format!("{serial:020x}"),
                "nbf": now - 5,
                "sid": format!("sess_2cutover{serial:08}"),
                "sub": user_id,
                "v": 2,
                "sts": "active",
            })),
            signer: Signer::Rsa(instance.key.clone()),
            tamper: false,
        }
    }

    // ---- versions

    /// A v1 token: no `v`, `jti`, `sts`, `o`, `fea` or `pla`.
    pub fn v1(self) -> Self {
        ["v", "jti", "sts", "o", "fea", "pla"]
            .into_iter()
            .fold(self, |b, k| b.without_claim(k))
    }

    // ---- times

    /// Sets `iat`, with `nbf = iat − 5` and `exp = iat + 60` as Clerk mints them.
    pub fn issued_at(self, iat: u64) -> Self {
        self.claim("iat", json!(iat))
            .claim("nbf", json!(iat - 5))
            .claim("exp", json!(iat + 60))
    }

    pub fn expires_at(self, exp: u64) -> Self {
        self.claim("exp", json!(exp))
    }

    pub fn not_before(self, nbf: u64) -> Self {
        self.claim("nbf", json!(nbf))
    }

    // ---- who and where

    pub fn session(self, sid: &str) -> Self {
        self.claim("sid", json!(sid))
    }

    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", json!(iss))
    }

    /// `Some(origin)` sets `azp`; `None` removes it (an empty `Origin` at mint time).
    pub fn azp(self, azp: Option<&str>) -> Self {
        match azp {
            Some(azp) => self.claim("azp", json!(azp)),
            None => self.without_claim("azp"),
        }
    }

    /// v1 organization claims (`org_role` and permissions are full keys).
    pub fn org_v1(self, id: &str, slug: &str, role: &str, permissions: &[&str]) -> Self {
        self.claim("org_id", json!(id))
            .claim("org_slug", json!(slug))
            .claim("org_role", json!(role))
            .claim("org_permissions", json!(permissions))
    }

    /// v2 organization claims: `o: {id, slg, rol, per, fpm}` and `fea`.
    pub fn org_v2(self, id: &str, slg: &str, rol: &str, per: &str, fpm: &str, fea: &str) -> Self {
        self.claim(
            "o",
            json!({"id": id, "slg": slg, "rol": rol, "per": per, "fpm": fpm}),
        )
        .claim("fea", json!(fea))
    }

    /// An impersonation actor (`act`).
    pub fn actor(self, sub: &str) -> Self {
        self.claim(
            "act",
            json!({"iss": "https://dashboard.clerk.com", "sid": "sess_actor", "sub": sub}),
        )
    }

    /// `sts: pending` (session tasks outstanding).
    pub fn pending(self) -> Self {
        self.claim("sts", json!("pending"))
    }

    // ---- any field

    pub fn claim(mut self, key: &str, value: Value) -> Self {
        self.claims.insert(key.into(), value);
        self
    }

    pub fn without_claim(mut self, key: &str) -> Self {
        self.claims.remove(key);
        self
    }

    pub fn header(mut self, key: &str, value: Value) -> Self {
        self.header.insert(key.into(), value);
        self
    }

    pub fn without_header(mut self, key: &str) -> Self {
        self.header.remove(key);
        self
    }

    // ---- signing

    /// Signs with `key` and names its `kid`.
    pub fn signed_with(mut self, key: &ClerkKey) -> Self {
        self.header.insert("kid".into(), json!(key.kid));
        self.signer = Signer::Rsa(key.clone());
        self
    }

    /// Sets the header `alg`; an RSA signer signs with RS384/RS512 when named,
    /// else RS256 (so a header may claim an algorithm it is not signed with).
    pub fn alg(self, alg: &str) -> Self {
        self.header("alg", json!(alg))
    }

    /// `alg: HS256`, the HMAC keyed with the public key PEM (key confusion).
    pub fn hs256_with_public_key(mut self, key: &ClerkKey) -> Self {
        self.header.insert("alg".into(), json!("HS256"));
        self.signer = Signer::Hmac(key.public_pem.as_bytes().to_vec());
        self
    }

    /// `alg: none` and an empty signature.
    pub fn unsigned(mut self) -> Self {
        self.header.insert("alg".into(), json!("none"));
        self.signer = Signer::Unsigned;
        self
    }

    /// Signs the claims, then swaps in a payload naming another user.
    pub fn tampered(mut self) -> Self {
        self.tamper = true;
        self
    }

    pub fn build(&self) -> String {
        let input = format!("{}.{}", b64(&self.header), b64(&self.claims));
        let signature = match &self.signer {
            Signer::Rsa(key) => {
                let alg = match self.header.get("alg").and_then(Value::as_str) {
                    Some("RS384") => Algorithm::RS384,
                    Some("RS512") => Algorithm::RS512,
                    _ => Algorithm::RS256,
                };
                jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding_key(), alg)
                    .expect("sign")
            }
            Signer::Hmac(secret) => jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(secret),
                Algorithm::HS256,
            )
            .expect("sign"),
            Signer::Unsigned => String::new(),
        };
        if !self.tamper {
            return format!("{input}.{signature}");
        }
        let mut forged = self.claims.clone();
        forged.insert("sub".into(), json!("user_tampered"));
        format!("{}.{}.{signature}", b64(&self.header), b64(&forged))
    }
}

fn b64(map: &Map<String, Value>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Object(map.clone()).to_string())
}
