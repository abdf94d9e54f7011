//! Clerk-shaped webhook events (issue #12) around a Kernia auth request:
//! the proxy's glue between intercept's before/after phases and
//! [`crate::events`]. *Before* Kernia: snapshot what the request may delete
//! (sessions of a sign-out or revoke, organizations around the user), so a
//! deletion's event can still describe what went. *After* Kernia (on a 2xx):
//! read what changed and queue the events in the outbox.

use std::sync::Arc;

use http::{HeaderMap, Method, header};

use super::App;
use super::context::Ctx;
use crate::events::{Before, RequestAttributes};
use crate::identify::Identity;

/// Before forwarding a request below Kernia's base path (`rel`, as Kernia is
/// asked): the snapshot [`after`] compares against. `None` when webhooks are
/// off or the route makes no events.
pub(super) async fn before(
    app: &App,
    ctx: &Ctx,
    method: &Method,
    headers: &HeaderMap,
    rel: &str,
) -> Option<Before> {
    let events = app.events.as_ref()?;
    let trigger = events.observes(method, rel)?;
    let actor = match &ctx.identity {
        Identity::Kernia(k) => Some(k.user_id.as_str()),
        _ => None,
    };
    let attributes = RequestAttributes {
        client_ip: ctx.client.to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(512)
            .collect(),
    };
    Some(events.on_kernia_request(trigger, actor, attributes).await)
}

/// Once Kernia answered and intercept's after-step ran (`ctx.auth` holds
/// Kernia's status and the verified token of a session its answer issued):
/// queue the events. On a task of its own, so a client hanging up cannot
/// lose the events of a change Kernia already made.
pub(super) async fn after(app: &App, ctx: &Ctx, before: Before) {
    let (Some(events), Some(auth)) = (&app.events, &ctx.auth) else {
        return;
    };
    let events = Arc::clone(events);
    let status = auth.status;
    let token = auth.session_token.as_ref().map(|t| t.expose().to_string());
    let task = tokio::spawn(async move {
        events
            .on_kernia_response(before, status, token.as_deref())
            .await
    });
    if let Err(e) = task.await {
        tracing::error!(error = %e, "events: queuing a request's webhook events failed");
    }
}
