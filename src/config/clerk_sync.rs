//! `[clerk_sync]`: the live half of the migration while Clerk still runs —
//! Clerk's webhooks in, and live password verification with Clerk's Backend API.
//!
//! Both halves are off unless their secret is configured: webhooks need the
//! endpoint's `whsec_…` signing secret, live verification a Backend API secret
//! key. `live_verify = false` is the "Clerk is gone" switch: no call is made,
//! and users without a usable digest take the forced-reset path.

use std::time::Duration;

use super::reader::{Env, Problems, Section};
use crate::secret::Secret;

/// Where Clerk's webhooks arrive by default (on the public listener).
pub const DEFAULT_WEBHOOK_PATH: &str = "/__cutover/clerk/webhooks";

#[derive(Debug, Clone)]
pub struct ClerkSyncConfig {
    /// The path on the public listener Clerk (Svix) posts to.
    pub webhook_path: String,
    /// The endpoint's `whsec_…` secret; without it the endpoint is off (404).
    pub webhook_secret: Option<Secret>,
    /// Largest webhook body read.
    pub webhook_body_bytes: usize,
    /// How long a webhook body may take to arrive.
    pub webhook_read_timeout: Duration,
    /// Live password verification with Clerk (`verify_password`).
    pub live: Option<LiveVerifyConfig>,
}

#[derive(Debug, Clone)]
pub struct LiveVerifyConfig {
    /// The Backend API base URL, e.g. `https://api.clerk.com/v1`.
    pub api_url: String,
    pub secret_key: Secret,
    /// Live verifications in flight at once (per cutover copy).
    pub concurrency: usize,
    /// How long a sign-in waits for a free slot before answering 503.
    pub queue_wait: Duration,
    /// Deadline of one Backend API call.
    pub timeout: Duration,
    /// Consecutive failures (429, 5xx, timeouts) that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one probe is let through.
    pub breaker_open: Duration,
}

impl ClerkSyncConfig {
    pub(super) fn read(
        mut s: Section,
        p: &mut Problems,
        env: &dyn Env,
        default_api_url: &str,
    ) -> Option<ClerkSyncConfig> {
        let before = p.0.len();
        let webhook_path = s
            .string(p, "webhook_path")
            .unwrap_or_else(|| DEFAULT_WEBHOOK_PATH.into());
        if !webhook_path.starts_with('/') || webhook_path.len() < 2 {
            p.push(
                s.key("webhook_path"),
                "must be a path starting with `/`, e.g. /__cutover/clerk/webhooks",
            );
        }
        let webhook_secret = s.secret(p, env, "webhook_secret");
        if let Some(secret) = &webhook_secret
            && let Err(e) = crate::svix::SigningSecret::parse(secret.expose())
        {
            p.push(s.key("webhook_secret"), e.to_string());
        }
        let webhook_body_bytes =
            s.int(p, "webhook_body_bytes", 1024 * 1024, 1024, 64 * 1024 * 1024) as usize;
        let webhook_read_timeout =
            Duration::from_millis(s.int(p, "webhook_read_timeout_ms", 10_000, 100, 600_000));

        let live_switch = if s.has("live_verify") {
            Some(s.bool(p, "live_verify", true))
        } else {
            None
        };
        let api_url = s
            .string(p, "api_url")
            .unwrap_or_else(|| default_api_url.to_string())
            .trim_end_matches('/')
            .to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            p.push(
                s.key("api_url"),
                format!("`{api_url}` is not an http(s) URL"),
            );
        }
        let secret_key = s.secret(p, env, "secret_key");
        let concurrency = s.int(p, "live_concurrency", 16, 1, 1024) as usize;
        let queue_wait = Duration::from_millis(s.int(p, "live_queue_ms", 500, 0, 60_000));
        let timeout = Duration::from_millis(s.int(p, "live_timeout_ms", 2_000, 50, 60_000));
        let breaker_failures = s.int(p, "breaker_failures", 5, 1, 10_000) as u32;
        let breaker_open = Duration::from_secs(s.int(p, "breaker_open_secs", 30, 1, 3_600));
        let live = match (live_switch, secret_key) {
            (Some(false), _) => None,
            (_, Some(secret_key)) => Some(LiveVerifyConfig {
                api_url,
                secret_key,
                concurrency,
                queue_wait,
                timeout,
                breaker_failures,
                breaker_open,
            }),
            (Some(true), None) => {
                if !p.0.iter().any(|x| x.key.starts_with(&s.key("secret_key"))) {
                    p.push(
                        s.key("secret_key"),
                        "live_verify = true needs Clerk's Backend API secret key (secret_key or secret_key_env)",
                    );
                }
                None
            }
            (None, None) => None,
        };
        s.finish(p);
        (p.0.len() == before).then_some(ClerkSyncConfig {
            webhook_path,
            webhook_secret,
            webhook_body_bytes,
            webhook_read_timeout,
            live,
        })
    }
}
