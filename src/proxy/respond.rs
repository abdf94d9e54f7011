//! Answers cutover gives by itself, and the one place an error becomes one.
//!
//! Client mistakes get a 4xx with a short JSON body `{"code", "message"}` in
//! Kernia's error shape; upstream trouble a 502 or 504; our own faults a 500
//! or 503 with no internals.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};

use super::ProxyBody;

/// A JSON answer `{"code": code, "message": message}`.
pub fn json(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn not_found() -> Response<ProxyBody> {
    json(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found")
}

/// A page load of a migrated user on a Clerk session: go sign in at Kernia.
pub fn redirect_to_sign_in(location: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub fn reauthenticate() -> Response<ProxyBody> {
    json(
        StatusCode::UNAUTHORIZED,
        "REAUTHENTICATE",
        "Your account has moved: please sign in again.",
    )
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("cannot reach the {upstream} upstream: {source}")]
    Connect {
        upstream: &'static str,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the {upstream} upstream failed: {source}")]
    Upstream {
        upstream: &'static str,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("the {upstream} upstream did not answer within {secs:.1} s")]
    Timeout { upstream: &'static str, secs: f64 },
    #[error("cannot build the upstream request: {0}")]
    BadRequest(String),
}

impl ForwardError {
    /// The response the client gets. Details stay in the log.
    pub fn response(&self) -> Response<ProxyBody> {
        match self {
            ForwardError::BodyTooLarge { .. } => json(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "The request body is too large.",
            ),
            ForwardError::Connect { .. } | ForwardError::Upstream { .. } => json(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_UNAVAILABLE",
                "The application is unavailable.",
            ),
            ForwardError::Timeout { .. } => json(
                StatusCode::GATEWAY_TIMEOUT,
                "UPSTREAM_TIMEOUT",
                "The application did not answer in time.",
            ),
            ForwardError::BadRequest(_) => {
                json(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Bad request.")
            }
        }
    }
}
