//! The compact JWS form of a Clerk token: split, header checks, signature.
//!
//! We read the header ourselves rather than through `jsonwebtoken::decode`:
//! its `Header` keeps unknown fields in a `HashMap<String, String>`, so a
//! numeric extra field (Clerk adds fields such as `oiat` and says unknown ones
//! must be ignored) would fail the whole token, and it has no place for `cat`.
//! The RSA check is aws-lc-rs', against a key parsed once (`key.rs`).
//!
//! Header rules (Clerk's session-token rules), checked before any key work:
//! `typ` absent or `JWT`; `alg` RS256 — nothing else. Clerk signs session
//! tokens with RS256 only; its JS SDK would also take RS384 and RS512, but
//! nothing Clerk issues uses them, so accepting them only widens what a forger
//! may try. `none`, HMAC (including HS256 keyed with the public key), EC and
//! the other RSA variants never reach a verifier; `cat` absent, `cl_B7d4PD111AAA` (session) or `cl_I7d4PD111III`
//! ("ignore").

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

use super::key::ClerkKey;
use super::reason::SignedOutReason;

/// Larger tokens are refused unread: Clerk's session tokens are 1–2 KB and
/// live in cookies (4 KB).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// base64url, padded or not (Clerk's own decoder accepts both).
pub(super) const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const SESSION_CATEGORY: &str = "cl_B7d4PD111AAA";
const IGNORED_CATEGORY: &str = "cl_I7d4PD111III";

/// A token split into its parts, with an accepted header.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    pub kid: Option<String>,
    /// `header.payload`, the signed bytes.
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    cat: Option<String>,
}

