//! Phase five: one structured log line per request, on every outcome.
//!
//! Fields come from the per-request context: method, path (never the query
//! string, which may carry tokens), status, duration to the response head,
//! upstream, identity provider and user id, route and reason, client address,
//! and the error when there was one. Never a token, cookie, password or digest.

use std::net::IpAddr;
use std::time::Instant;

/// What one request did, filled in as it walks the phases.
pub struct Ctx {
    pub started: Instant,
    pub method: http::Method,
    pub path: String,
    pub client: IpAddr,
    pub tls: bool,
    pub provider: &'static str,
    pub user_id: Option<String>,
    /// Why a Clerk token present on the request was not accepted.
    pub clerk_refusal: Option<&'static str>,
    pub route: &'static str,
    pub reason: &'static str,
    pub upstream: Option<&'static str>,
    /// What intercept did, when it ran (e.g. `migrated`, `throttled`).
    pub intercept: Option<&'static str>,
    pub error: Option<String>,
}

impl Ctx {
    pub fn new(method: http::Method, path: &str, client: IpAddr, tls: bool) -> Ctx {
        Ctx {
            started: Instant::now(),
            method,
            path: truncate(path, 512),
            client,
            tls,
            provider: "anonymous",
            user_id: None,
            clerk_refusal: None,
            route: "none",
            reason: "none",
            upstream: None,
            intercept: None,
            error: None,
        }
    }

    /// Emit the line.
    pub fn log(&self, status: http::StatusCode) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "cutover::access",
            method = %self.method,
            path = %self.path,
            status = status.as_u16(),
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            upstream = self.upstream.unwrap_or("-"),
            provider = self.provider,
            user_id = self.user_id.as_deref().unwrap_or("-"),
            clerk_refusal = self.clerk_refusal.unwrap_or("-"),
            route = self.route,
            reason = self.reason,
            intercept = self.intercept.unwrap_or("-"),
            client = %self.client,
            tls = self.tls,
            error = self.error.as_deref().unwrap_or("-"),
            "request"
        );
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
