//! The request path, top to bottom: identify → route → intercept → forward →
//! observe. Each phase either hands on to the next or answers by itself; the
//! per-request [`Ctx`] collects what happened for the log line.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, header};
use hyper::body::Incoming;

use super::forward::{self, Upstream};
use super::observe::Ctx;
use super::server::ConnInfo;
use super::{App, ProxyBody, assertion, headers, respond};
use crate::intercept::body::AuthRoute;
use crate::intercept::{After, Intercept};
use http_body_util::BodyExt as _;
use crate::db::now_secs;
use crate::identify::cookies;
use crate::identify::kernia::{self as kernia_id, KerniaIdentity, KerniaOutcome};
use crate::route::rollout::{self, Pin};
use crate::route::{self, Route, UserFacts, Who, paths};

/// Who a request comes from, after identify.
enum Identity {
    Kernia(Arc<KerniaIdentity>),
    /// A well-signed Kernia cookie whose session could not be checked.
    KerniaUnverified,
    Anonymous,
}

impl Identity {
    fn provider(&self) -> &'static str {
        match self {
            Identity::Kernia(_) => "kernia",
            Identity::KerniaUnverified | Identity::Anonymous => "anonymous",
        }
    }

    fn user_id(&self) -> Option<&str> {
        match self {
            Identity::Kernia(k) => Some(&k.user_id),
            Identity::KerniaUnverified | Identity::Anonymous => None,
        }
    }
}

pub async fn handle(app: Arc<App>, info: ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
    let peer = info.peer.ip().to_canonical();
    let trusted = app.is_trusted(peer);
    let client = headers::client_addr(req.headers(), peer, trusted);
    let mut ctx = Ctx::new(req.method().clone(), req.uri().path(), client, info.tls);
    let resp = drive(&app, &mut ctx, info, peer, trusted, req).await;
    ctx.log(resp.status());
    resp
}

async fn drive(
    app: &App,
    ctx: &mut Ctx,
    info: ConnInfo,
    peer: IpAddr,
    trusted: bool,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let now = now_secs();

    // 1. identify
    let identity = identify(app, &req, now).await;
    ctx.provider = identity.provider();
    ctx.user_id = identity.user_id().map(str::to_string);

    // 2. route
    let path = paths::normalize(req.uri().path()).into_owned();
    let pin = cookies::get(req.headers(), rollout::COOKIE).and_then(Pin::parse);
    let who = match &identity {
        Identity::Kernia(k) => Who::Kernia {
            user_id: &k.user_id,
        },
        Identity::KerniaUnverified => Who::KerniaUnverified,
        Identity::Anonymous => Who::Anonymous,
    };
    let facts = UserFacts::default();
    let decision = route::decide(&app.routing, &path, who, facts, pin.as_ref());
    ctx.route = decision.route.as_str();
    ctx.reason = decision.reason.as_str();

    let secure = info.tls || (trusted && forwarded_https(&req));
    let sign_out =
        req.method() == Method::POST && path == format!("{}/sign-out", app.kernia_base_path);
    let kernia_token = sign_out
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
        // 3. intercept happens on the kernia side only (Kernia's auth routes).
        // 4. forward
        Route::Legacy => {
            forward(
                app,
                ctx,
                req,
                Upstream::Legacy,
                &identity,
                peer,
                trusted,
                info.tls,
            )
            .await
        }
        Route::Kernia => {
            forward(
                app,
                ctx,
                req,
                Upstream::Kernia,
                &identity,
                peer,
                trusted,
                info.tls,
            )
            .await
        }
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
    // 5. observe: the caller logs `ctx` with the final status.
    resp
}

async fn identify(app: &App, req: &Request<Incoming>, now: i64) -> Identity {
    match app.kernia.identify(req.headers(), now).await {
        KerniaOutcome::SignedIn(k) => return Identity::Kernia(k),
        KerniaOutcome::Unverified => return Identity::KerniaUnverified,
        KerniaOutcome::NoCookie | KerniaOutcome::BadSignature | KerniaOutcome::NoSession => {}
    }
    Identity::Anonymous
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    app: &App,
    ctx: &mut Ctx,
    mut req: Request<Incoming>,
    to: Upstream,
    identity: &Identity,
    peer: IpAddr,
    trusted: bool,
    tls: bool,
) -> Response<ProxyBody> {
    if let Some(len) = content_length(&req)
        && len > app.limits.max_body_bytes
    {
        ctx.upstream = Some(to.as_str());
        return respond::ForwardError::BodyTooLarge {
            limit: app.limits.max_body_bytes,
        }
        .response();
    }
    let upgrade = req.version() == http::Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = forward::limit_body(body, app.limits.max_body_bytes);
    send(app, ctx, parts, body, client_upgrade, to, identity, peer, trusted, tls).await
}

