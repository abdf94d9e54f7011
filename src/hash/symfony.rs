//! `sha512_symfony`: Symfony's MessageDigestPasswordEncoder with SHA-512,
//! written by Clerk as `sha512_symfony$<iterations>$<salt>$<base64 hash>`.
//!
//! **[uncertain]** in the reference; we follow Symfony's encoder exactly:
//! `s = password + "{" + salt + "}"` (just the password when the salt is
//! empty), `d = sha512(s)`, then `iterations − 1` times `d = sha512(d ‖ s)`,
//! and the stored value is base64(d). Symfony refuses salts containing braces,
//! so such digests cannot exist and are malformed here.

use sha2::{Digest as _, Sha512};

use super::caps::{self, Caps};
use super::codec;
use super::{Reject, malformed};

#[derive(Clone)]
pub(super) struct SymfonyDigest {
    iterations: u64,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

pub(super) fn parse(digest: &str, caps: &Caps) -> Result<SymfonyDigest, Reject> {
    let rest = digest
        .strip_prefix("sha512_symfony$")
        .ok_or(malformed("does not start with sha512_symfony$"))?;
    let (iterations, rest) = rest
        .split_once('$')
        .ok_or(malformed("no iterations field"))?;
    // The hash is base64 and has no '$', so the salt is everything up to the
    // last separator.
    let (salt, hash) = rest
        .rsplit_once('$')
        .ok_or(malformed("not <salt>$<hash>"))?;
    let iterations = codec::decimal(iterations).ok_or(malformed("iterations is not a number"))?;
    if iterations == 0 {
        return Err(malformed("iterations is zero"));
    }
    caps::check(
        "sha512_symfony iterations",
        iterations,
        caps.sha512_symfony_iterations,
    )?;
    if salt.contains(['{', '}']) {
        return Err(malformed(
            "the salt contains a brace, which Symfony refuses",
        ));
    }
    let hash = codec::base64(hash).ok_or(malformed("the hash is not base64"))?;
    if hash.len() != 64 {
        return Err(malformed("the hash is not 64 bytes"));
    }
    Ok(SymfonyDigest {
        iterations,
        salt: salt.as_bytes().to_vec(),
        hash,
    })
}

impl SymfonyDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let salted = if self.salt.is_empty() {
            password.to_vec()
        } else {
            [password, b"{", &self.salt, b"}"].concat()
        };
        let mut digest = Sha512::digest(&salted);
        for _ in 1..self.iterations {
            digest = Sha512::new()
                .chain_update(digest)
                .chain_update(&salted)
                .finalize();
        }
        codec::ct_eq(&digest, &self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_caps_are_checked() {
        let hash = codec::base64_encode(&[0u8; 64]);
        let caps = Caps::default();
        assert!(parse(&format!("sha512_symfony$5000$salt${hash}"), &caps).is_ok());
        assert!(parse(&format!("sha512_symfony$5000$${hash}"), &caps).is_ok());
        assert!(parse(&format!("sha512_symfony$5000$a$b${hash}"), &caps).is_ok());
        assert!(matches!(
            parse(&format!("sha512_symfony$5000001$salt${hash}"), &caps),
            Err(Reject::OverCap {
                value: 5_000_001,
                ..
            })
        ));
        for d in [
            format!("sha512_symfony$0$salt${hash}"),
            format!("sha512_symfony$5000$s{{x}}${hash}"),
            format!(
                "sha512_symfony$5000$salt${}",
                codec::base64_encode(&[0u8; 32])
            ),
            format!("sha512$5000$salt${hash}"),
            "sha512_symfony$5000".to_owned(),
        ] {
            assert!(matches!(parse(&d, &caps), Err(Reject::Malformed(_))), "{d}");
        }
    }
}
