//! The JSON API of the admin listener: the rollout (read, change, history)
//! and the status. A change goes through the same [`store::change`] as
//! `cutover rollout …`, is applied here at once and announced to every copy.

use std::collections::BTreeSet;

use http::{Response, StatusCode};
use serde::Deserialize;

use super::{Admin, Body, error, json};
use crate::control::rollout::{self, Lists, Rollout};
use crate::control::store::{self, Changed, ControlError, Interface, Provenance};
use crate::control::{live, progress};

/// `PUT /api/rollout`: every field optional except `reason`. A list given
/// replaces that list; lists not given stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    percentage: Option<f64>,
    kill_switch: Option<bool>,
    reauth_migrated_clerk_sessions: Option<bool>,
    allow: Option<ListsPatch>,
    deny: Option<ListsPatch>,
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListsPatch {
    users: Option<BTreeSet<String>>,
    email_domains: Option<BTreeSet<String>>,
    orgs: Option<BTreeSet<String>>,
}

impl ListsPatch {
    fn apply(&self, l: &Lists) -> Lists {
        Lists {
            users: self.users.clone().unwrap_or_else(|| l.users.clone()),
            email_domains: self
                .email_domains
                .as_ref()
                .map(|d| d.iter().map(|x| rollout::normalize_domain(x)).collect())
                .unwrap_or_else(|| l.email_domains.clone()),
            orgs: self.orgs.clone().unwrap_or_else(|| l.orgs.clone()),
        }
    }
}

impl Patch {
    fn apply(&self, r: &Rollout) -> Rollout {
        Rollout {
            percentage: self.percentage.unwrap_or(r.percentage),
            kill_switch: self.kill_switch.unwrap_or(r.kill_switch),
            reauth_migrated_clerk_sessions: self
                .reauth_migrated_clerk_sessions
                .unwrap_or(r.reauth_migrated_clerk_sessions),
            allow: self
                .allow
                .as_ref()
                .map_or(r.allow.clone(), |p| p.apply(&r.allow)),
            deny: self
                .deny
                .as_ref()
                .map_or(r.deny.clone(), |p| p.apply(&r.deny)),
        }
    }
}

/// What this copy routes by.
pub(super) fn rollout(admin: &Admin) -> Response<Body> {
    let a = admin.app.routing.applied();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "version": a.version,
            "rollout": a.rollout,
            "applied_at_ms": a.applied_at_ms,
            "stale": admin.app.routing.is_stale(),
        }),
    )
}

pub(super) async fn change(admin: &Admin, body: &[u8]) -> Response<Body> {
    let patch: Patch = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad change: {e}")),
    };
    let reason = patch.reason.clone().unwrap_or_default();
    if reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "`reason` is required: say why (it goes in the audit trail)",
        );
    }
    let who = Provenance {
        reason: &reason,
        interface: Interface::Api,
        actor: None,
    };
    let app = &admin.app;
    let changed = store::change(&app.db, |r| Ok(patch.apply(r)), &who).await;
    match changed {
        Ok(Changed::Unchanged(s)) => json(
            StatusCode::OK,
            &serde_json::json!({ "version": s.version, "changed": [], "rollout": s.rollout }),
        ),
        Ok(Changed::Done {
            before,
            after,
            diff,
            changed_at_ms,
        }) => {
            crate::metrics::record_rollout_change("api");
            let (old, new) = (before.rollout.percentage, after.rollout.percentage);
            let moved = if old != new {
                store::users_between(
                    &app.db,
                    &admin.salt,
                    &after.rollout,
                    old.min(new),
                    old.max(new),
                )
                .await
                .ok()
            } else {
                None
            };
            let version = after.version;
            let rollout = after.rollout.clone();
            app.routing.offer(after);
            let announced = live::announce(&app.state, version).await;
            tracing::info!(
                version,
                change = %rollout::describe(&diff),
                reason = %reason,
                "rollout changed through the admin API"
            );
            let from: serde_json::Map<String, serde_json::Value> = diff
                .iter()
                .map(|(k, (a, _))| (k.to_string(), a.clone()))
                .collect();
            let to: serde_json::Map<String, serde_json::Value> = diff
                .iter()
                .map(|(k, (_, b))| (k.to_string(), b.clone()))
                .collect();
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "version": version,
                    "changed_at_ms": changed_at_ms,
                    "changed": diff.keys().collect::<Vec<_>>(),
                    "from": from,
                    "to": to,
                    "rollout": rollout,
                    "users_moved": moved,
                    "direction": if new < old { "back_to_legacy" } else if new > old { "to_kernia" } else { "none" },
                    "announced": announced,
                }),
            )
        }
        Err(ControlError::Invalid(m)) => error(StatusCode::UNPROCESSABLE_ENTITY, &m),
        Err(e) => {
            tracing::error!(error = %e, "cannot change the rollout");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the rollout cannot be changed right now (database unavailable)",
            )
        }
    }
}

/// `?name=value` of a small query string.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) async fn history(admin: &Admin, query: Option<&str>) -> Response<Body> {
    let limit = match query_param(query, "limit").map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "limit must be 1–10000"),
    };
    match store::history(&admin.app.db, limit).await {
        Ok(entries) => json(StatusCode::OK, &serde_json::json!({ "history": entries })),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the rollout history");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
        }
    }
}

pub(super) async fn status(admin: &Admin, query: Option<&str>) -> Response<Body> {
    let days = match query_param(query, "active_days").map(str::parse::<i64>) {
        None => progress::DEFAULT_ACTIVE_DAYS,
        Some(Ok(n)) if (1..=3650).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "active_days must be 1–3650"),
    };
    let applied = admin.app.routing.applied();
    match progress::compute(&admin.app.db, days).await {
        Ok(p) => json(
            StatusCode::OK,
            &serde_json::json!({
                "progress": p,
                "rollout": { "version": applied.version, "rollout": applied.rollout, "stale": admin.app.routing.is_stale() },
                "copy": { "version": env!("CARGO_PKG_VERSION"), "shared_state": admin.app.state.backend_name() },
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot compute the status");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            )
        }
    }
}
