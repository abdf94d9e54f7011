//! Svix's webhook signature scheme, both ways: Clerk's webhooks in (verified
//! exactly as Clerk's `verifyWebhook` and the Svix libraries verify them) and
//! cutover's own Clerk-shaped webhooks out (signed so those same libraries
//! accept them).
//!
//! The scheme (Standard Webhooks, as Svix sends it):
//! - three headers: `svix-id` (a `msg_…` id, the same on every retry of one
//!   message), `svix-timestamp` (Unix **seconds**) and `svix-signature`;
//!   the unbranded `webhook-id`, `webhook-timestamp`, `webhook-signature` are
//!   the same thing under another name;
//! - the secret is `whsec_<base64>`: the key is the decoded bytes;
//! - the signed content is `{id}.{timestamp}.{body}` with the body's bytes as
//!   sent; the MAC is HMAC-SHA256, written as standard base64;
//! - the signature header holds one or more space-separated `v1,<base64>`
//!   entries (several during a key rotation); a message is authentic when any
//!   `v1` entry matches, compared in constant time;
//! - a timestamp more than five minutes away from now, in either direction, is
//!   refused (a replay window, not a clock check).
//!
//! The Svix crate implements the same and much more (a whole API client); the
//! part cutover needs is these few lines over the `hmac` crate, checked here
//! against Svix's published test vector and, in the integration tests, against
//! the Svix and `@clerk/backend` libraries themselves.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// How far a timestamp may be from now, either way (Svix's `TOLERANCE_IN_SECONDS`).
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Longest signature header accepted (a few rotated signatures fit easily).
const MAX_SIGNATURE_HEADER: usize = 4096;

/// A `whsec_` signing secret: the HMAC key. Never printed.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Why a secret is not a usable `whsec_` secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook signing secret must start with `whsec_`")]
    NoPrefix,
    #[error("the part after `whsec_` is not standard base64")]
    NotBase64,
    #[error("the webhook signing secret is empty")]
    Empty,
}

impl SigningSecret {
    /// Parse `whsec_<base64>`, the form Clerk's dashboard and Svix show.
    pub fn parse(text: &str) -> Result<SigningSecret, SecretError> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::NoPrefix)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(SigningSecret(key))
    }

    /// A fresh random secret (24 bytes, as Svix makes them), in `whsec_` form.
    pub fn generate() -> String {
        use rand::RngCore as _;
        let mut key = [0u8; 24];
        rand::rng().fill_bytes(&mut key);
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `svix-signature` value for one message: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp_secs.to_string(), body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// Check a received message. `now_secs` is the receiver's clock.
    pub fn verify(
        &self,
        headers: &SignedHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), VerifyError> {
        let timestamp: i64 = headers
            .timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        if timestamp < now_secs.saturating_sub(TOLERANCE_SECS) {
            return Err(VerifyError::TooOld);
        }
        if timestamp > now_secs.saturating_add(TOLERANCE_SECS) {
            return Err(VerifyError::TooNew);
        }
        if headers.signature.len() > MAX_SIGNATURE_HEADER {
            return Err(VerifyError::NoMatch);
        }
        let mac = self.mac(headers.id, headers.timestamp.trim(), body);
        let expected = mac.finalize().into_bytes();
        let mut matched = false;
        for entry in headers.signature.split(' ') {
            let Some(b64) = entry.strip_prefix("v1,") else {
                continue; // another version (e.g. v1a asymmetric): not ours to check
            };
            let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                continue;
            };
            // Constant time over equal lengths; a length mismatch reveals nothing secret.
            if given.len() == expected.len() {
                matched |= bool::from(subtle::ConstantTimeEq::ct_eq(
                    given.as_slice(),
                    expected.as_slice(),
                ));
            }
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::NoMatch)
        }
    }
}

/// The three signature headers of one message.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

