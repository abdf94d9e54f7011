//! The 22 `password_hasher` names Clerk exports (reference `clerk.md` §4.1),
//! as one enum so the rest of the code matches on a closed set.

use std::fmt;
use std::str::FromStr;

use super::DigestError;

/// One of Clerk's `password_hasher` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hasher {
    Argon2i,
    Argon2id,
    AwsCognito,
    Bcrypt,
    BcryptPeppered,
    BcryptSha256Django,
    HmacSha256Utf16B64,
    LdapSsha,
    Md5,
    Md5Phpass,
    Md5Salted,
    Phpass,
    Pbkdf2Sha1,
    Pbkdf2Sha256,
    Pbkdf2Sha256Django,
    Pbkdf2Sha512,
    Pbkdf2Sha512Hex,
    ScryptFirebase,
    ScryptWerkzeug,
    Sha256,
    Sha256Salted,
    Sha512Symfony,
}

impl Hasher {
    /// Every hasher, in Clerk's (alphabetical) order.
    pub const ALL: [Hasher; 22] = [
        Hasher::Argon2i,
        Hasher::Argon2id,
        Hasher::AwsCognito,
        Hasher::Bcrypt,
        Hasher::BcryptPeppered,
        Hasher::BcryptSha256Django,
        Hasher::HmacSha256Utf16B64,
        Hasher::LdapSsha,
        Hasher::Md5,
        Hasher::Md5Phpass,
        Hasher::Md5Salted,
        Hasher::Phpass,
        Hasher::Pbkdf2Sha1,
        Hasher::Pbkdf2Sha256,
        Hasher::Pbkdf2Sha256Django,
        Hasher::Pbkdf2Sha512,
        Hasher::Pbkdf2Sha512Hex,
        Hasher::ScryptFirebase,
        Hasher::ScryptWerkzeug,
        Hasher::Sha256,
        Hasher::Sha256Salted,
        Hasher::Sha512Symfony,
    ];

    /// The name exactly as Clerk writes it in `password_hasher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Hasher::Argon2i => "argon2i",
            Hasher::Argon2id => "argon2id",
            Hasher::AwsCognito => "awscognito",
            Hasher::Bcrypt => "bcrypt",
            Hasher::BcryptPeppered => "bcrypt_peppered",
            Hasher::BcryptSha256Django => "bcrypt_sha256_django",
            Hasher::HmacSha256Utf16B64 => "hmac_sha256_utf16_b64",
            Hasher::LdapSsha => "ldap_ssha",
            Hasher::Md5 => "md5",
            Hasher::Md5Phpass => "md5_phpass",
            Hasher::Md5Salted => "md5_salted",
            Hasher::Phpass => "phpass",
            Hasher::Pbkdf2Sha1 => "pbkdf2_sha1",
            Hasher::Pbkdf2Sha256 => "pbkdf2_sha256",
            Hasher::Pbkdf2Sha256Django => "pbkdf2_sha256_django",
            Hasher::Pbkdf2Sha512 => "pbkdf2_sha512",
            Hasher::Pbkdf2Sha512Hex => "pbkdf2_sha512_hex",
            Hasher::ScryptFirebase => "scrypt_firebase",
            Hasher::ScryptWerkzeug => "scrypt_werkzeug",
            Hasher::Sha256 => "sha256",
            Hasher::Sha256Salted => "sha256_salted",
            Hasher::Sha512Symfony => "sha512_symfony",
        }
    }

    /// Whether a digest of this kind can be verified offline. Only
    /// `awscognito` cannot: its "digest" names a Cognito user pool, and Clerk
    /// verified such users against Cognito itself at their first sign-in.
    pub fn is_supported(self) -> bool {
        self != Hasher::AwsCognito
    }
}

impl FromStr for Hasher {
    type Err = DigestError;

    /// Exact, case-sensitive match on Clerk's spelling: exports always write
    /// the lower-case names, so anything else is a data problem to report.
    fn from_str(name: &str) -> Result<Hasher, DigestError> {
        Hasher::ALL
            .into_iter()
            .find(|h| h.as_str() == name)
            .ok_or_else(|| DigestError::unknown_hasher(name))
    }
}

impl fmt::Display for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for h in Hasher::ALL {
            assert_eq!(h.as_str().parse::<Hasher>(), Ok(h));
            assert_eq!(h.to_string(), h.as_str());
        }
    }

    #[test]
    fn names_are_distinct_and_only_awscognito_is_unsupported() {
        let mut names: Vec<_> = Hasher::ALL.iter().map(|h| h.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 22);
        let unsupported: Vec<_> = Hasher::ALL
            .into_iter()
            .filter(|h| !h.is_supported())
            .collect();
        assert_eq!(unsupported, [Hasher::AwsCognito]);
    }

    #[test]
    fn unknown_and_differently_cased_names_are_unknown() {
        for name in ["sha1", "BCRYPT", "bcrypt ", "", "scrypt"] {
            assert!(matches!(
                name.parse::<Hasher>(),
                Err(DigestError::UnknownHasher { .. })
            ));
        }
    }
}
