//! The password hash Kernia itself writes (Kernia 0.1.0's own format), so a
//! migrated user's credential row is indistinguishable from one Kernia made.
//!
//! Kernia hashes with argon2-cffi's defaults — Argon2id, v=19, m=65536 KiB,
//! t=3, p=4, a 16-byte random salt, a 32-byte hash — and stores the PHC
//! string with standard base64 *without padding*:
//! `$argon2id$v=19$m=65536,t=3,p=4$<22 chars>$<43 chars>` (97 characters).
//! With exactly these parameters Kernia's `needs_rehash` stays false. Kernia
//! verifies any m/t/p read from the string, so other parameters still work
//! (tests use small ones), but production should keep the defaults.

use ::argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore as _;

/// Argon2id cost parameters for new Kernia hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KerniaArgon2Params {
    /// Memory in KiB; Kernia writes 65536.
    pub m_cost: u32,
    /// Passes; Kernia writes 3.
    pub t_cost: u32,
    /// Lanes; Kernia writes 4.
    pub p_cost: u32,
}

impl Default for KerniaArgon2Params {
    /// Exactly Kernia 0.1.0's (argon2-cffi's) parameters.
    fn default() -> KerniaArgon2Params {
        KerniaArgon2Params {
            m_cost: 65536,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

/// Hashing for Kernia failed: only out-of-range parameters (for example
/// `m_cost < 8 · p_cost`) or an absurdly long password can cause it.
#[derive(Debug, thiserror::Error)]
#[error("cannot make a Kernia password hash: {0}")]
pub struct KerniaHashError(::argon2::Error);

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Hash `password` the way Kernia does, with a fresh random salt from the
/// thread-local CSPRNG. Costs about 64 MiB and ~0.1–0.3 s with the default
/// parameters: call it on a blocking thread.
pub fn kernia_argon2id(
    password: &[u8],
    params: &KerniaArgon2Params,
) -> Result<String, KerniaHashError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    kernia_argon2id_with_salt(password, params, &salt)
}

fn kernia_argon2id_with_salt(
    password: &[u8],
    params: &KerniaArgon2Params,
    salt: &[u8; SALT_LEN],
) -> Result<String, KerniaHashError> {
    let KerniaArgon2Params {
        m_cost,
        t_cost,
        p_cost,
    } = *params;
    let argon_params =
        Params::new(m_cost, t_cost, p_cost, Some(HASH_LEN)).map_err(KerniaHashError)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut hash = [0u8; HASH_LEN];
    argon
        .hash_password_into(password, salt, &mut hash)
        .map_err(KerniaHashError)?;
    Ok(format!(
        "$argon2id$v=19$m={m_cost},t={t_cost},p={p_cost}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{Caps, parse};

    const SMALL: KerniaArgon2Params = KerniaArgon2Params {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn default_hash_has_kernias_exact_shape_and_verifies() {
        let phc = kernia_argon2id("pässword".as_bytes(), &KerniaArgon2Params::default()).unwrap();
        assert_eq!(phc.len(), 97, "{phc}");
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"));
        // No base64 padding anywhere, as argon2-cffi writes.
        assert!(!phc.contains("=$") && !phc.ends_with('='));
        let d = parse("argon2id", &phc, &Caps::default()).unwrap();
        assert!(d.verify("pässword".as_bytes()));
        assert!(!d.verify(b"password"));
    }

    #[test]
    fn matches_the_argon2_crates_own_phc_output() {
        use ::argon2::password_hash::{PasswordHasher as _, SaltString};
        let salt = *b"0123456789abcdef";
        let ours = kernia_argon2id_with_salt(b"pw", &SMALL, &salt).unwrap();
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, Some(32)).unwrap(),
        );
        let salt = SaltString::encode_b64(&salt).unwrap();
        let theirs = argon.hash_password(b"pw", &salt).unwrap().to_string();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn salts_are_fresh_and_bad_parameters_are_errors() {
        let a = kernia_argon2id(b"pw", &SMALL).unwrap();
        let b = kernia_argon2id(b"pw", &SMALL).unwrap();
        assert_ne!(a, b);
        let bad = KerniaArgon2Params {
            m_cost: 8,
            t_cost: 1,
            p_cost: 4,
        };
        assert!(kernia_argon2id(b"pw", &bad).is_err());
    }
}
