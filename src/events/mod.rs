//! Clerk-shaped webhook events from Kernia-side changes (issue #12).
//!
//! Kernia 0.1.0 emits no webhooks, so once users move to Kernia the app's
//! Clerk webhook consumers would go quiet. cutover sees every request to
//! Kernia's auth routes; when one succeeds and changes state, cutover reads the
//! changed rows from Kernia's database (never from the request body) and
//! queues the matching Clerk event in the outbox, one row per configured
//! endpoint, for the outbox worker to sign and deliver.
//!
//! The entry points, in the order a request meets them:
//! 1. [`Events::observes`] — is this (method, path) one whose success changes
//!    state? (pure; see [`Trigger`]);
//! 2. [`Events::on_kernia_request`] — before forwarding: remember what a
//!    request might delete (the user's sessions, the organizations around
//!    them), because after Kernia's answer those rows are gone;
//! 3. [`Events::on_kernia_response`] — after Kernia answered: on a 2xx, read
//!    the rows now, compare ([`diff`]) and queue the events.
//!
//! A lazy migration is queued by the interceptor inside its own transaction
//! ([`Events::migrated`]): a `user.updated`, and optionally
//! `cutover.user.migrated`.
//!
//! Ordering: every event a request causes is keyed by the acting user (the
//! session's user, or the new user of a sign-up), so one user's events reach
//! each consumer in the order they happened.

mod diff;
pub mod read;
pub mod shapes;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::config::WebhooksConfig;
use crate::db::{Conn, Db, DbError, KerniaSchema};
use crate::outbox::{self, Kind, NewDelivery, Waker};

pub use diff::{Change, diff_orgs};
pub use shapes::RequestAttributes;

/// Every event type cutover can send.
pub const KNOWN_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "session.created",
    "session.ended",
    "session.revoked",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
    "organizationInvitation.created",
    "organizationInvitation.accepted",
    "organizationInvitation.revoked",
    "cutover.user.migrated",
];

/// How long the work around one request may take before it is given up
/// (the event is then lost, and a warning says so): the request waits for it.
const BUDGET: Duration = Duration::from_secs(2);

/// What kind of state change a Kernia route makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `/sign-up/*`: `user.created` (+ `session.created`).
    SignUp,
    /// `/sign-in/*`, `/callback/*`, two-factor and phone verification:
    /// `session.created` for a new session.
    SignIn,
    /// Profile, email, password, phone, two-factor changes: `user.updated`.
    UserUpdated,
    /// `/delete-user`: `user.deleted`.
    UserDeleted,
    /// `/sign-out`: `session.ended` for the session that went.
    SignOut,
    /// `/revoke-session(s)`, `/revoke-other-sessions`: `session.revoked`.
    Revoke,
    /// `/organization/<mutation>`: organization, membership and invitation
    /// events, from comparing the organizations around the user.
    Organization,
}

/// Which trigger a request is, if any. `rel` is the path below Kernia's base
/// path, normalized.
pub fn classify(method: &Method, rel: &str) -> Option<Trigger> {
    if rel.starts_with("/callback/") {
        return Some(Trigger::SignIn);
    }
    if method == Method::GET && rel == "/verify-email" {
        return Some(Trigger::UserUpdated);
    }
    if method != Method::POST {
        return None;
    }
    if rel.starts_with("/sign-up/") {
        return Some(Trigger::SignUp);
    }
    if rel.starts_with("/sign-in/") || rel.starts_with("/two-factor/verify") {
        return Some(Trigger::SignIn);
    }
    match rel {
        "/update-user"
        | "/change-email"
        | "/change-password"
        | "/set-password"
        | "/verify-email"
        | "/phone-number/verify"
        | "/two-factor/enable"
        | "/two-factor/disable" => Some(Trigger::UserUpdated),
        "/delete-user" => Some(Trigger::UserDeleted),
        "/sign-out" => Some(Trigger::SignOut),
        "/revoke-session" | "/revoke-sessions" | "/revoke-other-sessions" => Some(Trigger::Revoke),
        "/organization/create"
        | "/organization/update"
        | "/organization/delete"
        | "/organization/invite-member"
        | "/organization/cancel-invitation"
        | "/organization/accept-invitation"
        | "/organization/reject-invitation"
        | "/organization/remove-member"
        | "/organization/update-member-role"
        | "/organization/leave" => Some(Trigger::Organization),
        _ => None,
    }
}

/// What [`Events::on_kernia_request`] remembered for one request.
#[derive(Debug)]
pub struct Before {
    trigger: Trigger,
    actor: Option<String>,
    attributes: RequestAttributes,
    sessions: Vec<read::SessionRow>,
    orgs: Vec<read::OrgState>,
}

