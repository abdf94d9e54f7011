//! `argon2i` and `argon2id`: PHC strings such as
//! `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>` (salt and hash in unpadded
//! standard base64).
//!
//! We parse the string ourselves rather than through `password-hash`, whose
//! limits (salt ≤ 64 characters, fixed parameter order) are stricter than
//! what real exporters write, and so the memory, passes and lanes can be
//! checked against the caps before the `m` KiB are ever allocated.

use ::argon2::{Algorithm, Argon2, Params, Version};

use super::caps::{self, Caps};
use super::codec;
use super::{Reject, malformed};

#[derive(Clone)]
pub(super) struct Argon2Digest {
    algorithm: Algorithm,
    /// Usually one version; two when the string does not say (see `parse`).
    versions: Vec<Version>,
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// Parse a PHC string. Choices where the format leaves room:
///
/// - The variant is read from the string, not from the hasher name: an
///   `argon2i` row holding `$argon2id$…` verifies as argon2id (the string is
///   unambiguous, and Clerk's docs describe both hashers together).
///   `argon2d` is not a Clerk hasher and is refused.
/// - **[uncertain]** version: Clerk says "version 19 is assumed" when `v=` is
///   missing, while the Argon2 reference decoder (and argon2-cffi) read a
///   missing `v=` as 16 — the format before v=19 existed (argon2-cffi 25.1
///   verifies such a string as v=16; see the fixtures). We accept both
///   readings; `v=16` and `v=19` written out are honoured as written.
/// - `m`, `t`, `p` may come in any order, each exactly once; `keyid`/`data`
///   (never written by common libraries) are refused.
pub(super) fn parse(digest: &str, caps: &Caps) -> Result<Argon2Digest, Reject> {
    let fields: Vec<&str> = digest.split('$').collect();
    let (variant, version, params, salt, hash) = match fields.as_slice() {
        ["", variant, version, params, salt, hash] => {
            (*variant, Some(*version), *params, *salt, *hash)
        }
        ["", variant, params, salt, hash] => (*variant, None, *params, *salt, *hash),
        _ => {
            return Err(malformed(
                "not a PHC string $argon2…$v=…$m=…,t=…,p=…$salt$hash",
            ));
        }
    };
    let algorithm = match variant {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        _ => return Err(malformed("the variant is not argon2i or argon2id")),
    };
    let versions = match version {
        Some("v=19") => vec![Version::V0x13],
        Some("v=16") => vec![Version::V0x10],
        Some(_) => return Err(malformed("the version is not v=19 or v=16")),
        None => vec![Version::V0x13, Version::V0x10],
    };
    let (m, t, p) = read_params(params)?;
    caps::check("argon2 memory (KiB)", m, caps.argon2_memory_kib)?;
    caps::check("argon2 passes", t, caps.argon2_iterations)?;
    caps::check("argon2 lanes", p, caps.argon2_parallelism)?;

    let salt = codec::base64(salt).ok_or(malformed("the salt is not base64"))?;
    let hash = codec::base64(hash).ok_or(malformed("the hash is not base64"))?;
    if salt.len() < ::argon2::MIN_SALT_LEN {
        return Err(malformed("the salt is shorter than 8 bytes"));
    }
    if !(16..=64).contains(&hash.len()) {
        return Err(malformed("the hash is not 16 to 64 bytes long"));
    }
    let (Ok(m), Ok(t), Ok(p)) = (u32::try_from(m), u32::try_from(t), u32::try_from(p)) else {
        return Err(malformed("m, t or p is out of range"));
    };
    let params = Params::new(m, t, p, Some(hash.len()))
        .map_err(|_| malformed("m, t, p out of range (m must be at least 8·p)"))?;
    Ok(Argon2Digest {
        algorithm,
        versions,
        params,
        salt,
        hash,
    })
}

/// Read `m=…,t=…,p=…` in any order, each once.
fn read_params(s: &str) -> Result<(u64, u64, u64), Reject> {
    let (mut m, mut t, mut p) = (None, None, None);
    for pair in s.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or(malformed("a parameter has no '='"))?;
        let value = codec::decimal(value).ok_or(malformed("a parameter is not a number"))?;
        let slot = match key {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            _ => return Err(malformed("a parameter other than m, t, p")),
        };
        if slot.replace(value).is_some() {
            return Err(malformed("a parameter is repeated"));
        }
    }
    match (m, t, p) {
        (Some(m), Some(t), Some(p)) => Ok((m, t, p)),
        _ => Err(malformed("m, t or p is missing")),
    }
}

impl Argon2Digest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let mut matched = false;
        for &version in &self.versions {
            let argon = Argon2::new(self.algorithm, version, self.params.clone());
            let mut out = vec![0u8; self.hash.len()];
            if argon
                .hash_password_into(password, &self.salt, &mut out)
                .is_ok()
            {
                matched |= codec::ct_eq(&out, &self.hash);
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(digest: &str) -> Reject {
        match parse(digest, &Caps::default()) {
            Ok(_) => panic!("parsed: {digest}"),
            Err(r) => r,
        }
    }

    const SALT: &str = "c29tZXNhbHRzb21lc2FsdA";
    const HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn caps_refuse_memory_passes_and_lanes_before_hashing() {
        let over_m = format!("$argon2id$v=19$m=4194304,t=1,p=1${SALT}${HASH}");
        assert_eq!(
            reject(&over_m),
            Reject::OverCap {
                what: "argon2 memory (KiB)",
                value: 4_194_304,
                cap: 262_144
            }
        );
        let over_t = format!("$argon2id$v=19$m=64,t=11,p=1${SALT}${HASH}");
        assert!(matches!(
            reject(&over_t),
            Reject::OverCap {
                what: "argon2 passes",
                ..
            }
        ));
        let over_p = format!("$argon2i$v=19$m=65536,t=1,p=65${SALT}${HASH}");
        assert!(matches!(
            reject(&over_p),
            Reject::OverCap {
                what: "argon2 lanes",
                ..
            }
        ));
    }

    #[test]
    fn parameters_may_come_in_any_order_but_only_once() {
        let shuffled = format!("$argon2id$v=19$p=1,m=64,t=1${SALT}${HASH}");
        assert!(parse(&shuffled, &Caps::default()).is_ok());
        for params in [
            "m=64,t=1",
            "m=64,t=1,p=1,p=1",
            "m=64,t=1,p=1,data=AA",
            "m=64,t=x,p=1",
        ] {
            let digest = format!("$argon2id$v=19${params}${SALT}${HASH}");
            assert!(matches!(reject(&digest), Reject::Malformed(_)), "{params}");
        }
    }

    #[test]
    fn refuses_other_variants_versions_and_short_salts() {
        for digest in [
            format!("$argon2d$v=19$m=64,t=1,p=1${SALT}${HASH}"),
            format!("$argon2id$v=18$m=64,t=1,p=1${SALT}${HASH}"),
            format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdA${HASH}"),
            format!("$argon2id$v=19$m=64,t=1,p=1${SALT}$AAAA"),
            format!("$argon2id$v=19$m=4,t=1,p=1${SALT}${HASH}"),
            format!("argon2id$v=19$m=64,t=1,p=1${SALT}${HASH}"),
        ] {
            assert!(matches!(reject(&digest), Reject::Malformed(_)), "{digest}");
        }
    }

    #[test]
    fn a_missing_version_tries_both_readings() {
        let d = parse(
            &format!("$argon2id$m=64,t=1,p=1${SALT}${HASH}"),
            &Caps::default(),
        );
        assert_eq!(d.map(|d| d.versions.len()).ok(), Some(2));
    }
}
