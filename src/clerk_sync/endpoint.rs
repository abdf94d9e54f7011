//! The webhook endpoint: `POST <webhook_path>` on the public listener.
//!
//! In order, each step answering by itself when it fails:
//! 1. `POST` only (405);
//! 2. the three `svix-*` headers, as Clerk's `verifyWebhook` requires them
//!    (400; the unbranded `webhook-*` names are not enough for Clerk either);
//! 3. the body, at most `webhook_body_bytes` (413) within
//!    `webhook_read_timeout_ms` (408);
//! 4. the signature, timestamp within ±5 minutes, any `v1,` entry, compared in
//!    constant time (401) — nothing has been read from or written to the
//!    database yet;
//! 5. the event applied exactly once and committed ([`ClerkSync::apply`]);
//!    only then `200`. A database failure answers `503` so Svix retries.

use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::{Applied, ClerkSync, event};
use crate::db::now_secs;
use crate::svix::SignedHeaders;
use crate::web::{self as respond, ProxyBody};

/// Longest `svix-id` accepted (Svix's are ~30 characters).
const MAX_ID: usize = 256;

impl ClerkSync {
    /// Handle one request to the endpoint; the `&str` is one word for the log.
    pub async fn webhook(&self, req: Request<ProxyBody>) -> (Response<ProxyBody>, &'static str) {
        if req.method() != Method::POST {
            let mut resp = respond::json(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Clerk webhooks are POSTed.",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return (resp, "method");
        }
        let (parts, body) = req.into_parts();
        let svix = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(id), Some(timestamp), Some(signature)) = (
            svix("svix-id"),
            svix("svix-timestamp"),
            svix("svix-signature"),
        ) else {
            return (
                bad_request(
                    "Missing required webhook headers: svix-id, svix-timestamp, svix-signature",
                ),
                "missing_headers",
            );
        };
        if id.is_empty() || id.len() > MAX_ID {
            return (bad_request("svix-id is empty or too long"), "bad_id");
        }
        let too_long = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.body_limit as u64);
        if too_long {
            return (too_large(self.body_limit), "too_large");
        }
        let bytes = match read_body(body, self.body_limit, self.read_timeout).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => return (too_large(self.body_limit), "too_large"),
            Err(ReadError::Slow) => {
                return (
                    respond::json(
                        StatusCode::REQUEST_TIMEOUT,
                        "REQUEST_TIMEOUT",
                        "The webhook body did not arrive in time.",
                    ),
                    "read_timeout",
                );
            }
            Err(ReadError::Broken) => return (bad_request("cannot read the body"), "read_error"),
        };
        let signed = SignedHeaders {
            id,
            timestamp,
            signature,
        };
        if let Err(e) = self.secret.verify(&signed, &bytes, now_secs()) {
            tracing::warn!(target: "cutover::access", reason = e.as_str(), "Clerk webhook refused");
            return (
                respond::json(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_SIGNATURE",
                    "The webhook signature does not verify.",
                ),
                e.as_str(),
            );
        }
        let parsed = match event::parse(&bytes) {
            Ok(p) => p,
            Err(e) => {
                // Authentic but unusable: retrying will not help, so it is
                // recorded and acknowledged, and the operator sees it logged.
                tracing::warn!(svix_id = %id, error = %e, "a signed Clerk webhook is not a usable event");
                return match self.record_invalid(id, "invalid").await {
                    Ok(()) => (answer(Applied::Invalid), "invalid"),
                    Err(e) => unavailable(e),
                };
            }
        };
        match self.apply(id, &parsed).await {
            Ok(outcome) => {
                tracing::info!(svix_id = %id, event = %parsed.event_type, outcome = outcome.as_str(), "Clerk webhook");
                (answer(outcome), outcome.as_str())
            }
            Err(e) => unavailable(e),
        }
    }
}

enum ReadError {
    TooLarge,
    Slow,
    Broken,
}

async fn read_body(
    body: ProxyBody,
    limit: usize,
    deadline: Duration,
) -> Result<bytes::Bytes, ReadError> {
    crate::web::read_whole(body, limit, deadline)
        .await
        .map_err(|e| match e {
            crate::web::ReadError::TooLarge { .. } => ReadError::TooLarge,
            crate::web::ReadError::TimedOut { .. } => ReadError::Slow,
            crate::web::ReadError::ClientGone | crate::web::ReadError::Malformed(_) => {
                ReadError::Broken
            }
        })
}

fn answer(outcome: Applied) -> Response<ProxyBody> {
    let body = serde_json::json!({ "outcome": outcome.as_str() }).to_string();
    let mut resp = Response::new(respond::full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn bad_request(message: &str) -> Response<ProxyBody> {
    respond::json(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

fn too_large(limit: usize) -> Response<ProxyBody> {
    respond::json(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        &format!("A webhook body may be at most {limit} bytes."),
    )
}

fn unavailable(e: crate::db::DbError) -> (Response<ProxyBody>, &'static str) {
    tracing::error!(error = %e, "cannot apply a Clerk webhook; Svix will retry");
    let mut resp = respond::json(
        StatusCode::SERVICE_UNAVAILABLE,
        "TEMPORARILY_UNAVAILABLE",
        "The change could not be saved; retry later.",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    (resp, "db_unavailable")
}
