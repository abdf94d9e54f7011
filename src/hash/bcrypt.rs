//! bcrypt and its two Clerk variants (`bcrypt_peppered`,
//! `bcrypt_sha256_django`), plus [`dummy_verify`] for timing equalisation.
//!
//! Clerk's own passwords export as plain `bcrypt` (§4.3), so this is the
//! verifier almost every user goes through. The 60-character modular crypt
//! string is `$2b$` + two-digit cost + `$` + 22 characters of salt + 31 of
//! hash, in bcrypt's own base64 alphabet. We parse it ourselves (the `bcrypt`
//! crate's parse errors quote the whole hash, which must never reach a log),
//! then let the crate compute the hash and compare it in constant time
//! ourselves.

use std::borrow::Cow;

use sha2::{Digest as _, Sha256};

use super::caps::{self, Caps};
use super::codec;
use super::{Reject, malformed};

/// Length of a bcrypt modular crypt string.
const MCF_LEN: usize = 60;

#[derive(Clone)]
pub(super) struct BcryptDigest {
    cost: u32,
    salt: [u8; 16],
    hash: [u8; 23],
    prehash: Prehash,
}

/// What is fed to bcrypt instead of the bare password.
#[derive(Clone)]
enum Prehash {
    None,
    /// Devise style: the password with the pepper appended.
    Pepper(Vec<u8>),
    /// Django's BCryptSHA256PasswordHasher: lowercase hex of SHA-256.
    DjangoSha256,
}

/// `bcrypt`: a 60-char `$2a$`/`$2b$`/`$2y$` string. (`$2x$`, crypt_blowfish's
/// marker for hashes made by its old sign-extension bug, is refused: those
/// only verify with the buggy algorithm.)
pub(super) fn parse_plain(digest: &str, caps: &Caps) -> Result<BcryptDigest, Reject> {
    parse_mcf(digest, caps, Prehash::None)
}

/// `bcrypt_peppered`: `<60-char bcrypt>$<pepper>`; bcrypt over password ‖
/// pepper, as Devise does. The pepper is everything after the separator and
/// may itself contain `$`. A bare 60-char string is read as an empty pepper.
pub(super) fn parse_peppered(digest: &str, caps: &Caps) -> Result<BcryptDigest, Reject> {
    let mcf = digest
        .get(..MCF_LEN)
        .ok_or(malformed("shorter than a 60-character bcrypt string"))?;
    let pepper = match digest.get(MCF_LEN..) {
        Some("") => "",
        Some(rest) => rest
            .strip_prefix('$')
            .ok_or(malformed("no '$' between the bcrypt string and the pepper"))?,
        None => return Err(malformed("no '$' between the bcrypt string and the pepper")),
    };
    parse_mcf(mcf, caps, Prehash::Pepper(pepper.as_bytes().to_vec()))
}

/// `bcrypt_sha256_django`: `bcrypt_sha256$` + a bcrypt string of
/// hex(sha256(password)) (Django's BCryptSHA256PasswordHasher).
/// **[uncertain]** in the reference; we also accept the bcrypt string with the
/// `bcrypt_sha256$` prefix already dropped, since the reference's own recipe
/// starts by dropping it and an exporter may have done so.
pub(super) fn parse_django_sha256(digest: &str, caps: &Caps) -> Result<BcryptDigest, Reject> {
    let mcf = digest.strip_prefix("bcrypt_sha256$").unwrap_or(digest);
    parse_mcf(mcf, caps, Prehash::DjangoSha256)
}

fn parse_mcf(s: &str, caps: &Caps, prehash: Prehash) -> Result<BcryptDigest, Reject> {
    if s.len() != MCF_LEN {
        return Err(malformed("not a 60-character bcrypt string"));
    }
    let version = s.get(..4).ok_or(malformed("not a bcrypt string"))?;
    if !matches!(version, "$2a$" | "$2b$" | "$2y$") {
        return Err(malformed("version is not $2a$, $2b$ or $2y$"));
    }
    let cost = s.get(4..6).and_then(codec::decimal);
    let cost = cost.ok_or(malformed("cost is not two digits"))?;
    if s.get(6..7) != Some("$") {
        return Err(malformed("no '$' after the cost"));
    }
    if !(4..=31).contains(&cost) {
        return Err(malformed("cost is outside 4..=31"));
    }
    caps::check("bcrypt cost", cost, caps.bcrypt_cost)?;
    let salt = s.get(7..29).and_then(codec::bcrypt_base64);
    let hash = s.get(29..).and_then(codec::bcrypt_base64);
    let salt = salt.and_then(|v| <[u8; 16]>::try_from(v).ok());
    let hash = hash.and_then(|v| <[u8; 23]>::try_from(v).ok());
    match (salt, hash) {
        (Some(salt), Some(hash)) => Ok(BcryptDigest {
            // 4..=31 was checked above, so this cannot truncate.
            cost: cost as u32,
            salt,
            hash,
            prehash,
        }),
        _ => Err(malformed("salt or hash is not bcrypt base64")),
    }
}

