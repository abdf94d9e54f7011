//! Mints Clerk-shaped session tokens for the proxy benchmark
//! (`scripts/bench-proxy.sh`), signed with the test key in `tests/fixtures/clerk`.
//!
//! Usage: `bench_tokens <count> <issuer> <lifetime-secs>` — one token per line
//! on stdout, each for a different user and session.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let issuer = args
        .next()
        .unwrap_or_else(|| "https://clerk.bench.example".into());
    let lifetime: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3600);
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clerk/key_a.pem"
    ))
    .expect("tests/fixtures/clerk/key_a.pem");
    let key = EncodingKey::from_rsa_pem(&pem).expect("an RSA private key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("ins_bench".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for i in 0..count {
        let claims = serde_json::json!({
            "azp": "https://app.bench.example",
            "exp": now + lifetime,
            "fva": [1, -1],
            "iat": now,
            "iss": issuer,
            "nbf": now - 5,
            "sid": format!("sess_bench{i}"),
            "sub": format!("user_bench{i}"),
            "v": 2,
            "sts": "active",
        });
        println!(
            "{}",
            jsonwebtoken::encode(&header, &claims, &key).expect("signing")
        );
    }
}
