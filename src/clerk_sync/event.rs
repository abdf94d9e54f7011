//! Clerk's webhook events, parsed into what the sync applies. Pure code.
//!
//! The envelope is `{type, object: "event", timestamp (ms), instance_id,
//! data}` (reference `clerk.md` §8.2); `data` is the resource in Backend API
//! shape, so users, organizations, memberships and invitations go through the
//! very checks `import` uses ([`crate::import::bapi`]).
//!
//! Every event carries a **version** in milliseconds: the resource's
//! `updated_at` when it has one, else the envelope's `timestamp` (deletions).
//! The sync applies a change only when its version is newer than the last one
//! applied to that object, which makes out-of-order and repeated deliveries
//! converge on Clerk's latest state.

use serde::Deserialize;

use crate::import::bapi;
use crate::import::records::{ApiUser, InviteRecord, MemberRecord, OrgRecord};

/// One event, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    UserUpsert(Box<ApiUser>),
    UserDeleted {
        id: String,
    },
    OrgUpsert(OrgRecord),
    OrgDeleted {
        id: String,
    },
    MemberUpsert(MemberRecord),
    MemberDeleted {
        id: String,
    },
    InviteCreated(InviteRecord),
    /// Accepted or revoked: the invitation is no longer pending.
    InviteClosed {
        id: String,
        status: &'static str,
    },
    /// A type the sync does not act on (sessions, emails, roles…).
    Ignored,
}

/// An event with its type and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub event_type: String,
    pub version_ms: i64,
    pub event: Event,
}

impl Parsed {
    /// The Clerk id the event is about, when there is one.
    pub fn object_id(&self) -> Option<&str> {
        match &self.event {
            Event::UserUpsert(u) => Some(&u.id),
            Event::UserDeleted { id }
            | Event::OrgDeleted { id }
            | Event::MemberDeleted { id }
            | Event::InviteClosed { id, .. } => Some(id),
            Event::OrgUpsert(o) => Some(&o.id),
            Event::MemberUpsert(m) => Some(&m.id),
            Event::InviteCreated(i) => Some(&i.id),
            Event::Ignored => None,
        }
    }

