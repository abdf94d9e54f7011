//! Test-only helpers: the fixture keys and a bare token minter for unit tests.
//! (The integration tests have the full Clerk emulator in `tests/it/harness`.)

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub const KEY_A_PRIVATE: &str = include_str!("../../../tests/fixtures/clerk/key_a.pem");
pub const KEY_A_PUBLIC: &str = include_str!("../../../tests/fixtures/clerk/key_a.pub.pem");
pub const KEY_B_PRIVATE: &str = include_str!("../../../tests/fixtures/clerk/key_b.pem");
pub const KEY_B_PUBLIC: &str = include_str!("../../../tests/fixtures/clerk/key_b.pub.pem");

pub fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

pub fn default_header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": "ins_test_a", "cat": "cl_B7d4PD111AAA"})
}

/// Signs with key A, using the header's `alg` (RS256/384/512).
pub fn mint(header: &Value, claims: &Value) -> String {
    mint_with(KEY_A_PRIVATE, header, claims)
}

pub fn mint_with(private_pem: &str, header: &Value, claims: &Value) -> String {
    let alg = match header["alg"].as_str() {
        Some("RS384") => Algorithm::RS384,
        Some("RS512") => Algorithm::RS512,
        _ => Algorithm::RS256,
    };
    let input = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).unwrap();
    format!("{input}.{signature}")
}
