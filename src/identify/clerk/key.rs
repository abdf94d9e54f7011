//! A Clerk instance's RSA signing key, parsed once.
//!
//! `jsonwebtoken::crypto::verify` takes a `DecodingKey`, which holds the key's
//! bytes (DER, or the JWK's `n` and `e`): every verify parsed them again into
//! an aws-lc RSA key, and aws-lc rebuilt that key's Montgomery context
//! (R² mod n, a long division) before its single modular exponentiation.
//! Here the key is parsed when it is loaded, into aws-lc-rs'
//! [`ParsedPublicKey`], whose RSA object keeps its Montgomery context after
//! the first verify; every later verify is the exponentiation alone.
//!
//! Only RS256 (RSASSA-PKCS1-v1_5 with SHA-256) exists here: Clerk signs
//! session tokens with nothing else, and `jwt.rs` refuses other `alg`s before
//! a key is looked at. Moduli of 2,048 to 8,192 bits are accepted, the range
//! `jsonwebtoken` used; a key outside it is refused when loaded rather than
//! failing every token later.

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;

use super::jwt::BASE64URL;

/// Largest RSA signature accepted (8,192 bits).
const MAX_SIGNATURE_BYTES: usize = 8192 / 8;
const MIN_MODULUS_BITS: usize = 2048;
const MAX_MODULUS_BITS: usize = 8192;

/// Why a key could not be used; the message names what is wrong, never the
/// key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not PEM (expected -----BEGIN PUBLIC KEY-----)")]
    NotPem,
    #[error("is a PEM \"{0}\" block, not a PUBLIC KEY or RSA PUBLIC KEY")]
    WrongPemLabel(String),
    #[error("is not an RSA public key")]
    NotRsa,
    #[error("`{0}` is not base64url")]
    BadComponent(&'static str),
    #[error("has a {0}-bit modulus; RS256 keys must have 2048 to 8192 bits")]
    WrongSize(usize),
    #[error("has an unusable public exponent (it must be odd, at least 3 and at most 33 bits)")]
    BadExponent,
}

/// An RS256 verification key.
pub(crate) struct ClerkKey {
    key: ParsedPublicKey,
}

impl std::fmt::Debug for ClerkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClerkKey(RS256)")
    }
}

impl ClerkKey {
    /// From PEM: `PUBLIC KEY` (SubjectPublicKeyInfo, what Clerk's dashboard
    /// shows as the JWT public key) or `RSA PUBLIC KEY` (PKCS #1).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem.trim()).map_err(|_| KeyError::NotPem)?;
        match block.tag() {
            "PUBLIC KEY" | "RSA PUBLIC KEY" => {}
            other => return Err(KeyError::WrongPemLabel(other.chars().take(40).collect())),
        }
        // An SPKI must name rsaEncryption: aws-lc would also take an
        // RSASSA-PSS key, which is not for RS256.
        if block.tag() == "PUBLIC KEY" && !names_rsa_encryption(block.contents()) {
            return Err(KeyError::NotRsa);
        }
        // Either DER form; anything else (an EC or Ed25519 SPKI) is refused.
        let key =
            aws_lc_rs::rsa::PublicKey::from_der(block.contents()).map_err(|_| KeyError::NotRsa)?;
        Self::from_modulus(
            key.modulus().big_endian_without_leading_zero(),
            key.exponent().big_endian_without_leading_zero(),
        )
    }

    /// From a JWK's `n` and `e` (base64url, big-endian).
    pub fn from_components(n: &str, e: &str) -> Result<Self, KeyError> {
        let n = BASE64URL
            .decode(n)
            .map_err(|_| KeyError::BadComponent("n"))?;
        let e = BASE64URL
            .decode(e)
            .map_err(|_| KeyError::BadComponent("e"))?;
        Self::from_modulus(&n, &e)
    }

    fn from_modulus(n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        let n = strip_zeros(n);
        let bits = n
            .first()
            .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return Err(KeyError::WrongSize(bits));
        }
        // What aws-lc checks at every verify (and refuses there), checked once here.
        let e = strip_zeros(e);
        let e_bits = e
            .first()
            .map_or(0, |top| e.len() * 8 - top.leading_zeros() as usize);
        if !(2..=33).contains(&e_bits) || e.last().is_some_and(|low| low & 1 == 0) {
            return Err(KeyError::BadExponent);
        }
        if n.last().is_some_and(|low| low & 1 == 0) {
            return Err(KeyError::NotRsa);
        }
        let key = RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| KeyError::NotRsa)?;
        Ok(ClerkKey { key })
    }

    /// Does `signature` (base64url, as in the token) sign `message`?
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let mut raw = [0u8; MAX_SIGNATURE_BYTES];
        // A signature longer than the largest key's is refused unread.
        if signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 3 {
            return false;
        }
        let Ok(len) = BASE64URL.decode_slice(signature, &mut raw) else {
            return false;
        };
        self.key.verify_sig(message, &raw[..len]).is_ok()
    }
}

