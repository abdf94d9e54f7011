//! `phpass` and `md5_phpass`: the phpass "portable" MD5 scheme (WordPress,
//! phpBB, Drupal 7's `$P$`).
//!
//! `$P$` + one character giving log2 of the iteration count + 8 salt
//! characters + 22 characters encoding the 16-byte result, all in the alphabet
//! `./0-9A-Za-z`. The hash is `md5(salt ‖ password)`, then `2^log2` times
//! `md5(previous ‖ password)`.
//!
//! **[uncertain]** Clerk does not describe `md5_phpass`; the reference reads
//! it as the same scheme including phpBB's `$H$` marker. Since `$H$` and `$P$`
//! differ only in the marker, both hashers accept both.

use md5::{Digest as _, Md5};

use super::caps::{self, Caps};
use super::codec;
use super::{Reject, malformed};

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[derive(Clone)]
pub(super) struct PhpassDigest {
    log2_rounds: u32,
    salt: [u8; 8],
    checksum: [u8; 22],
}

pub(super) fn parse(digest: &str, caps: &Caps) -> Result<PhpassDigest, Reject> {
    let bytes = digest.as_bytes();
    if bytes.len() != 34 {
        return Err(malformed("not 34 characters long"));
    }
    if !matches!(&bytes[..3], b"$P$" | b"$H$") {
        return Err(malformed("does not start with $P$ or $H$"));
    }
    if !bytes[3..].iter().all(|b| ITOA64.contains(b)) {
        return Err(malformed("a character outside ./0-9A-Za-z"));
    }
    let log2_rounds = ITOA64.iter().position(|&c| c == bytes[3]).unwrap_or(0);
    // phpass itself refuses counts outside 2^7..=2^30.
    if !(7..=30).contains(&log2_rounds) {
        return Err(malformed("the rounds character is outside 7..=30"));
    }
    caps::check(
        "phpass log2 rounds",
        log2_rounds as u64,
        caps.phpass_log2_rounds,
    )?;
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&bytes[4..12]);
    let mut checksum = [0u8; 22];
    checksum.copy_from_slice(&bytes[12..]);
    Ok(PhpassDigest {
        // At most 30, checked above.
        log2_rounds: log2_rounds as u32,
        salt,
        checksum,
    })
}

impl PhpassDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut hash = Md5::new_with_prefix(self.salt)
            .chain_update(password)
            .finalize();
        for _ in 0..(1u64 << self.log2_rounds) {
            hash = Md5::new_with_prefix(hash).chain_update(password).finalize();
        }
        codec::ct_eq(&encode64(&hash), &self.checksum)
    }
}

/// phpass's own base64: 6 bits at a time from little-endian groups of three
/// bytes, 16 bytes giving 22 characters.
fn encode64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let mut value = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            value |= u32::from(b) << (8 * i);
        }
        // A chunk of n bytes yields n + 1 characters.
        for i in 0..=chunk.len() {
            out.push(ITOA64[((value >> (6 * i)) & 0x3f) as usize]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode64_gives_22_characters_for_an_md5() {
        assert_eq!(encode64(&[0u8; 16]).len(), 22);
        // One byte 0xff: low 6 bits (63 → 'z'), then the top 2 bits (3 → '1').
        assert_eq!(encode64(&[0xff]), b"z1");
    }

    #[test]
    fn rounds_outside_the_format_or_over_the_cap_are_refused() {
        let tail = "saltsalt0123456789012345678901";
        // '4' is log2 6: below phpass's minimum.
        assert!(matches!(
            parse(&format!("$P$4{tail}"), &Caps::default()),
            Err(Reject::Malformed(_))
        ));
        // 'L' is log2 23: a valid phpass string, but over the default cap of 20.
        assert_eq!(
            parse(&format!("$P$L{tail}"), &Caps::default()).err(),
            Some(Reject::OverCap {
                what: "phpass log2 rounds",
                value: 23,
                cap: 20
            })
        );
        assert!(parse(&format!("$H$9{tail}"), &Caps::default()).is_ok());
        assert!(parse(&format!("$X$9{tail}"), &Caps::default()).is_err());
        assert!(parse(&format!("$P$9{}é", &tail[..28]), &Caps::default()).is_err());
    }
}
