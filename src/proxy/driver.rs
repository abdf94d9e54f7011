//! The request path, top to bottom: identify → route → intercept (before) →
//! forward → intercept (after) → observe. Around the forward of a Kernia auth
//! request, [`events`] reads the state for outgoing webhooks. Cutover's own
//! endpoint (Clerk's webhooks in, [`crate::clerk_sync`]) answers before identify.
//!
//! [`handle`] is what the server calls for each request: it opens the
//! per-request [`Ctx`] inside an [`Observation`] (so the request is observed
//! on every outcome, a client hang-up included) and runs [`drive`]. `drive`
//! calls the phases in order; a phase either hands on to the next or answers
//! by itself, and every refusal or error becomes an answer in
//! [`respond`](super::respond). `drive` takes any [`ProxyBody`] and reaches
//! upstreams through [`App::upstreams`](super::App::upstreams), so tests run it without
//! sockets.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, header};
use hyper::body::Incoming;

use super::context::{Ctx, Peer};
use super::forward::Upstream;
use super::observe::Observation;
use super::server::ConnInfo;
use super::{App, ProxyBody, events, headers, intercept, relay, respond};
use crate::db::now_secs;
use crate::identify::clerk::ClerkOutcome;
use crate::identify::kernia::KerniaOutcome;
use crate::identify::{Identity, cookies};
use crate::intercept::Answer;
use crate::route::rollout::{self, Pin};
use crate::route::{self, Route, UserFacts, paths};
use crate::web;

/// One request from the server.
pub async fn handle(app: Arc<App>, info: ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    let ip = info.peer.ip().to_canonical();
    let peer = Peer {
        ip,
        trusted: app.is_trusted(ip),
        tls: info.tls,
    };
    // HTTP/2 ends an unread body with RST_STREAM by itself; HTTP/1 would
    // close mid-body and reset the client (see `web::Lingering`).
    let req = if req.version() == http::Version::HTTP_2 {
        req.map(web::boxed)
    } else {
        let (parts, body) = req.into_parts();
        let body = web::boxed(web::Lingering::new(body, &parts.headers));
        Request::from_parts(parts, body)
    };
    let client = headers::client_addr(req.headers(), ip, &app.trusted_proxies);
    let mut ctx = Ctx::new(req.method().clone(), req.uri().path(), peer, client);
    ctx.peer_value = Some(info.peer_value);
    let mut observation = Observation::start(ctx, app.observers.clone());
    let resp = drive(&app, observation.ctx(), req).await;
    // 5. observe (also when this future is dropped: see `Observation`)
    observation.finish(resp.status());
    resp
}

/// The phases, in order.
pub async fn drive(app: &Arc<App>, ctx: &mut Ctx, req: Request<ProxyBody>) -> Response<ProxyBody> {
    // 0. cutover's own endpoint: Clerk's webhooks, before any identity or
    // routing; its signature is the only credential.
    if let Some(sync) = &app.clerk_sync
        && sync.is_endpoint(req.uri().path())
    {
        let (resp, outcome) = Box::pin(sync.webhook(req)).await;
        ctx.endpoint = Some("clerk_webhook");
        ctx.intercept = Some(outcome);
        return resp;
    }

    // 1. identify
    ctx.identity = identify(app, ctx, req.headers()).await;
    if let Some((user_id, mark)) = ctx.identity.seen_mark() {
        // In memory; written in batches, once a day per user; a cached
        // identity's later requests that day only read its mark.
        app.seen.note_marked(user_id, mark);
    }

    // 2. route
    // A clone of the URI shares its bytes, so the normalized path borrows.
    let uri = req.uri().clone();
    let path = paths::normalize(uri.path());
    let decision = decide_route(app, ctx, req.headers(), &path).await;
    let secure = ctx.peer.tls || (ctx.peer.trusted && forwarded_https(req.headers()));
    let set_pin = decision.set_pin.clone();
    let to = decision.route;
    ctx.decision = Some(decision);

    let mut resp = match to {
        Route::Deny => {
            tracing::warn!(target: "cutover::access", path = %ctx.path, client = %ctx.client, "denied path");
            respond::not_found()
        }
        Route::Reauthenticate => respond::reauthenticate(is_navigation(&req), &app.sign_in_url),
        // 4. forward
        Route::Legacy => relay::forward(app, ctx, req, Upstream::Legacy).await,
        Route::Kernia => match intercept::below_base(app, &path) {
            // Not one of Kernia's auth routes: forward.
            None => relay::forward(app, ctx, req, Upstream::Kernia).await,
            // Kernia's auth routes, on the heap: their future is large and
            // rare, and the request's future is moved as a whole.
            Some(rel) => Box::pin(auth_route(app, ctx, req, &rel)).await,
        },
    };

    if let Some(pin) = set_pin {
        set_pin_cookie(&mut resp, &pin, secure);
    }
    resp
}

