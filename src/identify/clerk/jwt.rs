//! The compact JWS form of a Clerk token: split, header checks, signature.
//!
//! We read the header ourselves rather than through `jsonwebtoken::decode`:
//! its `Header` keeps unknown fields in a `HashMap<String, String>`, so a
//! numeric extra field (Clerk adds fields such as `oiat` and says unknown ones
//! must be ignored) would fail the whole token, and it has no place for `cat`.
//! `jsonwebtoken` (aws-lc-rs) is used for what it is good at: the RSA check.
//!
//! Header rules (`reference/clerk.md` §1.1, §1.5), checked before any key work:
//! `typ` absent or `JWT`; `alg` RS256 — nothing else. Clerk signs session
//! tokens with RS256 only; its JS SDK would also take RS384 and RS512, but
//! nothing Clerk issues uses them, so accepting them only widens what a forger
//! may try. `none`, HMAC (including HS256 keyed with the public key), EC and
//! the other RSA variants never reach a verifier; `cat` absent, `cl_B7d4PD111AAA` (session) or `cl_I7d4PD111III`
//! ("ignore").

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::reason::SignedOutReason;

/// Larger tokens are refused unread: Clerk's session tokens are 1–2 KB and
/// live in cookies (4 KB).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// base64url, padded or not (Clerk's own decoder accepts both).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const SESSION_CATEGORY: &str = "cl_B7d4PD111AAA";
const IGNORED_CATEGORY: &str = "cl_I7d4PD111III";

/// A token split into its parts, with an accepted header.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    pub alg: Algorithm,
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
        let alg = match header.alg.as_deref() {
            Some("RS256") => Algorithm::RS256,
            _ => return Err(SignedOutReason::UnsupportedAlgorithm),
        };
        match header.cat.as_deref() {
            None | Some(SESSION_CATEGORY) | Some(IGNORED_CATEGORY) => {}
            Some(_) => return Err(SignedOutReason::WrongCategory),
        }
        Ok(CompactJws {
            alg,
            kid: header.kid,
            signing_input,
            payload,
            signature,
        })
    }

    /// RSASSA-PKCS1-v1_5 with the header's hash, against `key`.
    pub fn verify_signature(&self, key: &DecodingKey) -> Result<(), SignedOutReason> {
        if self.signature.is_empty() {
            return Err(SignedOutReason::BadSignature);
        }
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            key,
            self.alg,
        ) {
            Ok(true) => Ok(()),
            // A signature that is not base64url, or a key of another family.
            Ok(false) | Err(_) => Err(SignedOutReason::BadSignature),
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

    fn parse_header(header: serde_json::Value) -> Result<Algorithm, SignedOutReason> {
        let token = format!("{}.{}.sig", b64(&header), b64(&json!({"sub": "user_1"})));
        CompactJws::parse(&token).map(|j| j.alg)
    }

    #[test]
    fn only_rsa_pkcs1_algorithms_are_accepted() {
        for (alg, expected) in [
            ("RS256", Ok(Algorithm::RS256)),
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
        assert_eq!(parse_header(header), Ok(Algorithm::RS256));
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
        let a = DecodingKey::from_rsa_pem(KEY_A_PUBLIC.as_bytes()).unwrap();
        let b = DecodingKey::from_rsa_pem(KEY_B_PUBLIC.as_bytes()).unwrap();
        assert_eq!(jws.verify_signature(&a), Ok(()));
        assert_eq!(jws.verify_signature(&b), Err(SignedOutReason::BadSignature));
        // An HMAC key (the public key's bytes as a secret) is never a match for RS256.
        let hmac = DecodingKey::from_secret(KEY_A_PUBLIC.as_bytes());
        assert_eq!(
            jws.verify_signature(&hmac),
            Err(SignedOutReason::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let token = mint(&default_header(), &json!({"sub": "user_1"}));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64(&json!({"sub": "user_2"}));
        parts[1] = &forged;
        let forged = parts.join(".");
        let jws = CompactJws::parse(&forged).unwrap();
        let a = DecodingKey::from_rsa_pem(KEY_A_PUBLIC.as_bytes()).unwrap();
        assert_eq!(jws.verify_signature(&a), Err(SignedOutReason::BadSignature));
    }
}
