//! The request path, top to bottom: identify → route → intercept → forward →
//! observe. Each phase either hands on to the next or answers by itself; the
//! per-request [`Ctx`] collects what happened for the log line.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, header};
use hyper::body::Incoming;

use super::forward::Upstream;
use super::observe::Ctx;
use super::server::ConnInfo;
use super::{App, ProxyBody, auth_routes, headers, relay, respond};
use crate::db::now_secs;
use crate::identify::clerk::ClerkOutcome;
use crate::identify::kernia::{self as kernia_id, KerniaOutcome};
use crate::identify::{Identity, cookies};
use crate::route::rollout::{self, Pin};
use crate::route::{self, Route, UserFacts, paths};

/// The client end of a request.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The connection's address.
    pub ip: IpAddr,
    /// Whether that address is a trusted proxy (its forwarding headers count).
    pub trusted: bool,
    pub tls: bool,
}

pub async fn handle(app: Arc<App>, info: ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    let ip = info.peer.ip().to_canonical();
    let peer = Peer {
        ip,
        trusted: app.is_trusted(ip),
        tls: info.tls,
    };
    let client = headers::client_addr(req.headers(), ip, peer.trusted);
    let mut ctx = Ctx::new(req.method().clone(), req.uri().path(), client, info.tls);
    let resp = drive(&app, &mut ctx, peer, req).await;
    // 5. observe
    ctx.log(resp.status());
    resp
}

async fn drive(
    app: &App,
    ctx: &mut Ctx,
    peer: Peer,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    // Clerk's webhooks (crate::clerk_sync): cutover's own endpoint, before any
    // identity or routing; its signature is the only credential.
    if let Some(sync) = &app.clerk_sync
        && sync.is_endpoint(req.uri().path())
    {
        let (resp, outcome) = sync.webhook(req).await;
        ctx.route = "clerk_webhook";
        ctx.intercept = Some(outcome);
        return resp;
    }
    // 1. identify
    let identity = identify(app, ctx, &req).await;
    ctx.provider = identity.provider();
    ctx.user_id = identity.user_id().map(str::to_string);

    // 2. route
    let path = paths::normalize(req.uri().path()).into_owned();
    let pin = cookies::get(req.headers(), rollout::COOKIE).and_then(Pin::parse);
    let facts = match &identity {
        Identity::Clerk(c) => Some(app.facts.get(&c.user_id).await),
        _ => None,
    };
    let user_facts = facts
        .as_deref()
        .map_or(UserFacts::default(), |f| UserFacts {
            migrated: f.migrated,
            email: f.email.as_deref(),
        });
    let decision = route::decide(
        &app.routing,
        &path,
        identity.who(),
        user_facts,
        pin.as_ref(),
    );
    ctx.route = decision.route.as_str();
    ctx.reason = decision.reason.as_str();

    let secure = peer.tls || (peer.trusted && forwarded_https(&req));
    let signing_out = req.method() == Method::POST
        && path.strip_prefix(app.kernia_base_path.as_str()) == Some("/sign-out");
    let kernia_token = signing_out
        .then(|| {
            cookies::get(req.headers(), kernia_id::COOKIE)
                .and_then(|v| app.kernia.verified_token(v))
        })
        .flatten()
        .map(str::to_string);

    let mut resp = match decision.route {
        Route::Deny => {
            tracing::warn!(target: "cutover::access", path = %ctx.path, client = %ctx.client, "denied path");
            respond::not_found()
        }
        Route::Reauthenticate => {
            if is_navigation(&req) {
                respond::redirect_to_sign_in(&app.sign_in_url)
            } else {
                respond::reauthenticate()
            }
        }
        Route::Legacy => relay::forward(app, ctx, req, Upstream::Legacy, &identity, peer).await,
        Route::Kernia => match auth_routes::intercepted(app, &req, &path) {
            // 3. intercept: Kernia's sign-in, sign-up, reset and callback routes.
            Some(what) => auth_routes::intercept(app, ctx, req, what, &identity, peer).await,
            // 4. forward
            None => relay::forward(app, ctx, req, Upstream::Kernia, &identity, peer).await,
        },
    };

    if let Some(pin) = decision.set_pin {
        set_pin_cookie(&mut resp, &pin, secure);
    }
    if let Some(token) = kernia_token
        && resp.status().is_success()
    {
        // Signed out: no copy may keep honouring the cached session.
        app.kernia.forget(&token);
        if let Err(e) = app.state.invalidate(&kernia_id::topic(&token)).await {
            tracing::warn!(error = %e, "cannot broadcast a sign-out; other copies forget it when their cache expires");
        }
    }
    resp
}

/// Kernia first: a request carrying both sessions is a Kernia request.
async fn identify(app: &App, ctx: &mut Ctx, req: &Request<Incoming>) -> Identity {
    let now = now_secs();
    match app.kernia.identify(req.headers(), now).await {
        KerniaOutcome::SignedIn(k) => return Identity::Kernia(k),
        KerniaOutcome::Unverified => return Identity::KerniaUnverified,
        KerniaOutcome::NoCookie | KerniaOutcome::BadSignature | KerniaOutcome::NoSession => {}
    }
    let Some(clerk) = &app.clerk else {
        return Identity::Anonymous;
    };
    match clerk.identify(req.headers(), now.max(0) as u64).await {
        ClerkOutcome::SignedIn(c) => Identity::Clerk(c),
        ClerkOutcome::SignedOut(reason) => {
            ctx.clerk_refusal = Some(reason.as_str());
            Identity::Anonymous
        }
        ClerkOutcome::NoToken => Identity::Anonymous,
    }
}

fn set_pin_cookie(resp: &mut Response<ProxyBody>, pin: &Pin, secure: bool) {
    let cookie = format!(
        "{}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{}",
        rollout::COOKIE,
        pin.cookie_value(),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page load rather than an API call (Clerk's own handshake rule).
fn is_navigation(req: &Request<Incoming>) -> bool {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return false;
    }
    let h = req.headers();
    match h.get("sec-fetch-dest").and_then(|v| v.to_str().ok()) {
        Some(dest) => dest == "document" || dest == "iframe",
        None => h
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("text/html")),
    }
}

fn forwarded_https(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(&headers::X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
