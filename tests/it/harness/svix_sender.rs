//! Clerk's webhooks as Svix sends them: a JSON event envelope (reference
//! `clerk.md` §8.2), signed with a `whsec_` secret and posted with the three
//! `svix-*` headers (§8.1). The signing here is written independently of
//! cutover's own `svix` module, and is checked against Svix's published test
//! vector and the Svix library itself ([`oracle_verify`], [`oracle_sign`]).

use std::process::Stdio;

use base64::Engine as _;
use hmac::Mac as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::kernia::python;
use super::repo_root;

/// The secret the tests' endpoint is configured with (24 random-looking bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct SvixSender {
    secret: String,
    key: Vec<u8>,
    client: reqwest::Client,
}

impl SvixSender {
    pub fn new(secret: &str) -> SvixSender {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64 after whsec_");
        SvixSender {
            secret: secret.into(),
            key,
            client: reqwest::Client::new(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    /// The headers Svix sends with one message.
    pub fn headers(&self, id: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
        vec![
            ("svix-id".into(), id.into()),
            ("svix-timestamp".into(), timestamp.to_string()),
            ("svix-signature".into(), self.sign(id, timestamp, body)),
        ]
    }

    /// Post `body` as message `id`, signed now.
    pub async fn send(&self, url: &str, id: &str, body: &str) -> reqwest::Response {
        let headers = self.headers(id, now(), body);
        self.post(url, &headers, body).await
    }

    /// Post with exactly these headers (for forged and odd deliveries).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send().await.unwrap()
    }
}

pub fn now() -> i64 {
    cutover::db::now_secs()
}

/// A Clerk event envelope; `timestamp_ms` as Clerk sends it (milliseconds).
pub fn event(kind: &str, timestamp_ms: i64, data: Value) -> String {
    json!({
        "object": "event",
        "type": kind,
        "timestamp": timestamp_ms,
        "instance_id": "ins_2TestInstance",
        "event_attributes": {"http_request": {"client_ip": "192.0.2.1", "user_agent": "test"}},
        "data": data,
    })
    .to_string()
}

/// A Backend API user: one verified primary email, times in milliseconds.
pub fn user(id: &str, email: &str, first_name: &str, updated_ms: i64) -> Value {
    json!({
        "object": "user",
        "id": id,
        "username": null,
        "first_name": first_name,
        "last_name": "Tester",
        "image_url": "https://img.clerk.com/default",
        "has_image": false,
        "primary_email_address_id": format!("idn_{id}"),
        "primary_phone_number_id": null,
        "email_addresses": [{
            "id": format!("idn_{id}"),
            "object": "email_address",
            "email_address": email,
            "verification": {"status": "verified", "strategy": "email_code"},
            "linked_to": []
        }],
        "phone_numbers": [],
        "external_accounts": [],
        "passkeys": [],
        "password_enabled": true,
        "password_last_updated_at": null,
        "two_factor_enabled": false,
        "totp_enabled": false,
        "backup_code_enabled": false,
        "banned": false,
        "locked": false,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "created_at": 1_700_000_000_000i64,
        "updated_at": updated_ms,
    })
}

async fn run_oracle(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = tokio::process::Command::new(python())
        .arg(repo_root().join("tests/support/svix_oracle.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the Svix oracle (tests/support/svix_oracle.py)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Svix library is missing from the Kernia environment (scripts/kernia-env.sh installs it): {stderr}"
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Whether the Svix library accepts this message.
pub async fn oracle_verify(
    secret: &str,
    headers: &[(String, String)],
    body: &str,
) -> (bool, String) {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let input = json!({"headers": headers, "body": body}).to_string();
    run_oracle(&["verify", secret], &input).await
}

/// The signature the Svix library computes.
pub async fn oracle_sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let (ok, out) = run_oracle(&["sign", secret, id, &timestamp.to_string()], body).await;
    assert!(ok, "the Svix library could not sign: {out}");
    out
}
