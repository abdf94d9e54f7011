//! One JWKS download, and reading the key set out of it.
//!
//! `GET <url>` with `Accept: application/json` and, when a secret key is
//! configured, `Authorization: Bearer <sk_…>` (Clerk's Backend API `/v1/jwks`
//! needs it; the Frontend API's `/.well-known/jwks.json` is public). The whole
//! exchange is bounded by a timeout and the body by a size limit.
//!
//! Only RSA keys meant for signatures are taken: `kty: "RSA"`, `use` absent
//! or `"sig"`, `alg` absent or RS256, with a `kid` (a Clerk kid is
//! the instance id, `ins_…`). Entries that do not fit are skipped one by one;
//! a body with no usable key at all counts as a failed fetch, so a broken
//! endpoint cannot empty a good key set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::key::ClerkKey;
use crate::config::Secret;

/// Largest JWKS body read (Clerk's holds one or two 2048-bit keys, < 2 KB).
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Connecting, sending and reading the whole body.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The keys of one JWKS, by `kid`.
pub(crate) type KeySet = HashMap<String, Arc<ClerkKey>>;

/// Why a JWKS fetch gave no keys. Never contains the secret key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("body larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("body is not a JWKS: {0}")]
    NotJwks(#[source] serde_json::Error),
    #[error("no RSA signing key with a kid in the key set")]
    NoUsableKey,
}

/// Downloads key sets from one URL.
#[derive(Debug)]
pub(crate) struct JwksFetcher {
    client: reqwest::Client,
    url: String,
    secret_key: Option<Secret>,
}

impl JwksFetcher {
    pub fn new(url: String, secret_key: Option<Secret>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(JwksFetcher {
            client,
            url,
            secret_key,
        })
    }

    pub async fn fetch(&self) -> Result<KeySet, JwksError> {
        let mut request = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(secret) = &self.secret_key {
            request = request.bearer_auth(secret.expose());
        }
        let mut response = request.send().await.map_err(JwksError::Request)?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(JwksError::Request)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The usable keys of a JWKS body (see the module docs); the first of two
/// keys with the same `kid` wins.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<KeySet, JwksError> {
    let raw: RawJwks = serde_json::from_slice(body).map_err(JwksError::NotJwks)?;
    let mut keys = KeySet::new();
    for entry in raw.keys {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(entry) else {
            continue;
        };
        if let Some((kid, key)) = usable_key(jwk) {
            keys.entry(kid).or_insert_with(|| Arc::new(key));
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(keys)
}

fn usable_key(jwk: RawJwk) -> Option<(String, ClerkKey)> {
    if jwk.kty.as_deref() != Some("RSA") {
        return None;
    }
    if !matches!(jwk.usage.as_deref(), None | Some("sig")) {
        return None;
    }
    if !matches!(jwk.alg.as_deref(), None | Some("RS256")) {
        return None;
    }
    let kid = jwk.kid.filter(|k| !k.is_empty())?;
    match ClerkKey::from_components(jwk.n.as_deref()?, jwk.e.as_deref()?) {
        Ok(key) => Some((kid, key)),
        Err(e) => {
            // An RS256 signing key that cannot verify: tokens naming it will
            // be refused as signed by an unknown key. The kid is public.
            tracing::warn!(kid = %kid.chars().take(64).collect::<String>(), "Clerk JWKS key skipped: it {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    // Any base64url modulus will do for parsing; signatures are tested elsewhere.
    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn rsa(kid: &str) -> serde_json::Value {
        json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": N, "e": "AQAB"})
    }

    #[test]
    fn reads_clerks_jwks_shape() {
        let body = json!({"keys": [rsa("ins_2GIoQhbUpy0hX7B2cVkuTMinXoD")]}).to_string();
        let keys = parse_jwks(body.as_bytes()).unwrap();
        assert!(keys.contains_key("ins_2GIoQhbUpy0hX7B2cVkuTMinXoD"));
    }

    #[test]
    fn takes_only_rsa_signing_keys_with_a_kid() {
        let mut no_use = rsa("no_use");
        no_use.as_object_mut().unwrap().remove("use");
        let mut no_alg = rsa("no_alg");
        no_alg.as_object_mut().unwrap().remove("alg");
        let mut enc = rsa("enc");
        enc["use"] = json!("enc");
        let mut ps = rsa("ps");
        ps["alg"] = json!("PS256");
        let mut no_kid = rsa("");
        no_kid.as_object_mut().unwrap().remove("kid");
        let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"});
        let oct = json!({"kty": "oct", "kid": "oct", "k": "c2VjcmV0"});
        let odd = json!({"kty": "RSA", "kid": 7, "n": N, "e": "AQAB"});
        // Keys that could never verify an RS256 token: too small, no usable exponent.
        let mut small = rsa("small");
        small["n"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xffu8; 128]));
        let mut even_e = rsa("even_e");
        even_e["e"] = json!("AQAA");
        let body =
            json!({"keys": [no_use, no_alg, enc, ps, no_kid, ec, oct, odd, small, even_e, "junk"]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["no_alg", "no_use"]);
    }

    #[test]
    fn a_body_without_usable_keys_is_an_error() {
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}"),
            Err(JwksError::NoUsableKey)
        ));
        assert!(matches!(parse_jwks(b"<html>"), Err(JwksError::NotJwks(_))));
        assert!(matches!(
            parse_jwks(b"{\"kid\": 1}"),
            Err(JwksError::NotJwks(_))
        ));
    }
}