impl BcryptDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let input: Cow<[u8]> = match &self.prehash {
            Prehash::None => Cow::Borrowed(password),
            Prehash::Pepper(pepper) => Cow::Owned([password, pepper].concat()),
            Prehash::DjangoSha256 => {
                Cow::Owned(::hex::encode(Sha256::digest(password)).into_bytes())
            }
        };
        // The crate truncates the input to 72 bytes, as every bcrypt does.
        let Ok(parts) = ::bcrypt::hash_with_salt(&input, self.cost, self.salt) else {
            return false;
        };
        let computed = parts.format_for_version(::bcrypt::Version::TwoB);
        match computed.get(29..).and_then(codec::bcrypt_base64) {
            Some(computed) => codec::ct_eq(&computed, &self.hash),
            None => false,
        }
    }
}

/// Spend about as long as verifying a Clerk-native password (bcrypt, cost
/// 10), then answer "no match".
///
/// Call it when there is no digest to check — an unknown user, a user with no
/// password, an unsupported hasher — so those answers take as long as a real
/// mismatch and response times do not reveal which accounts exist. The salt is
/// fixed and the stored hash all zeros, so no password can match.
pub fn dummy_verify(password: &[u8]) {
    const DUMMY: BcryptDigest = BcryptDigest {
        cost: 10,
        salt: *b"cutover-dummy-sa",
        hash: [0; 23],
        prehash: Prehash::None,
    };
    // black_box: the answer is always false, but the work must not be
    // optimised away.
    std::hint::black_box(DUMMY.verify(std::hint::black_box(password)));
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python bcrypt 5.0.0: hashpw(b"hunter2", gensalt(4)).
    const HUNTER2: &str = "$2b$04$RdA/SGXkIooHrEHZVFqXDeF11e/t0dygO1An24yI4m76jrgMEMKPW";

    #[test]
    fn verifies_and_rejects_and_accepts_every_version_marker() {
        let d = parse_plain(HUNTER2, &Caps::default()).unwrap();
        assert!(d.verify(b"hunter2"));
        assert!(!d.verify(b"hunter3"));
        for v in ["$2a$", "$2y$"] {
            let other = format!("{v}{}", &HUNTER2[4..]);
            assert!(
                parse_plain(&other, &Caps::default())
                    .unwrap()
                    .verify(b"hunter2")
            );
        }
    }

    #[test]
    fn refuses_costs_over_the_cap_before_hashing() {
        let d = HUNTER2.replace("$04$", "$15$");
        let err = parse_plain(&d, &Caps::default()).err();
        let cap = Some(Reject::OverCap {
            what: "bcrypt cost",
            value: 15,
            cap: 14,
        });
        assert_eq!(err, cap);
        // Cost 31 would take days; the cap answers at once.
        assert!(parse_plain(&HUNTER2.replace("$04$", "$31$"), &Caps::default()).is_err());
    }

    #[test]
    fn refuses_malformed_strings() {
        let cases = [
            HUNTER2.replace("$2b$", "$2x$"),
            HUNTER2.replace("$04$", "$03$"),
            HUNTER2.replace("$04$", "$4a$"),
            HUNTER2[..59].to_owned(),
            format!("{HUNTER2}x"),
            format!("{}é", &HUNTER2[..58]),
            format!("{}+{}", &HUNTER2[..7], &HUNTER2[8..]),
        ];
        for case in cases {
            assert!(
                matches!(
                    parse_plain(&case, &Caps::default()),
                    Err(Reject::Malformed(_))
                ),
                "{case}"
            );
        }
    }

    #[test]
    fn peppered_needs_a_separator_and_reads_a_bare_string_as_no_pepper() {
        assert!(parse_peppered(&format!("{HUNTER2}x"), &Caps::default()).is_err());
        let bare = parse_peppered(HUNTER2, &Caps::default()).unwrap();
        assert!(bare.verify(b"hunter2"));
        // "hunter" + pepper "2" is the same bcrypt input as "hunter2".
        let peppered = parse_peppered(&format!("{HUNTER2}$2"), &Caps::default()).unwrap();
        assert!(peppered.verify(b"hunter"));
        assert!(!peppered.verify(b"hunter2"));
    }

    #[test]
    fn dummy_verify_runs_without_matching() {
        dummy_verify(b"");
        dummy_verify(b"hunter2");
    }
}
