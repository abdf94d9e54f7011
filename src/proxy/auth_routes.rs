//! Phase three at the proxy: which of Kernia's routes are intercepted, reading
//! their bodies under a limit, running [`crate::intercept`], and completing
//! its work once Kernia has answered.

use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::driver::Peer;
use super::forward::Upstream;
use super::observe::Ctx;
use super::{App, ProxyBody, relay, respond};
use crate::identify::Identity;
use crate::identify::kernia as kernia_id;
use crate::intercept::body::AuthRoute;
use crate::intercept::{After, Intercept};

/// An intercepted route.
pub(super) enum Intercepted {
    /// A route whose JSON body cutover reads (POST only).
    Body(AuthRoute),
    /// `/callback/<provider>`: a social sign-in completing.
    SocialCallback,
}

/// Which intercepted route this is, if any. `path` is normalized.
pub(super) fn intercepted(app: &App, req: &Request<Incoming>, path: &str) -> Option<Intercepted> {
    let rel = path.strip_prefix(app.kernia_base_path.as_str())?;
    if rel.starts_with("/callback/") {
        return Some(Intercepted::SocialCallback);
    }
    if req.method() != Method::POST {
        return None;
    }
    AuthRoute::from_path(rel).map(Intercepted::Body)
}

pub(super) async fn intercept(
    app: &App,
    ctx: &mut Ctx,
    req: Request<Incoming>,
    what: Intercepted,
    identity: &Identity,
    peer: Peer,
) -> Response<ProxyBody> {
    let route = match what {
        Intercepted::SocialCallback => {
            ctx.intercept = Some("social_callback");
            let resp = relay::forward(app, ctx, req, Upstream::Kernia, identity, peer).await;
            finish(
                app,
                After::MigrateSessionUser { method: "social" },
                answer_of(&resp),
            )
            .await;
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
            return respond::ForwardError::BodyTooLarge {
                limit: limit as u64,
            }
            .response();
        }
    };
    let (decision, outcome) = app.intercept.run(route, bytes, ctx.client).await;
    ctx.intercept = Some(outcome);
    match decision {
        Intercept::Answer(resp) => resp,
        Intercept::Forward { body, after } => {
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let body = respond::full(body);
            let resp = relay::send(
                app,
                ctx,
                parts,
                body,
                None,
                Upstream::Kernia,
                identity,
                peer,
            )
            .await;
            finish(app, after, answer_of(&resp)).await;
            resp
        }
    }
}

/// What `finish` needs of Kernia's answer (taken before any await: a response
/// body is not `Sync`).
struct Answer {
    status: http::StatusCode,
    /// The value of a Kernia session cookie the answer sets.
    session_cookie: Option<String>,
}

fn answer_of(resp: &Response<ProxyBody>) -> Answer {
    let session_cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(kernia_id::COOKIE)
                .and_then(|r| r.strip_prefix('='))
        })
        .and_then(|c| c.split(';').next())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Answer {
        status: resp.status(),
        session_cookie,
    }
}

/// After Kernia answered an intercepted route.
async fn finish(app: &App, after: After, answer: Answer) {
    if after == After::Nothing || !answer.status.is_success() {
        return;
    }
    let session_user = match (&after, &answer.session_cookie) {
        (After::MigrateSessionUser { .. }, Some(cookie)) => session_user_of(app, cookie).await,
        _ => None,
    };
    app.intercept
        .complete(after, answer.status, session_user.as_deref())
        .await;
}

/// The user of the Kernia session a cookie value names, if any.
async fn session_user_of(app: &App, value: &str) -> Option<String> {
    let token = app.kernia.verified_token(value)?;
    let mut conn = app.db.acquire().await.ok()?;
    crate::db::kernia::find_session(&mut conn.conn(), token)
        .await
        .ok()
        .flatten()
        .map(|s| s.user_id)
}

/// Before forwarding a Kernia route whose success makes Clerk-shaped events:
/// the snapshot `on_kernia_response` compares against. `None` for other routes.
pub(super) async fn events_before(
    app: &App,
    events: &crate::events::Events,
    req: &Request<Incoming>,
    path: &str,
    identity: &Identity,
    client: std::net::IpAddr,
) -> Option<crate::events::Before> {
    let rel = path.strip_prefix(app.kernia_base_path.as_str())?;
    let trigger = events.observes(req.method(), rel)?;
    let actor = match identity {
        Identity::Kernia(k) => Some(k.user_id.as_str()),
        _ => None,
    };
    let attributes = crate::events::RequestAttributes {
        client_ip: client.to_string(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(512)
            .collect(),
    };
    Some(events.on_kernia_request(trigger, actor, attributes).await)
}

/// The raw token of the Kernia session cookie an answer sets, when its
/// signature is good.
pub(super) fn new_session_token(app: &App, resp: &Response<ProxyBody>) -> Option<String> {
    let value = answer_of(resp).session_cookie?;
    app.kernia.verified_token(&value).map(str::to_string)
}
