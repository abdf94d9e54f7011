//! The five PBKDF2 hashers. All are `<name>$<iterations>$<salt>$<hash>`; they
//! differ in the PRF (HMAC-SHA1/256/512) and in how salt and hash are
//! encoded (reference §4.2):
//!
//! | hasher                 | salt                         | hash   |
//! |------------------------|------------------------------|--------|
//! | `pbkdf2_sha256`        | base64 **or raw** (see below)| base64 |
//! | `pbkdf2_sha256_django` | raw string                   | base64 |
//! | `pbkdf2_sha1`          | hex when valid hex, else raw | hex    |
//! | `pbkdf2_sha512`        | raw string                   | hex    |
//! | `pbkdf2_sha512_hex`    | hex                          | hex    |
//!
//! The derived-key length is always the decoded hash's length (16–64 bytes):
//! PBKDF2 output of length n is a prefix of any longer output, so this is the
//! only length that can ever match.

use ::pbkdf2::pbkdf2_hmac;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::caps::{self, Caps};
use super::codec;
use super::{Reject, malformed};

#[derive(Clone, Copy)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Clone)]
pub(super) struct Pbkdf2Digest {
    prf: Prf,
    iterations: u32,
    /// Every reading of the salt that the format allows; any may match.
    salts: Vec<Vec<u8>>,
    hash: Vec<u8>,
}

/// `pbkdf2_sha256$<iterations>$<salt>$<hash>`. Clerk documents salt and hash
/// as base64 with the key length taken from the hash **[uncertain]**. The same
/// prefix is what Django writes (raw salt), and Django exports are often
/// labelled plain `pbkdf2_sha256`, so we try the salt both base64-decoded
/// (when it decodes) and as its raw bytes.
pub(super) fn parse_sha256(digest: &str, caps: &Caps) -> Result<Pbkdf2Digest, Reject> {
    let [iterations, salt, hash] = fields(digest, "pbkdf2_sha256")?;
    let mut salts: Vec<Vec<u8>> = codec::base64(salt).into_iter().collect();
    salts.push(salt.as_bytes().to_vec());
    let hash = codec::base64(hash).ok_or(malformed("the hash is not base64"))?;
    build(Prf::Sha256, iterations, salts, hash, caps)
}

/// `pbkdf2_sha256$<iterations>$<salt>$<hash>` as Django writes it: the salt
/// used as its raw string, the hash base64 (32 bytes for every Django
/// version).
pub(super) fn parse_sha256_django(digest: &str, caps: &Caps) -> Result<Pbkdf2Digest, Reject> {
    let [iterations, salt, hash] = fields(digest, "pbkdf2_sha256")?;
    let hash = codec::base64(hash).ok_or(malformed("the hash is not base64"))?;
    build(Prf::Sha256, iterations, vec![raw(salt)?], hash, caps)
}

/// `pbkdf2_sha1$<iterations>$<salt>$<hex hash>` or
/// `pbkdf2_sha1$<iterations>$<hex salt>$<hex hash>$<key length>`. Clerk: "salt
/// hex-decoded when it is valid hex, else raw bytes". A raw salt can happen to
/// be valid hex (`"deadbeef"`), so for a hex-looking salt we try both
/// readings. The key length (default 32) must equal the hash's length when
/// given; without it the hash's own length is used, which accepts the
/// default and any exporter that wrote a full 20-byte SHA-1 block.
pub(super) fn parse_sha1(digest: &str, caps: &Caps) -> Result<Pbkdf2Digest, Reject> {
    let (iterations, salt, hash, key_len) = match digest.split('$').collect::<Vec<_>>()[..] {
        ["pbkdf2_sha1", iterations, salt, hash] => (iterations, salt, hash, None),
        ["pbkdf2_sha1", iterations, salt, hash, key_len] => (iterations, salt, hash, Some(key_len)),
        _ => {
            return Err(malformed(
                "not pbkdf2_sha1$<iterations>$<salt>$<hash>[$<key length>]",
            ));
        }
    };
    let hash = codec::hex(hash).ok_or(malformed("the hash is not hex"))?;
    if let Some(key_len) = key_len {
        let key_len = codec::decimal(key_len).ok_or(malformed("the key length is not a number"))?;
        if usize::try_from(key_len).ok() != Some(hash.len()) {
            return Err(malformed("the key length differs from the hash's length"));
        }
    }
    let mut salts: Vec<Vec<u8>> = codec::hex(salt).into_iter().collect();
    salts.push(raw(salt)?);
    build(Prf::Sha1, iterations, salts, hash, caps)
}

/// `pbkdf2_sha512$<iterations>$<salt>$<hex hash>`: raw salt, hex hash. An
/// older Clerk text also limits iterations to < 420,000 and the salt to
/// < 1024 bytes; those are limits on what Clerk accepted, not part of the
/// algorithm, so only our own caps apply here.
pub(super) fn parse_sha512(digest: &str, caps: &Caps) -> Result<Pbkdf2Digest, Reject> {
    let [iterations, salt, hash] = fields(digest, "pbkdf2_sha512")?;
    let hash = codec::hex(hash).ok_or(malformed("the hash is not hex"))?;
    build(Prf::Sha512, iterations, vec![raw(salt)?], hash, caps)
}

