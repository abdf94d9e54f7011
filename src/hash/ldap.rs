//! `ldap_ssha`: OpenLDAP's salted SHA-1, `{SSHA}` + base64(sha1(pw ‖ salt) ‖ salt).
//!
//! **[uncertain]** Clerk only links the OpenLDAP FAQ. We read the standard
//! scheme: the first 20 decoded bytes are the SHA-1, the rest is the salt
//! (any length, OpenLDAP writes 4 bytes, others 8–16). The `{SSHA}` scheme
//! name is matched case-insensitively, as LDAP servers do, and may be absent
//! in case the exporter stripped it.

use sha1::{Digest as _, Sha1};

use super::codec;
use super::{Reject, malformed};

#[derive(Clone)]
pub(super) struct SshaDigest {
    hash: Vec<u8>,
    salt: Vec<u8>,
}

pub(super) fn parse(digest: &str) -> Result<SshaDigest, Reject> {
    let body = match digest.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("{SSHA}") => digest.get(6..).unwrap_or(""),
        _ => digest,
    };
    if body.starts_with('{') {
        return Err(malformed("a scheme other than {SSHA}"));
    }
    let decoded = codec::base64(body).ok_or(malformed("not base64"))?;
    if decoded.len() < 20 {
        return Err(malformed("shorter than a 20-byte SHA-1"));
    }
    let (hash, salt) = decoded.split_at(20);
    Ok(SshaDigest {
        hash: hash.to_vec(),
        salt: salt.to_vec(),
    })
}

impl SshaDigest {
    pub(super) fn verify(&self, password: &[u8]) -> bool {
        let computed = Sha1::new()
            .chain_update(password)
            .chain_update(&self.salt)
            .finalize();
        codec::ct_eq(&computed, &self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_optional_and_case_insensitive_but_must_be_ssha() {
        let body = codec::base64_encode(&[7u8; 24]);
        for d in [
            format!("{{SSHA}}{body}"),
            format!("{{ssha}}{body}"),
            body.clone(),
        ] {
            assert_eq!(parse(&d).map(|d| d.salt.len()).ok(), Some(4), "{d}");
        }
        assert!(parse(&format!("{{SHA}}{body}")).is_err());
        assert!(parse("{SSHA}AAAA").is_err());
        assert!(parse("{SSHA}").is_err());
    }
}