    /// The kind of object, for the version table.
    pub fn kind(&self) -> &'static str {
        match &self.event {
            Event::UserUpsert(_) | Event::UserDeleted { .. } => "user",
            Event::OrgUpsert(_) | Event::OrgDeleted { .. } => "organization",
            Event::MemberUpsert(_) | Event::MemberDeleted { .. } => "membership",
            Event::InviteCreated(_) | Event::InviteClosed { .. } => "invitation",
            Event::Ignored => "other",
        }
    }

    /// Whether the event deletes its object (or closes it for good).
    pub fn is_deletion(&self) -> bool {
        matches!(
            self.event,
            Event::UserDeleted { .. }
                | Event::OrgDeleted { .. }
                | Event::MemberDeleted { .. }
                | Event::InviteClosed { .. }
        )
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: Option<String>,
    timestamp: Option<i64>,
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Deleted {
    id: Option<String>,
}

/// Why a signed body is not an event the sync can apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

const FILE: &str = "webhook";

/// Parse one verified webhook body.
pub fn parse(body: &[u8]) -> Result<Parsed, EventError> {
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| EventError(format!("not a Clerk event envelope: {e}")))?;
    let event_type = env
        .event_type
        .filter(|t| !t.is_empty())
        .ok_or_else(|| EventError("the event has no `type`".into()))?;
    let timestamp = env
        .timestamp
        .ok_or_else(|| EventError("the event has no `timestamp`".into()))?;
    let data = env.data.unwrap_or(serde_json::Value::Null);
    let updated = data.get("updated_at").and_then(|v| v.as_i64());
    let version_ms = updated.unwrap_or(timestamp);
    let bad = |what: &str, issues: Vec<crate::import::Issue>| {
        let detail: Vec<String> = issues.iter().map(|i| i.message.clone()).collect();
        EventError(format!("{what}: {}", detail.join("; ")))
    };
    let deleted_id = |data: serde_json::Value| -> Result<String, EventError> {
        let d: Deleted = serde_json::from_value(data)
            .map_err(|e| EventError(format!("`data` is not a deleted object: {e}")))?;
        d.id.filter(|i| !i.is_empty())
            .ok_or_else(|| EventError("`data.id` is missing".into()))
    };
    let typed = |e: serde_json::Error| EventError(format!("`data` has an unexpected shape: {e}"));
    let event = match event_type.as_str() {
        "user.created" | "user.updated" => {
            let u: bapi::User = serde_json::from_value(data).map_err(typed)?;
            let user = u
                .check(FILE, "$.data")
                .map_err(|(_, i)| bad("bad user", i))?;
            Event::UserUpsert(Box::new(user))
        }
        "user.deleted" => Event::UserDeleted {
            id: deleted_id(data)?,
        },
        "organization.created" | "organization.updated" => {
            let o: bapi::Organization = serde_json::from_value(data).map_err(typed)?;
            Event::OrgUpsert(
                o.check(FILE, "$.data")
                    .map_err(|(_, i)| bad("bad organization", i))?,
            )
        }
        "organization.deleted" => Event::OrgDeleted {
            id: deleted_id(data)?,
        },
        "organizationMembership.created" | "organizationMembership.updated" => {
            let m: bapi::Membership = serde_json::from_value(data).map_err(typed)?;
            Event::MemberUpsert(
                m.check(FILE, "$.data")
                    .map_err(|(_, i)| bad("bad membership", i))?,
            )
        }
        "organizationMembership.deleted" => Event::MemberDeleted {
            id: deleted_id(data)?,
        },
        "organizationInvitation.created" => {
            let i: bapi::OrganizationInvitation = serde_json::from_value(data).map_err(typed)?;
            Event::InviteCreated(
                i.check(FILE, "$.data")
                    .map_err(|(_, i)| bad("bad invitation", i))?,
            )
        }
        "organizationInvitation.accepted" => Event::InviteClosed {
            id: deleted_id(data)?,
            status: "accepted",
        },
        "organizationInvitation.revoked" => Event::InviteClosed {
            id: deleted_id(data)?,
            // Better Auth's (and Kernia's) word for a withdrawn invitation.
            status: "canceled",
        },
        _ => Event::Ignored,
    };
    // A deletion carries no `updated_at`: it happened at the event's time.
    let version_ms = match event {
        Event::UserDeleted { .. } | Event::OrgDeleted { .. } => timestamp,
        _ => version_ms,
    };
    Ok(Parsed {
        event_type,
        version_ms,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_event(kind: &str, updated: i64) -> String {
        serde_json::json!({
            "object": "event", "type": kind, "timestamp": 1_700_000_000_500i64,
            "instance_id": "ins_1",
            "data": {
                "object": "user", "id": "user_1",
                "primary_email_address_id": "idn_1",
                "email_addresses": [{"id": "idn_1", "email_address": " Jane@X.com ",
                    "verification": {"status": "verified"}}],
                "password_enabled": true,
                "password_last_updated_at": 1_700_000_000_000i64,
                "banned": false,
                "created_at": 1_600_000_000_000i64, "updated_at": updated
            }
        })
        .to_string()
    }

    #[test]
    fn a_user_event_is_mapped_like_import_and_versioned_by_updated_at() {
        let p = parse(user_event("user.updated", 1_700_000_000_123).as_bytes()).unwrap();
        assert_eq!(p.version_ms, 1_700_000_000_123);
        let Event::UserUpsert(u) = &p.event else {
            panic!("{p:?}")
        };
        assert_eq!(u.primary_email.as_ref().unwrap().value, "jane@x.com");
        assert_eq!(u.password_last_updated_at, Some(1_700_000_000));
        assert_eq!(u.password_enabled, Some(true));
        assert_eq!(p.object_id(), Some("user_1"));
    }

    #[test]
    fn deletions_are_versioned_by_the_event_timestamp() {
        let body = r#"{"type":"user.deleted","timestamp":1700000009000,"object":"event",
            "data":{"object":"user","id":"user_1","deleted":true}}"#;
        let p = parse(body.as_bytes()).unwrap();
        assert_eq!(
            p.event,
            Event::UserDeleted {
                id: "user_1".into()
            }
        );
        assert_eq!(p.version_ms, 1_700_000_009_000);
        assert!(p.is_deletion());
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_bodies_refused() {
        let p =
            parse(br#"{"type":"session.created","timestamp":1,"data":{"id":"sess_1"}}"#).unwrap();
        assert_eq!(p.event, Event::Ignored);
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"timestamp":1,"data":{}}"#).is_err());
        assert!(parse(br#"{"type":"user.deleted","timestamp":1,"data":{}}"#).is_err());
        assert!(parse(br#"{"type":"user.updated","timestamp":1,"data":{"id":""}}"#).is_err());
    }

    #[test]
    fn invitations_close_as_accepted_or_canceled() {
        let p = parse(
            br#"{"type":"organizationInvitation.revoked","timestamp":5,"data":{"id":"orginv_1","updated_at":7}}"#,
        )
        .unwrap();
        assert_eq!(
            p.event,
            Event::InviteClosed {
                id: "orginv_1".into(),
                status: "canceled"
            }
        );
        assert_eq!(p.version_ms, 7);
    }
}