/// `pbkdf2_sha512_hex$<iterations>$<hex salt>$<hex hash>`.
pub(super) fn parse_sha512_hex(digest: &str, caps: &Caps) -> Result<Pbkdf2Digest, Reject> {
    let [iterations, salt, hash] = fields(digest, "pbkdf2_sha512_hex")?;
    let salt = codec::hex(salt).ok_or(malformed("the salt is not hex"))?;
    let hash = codec::hex(hash).ok_or(malformed("the hash is not hex"))?;
    build(Prf::Sha512, iterations, vec![salt], hash, caps)
}

/// Split `<prefix>$<iterations>$<salt>$<hash>` into its last three fields.
fn fields<'a>(digest: &'a str, prefix: &str) -> Result<[&'a str; 3], Reject> {
    match digest.split('$').collect::<Vec<_>>()[..] {
        [p, iterations, salt, hash] if p == prefix => Ok([iterations, salt, hash]),
        _ => Err(malformed("not <prefix>$<iterations>$<salt>$<hash>")),
    }
}

fn raw(salt: &str) -> Result<Vec<u8>, Reject> {
    if salt.is_empty() {
        return Err(malformed("the salt is empty"));
    }
    Ok(salt.as_bytes().to_vec())
}

fn build(
    prf: Prf,
    iterations: &str,
    salts: Vec<Vec<u8>>,
    hash: Vec<u8>,
    caps: &Caps,
) -> Result<Pbkdf2Digest, Reject> {
    let iterations = codec::decimal(iterations).ok_or(malformed("iterations is not a number"))?;
    if iterations == 0 {
        return Err(malformed("iterations is zero"));
    }
    caps::check("pbkdf2 iterations", iterations, caps.pbkdf2_iterations)?;
    let iterations = u32::try_from(iterations).map_err(|_| malformed("iterations is too large"))?;
    if !(16..=64).contains(&hash.len()) {
        return Err(malformed("the hash is not 16 to 64 bytes long"));
    }
    Ok(Pbkdf2Digest {
        prf,
        iterations,
        salts,
        hash,
    })
}

impl Pbkdf2Digest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut matched = false;
        for salt in &self.salts {
            let mut out = vec![0u8; self.hash.len()];
            let rounds = self.iterations;
            match self.prf {
                Prf::Sha1 => pbkdf2_hmac::<Sha1>(password, salt, rounds, &mut out),
                Prf::Sha256 => pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut out),
                Prf::Sha512 => pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut out),
            }
            // Every reading is computed, so the time does not depend on which
            // one matched.
            matched |= codec::ct_eq(&out, &self.hash);
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_zero_iterations_are_refused_before_hashing() {
        let over = "pbkdf2_sha256$5000001$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert!(matches!(
            parse_sha256(over, &Caps::default()),
            Err(Reject::OverCap {
                what: "pbkdf2 iterations",
                value: 5_000_001,
                ..
            })
        ));
        let zero = over.replace("5000001", "0");
        assert!(matches!(
            parse_sha256(&zero, &Caps::default()),
            Err(Reject::Malformed(_))
        ));
    }

    #[test]
    fn hex_looking_raw_salts_are_read_both_ways() {
        let hash = "00".repeat(32);
        let d = parse_sha1(&format!("pbkdf2_sha1$1$deadbeef${hash}"), &Caps::default()).unwrap();
        assert_eq!(
            d.salts,
            vec![vec![0xde, 0xad, 0xbe, 0xef], b"deadbeef".to_vec()]
        );
        let d = parse_sha1(&format!("pbkdf2_sha1$1$nothex${hash}$32"), &Caps::default()).unwrap();
        assert_eq!(d.salts, vec![b"nothex".to_vec()]);
    }

    #[test]
    fn shapes_are_checked() {
        let hash = "00".repeat(32);
        let caps = Caps::default();
        assert!(parse_sha1(&format!("pbkdf2_sha1$1$ab${hash}$20"), &caps).is_err());
        assert!(parse_sha1(&format!("pbkdf2_sha256$1$ab${hash}"), &caps).is_err());
        assert!(parse_sha512(&format!("pbkdf2_sha512$1$${hash}"), &caps).is_err());
        assert!(parse_sha512(&format!("pbkdf2_sha512$1$s$00{hash}{hash}"), &caps).is_err());
        assert!(parse_sha512_hex(&format!("pbkdf2_sha512_hex$1$xyz${hash}"), &caps).is_err());
        assert!(parse_sha512_hex(&format!("pbkdf2_sha512_hex$+1$ab${hash}"), &caps).is_err());
        assert!(parse_sha256_django("pbkdf2_sha256$1$salt$AAAA", &caps).is_err());
    }
}