impl<'a> CompactJws<'a> {
    /// Splits the token and applies the header rules.
    pub fn parse(token: &'a str) -> Result<Self, SignedOutReason> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(SignedOutReason::Malformed);
        }
        let (signing_input, signature) =
            token.rsplit_once('.').ok_or(SignedOutReason::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(SignedOutReason::Malformed)?;
        if header.is_empty() || payload.is_empty() || payload.contains('.') {
            return Err(SignedOutReason::Malformed);
        }
        let header: RawHeader = decode_json(header)?;
        match header.typ.as_deref() {
            None | Some("JWT") => {}
            Some(_) => return Err(SignedOutReason::WrongTokenType),
        }
        // RS256 only; the key (`key.rs`) verifies nothing else.
        if header.alg.as_deref() != Some("RS256") {
            return Err(SignedOutReason::UnsupportedAlgorithm);
        }
        match header.cat.as_deref() {
            None | Some(SESSION_CATEGORY) | Some(IGNORED_CATEGORY) => {}
            Some(_) => return Err(SignedOutReason::WrongCategory),
        }
        Ok(CompactJws {
            kid: header.kid,
            signing_input,
            payload,
            signature,
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (the only `alg` [`Self::parse`]
    /// accepts), against `key`.
    pub fn verify_signature(&self, key: &ClerkKey) -> Result<(), SignedOutReason> {
        if !self.signature.is_empty() && key.verifies(self.signing_input.as_bytes(), self.signature)
        {
            Ok(())
        } else {
            // Not base64url, too long, or not this key's signature.
            Err(SignedOutReason::BadSignature)
        }
    }

    /// The claims, decoded. Call only after [`Self::verify_signature`].
    pub fn claims<T: for<'de> Deserialize<'de>>(&self) -> Result<T, SignedOutReason> {
        decode_json(self.payload)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, SignedOutReason> {
    let bytes = BASE64URL
        .decode(part)
        .map_err(|_| SignedOutReason::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| SignedOutReason::Malformed)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{KEY_A_PUBLIC, KEY_B_PUBLIC, b64, default_header, mint};
    use super::*;
    use serde_json::json;

    fn parse_header(header: serde_json::Value) -> Result<(), SignedOutReason> {
        let token = format!("{}.{}.sig", b64(&header), b64(&json!({"sub": "user_1"})));
        CompactJws::parse(&token).map(drop)
    }

    #[test]
    fn only_rsa_pkcs1_algorithms_are_accepted() {
        for (alg, expected) in [
            ("RS256", Ok(())),
            ("RS384", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("RS512", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("none", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("HS256", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("ES256", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("PS256", Err(SignedOutReason::UnsupportedAlgorithm)),
            ("rs256", Err(SignedOutReason::UnsupportedAlgorithm)),
        ] {
            assert_eq!(
                parse_header(json!({"alg": alg, "typ": "JWT"})),
                expected,
                "{alg}"
            );
        }
        assert_eq!(
            parse_header(json!({"typ": "JWT"})),
            Err(SignedOutReason::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn typ_must_be_absent_or_jwt() {
        assert!(parse_header(json!({"alg": "RS256"})).is_ok());
        for typ in ["at+jwt", "application/at+jwt", "jwt", "JOSE"] {
            assert_eq!(
                parse_header(json!({"alg": "RS256", "typ": typ})),
                Err(SignedOutReason::WrongTokenType),
                "{typ}"
            );
        }
    }

    #[test]
    fn cat_must_be_absent_session_or_ignore() {
        for cat in ["cl_B7d4PD111AAA", "cl_I7d4PD111III"] {
            assert!(
                parse_header(json!({"alg": "RS256", "cat": cat})).is_ok(),
                "{cat}"
            );
        }
        for cat in ["cl_B7d4PD222AAA", "cl_B7d4PD333AAA", "other"] {
            assert_eq!(
                parse_header(json!({"alg": "RS256", "cat": cat})),
                Err(SignedOutReason::WrongCategory),
                "{cat}"
            );
        }
    }

    #[test]
    fn unknown_header_fields_of_any_type_are_ignored() {
        let header = json!({"alg": "RS256", "typ": "JWT", "oiat": 1_713_158_400, "x": {"y": [1]}});
        assert_eq!(parse_header(header), Ok(()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        let not_json = "bm90IGpzb24.e30.x";
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "..",
            "!!.e30.x",
            not_json,
            big.as_str(),
        ] {
            assert_eq!(
                CompactJws::parse(token).err(),
                Some(SignedOutReason::Malformed),
                "{token:.20}"
            );
        }
    }

    #[test]
    fn signature_verifies_with_the_right_key_only() {
        let token = mint(&default_header(), &json!({"sub": "user_1"}));
        let jws = CompactJws::parse(&token).unwrap();
        let a = ClerkKey::from_pem(KEY_A_PUBLIC).unwrap();
        let b = ClerkKey::from_pem(KEY_B_PUBLIC).unwrap();
        assert_eq!(jws.verify_signature(&a), Ok(()));
        assert_eq!(jws.verify_signature(&b), Err(SignedOutReason::BadSignature));
        // Many times over one key: the parsed key keeps no per-verify state
        // that could make a later check differ.
        for _ in 0..3 {
            assert_eq!(jws.verify_signature(&a), Ok(()));
            assert_eq!(jws.verify_signature(&b), Err(SignedOutReason::BadSignature));
        }
    }

    #[test]
    fn the_signature_must_be_base64url_of_the_right_length() {
        let token = mint(&default_header(), &json!({"sub": "user_1"}));
        let a = ClerkKey::from_pem(KEY_A_PUBLIC).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        // Clerk's decoder takes padded base64url too; the same signature padded verifies.
        let padded = format!("{input}.{sig}{}", "=".repeat((4 - sig.len() % 4) % 4));
        assert_eq!(
            CompactJws::parse(&padded).unwrap().verify_signature(&a),
            Ok(())
        );
        let standard = format!("{input}.{}", sig.replace('-', "+").replace('_', "/"));
        let truncated = format!("{input}.{}", &sig[..sig.len() - 4]);
        let doubled = format!("{input}.{sig}{sig}");
        let huge = format!("{input}.{}", "A".repeat(2000));
        for forged in [&standard, &truncated, &doubled, &huge] {
            if forged == &standard && !sig.contains(['-', '_']) {
                continue;
            }
            let jws = CompactJws::parse(forged).unwrap();
            assert_eq!(
                jws.verify_signature(&a),
                Err(SignedOutReason::BadSignature),
                "{:.60}",
                &forged[input.len()..]
            );
        }
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let token = mint(&default_header(), &json!({"sub": "user_1"}));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&json!({"sub": "user_2"}));
        parts[1] = &forged;
        let forged = parts.join(".");
        let jws = CompactJws::parse(&forged).unwrap();
        let a = ClerkKey::from_pem(KEY_A_PUBLIC).unwrap();
        assert_eq!(jws.verify_signature(&a), Err(SignedOutReason::BadSignature));
    }
}
