//! Password digests: verifying the ones exported from Clerk, and writing
//! Kernia's own.
//!
//! A Clerk export gives each user a `password_hasher` name and a
//! `password_digest`. Lazy migration checks the password a user types against
//! that digest once, then stores a Kernia Argon2id hash instead. This module
//! owns both halves and nothing else: no I/O, no logging, no async.
//!
//! Verification is split in two on purpose:
//!
//! 1. [`parse`] reads the pair, checks the digest's shape and compares every
//!    work factor with [`Caps`] — cheap, and done before any hashing, so a
//!    hostile row (`$2b$31$…`, `m=4194304`) is refused instead of burning CPU
//!    or memory.
//! 2. [`LegacyDigest::verify`] does the expensive part and compares in
//!    constant time (`subtle`). The proxy calls it on its blocking pool.
//!
//! Formats follow Clerk's exported digest formats. Where a format is uncertain
//! or two Clerk documents disagree, the verifier
//! accepts every documented reading and says so in a comment beside it;
//! extra readings only cost a few more hash computations for those rows.
//!
//! Nothing here prints a digest or a password: errors carry a hasher name and
//! a fixed reason, and [`LegacyDigest`]'s `Debug` is redacted.
//!
//! # Layout
//! - `hasher` — the 22 names ([`Hasher`]); `caps` — the work-factor limits;
//!   `codec` — decoding helpers and the constant-time compare.
//! - one file per family: `bcrypt` (also [`dummy_verify`]), `argon2`,
//!   `pbkdf2`, `scrypt`, `phpass`, `plain` (md5/sha256, salted or not),
//!   `ldap`, `hmac_utf16`, `symfony`.
//! - `kernia` — [`kernia_argon2id`], the hash Kernia itself would write.

mod argon2;
mod bcrypt;
mod caps;
mod codec;
mod hasher;
mod hmac_utf16;
mod kernia;
mod ldap;
mod pbkdf2;
mod phpass;
mod plain;
mod scrypt;
mod symfony;
#[cfg(test)]
mod tests;

use std::fmt;

pub use bcrypt::dummy_verify;
pub use caps::Caps;
pub use hasher::Hasher;
pub use kernia::{KerniaArgon2Params, KerniaHashError, kernia_argon2id};

/// Longest digest we look at. Real digests are under 300 bytes; anything
/// longer is refused before it is split or decoded.
const MAX_DIGEST_BYTES: usize = 4096;

/// Why a `(password_hasher, password_digest)` pair cannot be verified.
/// Messages name the hasher and a fixed reason, never the digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not one of Clerk's 22 names. `name` is shown only when it looks like a
    /// hasher name, so a digest pasted into the wrong column is not echoed.
    #[error("unknown password hasher {name}")]
    UnknownHasher { name: String },
    /// A known hasher that cannot be verified offline (`awscognito`).
    #[error("password hasher {hasher} is not a hash and cannot be verified here")]
    Unsupported { hasher: Hasher },
    /// The digest does not have the shape its hasher writes.
    #[error("malformed {hasher} digest: {reason}")]
    Malformed {
        hasher: Hasher,
        reason: &'static str,
    },
    /// A work factor in the digest is over its [`Caps`] limit.
    #[error("{hasher} digest asks for {what} {value}, over the cap of {cap}")]
    OverCap {
        hasher: Hasher,
        what: &'static str,
        value: u64,
        cap: u64,
    },
}

impl DigestError {
    fn unknown_hasher(name: &str) -> DigestError {
        let looks_like_a_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let name = if looks_like_a_name {
            format!("{name:?}")
        } else {
            "(value not shown)".to_owned()
        };
        DigestError::UnknownHasher { name }
    }
}

/// A family parser's refusal, before the hasher name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reject {
    Malformed(&'static str),
    OverCap {
        what: &'static str,
        value: u64,
        cap: u64,
    },
}

/// Shorthand for the family parsers: the digest is not of its hasher's shape.
const fn malformed(reason: &'static str) -> Reject {
    Reject::Malformed(reason)
}

impl Reject {
    fn with_hasher(self, hasher: Hasher) -> DigestError {
        match self {
            Reject::Malformed(reason) => DigestError::Malformed { hasher, reason },
            Reject::OverCap { what, value, cap } => DigestError::OverCap {
                hasher,
                what,
                value,
                cap,
            },
        }
    }
}

/// A digest that passed [`parse`]: its shape is valid and its work factors
/// are within the caps it was parsed with. Cloning is cheap enough to cache.
#[derive(Clone)]
pub struct LegacyDigest {
    hasher: Hasher,
    scheme: Scheme,
    max_password_bytes: usize,
}

/// The parsed digest, one variant per family.
#[derive(Clone)]
enum Scheme {
    Bcrypt(bcrypt::BcryptDigest),
    Argon2(argon2::Argon2Digest),
    Pbkdf2(pbkdf2::Pbkdf2Digest),
    ScryptFirebase(scrypt::FirebaseDigest),
    ScryptWerkzeug(scrypt::WerkzeugDigest),
    Phpass(phpass::PhpassDigest),
    Plain(plain::PlainDigest),
    LdapSsha(ldap::SshaDigest),
    HmacUtf16(hmac_utf16::HmacDigest),
    Symfony(symfony::SymfonyDigest),
}

