//! Work-factor caps: the most work one exported digest may ask of us.
//!
//! A digest carries its own cost (bcrypt's cost, PBKDF2's iterations,
//! scrypt's N, …). An export row is untrusted input, so a row claiming
//! `$2b$31$` or `m=4194304` could otherwise pin a blocking thread for minutes
//! or allocate gigabytes. [`super::parse`] compares every work factor with
//! these caps *before* any hashing starts and answers `OverCap` instead.
//!
//! The defaults sit well above what real systems write (noted per field) and
//! well below what would hurt a 2-core machine serving sign-ins.

/// Limits checked by [`super::parse`] (and the password length checked by
/// [`super::LegacyDigest::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Highest bcrypt cost (log2 of the rounds). Default 14 (Clerk and most
    /// systems write 10–12; each step doubles the time, 14 ≈ 1 s).
    pub bcrypt_cost: u64,
    /// Highest PBKDF2 iteration count, all PBKDF2 hashers. Default 5,000,000
    /// (Django 5.2 writes 1,000,000). Derived keys are at most 64 bytes, so a
    /// verify is at most four times this many HMACs.
    pub pbkdf2_iterations: u64,
    /// Highest scrypt memory, in bytes, computed as `128·r·(N + p)` (the
    /// `N`-block scratch array plus the `p` lanes). Default 256 MiB
    /// (Firebase writes 16 MiB, Werkzeug 32 MiB).
    pub scrypt_memory_bytes: u64,
    /// Highest scrypt parallelism `p`: lanes run one after another here, so
    /// `p` multiplies the time. Default 16 (everyone writes 1).
    pub scrypt_parallelism: u64,
    /// Highest Argon2 memory `m`, in KiB. Default 262,144 (256 MiB; Kernia
    /// and argon2-cffi write 65,536).
    pub argon2_memory_kib: u64,
    /// Highest Argon2 passes `t`. Default 10 (common values are 1–4).
    pub argon2_iterations: u64,
    /// Highest Argon2 lanes `p`. Lanes are computed one after another and do
    /// not add work beyond `m`·`t`, so this cap is generous. Default 64.
    pub argon2_parallelism: u64,
    /// Highest phpass log2 of the MD5 iterations (the format allows up to
    /// 30). Default 20, i.e. about a million MD5s; WordPress writes 13 (`B`),
    /// phpBB 11 (`9`).
    pub phpass_log2_rounds: u64,
    /// Highest `sha512_symfony` iteration count. Default 5,000,000 (Symfony
    /// writes 5,000).
    pub sha512_symfony_iterations: u64,
    /// Longest password, in bytes, that `verify` will hash; longer ones never
    /// match. Default 4096, the limit Symfony and phpass (WordPress) enforce
    /// themselves; it also bounds the formats whose every round rehashes the
    /// password. Kernia allows at most 128 characters.
    pub max_password_bytes: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps {
            bcrypt_cost: 14,
            pbkdf2_iterations: 5_000_000,
            scrypt_memory_bytes: 256 * 1024 * 1024,
            scrypt_parallelism: 16,
            argon2_memory_kib: 256 * 1024,
            argon2_iterations: 10,
            argon2_parallelism: 64,
            phpass_log2_rounds: 20,
            sha512_symfony_iterations: 5_000_000,
            max_password_bytes: 4096,
        }
    }
}

/// Refuse `value` when it is over `cap`; `what` names the work factor in the
/// error message (never the digest itself).
pub(super) fn check(what: &'static str, value: u64, cap: u64) -> Result<(), super::Reject> {
    if value > cap {
        Err(super::Reject::OverCap { what, value, cap })
    } else {
        Ok(())
    }
}