/// A request for one of Kernia's auth routes: intercept before, forward,
/// intercept after, and the webhook events around them.
async fn auth_route(
    app: &Arc<App>,
    ctx: &mut Ctx,
    req: Request<ProxyBody>,
    rel: &str,
) -> Response<ProxyBody> {
    // 3. intercept, before: may answer by itself
    let ready = match intercept::before(app, ctx, req, rel).await {
        Err(answer) => return answer,
        Ok(ready) => ready,
    };
    // Webhook events: what the request may delete, read before Kernia deletes it
    let events = events::before(
        app,
        ctx,
        ready.req.method(),
        ready.req.headers(),
        &ready.kernia_path,
    )
    .await;
    // 4. forward
    let resp = if ready.body_read {
        relay::forward_read(app, ctx, ready.req, Upstream::Kernia).await
    } else {
        relay::forward(app, ctx, ready.req, Upstream::Kernia).await
    };
    // 3. intercept, after: sees Kernia's answer
    let answer = Answer::of(resp.status(), resp.headers());
    intercept::after(app.clone(), ctx, ready.kernia_path, ready.after, answer).await;
    // … and what it changed, queued once Kernia answered
    if let Some(before) = events {
        events::after(app, ctx, before).await;
    }
    resp
}

/// Kernia first: a request carrying both sessions is a Kernia request.
async fn identify(app: &App, ctx: &mut Ctx, h: &http::HeaderMap) -> Identity {
    let now = now_secs();
    match app.kernia.identify(h, now).await {
        KerniaOutcome::SignedIn(k) => return Identity::Kernia(k),
        KerniaOutcome::Unverified => return Identity::KerniaUnverified,
        KerniaOutcome::NoCookie | KerniaOutcome::BadSignature | KerniaOutcome::NoSession => {}
    }
    let Some(clerk) = app.clerk() else {
        return Identity::Anonymous;
    };
    match clerk.identify(h, now.max(0) as u64).await {
        ClerkOutcome::SignedIn(c) => Identity::Clerk(c),
        ClerkOutcome::SignedOut(reason) => {
            ctx.clerk_refusal = Some(reason.as_str());
            Identity::Anonymous
        }
        ClerkOutcome::NoToken => Identity::Anonymous,
    }
}

/// What the ledger says of a Clerk user, the pin cookie, then pure routing.
async fn decide_route(app: &App, ctx: &Ctx, h: &http::HeaderMap, path: &str) -> route::Decision {
    let pin = cookies::get(h, rollout::COOKIE).and_then(Pin::parse);
    let facts = match &ctx.identity {
        Identity::Clerk(c) => Some(app.facts.get(&c.user_id).await),
        _ => None,
    };
    let user_facts = facts
        .as_deref()
        .map_or(UserFacts::default(), |f| UserFacts {
            migrated: f.migrated,
            email: f.email.as_deref(),
        });
    route::decide(
        &app.routing.settings(),
        path,
        ctx.identity.who(),
        user_facts,
        pin.as_ref(),
    )
}

fn set_pin_cookie(resp: &mut Response<ProxyBody>, pin: &Pin, secure: bool) {
    const ATTRIBUTES: &str = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax";
    const SECURE: &str = "; Secure";
    // One buffer of the exact size, handed to the header without a copy.
    let (kind, subject) = (pin.kind(), pin.subject());
    let mut v = bytes::BytesMut::with_capacity(
        rollout::COOKIE.len() + 1 + kind.len() + subject.len() + ATTRIBUTES.len() + SECURE.len(),
    );
    v.extend_from_slice(rollout::COOKIE.as_bytes());
    v.extend_from_slice(b"=");
    v.extend_from_slice(kind.as_bytes());
    v.extend_from_slice(subject.as_bytes());
    v.extend_from_slice(ATTRIBUTES.as_bytes());
    if secure {
        v.extend_from_slice(SECURE.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(v.freeze()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page load rather than an API call (Clerk's own handshake rule).
fn is_navigation<B>(req: &Request<B>) -> bool {
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

fn forwarded_https(h: &http::HeaderMap) -> bool {
    h.get(&headers::X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
