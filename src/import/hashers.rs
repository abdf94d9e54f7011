//! Which of Clerk's `password_hasher` values cutover can verify at sign-in.
//!
//! Clerk exports 22 hasher names (reference `clerk.md` §4.1). All but
//! `awscognito` are digests of the password that cutover's `hash` module checks
//! during lazy migration; `awscognito` is a pointer to a Cognito pool, not a
//! digest. A user whose hasher is not on this list must reset their password.

/// The hashers whose digests can be verified, in Clerk's spelling.
pub const VERIFIABLE: [&str; 21] = [
    "argon2i",
    "argon2id",
    "bcrypt",
    "bcrypt_peppered",
    "bcrypt_sha256_django",
    "hmac_sha256_utf16_b64",
    "ldap_ssha",
    "md5",
    "md5_phpass",
    "md5_salted",
    "phpass",
    "pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha256_django",
    "pbkdf2_sha512",
    "pbkdf2_sha512_hex",
    "scrypt_firebase",
    "scrypt_werkzeug",
    "sha256",
    "sha256_salted",
    "sha512_symfony",
];

/// Whether cutover can check a password against this hasher's digests.
pub fn is_verifiable(hasher: &str) -> bool {
    VERIFIABLE.contains(&hasher)
}

/// The hasher name as the ledger keeps it: trimmed and lower-cased.
pub fn normalize(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_and_unknown_hashers_are_not_verifiable() {
        assert!(is_verifiable("bcrypt"));
        assert!(is_verifiable(&normalize(" PBKDF2_SHA256_Django ")));
        assert!(!is_verifiable("awscognito"));
        assert!(!is_verifiable("sha1"));
    }
}
