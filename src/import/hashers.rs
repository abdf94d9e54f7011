//! Which of Clerk's `password_hasher` values cutover can verify at sign-in, as
//! the import decides a user's ledger state: a digest cutover's [`crate::hash`]
//! module can check waits for the next sign-in (`pending_password`); anything
//! else (`awscognito`, which names a Cognito pool rather than holding a digest,
//! or a name Clerk does not document) needs a password reset.

use crate::hash::Hasher;

/// Whether cutover can check a password against this hasher's digests.
pub fn is_verifiable(hasher: &str) -> bool {
    hasher.parse::<Hasher>().is_ok_and(Hasher::is_supported)
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
        assert!(is_verifiable("scrypt_firebase"));
        assert!(!is_verifiable("awscognito"));
        assert!(!is_verifiable("sha1"));
    }
}