/// Read an export row's `password_hasher` and `password_digest`.
///
/// Cheap: validates the digest's shape and checks its work factors against
/// `caps` before any hashing. Unknown names are
/// [`DigestError::UnknownHasher`]; `awscognito` is
/// [`DigestError::Unsupported`] whatever its digest.
pub fn parse(hasher: &str, digest: &str, caps: &Caps) -> Result<LegacyDigest, DigestError> {
    let hasher: Hasher = hasher.parse()?;
    if !hasher.is_supported() {
        return Err(DigestError::Unsupported { hasher });
    }
    let scheme = parse_scheme(hasher, digest, caps).map_err(|r| r.with_hasher(hasher))?;
    Ok(LegacyDigest {
        hasher,
        scheme,
        max_password_bytes: caps.max_password_bytes,
    })
}

fn parse_scheme(hasher: Hasher, digest: &str, caps: &Caps) -> Result<Scheme, Reject> {
    if digest.is_empty() {
        return Err(Reject::Malformed("the digest is empty"));
    }
    if digest.len() > MAX_DIGEST_BYTES {
        return Err(Reject::Malformed("the digest is longer than 4096 bytes"));
    }
    Ok(match hasher {
        Hasher::Bcrypt => Scheme::Bcrypt(bcrypt::parse_plain(digest, caps)?),
        Hasher::BcryptPeppered => Scheme::Bcrypt(bcrypt::parse_peppered(digest, caps)?),
        Hasher::BcryptSha256Django => Scheme::Bcrypt(bcrypt::parse_django_sha256(digest, caps)?),
        Hasher::Argon2i | Hasher::Argon2id => Scheme::Argon2(argon2::parse(digest, caps)?),
        Hasher::Pbkdf2Sha1 => Scheme::Pbkdf2(pbkdf2::parse_sha1(digest, caps)?),
        Hasher::Pbkdf2Sha256 => Scheme::Pbkdf2(pbkdf2::parse_sha256(digest, caps)?),
        Hasher::Pbkdf2Sha256Django => Scheme::Pbkdf2(pbkdf2::parse_sha256_django(digest, caps)?),
        Hasher::Pbkdf2Sha512 => Scheme::Pbkdf2(pbkdf2::parse_sha512(digest, caps)?),
        Hasher::Pbkdf2Sha512Hex => Scheme::Pbkdf2(pbkdf2::parse_sha512_hex(digest, caps)?),
        Hasher::ScryptFirebase => Scheme::ScryptFirebase(scrypt::parse_firebase(digest, caps)?),
        Hasher::ScryptWerkzeug => Scheme::ScryptWerkzeug(scrypt::parse_werkzeug(digest, caps)?),
        Hasher::Phpass | Hasher::Md5Phpass => Scheme::Phpass(phpass::parse(digest, caps)?),
        Hasher::Md5 => Scheme::Plain(plain::parse_md5(digest)?),
        Hasher::Md5Salted => Scheme::Plain(plain::parse_md5_salted(digest)?),
        Hasher::Sha256 => Scheme::Plain(plain::parse_sha256(digest)?),
        Hasher::Sha256Salted => Scheme::Plain(plain::parse_sha256_salted(digest)?),
        Hasher::LdapSsha => Scheme::LdapSsha(ldap::parse(digest)?),
        Hasher::HmacSha256Utf16B64 => Scheme::HmacUtf16(hmac_utf16::parse(digest)?),
        Hasher::Sha512Symfony => Scheme::Symfony(symfony::parse(digest, caps)?),
        // `parse` answers Unsupported before calling us.
        Hasher::AwsCognito => return Err(Reject::Malformed("awscognito is not a hash")),
    })
}

impl LegacyDigest {
    /// Which hasher the digest was parsed as.
    pub fn hasher(&self) -> Hasher {
        self.hasher
    }

    /// Whether `password` matches. The expensive part: run it off the async
    /// runtime. Comparisons are constant-time; a password longer than
    /// [`Caps::max_password_bytes`] never matches.
    pub fn verify(&self, password: &[u8]) -> bool {
        if password.len() > self.max_password_bytes {
            return false;
        }
        match &self.scheme {
            Scheme::Bcrypt(d) => d.verify(password),
            Scheme::Argon2(d) => d.verify(password),
            Scheme::Pbkdf2(d) => d.verify(password),
            Scheme::ScryptFirebase(d) => d.verify(password),
            Scheme::ScryptWerkzeug(d) => d.verify(password),
            Scheme::Phpass(d) => d.verify(password),
            Scheme::Plain(d) => d.verify(password),
            Scheme::LdapSsha(d) => d.verify(password),
            Scheme::HmacUtf16(d) => d.verify(password),
            Scheme::Symfony(d) => d.verify(password),
        }
    }
}

/// Redacted by hand: the hasher is shown, the digest never is.
impl fmt::Debug for LegacyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyDigest")
            .field("hasher", &self.hasher)
            .field("digest", &"<redacted>")
            .finish()
    }
}
