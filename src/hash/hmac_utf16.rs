//! `hmac_sha256_utf16_b64`: HMAC-SHA256 over the password encoded as UTF-16,
//! base64 output, written `hmac_sha256_utf16_b64$<hash>$<key>` (only an older
//! Clerk text describes it).
//!
//! **[uncertain]** Clerk documents neither the UTF-16 byte order nor how the
//! key string becomes key bytes, so we try every plausible reading — each is
//! one cheap HMAC, and a false match against a 256-bit tag is not a concern:
//!
//! - password: UTF-16LE (what .NET's `Encoding.Unicode` writes, the likely
//!   origin) and UTF-16BE;
//! - key: its UTF-8 bytes; its UTF-16 bytes (same order as the password); its
//!   base64 decoding; and that decoding stretched to HMAC-SHA256's 64-byte key
//!   the way ASP.NET's SqlMembershipProvider does (repeat the salt to fill,
//!   or cut it), since "HMACSHA256 + UTF-16 + base64" is exactly that
//!   provider's hashed-password format.
//!
//! The `hmac_sha256_utf16_b64$` prefix may be absent. The key is everything
//! after the hash and may contain `$`.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::codec;
use super::{Reject, malformed};

/// HMAC-SHA256's block size: the key length ASP.NET fills.
const ASPNET_KEY_LEN: usize = 64;

#[derive(Clone)]
pub(super) struct HmacDigest {
    hash: Vec<u8>,
    /// The key as text: its UTF-8 and UTF-16 readings are made per verify.
    key_text: String,
    /// Key readings that do not depend on the password's byte order.
    keys: Vec<Vec<u8>>,
}

pub(super) fn parse(digest: &str) -> Result<HmacDigest, Reject> {
    let body = digest
        .strip_prefix("hmac_sha256_utf16_b64$")
        .unwrap_or(digest);
    let (hash, key) = body.split_once('$').ok_or(malformed("not <hash>$<key>"))?;
    let hash = codec::base64(hash).ok_or(malformed("the hash is not base64"))?;
    if hash.len() != 32 {
        return Err(malformed("the hash is not 32 bytes"));
    }
    if key.is_empty() {
        return Err(malformed("the key is empty"));
    }
    let mut keys = vec![key.as_bytes().to_vec()];
    if let Some(decoded) = codec::base64(key) {
        keys.push(aspnet_key(&decoded));
        keys.push(decoded);
    }
    Ok(HmacDigest {
        hash,
        key_text: key.to_owned(),
        keys,
    })
}

/// SqlMembershipProvider's key: the salt repeated until 64 bytes, or cut.
fn aspnet_key(salt: &[u8]) -> Vec<u8> {
    salt.iter().copied().cycle().take(ASPNET_KEY_LEN).collect()
}

impl HmacDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut matched = false;
        for big_endian in [false, true] {
            // Not UTF-8: no UTF-16 form, so it cannot be this password.
            let Some(message) = codec::utf16(password, big_endian) else {
                return false;
            };
            let key_utf16 = codec::utf16(self.key_text.as_bytes(), big_endian);
            for key in self.keys.iter().chain(key_utf16.as_ref()) {
                matched |= codec::ct_eq(&hmac(key, &message), &self.hash);
            }
        }
        matched
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac.chain_update(message).finalize().into_bytes().to_vec(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aspnet_key_repeats_or_cuts_to_64_bytes() {
        assert_eq!(aspnet_key(&[1, 2, 3]).len(), 64);
        assert_eq!(aspnet_key(&[1, 2, 3])[..6], [1, 2, 3, 1, 2, 3]);
        assert_eq!(aspnet_key(&[9; 100]), vec![9; 64]);
    }

    #[test]
    fn shapes_are_checked_and_the_prefix_is_optional() {
        let hash = codec::base64_encode(&[0u8; 32]);
        assert!(parse(&format!("hmac_sha256_utf16_b64${hash}$key")).is_ok());
        assert!(parse(&format!("{hash}$key$with$dollars")).is_ok());
        assert!(parse(&format!("{hash}$")).is_err());
        assert!(parse(&hash).is_err());
        assert!(parse(&format!("{}$key", codec::base64_encode(&[0u8; 20]))).is_err());
    }

    #[test]
    fn a_password_that_is_not_utf8_never_matches() {
        let hash = codec::base64_encode(&[0u8; 32]);
        assert!(!parse(&format!("{hash}$key")).unwrap().verify(&[0xff, 0xfe]));
    }
}
