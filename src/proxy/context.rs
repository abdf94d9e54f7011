//! The per-request context: everything one request's phases found out,
//! filled in as it walks them, and read once at the end by observe.

use std::net::IpAddr;
use std::time::Instant;

use http::Method;

use super::forward::Upstream;
use crate::identify::Identity;
use crate::intercept::{AuthRoute, Outcome};
use crate::route::Decision;
use crate::secret::Secret;

/// The client end of a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The connection's address.
    pub ip: IpAddr,
    /// Whether that address is a trusted proxy (its forwarding headers count).
    pub trusted: bool,
    pub tls: bool,
}

/// One request, as its phases saw it.
#[derive(Debug)]
pub struct Ctx {
    pub started: Instant,
    pub method: Method,
    /// The path as the client sent it (cut at 512 bytes), never the query
    /// string, which may carry tokens.
    pub path: String,
    pub peer: Peer,
    /// The peer's address as a header value, made once per connection
    /// (`headers::ip_value`); `None` makes it per request.
    pub peer_value: Option<http::HeaderValue>,
    /// The client's address: the peer, or what a trusted proxy says.
    pub client: IpAddr,
    /// Cutover's own endpoint that answered before identify (e.g.
    /// `clerk_webhook`); it is also the log line's route.
    pub endpoint: Option<&'static str>,
    /// Phase 1. `Anonymous` until identify has run.
    pub identity: Identity,
    /// Why a Clerk token present on the request was not accepted.
    pub clerk_refusal: Option<&'static str>,
    /// Phase 2. `None` until route has run.
    pub decision: Option<Decision>,
    /// Phase 3: the Kernia route intercept handled, and what it did
    /// (e.g. `migrated`, `throttled`, `dummy_verify`).
    pub auth_route: Option<AuthRoute>,
    pub intercept: Option<Outcome>,
    /// Phase 4: where the request went, when it went anywhere.
    pub upstream: Option<Upstream>,
    /// A request below Kernia's base path that Kernia answered.
    pub auth: Option<AuthExchange>,
    /// What went wrong, for the log line (never a secret).
    pub error: Option<String>,
}

/// A request to Kernia's auth routes, once Kernia answered: what observers
/// such as outgoing webhooks need to see a sign-in, sign-up or sign-out.
#[derive(Debug, Clone)]
pub struct AuthExchange {
    /// The path below Kernia's base path, normalized, as Kernia was asked
    /// (after any rewrite, e.g. `/request-password-reset` → `/forget-password`).
    pub path: String,
    /// Kernia's status.
    pub status: http::StatusCode,
    /// The user of the session Kernia's answer issued; else the user of the
    /// request's own Kernia session.
    pub user_id: Option<String>,
    /// The verified token of a session Kernia's answer issued (the value of
    /// `better-auth.session_token` before the `.signature`). Redacted in `Debug`.
    pub session_token: Option<Secret>,
}

impl Ctx {
    pub fn new(method: Method, path: &str, peer: Peer, client: IpAddr) -> Ctx {
        Ctx {
            started: Instant::now(),
            method,
            path: truncate(path, 512),
            peer,
            peer_value: None,
            client,
            endpoint: None,
            identity: Identity::Anonymous,
            clerk_refusal: None,
            decision: None,
            auth_route: None,
            intercept: None,
            upstream: None,
            auth: None,
            error: None,
        }
    }

    /// `legacy`, `kernia`, `deny`, `reauthenticate`, cutover's own endpoint
    /// (`clerk_webhook`), or `none` before routing.
    pub fn route(&self) -> &'static str {
        if let Some(endpoint) = self.endpoint {
            return endpoint;
        }
        self.decision.as_ref().map_or("none", |d| d.route.as_str())
    }

    pub fn reason(&self) -> &'static str {
        self.decision.as_ref().map_or("none", |d| d.reason.as_str())
    }

    /// `kernia`, `clerk` or `anonymous`.
    pub fn provider(&self) -> &'static str {
        self.identity.provider()
    }

    pub fn user_id(&self) -> Option<&str> {
        self.identity.user_id()
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