impl<'a> SignedHeaders<'a> {
    /// Read `svix-*` (or the equivalent `webhook-*`) headers; `None` when any
    /// of the three is missing or not visible ASCII.
    pub fn from_headers(h: &'a http::HeaderMap) -> Option<SignedHeaders<'a>> {
        let get = |branded: &str, plain: &str| {
            h.get(branded)
                .or_else(|| h.get(plain))
                .and_then(|v| v.to_str().ok())
        };
        Some(SignedHeaders {
            id: get("svix-id", "webhook-id")?,
            timestamp: get("svix-timestamp", "webhook-timestamp")?,
            signature: get("svix-signature", "webhook-signature")?,
        })
    }
}

/// Why a message was refused. Deliberately coarse: the sender learns nothing
/// about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the webhook timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the webhook timestamp is too old")]
    TooOld,
    #[error("the webhook timestamp is too far in the future")]
    TooNew,
    #[error("no webhook signature matches")]
    NoMatch,
}

impl VerifyError {
    /// One word for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyError::BadTimestamp => "bad_timestamp",
            VerifyError::TooOld => "too_old",
            VerifyError::TooNew => "too_new",
            VerifyError::NoMatch => "bad_signature",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Svix's published test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn headers<'a>(ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: ID,
            timestamp: ts,
            signature: sig,
        }
    }

    #[test]
    fn signing_matches_the_published_test_vector() {
        let s = SigningSecret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), SIG);
    }

    #[test]
    fn the_test_vector_verifies_within_tolerance_and_not_outside() {
        let s = SigningSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        assert_eq!(s.verify(&headers(&ts, SIG), BODY, TS), Ok(()));
        assert_eq!(
            s.verify(&headers(&ts, SIG), BODY, TS + TOLERANCE_SECS),
            Ok(())
        );
        assert_eq!(
            s.verify(&headers(&ts, SIG), BODY, TS + TOLERANCE_SECS + 1),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            s.verify(&headers(&ts, SIG), BODY, TS - TOLERANCE_SECS - 1),
            Err(VerifyError::TooNew)
        );
    }

    #[test]
    fn any_matching_v1_entry_is_enough_and_others_are_ignored() {
        let s = SigningSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        let several = format!("v1,AAAA v1a,whatever v1,!!notbase64 {SIG}");
        assert_eq!(s.verify(&headers(&ts, &several), BODY, TS), Ok(()));
    }

    #[test]
    fn a_changed_body_id_timestamp_or_key_is_refused() {
        let s = SigningSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        assert_eq!(
            s.verify(&headers(&ts, SIG), b"{}", TS),
            Err(VerifyError::NoMatch)
        );
        let other_ts = (TS + 1).to_string();
        assert_eq!(
            s.verify(&headers(&other_ts, SIG), BODY, TS),
            Err(VerifyError::NoMatch)
        );
        let h = SignedHeaders {
            id: "msg_other",
            timestamp: &ts,
            signature: SIG,
        };
        assert_eq!(s.verify(&h, BODY, TS), Err(VerifyError::NoMatch));
        let other = SigningSecret::parse(&SigningSecret::generate()).unwrap();
        assert_eq!(
            other.verify(&headers(&ts, SIG), BODY, TS),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            s.verify(&headers("soon", SIG), BODY, TS),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            s.verify(&headers(&ts, "v2,abc"), BODY, TS),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_and_never_print() {
        assert_eq!(
            SigningSecret::parse("C2FVsBQIhrscChlQIMV").unwrap_err(),
            SecretError::NoPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_***").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningSecret::parse("whsec_").unwrap_err(),
            SecretError::Empty
        );
        let s = SigningSecret::parse(SECRET).unwrap();
        assert!(!format!("{s:?}").contains("C2FV"));
    }

    #[test]
    fn headers_are_read_under_either_name() {
        let mut h = http::HeaderMap::new();
        h.insert("webhook-id", ID.parse().unwrap());
        h.insert("svix-timestamp", "1".parse().unwrap());
        h.insert("webhook-signature", SIG.parse().unwrap());
        let read = SignedHeaders::from_headers(&h).unwrap();
        assert_eq!((read.id, read.timestamp), (ID, "1"));
        h.remove("webhook-id");
        assert!(SignedHeaders::from_headers(&h).is_none());
    }
}
