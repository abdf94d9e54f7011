//! Tests across the whole module: the fixtures made by independent
//! implementations (`scripts/make-hash-fixtures.py`), the dispatch outcomes,
//! and garbage digests for every hasher.

use super::*;

/// One fixture row, as `scripts/make-hash-fixtures.py` writes it.
#[derive(serde::Deserialize)]
struct Vector {
    hasher: String,
    digest: String,
    password: String,
    note: String,
    source: String,
}

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hashes/vectors.json"
));

fn vectors() -> Vec<Vector> {
    serde_json::from_str(VECTORS).expect("vectors.json is valid")
}

#[test]
fn every_fixture_verifies_and_a_wrong_password_does_not() {
    let caps = Caps::default();
    for v in vectors() {
        let what = format!("{} ({}; {})", v.hasher, v.note, v.source);
        let digest = match parse(&v.hasher, &v.digest, &caps) {
            Ok(d) => d,
            Err(e) => panic!("{what}: {e}"),
        };
        assert!(
            digest.verify(v.password.as_bytes()),
            "{what}: right password"
        );
        // Changed at the front (bcrypt ignores bytes past 72) and at the end.
        let prefixed = format!("x{}", v.password);
        assert!(
            !digest.verify(prefixed.as_bytes()),
            "{what}: wrong password"
        );
        let shortened = &v.password.as_bytes()[..v.password.len().saturating_sub(1)];
        assert!(!digest.verify(shortened), "{what}: shortened password");
    }
}

#[test]
fn bcrypt_ignores_bytes_past_72_like_every_bcrypt() {
    let v = vectors()
        .into_iter()
        .find(|v| v.note.starts_with("72-byte"));
    let v = v.expect("the 72-byte bcrypt fixture");
    let d = parse(&v.hasher, &v.digest, &Caps::default()).unwrap();
    assert!(d.verify(format!("{}and more", v.password).as_bytes()));
}

#[test]
fn every_supported_hasher_has_a_fixture() {
    let vectors = vectors();
    for hasher in Hasher::ALL.into_iter().filter(|h| h.is_supported()) {
        assert!(
            vectors.iter().any(|v| v.hasher == hasher.as_str()),
            "no fixture for {hasher}"
        );
    }
}

#[test]
fn awscognito_is_unsupported_whatever_its_digest() {
    for digest in ["awscognito#us-east-1_abc#client#user", "", "$2b$10$x"] {
        let err = parse("awscognito", digest, &Caps::default()).unwrap_err();
        assert_eq!(
            err,
            DigestError::Unsupported {
                hasher: Hasher::AwsCognito
            }
        );
    }
}

#[test]
fn unknown_hashers_are_named_only_when_they_look_like_names() {
    let err = parse("sha1", "abc", &Caps::default()).unwrap_err();
    assert_eq!(err.to_string(), "unknown password hasher \"sha1\"");
    let pasted = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
    let err = parse(pasted, "bcrypt", &Caps::default()).unwrap_err();
    assert!(!err.to_string().contains(pasted));
    assert!(matches!(err, DigestError::UnknownHasher { .. }));
}

#[test]
fn empty_and_oversized_digests_are_malformed_for_every_hasher() {
    let huge = "a".repeat(MAX_DIGEST_BYTES + 1);
    for hasher in Hasher::ALL.into_iter().filter(|h| h.is_supported()) {
        for digest in ["", huge.as_str()] {
            let err = parse(hasher.as_str(), digest, &Caps::default()).unwrap_err();
            assert!(matches!(err, DigestError::Malformed { .. }), "{hasher}");
        }
    }
}

#[test]
fn errors_and_debug_never_show_the_digest() {
    let caps = Caps::default();
    for v in vectors() {
        let d = parse(&v.hasher, &v.digest, &caps).unwrap();
        let shown = format!("{d:?}");
        assert!(
            !shown.contains(&v.digest) && shown.contains("redacted"),
            "{shown}"
        );
        // Break the digest a few ways; at least one must fail to parse, and no
        // message may echo the digest, a large piece of it, or the password.
        let half = v.digest.len() / 2;
        let broken = [
            format!("{}\u{1}", v.digest),
            format!("\u{1}{}", v.digest),
            v.digest.get(..half).unwrap_or_default().to_owned(),
        ];
        let errors: Vec<String> = broken
            .iter()
            .filter_map(|b| parse(&v.hasher, b, &caps).err())
            .map(|e| e.to_string())
            .collect();
        assert!(
            !errors.is_empty(),
            "{}: no corruption was refused",
            v.hasher
        );
        for err in errors {
            assert!(
                !err.contains(v.digest.get(..half.max(8)).unwrap_or_default()),
                "{err}"
            );
            assert!(!err.contains(&v.password), "{err}");
        }
    }
}

