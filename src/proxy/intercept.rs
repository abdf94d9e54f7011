//! Phase three at the proxy: the glue between a request to Kernia's auth
//! base path and [`crate::intercept`]. *Before* Kernia: read the body of an
//! intercepted route whole (size limit and deadline), let intercept decide,
//! turn a refusal into an answer, rebuild the request (rewritten body, maybe
//! another path). *After* Kernia: hand intercept Kernia's answer, on a task
//! of its own so a client hanging up cannot cut the work short, and record
//! the exchange for observers.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};

use super::context::{AuthExchange, Ctx};
use super::{App, ProxyBody, respond};
use crate::intercept::{After, Answer, AuthRoute, Before};
use crate::route::paths;
use crate::web;

/// The path below Kernia's base path (normalized), when `path` is under it.
pub(super) fn below_base(app: &App, path: &str) -> Option<String> {
    if !paths::is_under(path, &app.kernia_base_path) {
        return None;
    }
    let rel = &path[app.kernia_base_path.len()..];
    Some(if rel.is_empty() {
        "/".into()
    } else {
        rel.into()
    })
}

/// A request ready to go on to Kernia.
pub struct Ready {
    pub req: Request<ProxyBody>,
    /// Whether cutover read the body (it is then bounded already).
    pub body_read: bool,
    /// The path below the base path Kernia is asked.
    pub kernia_path: String,
    pub after: After,
}

pub(super) async fn before(
    app: &App,
    ctx: &mut Ctx,
    req: Request<ProxyBody>,
    rel: &str,
) -> Result<Ready, Response<ProxyBody>> {
    let Some(route) = AuthRoute::classify(req.method(), rel) else {
        return Ok(Ready {
            req,
            body_read: false,
            kernia_path: rel.to_string(),
            after: After::Nothing,
        });
    };
    ctx.auth_route = Some(route);
    let (mut parts, body) = req.into_parts();
    let (body, read) = if route.reads_body() {
        let (max, deadline) = {
            let limits = app.limits();
            (limits.auth_body_bytes, limits.auth_body_timeout)
        };
        match web::read_whole(body, max, deadline).await {
            Ok(bytes) => (None, Some(bytes)),
            Err(e) => {
                ctx.intercept = Some("body_unread");
                ctx.error = Some(e.to_string());
                return Err(respond::read_error(&e));
            }
        }
    } else {
        (Some(body), None)
    };
    let (decision, outcome) = app
        .intercept
        .before(
            route,
            read.as_deref(),
            &parts.headers,
            &app.kernia,
            ctx.client,
        )
        .await;
    ctx.intercept = Some(outcome);
    let forward = match decision {
        Before::Refuse(refusal) => return Err(respond::refusal(&refusal)),
        Before::Forward(f) => f,
    };
    let kernia_path = forward.path.unwrap_or(rel).to_string();
    if forward.path.is_some()
        && let Some(uri) = rewritten_uri(&parts.uri, &app.kernia_base_path, &kernia_path)
    {
        parts.uri = uri;
    }
    let body_read = body.is_none();
    let body = match (body, forward.body.or(read)) {
        (Some(streamed), _) => streamed,
        (None, Some(bytes)) => with_length(&mut parts, bytes),
        (None, None) => with_length(&mut parts, Bytes::new()),
    };
    Ok(Ready {
        req: Request::from_parts(parts, body),
        body_read,
        kernia_path,
        after: forward.after,
    })
}

/// Once Kernia answered: intercept's after-step, and the exchange for
/// observers. `answer` is taken from Kernia's response head.
pub(super) async fn after(
    app: Arc<App>,
    ctx: &mut Ctx,
    kernia_path: String,
    plan: After,
    answer: Answer,
) {
    let mut exchange = AuthExchange {
        path: kernia_path,
        status: answer.status,
        user_id: ctx.user_id().map(str::to_string),
        session_token: None,
    };
    if plan != After::Nothing || answer.session_cookie.is_some() {
        // Its own task: a client hanging up drops this request's future,
        // but a migration Kernia already confirmed must still be recorded.
        let task =
            tokio::spawn(async move { app.intercept.after(&plan, &answer, &app.kernia).await });
        match task.await {
            Ok(report) => {
                if report.session_user.is_some() {
                    exchange.user_id = report.session_user;
                }
                exchange.session_token = report.session_token;
            }
            Err(e) => tracing::error!(error = %e, "intercept's after-step failed"),
        }
    }
    ctx.auth = Some(exchange);
}

/// Replace the body by `bytes`, with its length.
fn with_length(parts: &mut http::request::Parts, bytes: Bytes) -> ProxyBody {
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    web::full(bytes)
}

/// The same URI with the path `base` + `rel`, keeping the query.
fn rewritten_uri(uri: &Uri, base: &str, rel: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{base}{rel}?{q}"),
        None => format!("{base}{rel}"),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    Uri::from_parts(parts).ok()
}
