//! Phase four, request side: turn the client's request into the upstream's —
//! header hygiene, forwarding headers, the identity handed to the app — send
//! it, and clean the answer's headers on the way back.

use http::{HeaderName, HeaderValue, Request, Response, header};

use super::context::Ctx;
use super::forward::{self, ForwardError, Upstream};
use super::{App, ProxyBody, assertion, headers, respond};
use crate::db::now_secs;
use crate::identify::{Identity, IdentityHeaderValues, header_value};

/// Forward a request to `to`; its body streams through under
/// `[limits].max_body_bytes`.
pub(super) async fn forward(
    app: &App,
    ctx: &mut Ctx,
    req: Request<ProxyBody>,
    to: Upstream,
) -> Response<ProxyBody> {
    let limit = app.limits().max_body_bytes;
    if let Some(len) = content_length(&req)
        && len > limit
    {
        ctx.upstream = Some(to);
        let e = ForwardError::BodyTooLarge { limit };
        ctx.error = Some(e.to_string());
        return respond::forward_error(&e);
    }
    let req = req.map(|body| forward::limit_body(body, limit));
    send(app, ctx, req, to).await
}

/// Forward a request whose body cutover read and bounded already.
pub(super) async fn forward_read(
    app: &App,
    ctx: &mut Ctx,
    req: Request<ProxyBody>,
    to: Upstream,
) -> Response<ProxyBody> {
    send(app, ctx, req, to).await
}

/// Headers for the upstream, send, headers for the client.
async fn send(
    app: &App,
    ctx: &mut Ctx,
    mut req: Request<ProxyBody>,
    to: Upstream,
) -> Response<ProxyBody> {
    ctx.upstream = Some(to);
    let upgrade = req.version() == http::Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let peer = ctx.peer;
    // A clone of the header value shares its bytes: no copy.
    let host = parts
        .headers
        .get(header::HOST)
        .filter(|v| v.to_str().is_ok())
        .cloned()
        .or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
    let h = &mut parts.headers;
    headers::strip_hop_by_hop(h, upgrade);
    headers::strip_cutover_headers(h);
    headers::join_cookies(h);
    headers::set_forwarding(
        h,
        peer.ip,
        ctx.peer_value.as_ref(),
        &app.trusted_proxies,
        peer.tls,
        host,
    );
    // One load: the Host header and the send agree, whatever a reload swaps.
    let upstreams = app.upstreams();
    if let Some(v) = upstreams.host(to) {
        h.insert(header::HOST, v);
    }
    set_identity_headers(app, h, &ctx.identity);

    match upstreams.send(to, Request::from_parts(parts, body)).await {
        Ok(mut resp) => {
            let switching = forward::is_switching(&resp);
            if switching && let Some(client_upgrade) = client_upgrade {
                forward::splice_upgrade(client_upgrade, hyper::upgrade::on(&mut resp));
            }
            headers::strip_hop_by_hop(resp.headers_mut(), switching);
            resp
        }
        Err(e) => {
            ctx.error = Some(e.to_string());
            respond::forward_error(&e)
        }
    }
}

const PROVIDER: HeaderName = HeaderName::from_static("x-cutover-provider");
const USER_ID: HeaderName = HeaderName::from_static("x-cutover-user-id");
const SESSION_ID: HeaderName = HeaderName::from_static("x-cutover-session-id");
const ORG_ID: HeaderName = HeaderName::from_static("x-cutover-org-id");
const ORG_ROLE: HeaderName = HeaderName::from_static("x-cutover-org-role");
const ASSERTION: HeaderName = HeaderName::from_static("x-cutover-assertion");

/// `x-cutover-provider`, `-user-id`, `-session-id`, `-org-id`, `-org-role`, and
/// the signed `x-cutover-assertion` (see [`assertion`] for its claims). The
/// values come from the (cached) identity, made once per identity.
fn set_identity_headers(app: &App, h: &mut http::HeaderMap, identity: &Identity) {
    h.insert(PROVIDER, HeaderValue::from_static(identity.provider()));
    let (facts, values) = match identity {
        Identity::Kernia(k) => (
            assertion::Facts {
                provider: "kernia",
                user_id: &k.user_id,
                session_id: &k.session_id,
                ..assertion::Facts::default()
            },
            &k.header_values,
        ),
        Identity::Clerk(c) => (
            assertion::Facts {
                provider: "clerk",
                user_id: &c.user_id,
                session_id: &c.session_id,
                org_id: c.org.as_ref().map(|o| o.id.as_str()),
                org_role: c.org.as_ref().and_then(|o| o.role.as_deref()),
                org_permissions: c.org.as_ref().map_or(&[], |o| o.permissions.as_slice()),
                actor: c.actor.as_deref(),
            },
            &c.header_values,
        ),
        Identity::KerniaUnverified | Identity::Anonymous => return,
    };
    let v = values.get_or_make(|| IdentityHeaderValues {
        user_id: header_value(facts.user_id),
        session_id: header_value(facts.session_id),
        org_id: facts.org_id.and_then(header_value),
        org_role: facts.org_role.and_then(header_value),
    });
    for (name, value) in [
        (USER_ID, &v.user_id),
        (SESSION_ID, &v.session_id),
        (ORG_ID, &v.org_id),
        (ORG_ROLE, &v.org_role),
    ] {
        if let Some(value) = value {
            h.insert(name, value.clone());
        }
    }
    if let Some(signer) = &app.assertion
        && let Some(jwt) = signer.sign(&facts, now_secs().max(0) as u64)
        && let Ok(v) = HeaderValue::from_str(&jwt)
    {
        h.insert(ASSERTION, v);
    }
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