#[test]
fn passwords_over_the_length_cap_never_match() {
    let caps = Caps {
        max_password_bytes: 8,
        ..Caps::default()
    };
    // md5("password") is 8 bytes long: allowed; "password1" is 9: refused.
    let d = parse("md5", "5f4dcc3b5aa765d61d8327deb882cf99", &caps).unwrap();
    assert!(d.verify(b"password"));
    let d9 = parse("md5", "7c6a180b36896a0a8c02787eeafb0e4c", &caps).unwrap();
    assert!(!d9.verify(b"password1"));
}

/// Caps so low that any digest that still parses is cheap to verify.
fn tiny_caps() -> Caps {
    Caps {
        bcrypt_cost: 4,
        pbkdf2_iterations: 16,
        scrypt_memory_bytes: 256 * 1024,
        scrypt_parallelism: 2,
        argon2_memory_kib: 64,
        argon2_iterations: 2,
        argon2_parallelism: 2,
        phpass_log2_rounds: 8,
        sha512_symfony_iterations: 16,
        max_password_bytes: 4096,
    }
}

/// A tiny deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Feed garbage — random strings over the characters digests are made of,
/// and every truncation and single-character corruption of each fixture —
/// to `parse` for every hasher. Nothing may panic; whatever parses is
/// verified too.
#[test]
fn garbage_digests_never_panic() {
    const PIECES: &[&str] = &[
        "$",
        "$",
        "$",
        "2b",
        "10",
        "04",
        "argon2id",
        "v=19",
        "m=64",
        ",",
        "t=1",
        "p=1",
        "=",
        "pbkdf2_sha256",
        "scrypt",
        ":",
        "1024",
        "8",
        "1",
        "{SSHA}",
        "{",
        "}",
        "$P$",
        "$H$",
        "sha512_symfony",
        "bcrypt_sha256",
        "hmac_sha256_utf16_b64",
        "a",
        "Z",
        "0",
        "9",
        "/",
        "+",
        "-",
        "_",
        ".",
        "é",
        "😀",
        "\0",
        " ",
        "\n",
        "ff",
        "AAAA",
        "Bw==",
        "deadbeef",
    ];
    let caps = tiny_caps();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut inputs: Vec<String> = (0..3000)
        .map(|_| {
            let n = rng.below(24);
            (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect()
        })
        .collect();
    for v in vectors() {
        let chars: Vec<(usize, char)> = v.digest.char_indices().collect();
        for &(i, _) in &chars {
            inputs.push(v.digest[..i].to_owned());
            for replacement in ["$", "é", "0", ""] {
                let next = chars
                    .iter()
                    .find(|&&(j, _)| j > i)
                    .map_or(v.digest.len(), |p| p.0);
                inputs.push(format!(
                    "{}{replacement}{}",
                    &v.digest[..i],
                    &v.digest[next..]
                ));
            }
        }
    }
    for input in &inputs {
        for hasher in Hasher::ALL {
            if let Ok(d) = parse(hasher.as_str(), input, &caps) {
                // Cheap by construction of the caps; must not panic either.
                let _ = d.verify(b"password");
            }
        }
    }
}

/// Every family compares its computed value with the stored one through
/// `codec::ct_eq` (subtle), never with `==`. A source check, so a later edit
/// that slips in a short-circuiting comparison fails here.
#[test]
fn every_verifier_compares_in_constant_time() {
    let families = [
        ("argon2.rs", include_str!("argon2.rs")),
        ("bcrypt.rs", include_str!("bcrypt.rs")),
        ("hmac_utf16.rs", include_str!("hmac_utf16.rs")),
        ("ldap.rs", include_str!("ldap.rs")),
        ("pbkdf2.rs", include_str!("pbkdf2.rs")),
        ("phpass.rs", include_str!("phpass.rs")),
        ("plain.rs", include_str!("plain.rs")),
        ("scrypt.rs", include_str!("scrypt.rs")),
        ("symfony.rs", include_str!("symfony.rs")),
    ];
    for (file, source) in families {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        assert!(code.contains("codec::ct_eq("), "{file} does not use ct_eq");
        for pattern in ["== self.", "== hash", "== &self.", "!= self.", ".eq(&self."] {
            assert!(!code.contains(pattern), "{file} compares with {pattern:?}");
        }
    }
}
