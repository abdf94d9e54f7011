//! `cutover hash verify` as scripts use it: the real binary, the password on
//! standard input, exit codes 0 (match), 1 (mismatch), 2 (cannot verify).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

// md5 digests of "pw", "pw " and "pw\n" (Python hashlib), and a bcrypt cost-4
// digest of "pw" (Python bcrypt 5.0.0).
const MD5_PW: &str = "8fe4c11451281c094a6578e6ddbf5eed";
const MD5_PW_SPACE: &str = "fa9531516c03347756d30eb42f4b5d9c";
const MD5_PW_NEWLINE: &str = "7453679f023fec6d1236ea9aa8676aca";
const BCRYPT_PW: &str = "$2b$04$vmtOxsWm2hhBkvp75XmFsOqgJTPa/PruAE48fpVlHjVNKP9XxnIa.";

/// Run `cutover hash verify` with `stdin` as standard input, from an empty
/// directory and without CUTOVER_CONFIG, proving it needs no configuration.
fn verify(hasher: &str, digest: &str, stdin: &[u8]) -> Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["hash", "verify", "--hasher", hasher, "--digest", digest])
        .current_dir(dir.path())
        .env_remove("CUTOVER_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cutover runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("password written");
    child.wait_with_output().expect("cutover exits")
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn hash_verify_exits_0_on_match_and_1_on_mismatch() {
    let ok = verify("bcrypt", BCRYPT_PW, b"pw\n");
    assert_eq!(code(&ok), Some(0), "{}", stderr(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "match");

    let wrong = verify("bcrypt", BCRYPT_PW, b"pw2\n");
    assert_eq!(code(&wrong), Some(1), "{}", stderr(&wrong));
    assert_eq!(String::from_utf8_lossy(&wrong.stdout).trim(), "mismatch");
}

#[test]
fn hash_verify_removes_exactly_one_trailing_line_ending() {
    for (input, digest, expected) in [
        (&b"pw\n"[..], MD5_PW, 0),
        (b"pw\r\n", MD5_PW, 0),
        (b"pw", MD5_PW, 0),
        (b"pw\n\n", MD5_PW_NEWLINE, 0),
        (b"pw\n\n", MD5_PW, 1),
        (b"pw \n", MD5_PW_SPACE, 0),
        (b"pw \n", MD5_PW, 1),
        (b"pw ", MD5_PW_SPACE, 0),
    ] {
        let out = verify("md5", digest, input);
        assert_eq!(
            code(&out),
            Some(expected),
            "input {input:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn hash_verify_exits_2_without_echoing_the_digest() {
    let malformed = "$2b$10$not-a-real-bcrypt-digest-but-secret-looking";
    let over_cap = BCRYPT_PW.replace("$04$", "$15$");
    for (hasher, digest, says) in [
        ("sha1", MD5_PW, "unknown password hasher"),
        (
            "awscognito",
            "awscognito#us-east-1_pool#client#user",
            "not a hash",
        ),
        ("bcrypt", malformed, "malformed bcrypt digest"),
        ("md5", "", "malformed md5 digest"),
        ("bcrypt", over_cap.as_str(), "over the cap"),
    ] {
        let out = verify(hasher, digest, b"pw\n");
        let err = stderr(&out);
        assert_eq!(code(&out), Some(2), "{hasher}: {err}");
        assert!(err.contains(says), "{hasher}: {err}");
        if !digest.is_empty() {
            assert!(
                !err.contains(digest),
                "{hasher}: stderr shows the digest: {err}"
            );
        }
        assert!(out.stdout.is_empty(), "{hasher}: nothing on stdout");
    }
}

#[test]
fn hash_verify_needs_both_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["hash", "verify", "--hasher", "md5"])
        .stdin(Stdio::null())
        .output()
        .expect("cutover runs");
    assert_eq!(code(&out), Some(2));
}