/// Queues Clerk-shaped events; shared by every request.
pub struct Events {
    db: Db,
    schema: KerniaSchema,
    cfg: WebhooksConfig,
    waker: Waker,
}

impl Events {
    pub fn new(cfg: &WebhooksConfig, db: Db, schema: KerniaSchema, waker: Waker) -> Arc<Events> {
        Arc::new(Events {
            db,
            schema,
            cfg: cfg.clone(),
            waker,
        })
    }

    /// Whether this request may change state worth an event (see [`classify`]).
    pub fn observes(&self, method: &Method, rel: &str) -> Option<Trigger> {
        let t = classify(method, rel)?;
        let sessions_only = matches!(t, Trigger::SignIn | Trigger::SignOut | Trigger::Revoke);
        (self.cfg.session_events || !sessions_only).then_some(t)
    }

    /// Before forwarding: remember the rows the request may delete. `actor` is
    /// the Kernia session's user, when there is one. Never fails the request:
    /// a problem is logged and the snapshot is empty.
    pub async fn on_kernia_request(
        &self,
        trigger: Trigger,
        actor: Option<&str>,
        attributes: RequestAttributes,
    ) -> Before {
        let mut before = Before {
            trigger,
            actor: actor.map(str::to_string),
            attributes,
            sessions: Vec::new(),
            orgs: Vec::new(),
        };
        let Some(actor) = actor else { return before };
        let snap = async {
            let mut conn = self.db.acquire().await?;
            match trigger {
                Trigger::SignOut | Trigger::Revoke => {
                    before.sessions = read::sessions_of(&mut conn.conn(), actor).await?;
                }
                Trigger::Organization => {
                    before.orgs = self.orgs_around(&mut conn.conn(), actor).await?;
                }
                _ => {}
            }
            Ok::<_, DbError>(())
        };
        match tokio::time::timeout(BUDGET, snap).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "events: cannot read the state before a request; its events may be incomplete")
            }
            Err(_) => tracing::warn!(
                "events: reading the state before a request took too long; its events may be incomplete"
            ),
        }
        before
    }

    /// After Kernia answered: on a 2xx, read the changed rows and queue the
    /// events. `new_session_token` is the raw token of a Kernia session
    /// cookie the answer sets. Returns how many events were queued.
    pub async fn on_kernia_response(
        &self,
        before: Before,
        status: StatusCode,
        new_session_token: Option<&str>,
    ) -> usize {
        if !status.is_success() {
            return 0;
        }
        let work = self.after(before, new_session_token);
        match tokio::time::timeout(BUDGET, work).await {
            Ok(Ok(n)) => {
                if n > 0 {
                    self.waker.wake();
                }
                n
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "events: cannot queue the webhook events of a request; they are lost (see `cutover webhooks list`)");
                0
            }
            Err(_) => {
                tracing::error!(
                    "events: queuing the webhook events of a request took too long; they are lost"
                );
                0
            }
        }
    }

    async fn after(
        &self,
        before: Before,
        new_session_token: Option<&str>,
    ) -> Result<usize, DbError> {
        let (actor, events) = {
            let mut conn = self.db.acquire().await?;
            let mut c = conn.conn();
            match self.changes(&mut c, &before, new_session_token).await? {
                Some(found) => found,
                None => return Ok(0),
            }
        };
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let n = self
            .queue(&mut tx.conn(), &actor, &events, &before.attributes)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The acting user and the events a request caused, read now.
    async fn changes(
        &self,
        c: &mut Conn<'_>,
        before: &Before,
        new_session_token: Option<&str>,
    ) -> Result<Option<(String, Vec<(&'static str, Value)>)>, DbError> {
        let new_session = match new_session_token {
            Some(token) => read::session_by_token(c, token).await?,
            None => None,
        };
        let actor = before
            .actor
            .clone()
            .or_else(|| new_session.as_ref().map(|s| s.user_id.clone()));
        let Some(actor) = actor else { return Ok(None) };
        let mut events: Vec<(&'static str, Value)> = Vec::new();
        match before.trigger {
            Trigger::SignUp => {
                if let Some(u) = read::user(c, &self.schema, &actor).await? {
                    events.push(("user.created", shapes::user(&u)));
                }
            }
            Trigger::UserUpdated => {
                if let Some(u) = read::user(c, &self.schema, &actor).await? {
                    events.push(("user.updated", shapes::user(&u)));
                }
            }
            Trigger::UserDeleted => {
                // Kernia may answer 2xx and only send a confirmation: the
                // event is for a user who is really gone.
                if read::user(c, &self.schema, &actor).await?.is_none() {
                    events.push(("user.deleted", shapes::deleted_user(&actor)));
                }
            }
            Trigger::SignOut | Trigger::Revoke => {
                let now: Vec<String> = read::sessions_of(c, &actor)
                    .await?
                    .into_iter()
                    .map(|s| s.id)
                    .collect();
                let (ty, status) = if before.trigger == Trigger::SignOut {
                    ("session.ended", "ended")
                } else {
                    ("session.revoked", "revoked")
                };
                let user = read::user(c, &self.schema, &actor)
                    .await?
                    .map(|u| shapes::user(&u));
                for s in before.sessions.iter().filter(|s| !now.contains(&s.id)) {
                    events.push((ty, shapes::session(s, status, user.clone())));
                }
            }
            Trigger::Organization => {
                let mut after = self.orgs_around(c, &actor).await?;
                // An organization the user left is no longer around them but
                // still exists: read it directly, or it would look deleted.
                for b in &before.orgs {
                    if !after.iter().any(|a| a.org.id == b.org.id)
                        && let Some(state) = read::org_state(c, &b.org.id).await?
                    {
                        after.push(state);
                    }
                }
                let changes = diff_orgs(&before.orgs, &after, &actor);
                events.extend(self.org_events(c, &changes, &before.orgs, &after).await?);
            }
            Trigger::SignIn => {}
        }
        if self.cfg.session_events
            && let Some(s) = &new_session
            && matches!(before.trigger, Trigger::SignIn | Trigger::SignUp)
        {
            let user = read::user(c, &self.schema, &s.user_id)
                .await?
                .map(|u| shapes::user(&u));
            events.push(("session.created", shapes::session(s, "active", user)));
        }
        Ok(Some((actor, events)))
    }

    /// The organizations around a user, with their members and invitations.
    async fn orgs_around(
        &self,
        c: &mut Conn<'_>,
        user_id: &str,
    ) -> Result<Vec<read::OrgState>, DbError> {
        let email = read::user(c, &self.schema, user_id).await?.map(|u| u.email);
        let ids = read::org_ids_around(c, user_id, email.as_deref()).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(read::org_state(c, &id).await?);
        }
        Ok(out)
    }

    /// Events for organization changes, in the order a consumer needs them
    /// (an organization before its memberships, an invitation accepted
    /// before the membership it made).
    async fn org_events(
        &self,
        c: &mut Conn<'_>,
        changes: &[Change],
        before: &[read::OrgState],
        after: &[read::OrgState],
    ) -> Result<Vec<(&'static str, Value)>, DbError> {
        let find = |id: &str| {
            after
                .iter()
                .find(|o| o.org.id == id)
                .or_else(|| before.iter().find(|o| o.org.id == id))
        };
        let org_json = |state: &read::OrgState| {
            let creator = state
                .members
                .iter()
                .find(|m| m.role == "owner")
                .map(|m| m.user_id.as_str());
            shapes::organization(
                &state.org,
                Some(state.members.len()),
                Some(
                    state
                        .invitations
                        .iter()
                        .filter(|i| i.status == "pending")
                        .count(),
                ),
                creator,
            )
        };
        let mut out = Vec::new();
        for change in changes {
            match change {
                Change::OrgCreated(id) | Change::OrgUpdated(id) => {
                    if let Some(state) = find(id) {
                        let ty = if matches!(change, Change::OrgCreated(_)) {
                            "organization.created"
                        } else {
                            "organization.updated"
                        };
                        out.push((ty, org_json(state)));
                    }
                }
                Change::OrgDeleted(id) => {
                    let slug = find(id).map(|s| s.org.slug.as_str());
                    out.push((
                        "organization.deleted",
                        shapes::deleted_organization(id, slug),
                    ));
                }
                Change::MemberCreated(m) | Change::MemberUpdated(m) | Change::MemberDeleted(m) => {
                    let ty = match change {
                        Change::MemberCreated(_) => "organizationMembership.created",
                        Change::MemberUpdated(_) => "organizationMembership.updated",
                        _ => "organizationMembership.deleted",
                    };
                    let org = find(&m.organization_id)
                        .map(org_json)
                        .unwrap_or(Value::Null);
                    let users = read::member_users(c, &self.schema, &[m.user_id.as_str()]).await?;
                    out.push((ty, shapes::membership(m, org, users.first())));
                }
                Change::InvitationCreated(i) => {
                    out.push((
                        "organizationInvitation.created",
                        shapes::invitation(i, None),
                    ));
                }
                Change::InvitationAccepted(i, user_id) => {
                    out.push((
                        "organizationInvitation.accepted",
                        shapes::invitation(i, Some(user_id)),
                    ));
                }
                Change::InvitationRevoked(i) => {
                    out.push((
                        "organizationInvitation.revoked",
                        shapes::invitation(i, None),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A password moved into Kernia (lazy migration, reset, social sign-in):
    /// queue `user.updated` (and `cutover.user.migrated` when configured)
    /// inside the caller's transaction.
    pub async fn migrated(
        &self,
        conn: &mut Conn<'_>,
        user_id: &str,
        method: &str,
    ) -> Result<(), DbError> {
        let Some(u) = read::user(conn, &self.schema, user_id).await? else {
            return Ok(());
        };
        let data = shapes::user(&u);
        let mut events = vec![("user.updated", data.clone())];
        if self.cfg.migration_event {
            let mut d = serde_json::json!({"object": "cutover.migration", "user_id": user_id, "method": method});
            d["user"] = data;
            events.push(("cutover.user.migrated", d));
        }
        self.queue(conn, user_id, &events, &RequestAttributes::default())
            .await?;
        Ok(())
    }

    /// Write one outbox row per (event, endpoint that wants it).
    async fn queue(
        &self,
        conn: &mut Conn<'_>,
        ordering_key: &str,
        events: &[(&'static str, Value)],
        attributes: &RequestAttributes,
    ) -> Result<usize, DbError> {
        let now = outbox::now_ms();
        let mut rows = Vec::new();
        for (ty, data) in events {
            let msg_id = outbox::new_msg_id();
            let body = shapes::envelope(ty, data.clone(), &self.cfg.instance_id, now, attributes)
                .to_string();
            for endpoint in self.cfg.endpoints.iter().filter(|e| e.wants(ty)) {
                rows.push(NewDelivery {
                    msg_id: msg_id.clone(),
                    kind: Kind::Webhook,
                    event_type: (*ty).to_string(),
                    ordering_key: Some(ordering_key.to_string()),
                    destination: endpoint.url.clone(),
                    payload: body.clone(),
                    due_at: now,
                });
            }
        }
        outbox::store::enqueue(conn, &rows, now).await?;
        Ok(events.len())
    }

    /// A test event to every endpoint (`cutover webhooks send-test`).
    pub async fn send_test(&self) -> Result<String, DbError> {
        let data =
            serde_json::json!({"object": "cutover.test", "message": "a test event from cutover"});
        let now = outbox::now_ms();
        let msg_id = outbox::new_msg_id();
        let body = shapes::envelope(
            "cutover.test",
            data,
            &self.cfg.instance_id,
            now,
            &RequestAttributes::default(),
        )
        .to_string();
        let rows: Vec<NewDelivery> = self
            .cfg
            .endpoints
            .iter()
            .map(|e| NewDelivery {
                msg_id: msg_id.clone(),
                kind: Kind::Webhook,
                event_type: "cutover.test".into(),
                ordering_key: None,
                destination: e.url.clone(),
                payload: body.clone(),
                due_at: now,
            })
            .collect();
        let mut tx = self.db.begin().await?;
        outbox::store::enqueue(&mut tx.conn(), &rows, now).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(msg_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_triggers() {
        let post = Method::POST;
        assert_eq!(classify(&post, "/sign-up/email"), Some(Trigger::SignUp));
        assert_eq!(classify(&post, "/sign-in/email"), Some(Trigger::SignIn));
        assert_eq!(
            classify(&Method::GET, "/callback/google"),
            Some(Trigger::SignIn)
        );
        assert_eq!(classify(&post, "/update-user"), Some(Trigger::UserUpdated));
        assert_eq!(
            classify(&post, "/change-password"),
            Some(Trigger::UserUpdated)
        );
        assert_eq!(classify(&post, "/delete-user"), Some(Trigger::UserDeleted));
        assert_eq!(classify(&post, "/sign-out"), Some(Trigger::SignOut));
        assert_eq!(
            classify(&post, "/revoke-other-sessions"),
            Some(Trigger::Revoke)
        );
        assert_eq!(
            classify(&post, "/organization/accept-invitation"),
            Some(Trigger::Organization)
        );
        // Reads change nothing.
        assert_eq!(classify(&Method::GET, "/get-session"), None);
        assert_eq!(classify(&post, "/organization/list"), None);
        assert_eq!(classify(&post, "/organization/set-active"), None);
        assert_eq!(classify(&Method::GET, "/update-user"), None);
    }

    #[test]
    fn every_trigger_type_is_known() {
        for t in [
            "user.created",
            "session.revoked",
            "organizationInvitation.accepted",
        ] {
            assert!(KNOWN_TYPES.contains(&t));
        }
    }
}
