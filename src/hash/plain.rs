//! The single-pass digests Clerk calls insecure: `md5`, `md5_salted`,
//! `sha256`, `sha256_salted`. One hash of the password (with its salt), hex.
//!
//! For the salted ones Clerk does not say where the salt goes, so each
//! [`Reading`] is tried with the salt both before and after the password.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::codec;
use super::{Reject, malformed};

#[derive(Clone, Copy)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// One way of splitting the digest into salt and expected hash.
#[derive(Clone)]
struct Reading {
    salt: Vec<u8>,
    hash: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct PlainDigest {
    algorithm: Algorithm,
    readings: Vec<Reading>,
}

/// `md5`: 32 hex characters (either case) of md5(password).
pub(super) fn parse_md5(digest: &str) -> Result<PlainDigest, Reject> {
    unsalted(Algorithm::Md5, digest)
}

/// `sha256`: 64 hex characters of sha256(password).
pub(super) fn parse_sha256(digest: &str) -> Result<PlainDigest, Reject> {
    unsalted(Algorithm::Sha256, digest)
}

/// `md5_salted`: `salt$hash`, the hash 32 hex characters after the last `$`
/// (so a salt may itself contain `$`). **[uncertain]** order: md5(salt ‖ pw)
/// and md5(pw ‖ salt) are both tried.
pub(super) fn parse_md5_salted(digest: &str) -> Result<PlainDigest, Reject> {
    let readings: Vec<Reading> = salt_then_hash(Algorithm::Md5, digest).into_iter().collect();
    salted(Algorithm::Md5, readings, "not <salt>$<32 hex characters>")
}

/// `sha256_salted`. **[uncertain]**: the current docs say `salt$hash`, an
/// older text says `hash$salt` (salt 1–1024 bits); we take whichever side is
/// 64 hex characters as the hash — both, when both are — and try each with
/// the salt before and after the password.
pub(super) fn parse_sha256_salted(digest: &str) -> Result<PlainDigest, Reject> {
    let readings: Vec<Reading> = [
        salt_then_hash(Algorithm::Sha256, digest),
        hash_then_salt(Algorithm::Sha256, digest),
    ]
    .into_iter()
    .flatten()
    .collect();
    salted(
        Algorithm::Sha256,
        readings,
        "neither <salt>$<hash> nor <hash>$<salt> with a 64-hex hash",
    )
}

fn unsalted(algorithm: Algorithm, digest: &str) -> Result<PlainDigest, Reject> {
    let hash =
        expected(algorithm, digest).ok_or(malformed("not a hex digest of the right length"))?;
    Ok(PlainDigest {
        algorithm,
        readings: vec![Reading {
            salt: Vec::new(),
            hash,
        }],
    })
}

fn salted(
    algorithm: Algorithm,
    readings: Vec<Reading>,
    shape: &'static str,
) -> Result<PlainDigest, Reject> {
    if readings.is_empty() {
        return Err(malformed(shape));
    }
    Ok(PlainDigest {
        algorithm,
        readings,
    })
}

fn salt_then_hash(algorithm: Algorithm, digest: &str) -> Option<Reading> {
    let (salt, hash) = digest.rsplit_once('$')?;
    let hash = expected(algorithm, hash)?;
    (!salt.is_empty()).then(|| Reading {
        salt: salt.as_bytes().to_vec(),
        hash,
    })
}

fn hash_then_salt(algorithm: Algorithm, digest: &str) -> Option<Reading> {
    let (hash, salt) = digest.split_once('$')?;
    let hash = expected(algorithm, hash)?;
    (!salt.is_empty()).then(|| Reading {
        salt: salt.as_bytes().to_vec(),
        hash,
    })
}

fn expected(algorithm: Algorithm, hex: &str) -> Option<Vec<u8>> {
    if hex.len() != algorithm.hex_len() {
        return None;
    }
    codec::hex(hex)
}

impl PlainDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut matched = false;
        for Reading { salt, hash } in &self.readings {
            if salt.is_empty() {
                matched |= codec::ct_eq(&self.digest(&[password]), hash);
            } else {
                matched |= codec::ct_eq(&self.digest(&[salt, password]), hash);
                matched |= codec::ct_eq(&self.digest(&[password, salt]), hash);
            }
        }
        matched
    }

    fn digest(&self, parts: &[&[u8]]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Md5 => hash_parts::<Md5>(parts),
            Algorithm::Sha256 => hash_parts::<Sha256>(parts),
        }
    }
}

fn hash_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = D::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_password_from_clerks_docs() {
        // Clerk's own md5 example is md5("password").
        let d = parse_md5("5f4dcc3b5aa765d61d8327deb882cf99").unwrap();
        assert!(d.verify(b"password"));
        assert!(!d.verify(b"Password"));
        assert!(
            parse_md5("5F4DCC3B5AA765D61D8327DEB882CF99")
                .unwrap()
                .verify(b"password")
        );
    }

    #[test]
    fn sha256_salted_reads_both_documented_orders() {
        let hash = "a".repeat(64);
        assert_eq!(
            parse_sha256_salted(&format!("salt${hash}"))
                .unwrap()
                .readings
                .len(),
            1
        );
        assert_eq!(
            parse_sha256_salted(&format!("{hash}$salt"))
                .unwrap()
                .readings
                .len(),
            1
        );
        assert_eq!(
            parse_sha256_salted(&format!("{hash}${hash}"))
                .unwrap()
                .readings
                .len(),
            2
        );
        assert!(parse_sha256_salted(&format!("${hash}")).is_err());
        assert!(parse_sha256_salted(&hash).is_err());
    }

    #[test]
    fn shapes_are_checked() {
        assert!(parse_md5("5f4dcc3b5aa765d61d8327deb882cf9").is_err());
        assert!(parse_md5("5f4dcc3b5aa765d61d8327deb882cf9g").is_err());
        assert!(parse_sha256(&"a".repeat(63)).is_err());
        assert!(parse_md5_salted("5f4dcc3b5aa765d61d8327deb882cf99").is_err());
        assert!(parse_md5_salted("s$a$5f4dcc3b5aa765d61d8327deb882cf99").is_ok());
    }
}