/// Phase four proper: headers for the upstream, send, headers for the client.
#[allow(clippy::too_many_arguments)]
async fn send(
    app: &App,
    ctx: &mut Ctx,
    mut parts: http::request::Parts,
    body: ProxyBody,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    to: Upstream,
    identity: &Identity,
    peer: IpAddr,
    trusted: bool,
    tls: bool,
) -> Response<ProxyBody> {
    ctx.upstream = Some(to.as_str());
    let upgrade = client_upgrade.is_some();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, upgrade);
    headers::strip_cutover_headers(h);
    headers::set_forwarding(h, peer, trusted, tls, host.as_deref());
    if let Some(authority) = app.upstreams.authority(to)
        && let Ok(v) = HeaderValue::from_str(authority)
    {
        h.insert(header::HOST, v);
    }
    set_identity_headers(app, h, identity);

    let upstream_req = Request::from_parts(parts, body);
    match app.upstreams.send(to, upstream_req).await {
        Ok(mut resp) => {
            let switching = forward::is_switching(&resp);
            if switching && let Some(client_upgrade) = client_upgrade {
                forward::splice_upgrade(client_upgrade, hyper::upgrade::on(&mut resp));
            }
            let (mut parts, body) = resp.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, switching);
            Response::from_parts(parts, forward::upstream_body(body))
        }
        Err(e) => {
            ctx.error = Some(e.to_string());
            e.response()
        }
    }
}

/// Which intercepted route this is, if any (only POSTs under Kernia's base path).
fn intercepted_route(app: &App, req: &Request<Incoming>, path: &str) -> Option<Intercepted> {
    let rel = path.strip_prefix(app.kernia_base_path.as_str())?;
    if rel.starts_with("/callback/") {
        return Some(Intercepted::SocialCallback);
    }
    if req.method() != Method::POST {
        return None;
    }
    AuthRoute::from_path(rel).map(Intercepted::Body)
}

enum Intercepted {
    /// A route whose JSON body cutover reads.
    Body(AuthRoute),
    /// `/callback/<provider>`: a social sign-in completing.
    SocialCallback,
}

#[allow(clippy::too_many_arguments)]
async fn intercept(
    app: &App,
    ctx: &mut Ctx,
    req: Request<Incoming>,
    what: Intercepted,
    identity: &Identity,
    peer: IpAddr,
    trusted: bool,
    tls: bool,
) -> Response<ProxyBody> {
    let route = match what {
        Intercepted::SocialCallback => {
            ctx.intercept = Some("social_callback");
            let after = After::MigrateSessionUser { method: "social" };
            let resp = forward(app, ctx, req, Upstream::Kernia, identity, peer, trusted, tls).await;
            finish(app, after, &resp).await;
            return resp;
        }
        Intercepted::Body(route) => route,
    };
    let (mut parts, body) = req.into_parts();
    let limit = app.limits.auth_body_bytes;
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            ctx.intercept = Some("body_too_large");
            return respond::ForwardError::BodyTooLarge { limit: limit as u64 }.response();
        }
    };
    let (decision, outcome) = app.intercept.run(route, bytes, ctx.client).await;
    ctx.intercept = Some(outcome);
    match decision {
        Intercept::Answer(resp) => resp,
        Intercept::Forward { body, after } => {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let resp = send(app, ctx, parts, forward::bytes_body(body), None, Upstream::Kernia, identity, peer, trusted, tls).await;
            finish(app, after, &resp).await;
            resp
        }
    }
}

/// After Kernia answered an intercepted route.
async fn finish(app: &App, after: After, resp: &Response<ProxyBody>) {
    if after == After::Nothing || !resp.status().is_success() {
        return;
    }
    let session_user = match after {
        After::MigrateSessionUser { .. } => session_user_of(app, resp).await,
        _ => None,
    };
    app.intercept.complete(after, resp.status(), session_user.as_deref()).await;
}

/// The user of the Kernia session a response just set, if any.
async fn session_user_of(app: &App, resp: &Response<ProxyBody>) -> Option<String> {
    let value = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(kernia_id::COOKIE).and_then(|r| r.strip_prefix('=')))
        .and_then(|c| c.split(';').next())?;
    let token = app.kernia.verified_token(value)?;
    let mut conn = app.db.acquire().await.ok()?;
    crate::db::kernia::find_session(&mut conn.conn(), token)
        .await
        .ok()
        .flatten()
        .map(|s| s.user_id)
}

/// `x-cutover-provider`, `-user-id`, `-session-id`, `-org-id`, `-org-role`, and
/// the signed `x-cutover-assertion`.
fn set_identity_headers(app: &App, h: &mut http::HeaderMap, identity: &Identity) {
    let set = |h: &mut http::HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, "x-cutover-provider", identity.provider());
    let facts = match identity {
        Identity::Kernia(k) => assertion::Facts {
            provider: "kernia",
            user_id: &k.user_id,
            session_id: &k.session_id,
            ..assertion::Facts::default()
        },
        Identity::KerniaUnverified | Identity::Anonymous => return,
    };
    set(h, "x-cutover-user-id", facts.user_id);
    set(h, "x-cutover-session-id", facts.session_id);
    if let Some(org) = facts.org_id {
        set(h, "x-cutover-org-id", org);
    }
    if let Some(role) = facts.org_role {
        set(h, "x-cutover-org-role", role);
    }
    if let Some(signer) = &app.assertion
        && let Some(jwt) = signer.sign(&facts, now_secs().max(0) as u64)
    {
        set(h, "x-cutover-assertion", &jwt);
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

fn content_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
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
