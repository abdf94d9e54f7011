//! The one place where a refusal or an error becomes an HTTP answer.
//!
//! Phases return domain values — intercept a [`Refusal`], forwarding a
//! [`ForwardError`], body reading a [`ReadError`] — and the driver hands
//! them here. Client mistakes get a 4xx with a short JSON body
//! `{"code", "message"}` in Kernia's error shape; upstream trouble a 502 or
//! 504; our own trouble a 503 with `Retry-After` and no internals. The
//! responses themselves are built by [`crate::web`].

use http::{Response, StatusCode};

use super::forward::ForwardError;
use super::observe::CLIENT_CLOSED;
use crate::intercept::Refusal;
use crate::web::{self, ProxyBody, ReadError};

/// What the client gets for an intercept refusal.
pub fn refusal(r: &Refusal) -> Response<ProxyBody> {
    match r {
        Refusal::Throttled { retry_after } => web::with_retry_after(
            web::json(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                "Too many sign-in attempts. Try again later.",
            ),
            *retry_after,
        ),
        Refusal::Unavailable { retry_after } => web::with_retry_after(
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "Sign-in is temporarily unavailable.",
            ),
            *retry_after,
        ),
        Refusal::Busy { retry_after } => web::with_retry_after(
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "Sign-in is busy; try again in a moment.",
            ),
            *retry_after,
        ),
        Refusal::Failed { retry_after } => web::with_retry_after(
            web::json(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                "Sign-in failed; try again.",
            ),
            *retry_after,
        ),
        Refusal::ResetRequired => web::json(
            StatusCode::FORBIDDEN,
            "PASSWORD_RESET_REQUIRED",
            "Your password must be reset before you can sign in. If you have not received a link by email, try again later or contact support.",
        ),
        Refusal::Unreadable(why) => web::json(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            &format!("cutover cannot read this request body: {why}"),
        ),
    }
}

/// What the client gets when its body could not be read.
pub fn read_error(e: &ReadError) -> Response<ProxyBody> {
    match e {
        ReadError::TooLarge { .. } => web::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "The request body is too large.",
        ),
        ReadError::TimedOut { .. } => web::json(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            "The request body did not arrive in time.",
        ),
        ReadError::Malformed(_) => web::json(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "The request body is malformed.",
        ),
        // Nobody reads this answer; its status tells the log what happened.
        ReadError::ClientGone => web::json(
            StatusCode::from_u16(CLIENT_CLOSED).unwrap_or(StatusCode::BAD_REQUEST),
            "CLIENT_CLOSED",
            "The client closed the request.",
        ),
    }
}

/// What the client gets when forwarding failed. Details stay in the log.
pub fn forward_error(e: &ForwardError) -> Response<ProxyBody> {
    match e {
        ForwardError::BodyTooLarge { .. } => web::json(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "The request body is too large.",
        ),
        ForwardError::Connect { .. } | ForwardError::Upstream { .. } => web::json(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_UNAVAILABLE",
            "The application is unavailable.",
        ),
        ForwardError::Timeout { .. } => web::json(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            "The application did not answer in time.",
        ),
        ForwardError::BadRequest(_) => {
            web::json(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Bad request.")
        }
    }
}

/// A denied path: 404, as if it did not exist.
pub fn not_found() -> Response<ProxyBody> {
    web::json(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found")
}

/// A migrated user still on a Clerk session: a page load goes to sign in at
/// Kernia, an API call gets `401 REAUTHENTICATE`.
pub fn reauthenticate(navigation: bool, sign_in_url: &str) -> Response<ProxyBody> {
    if navigation {
        web::see_other(sign_in_url)
    } else {
        web::json(
            StatusCode::UNAUTHORIZED,
            "REAUTHENTICATE",
            "Your account has moved: please sign in again.",
        )
    }
}
