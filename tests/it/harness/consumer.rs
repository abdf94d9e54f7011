//! The app's webhook consumer: `tests/webhook-consumer/server.mjs`, a Node
//! server that verifies every delivery with `@clerk/backend`'s `verifyWebhook`
//! and keeps it raw, plus the Python `svix` library to verify the same
//! deliveries again (`verify_svix.py`). Both are installed by
//! `scripts/webhook-consumer-env.sh` (`scripts/test.sh` runs it).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::repo_root;

pub struct Consumer {
    pub port: u16,
    pub secret: String,
    child: Child,
}

fn consumer_dir() -> PathBuf {
    repo_root().join("tests/webhook-consumer")
}

impl Consumer {
    /// Start on a free port (or `port`), verifying with `secret`.
    pub async fn start(secret: &str, port: Option<u16>) -> Consumer {
        let dir = consumer_dir();
        assert!(
            dir.join("node_modules/@clerk/backend").exists(),
            "tests/webhook-consumer has no node_modules: run scripts/webhook-consumer-env.sh (scripts/test.sh does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .current_dir(&dir)
            .env("CLERK_WEBHOOK_SIGNING_SECRET", secret)
            .env("PORT", port.unwrap_or(0).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node tests/webhook-consumer/server.mjs (is Node.js installed?)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the webhook consumer did not start")
            .unwrap()
            .expect("the webhook consumer exited");
        let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Consumer {
            port,
            secret: secret.to_string(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/clerk", self.port)
    }

    /// Everything received so far, in arrival order.
    pub async fn received(&self) -> Vec<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/received", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Answer the next `n` deliveries with `status`.
    pub async fn fail_next(&self, n: u32, status: u16) {
        self.control(serde_json::json!({"fail_next": n, "status": status}))
            .await;
    }

    /// Hold every answer (the delivery stays in flight) until released.
    pub async fn hold(&self, on: bool) {
        self.control(serde_json::json!({"hold": on})).await;
    }

    async fn control(&self, body: Value) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/control", self.port))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Wait until `pred` holds for what was received (15 s at most).
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received().await;
            if pred(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {}",
                serde_json::to_string_pretty(&summary(&got)).unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kill the consumer (it stops answering at once).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// `(type, answered, svix-id)` of each delivery, for messages.
pub fn summary(got: &[Value]) -> Vec<Value> {
    got.iter()
        .map(|r| serde_json::json!([r["type"], r["answered"], r["svix_id"], r["view"]]))
        .collect()
}

/// The deliveries answered 2xx (the ones the app acted on), in order.
pub fn accepted(got: &[Value]) -> Vec<Value> {
    got.iter()
        .filter(|r| {
            r["answered"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .cloned()
        .collect()
}

/// The Python svix library's verdict on each delivery: `(svix_id, ok)`.
pub async fn verify_with_python_svix(secret: &str, deliveries: &[Value]) -> Vec<(String, bool)> {
    let python = std::env::var("CUTOVER_SVIX_PYTHON").unwrap_or_else(|_| {
        let out = std::process::Command::new(repo_root().join("scripts/webhook-consumer-env.sh"))
            .output()
            .expect("running scripts/webhook-consumer-env.sh");
        assert!(
            out.status.success(),
            "scripts/webhook-consumer-env.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string()
    });
    let mut child = Command::new(python)
        .arg(consumer_dir().join("verify_svix.py"))
        .env("CLERK_WEBHOOK_SIGNING_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting verify_svix.py");
    let input = serde_json::to_vec(deliveries).unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["svix_id"].as_str().unwrap_or("").to_string(),
                v["ok"] == true,
            )
        })
        .collect()
}