/// DER of the OID rsaEncryption (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION_OID: [u8; 11] = [
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// Whether a SubjectPublicKeyInfo's algorithm is rsaEncryption. Its OID comes
/// right after the two SEQUENCE headers (at most 6 bytes), before any key
/// bytes, so the first 17 bytes are the only place it can be.
fn names_rsa_encryption(spki: &[u8]) -> bool {
    spki[..spki.len().min(17)]
        .windows(RSA_ENCRYPTION_OID.len())
        .any(|w| w == RSA_ENCRYPTION_OID)
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{KEY_A_PRIVATE, KEY_A_PUBLIC, KEY_B_PUBLIC};
    use super::*;

    fn sign_a(message: &str) -> String {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_A_PRIVATE.as_bytes()).unwrap();
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::RS256)
            .unwrap()
    }

    fn der_of(pem: &str) -> Vec<u8> {
        pem::parse(pem).unwrap().into_contents()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn every_form_of_one_key_verifies_its_signatures_and_no_other_keys() {
        let spki = ClerkKey::from_pem(KEY_A_PUBLIC).unwrap();
        // PKCS #1, as `openssl rsa -RSAPublicKey_out` writes it.
        let public = aws_lc_rs::rsa::PublicKey::from_der(&der_of(KEY_A_PUBLIC)).unwrap();
        let pkcs1_pem = pem::encode(&pem::Pem::new("RSA PUBLIC KEY", public.as_ref().to_vec()));
        let pkcs1 = ClerkKey::from_pem(&pkcs1_pem).unwrap();
        // A JWK's n and e (a leading zero byte on n, as some encoders write it, is ignored).
        let n = public.modulus().big_endian_without_leading_zero();
        let e = public.exponent().big_endian_without_leading_zero();
        let jwk = ClerkKey::from_components(&b64(n), &b64(e)).unwrap();
        let padded_n = [&[0u8][..], n].concat();
        let jwk_zero = ClerkKey::from_components(&b64(&padded_n), &b64(e)).unwrap();
        let other = ClerkKey::from_pem(KEY_B_PUBLIC).unwrap();

        let signature = sign_a("header.payload");
        for key in [&spki, &pkcs1, &jwk, &jwk_zero] {
            assert!(key.verifies(b"header.payload", &signature));
            assert!(!key.verifies(b"header.payloaD", &signature));
            assert!(!key.verifies(b"header.payload", ""));
        }
        // The largest signature read (8,192 bits: 1,366 characters, 1,368 padded)
        // fills the buffer exactly; one character more is refused unread.
        for len in [1366, 1368, 1369, 1372, 4000] {
            let padded = format!("{}{}", "A".repeat(1366), "=".repeat(len.min(1368) - 1366));
            let text = if len <= 1368 { padded } else { "A".repeat(len) };
            assert!(!spki.verifies(b"header.payload", &text), "{len}");
        }
        let mut buffer = [0u8; MAX_SIGNATURE_BYTES];
        assert_eq!(
            BASE64URL.decode_slice("A".repeat(1366), &mut buffer),
            Ok(1024)
        );
        assert!(!other.verifies(b"header.payload", &signature));
    }

    #[test]
    fn what_is_not_an_rsa_public_key_of_a_usable_size_is_refused_when_loaded() {
        assert_eq!(ClerkKey::from_pem("").unwrap_err(), KeyError::NotPem);
        assert_eq!(
            ClerkKey::from_pem("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A").unwrap_err(),
            KeyError::NotPem
        );
        // The private key is never taken for the public one.
        assert_eq!(
            ClerkKey::from_pem(KEY_A_PRIVATE).unwrap_err(),
            KeyError::WrongPemLabel("PRIVATE KEY".into())
        );
        // A P-256 key in a PUBLIC KEY block.
        let ec = rcgen::KeyPair::generate().unwrap().public_key_pem();
        assert_eq!(ClerkKey::from_pem(&ec).unwrap_err(), KeyError::NotRsa);
        // Key A's own modulus in an RSASSA-PSS SubjectPublicKeyInfo (no parameters).
        let spki = der_of(KEY_A_PUBLIC);
        assert_eq!(
            spki[4..19],
            [&[0x30, 0x0d][..], &RSA_ENCRYPTION_OID, &[0x05, 0x00]].concat()
        );
        let mut pss = vec![0x30, 0x82, 0x01, 0x20, 0x30, 0x0b];
        pss.extend_from_slice(&RSA_ENCRYPTION_OID[..10]);
        pss.push(0x0a); // 1.2.840.113549.1.1.10, id-RSASSA-PSS
        pss.extend_from_slice(&spki[19..]);
        let pss = pem::encode(&pem::Pem::new("PUBLIC KEY", pss));
        assert_eq!(ClerkKey::from_pem(&pss).unwrap_err(), KeyError::NotRsa);
        // The right label over bytes that are no key.
        let junk = pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            vec![0x30, 0x03, 0x02, 0x01, 0x01],
        ));
        assert_eq!(ClerkKey::from_pem(&junk).unwrap_err(), KeyError::NotRsa);

        let e = b64(&[1, 0, 1]);
        let n_bits = |bits: usize| {
            let mut n = vec![0xffu8; bits.div_ceil(8)];
            n[0] = 0xff >> (n.len() * 8 - bits);
            if let Some(last) = n.last_mut() {
                *last |= 1;
            }
            b64(&n)
        };
        assert_eq!(
            ClerkKey::from_components(&n_bits(1024), &e).unwrap_err(),
            KeyError::WrongSize(1024)
        );
        assert_eq!(
            ClerkKey::from_components(&n_bits(2047), &e).unwrap_err(),
            KeyError::WrongSize(2047)
        );
        assert_eq!(
            ClerkKey::from_components(&n_bits(8193), &e).unwrap_err(),
            KeyError::WrongSize(8193)
        );
        assert_eq!(
            ClerkKey::from_components("", &e).unwrap_err(),
            KeyError::WrongSize(0)
        );
        assert_eq!(
            ClerkKey::from_components("n!", &e).unwrap_err(),
            KeyError::BadComponent("n")
        );
        assert_eq!(
            ClerkKey::from_components(&n_bits(2048), "e e").unwrap_err(),
            KeyError::BadComponent("e")
        );
        // Exponents aws-lc would refuse at every verify are refused once, here.
        for e in [&[][..], &[0], &[1], &[2], &[1, 0, 0], &[2, 0, 0, 0, 1]] {
            assert_eq!(
                ClerkKey::from_components(&n_bits(2048), &b64(e)).unwrap_err(),
                KeyError::BadExponent,
                "e = {e:?}"
            );
        }
        assert!(ClerkKey::from_components(&n_bits(2048), &b64(&[3])).is_ok());
        assert!(ClerkKey::from_components(&n_bits(2048), &b64(&[1, 0, 0, 0, 1])).is_ok());
        // An even modulus is no RSA modulus.
        let mut even = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(n_bits(2048))
            .unwrap();
        *even.last_mut().unwrap() &= 0xfe;
        assert_eq!(
            ClerkKey::from_components(&b64(&even), &b64(&[1, 0, 1])).unwrap_err(),
            KeyError::NotRsa
        );
    }
}
