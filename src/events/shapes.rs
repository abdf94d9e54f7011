//! Clerk's Backend API JSON, built from Kernia's rows (pure).
//!
//! Kernia keeps less than Clerk: one email per user, one `name`, no metadata
//! on users, one role word per membership. What is exact, approximated or
//! absent is listed field by field in `docs/WEBHOOKS.md`; the rules:
//! - times: Kernia's epoch seconds × 1000 (Clerk sends milliseconds);
//! - `first_name` / `last_name`: Kernia's `name` split at the first space
//!   (the inverse of how `cutover import` joins them);
//! - identification ids (`idn_…`): Kernia has none, so they are derived from
//!   the user id and the address (stable: the same address keeps its id);
//! - roles: `owner`/`admin` → `org:admin`, `member` → `org:member`, other
//!   words → `org:<word>`.

use serde_json::{Value, json};

use super::read::{InvitationRow, MemberRow, OrgRow, SessionRow, UserRow};

pub fn ms(secs: i64) -> i64 {
    secs.saturating_mul(1000)
}

/// A stable `idn_…` id for one identifier of one user.
pub fn identification_id(user_id: &str, kind: &str, value: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{kind}\0{user_id}\0{value}").as_bytes());
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let tail: String = digest
        .iter()
        .take(27)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("idn_{tail}")
}

/// `name` split at its first space: `("Ada", "Lovelace King")`.
pub fn split_name(name: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return (None, None);
    };
    match name.split_once(' ') {
        Some((first, last)) => (Some(first.to_string()), Some(last.trim().to_string())),
        None => (Some(name.to_string()), None),
    }
}

/// Kernia's role word → Clerk's role key.
pub fn clerk_role(role: &str) -> String {
    match role {
        "owner" | "admin" => "org:admin".into(),
        "member" => "org:member".into(),
        r if r.starts_with("org:") => r.into(),
        r => format!("org:{r}"),
    }
}

fn role_name(key: &str) -> String {
    let word = key.strip_prefix("org:").unwrap_or(key);
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn permissions(key: &str) -> Vec<&'static str> {
    match key {
        "org:admin" => vec![
            "org:sys_profile:manage",
            "org:sys_profile:delete",
            "org:sys_memberships:read",
            "org:sys_memberships:manage",
            "org:sys_domains:read",
            "org:sys_domains:manage",
        ],
        _ => vec!["org:sys_memberships:read"],
    }
}

fn verification(verified: bool, strategy: &str) -> Value {
    json!({
        "object": "verification_from_oauth",
        "status": if verified { "verified" } else { "unverified" },
        "strategy": strategy,
        "attempts": null,
        "expire_at": null,
    })
}

/// A Backend API User (`object: "user"`).
pub fn user(u: &UserRow) -> Value {
    let (first_name, last_name) = split_name(u.name.as_deref());
    let email_id = identification_id(&u.id, "email", &u.email);
    let linked: Vec<Value> = u
        .social
        .iter()
        .map(|(provider, account_id, _, _)| {
            json!({"type": format!("oauth_{provider}"), "id": identification_id(&u.id, provider, account_id)})
        })
        .collect();
    let mut email_verification = verification(u.email_verified, "email_code");
    email_verification["object"] = json!("verification_email_code");
    let emails = vec![json!({
        "id": email_id,
        "object": "email_address",
        "email_address": u.email,
        "reserved": false,
        "verification": email_verification,
        "linked_to": linked,
        "matches_sso_connection": false,
        "created_at": ms(u.created_at),
        "updated_at": ms(u.updated_at),
    })];
    let (phones, phone_id) = match &u.phone_number {
        Some(phone) => {
            let id = identification_id(&u.id, "phone", phone);
            let mut v = verification(u.phone_number_verified, "phone_code");
            v["object"] = json!("verification_phone_code");
            (
                vec![json!({
                    "id": id,
                    "object": "phone_number",
                    "phone_number": phone,
                    "reserved_for_second_factor": false,
                    "default_second_factor": false,
                    "reserved": false,
                    "verification": v,
                    "linked_to": [],
                    "backup_codes": null,
                    "created_at": ms(u.created_at),
                    "updated_at": ms(u.updated_at),
                })],
                Some(id),
            )
        }
        None => (Vec::new(), None),
    };
    let external: Vec<Value> = u
        .social
        .iter()
        .map(|(provider, account_id, created, updated)| {
            json!({
                "object": "external_account",
                "id": identification_id(&u.id, provider, account_id),
                "provider": format!("oauth_{provider}"),
                "identification_id": identification_id(&u.id, provider, account_id),
                "provider_user_id": account_id,
                "approved_scopes": "",
                "email_address": u.email,
                "first_name": first_name,
                "last_name": last_name,
                "image_url": u.image.clone().unwrap_or_default(),
                "username": null,
                "phone_number": null,
                "public_metadata": {},
                "label": null,
                "verification": verification(true, &format!("oauth_{provider}")),
                "created_at": ms(*created),
                "updated_at": ms(*updated),
            })
        })
        .collect();
    let head = json!({
        "id": u.id,
        "object": "user",
        "external_id": null,
        "primary_email_address_id": email_id,
        "primary_phone_number_id": phone_id,
        "primary_web3_wallet_id": null,
        "username": u.username,
        "first_name": first_name,
        "last_name": last_name,
        "locale": null,
        "image_url": u.image.clone().unwrap_or_default(),
        "profile_image_url": u.image.clone().unwrap_or_default(),
        "has_image": u.image.is_some(),
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "email_addresses": emails,
        "phone_numbers": phones,
        "web3_wallets": [],
        "passkeys": [],
    });
    // Two halves: one `json!` this size exceeds the macro's recursion limit.
    let rest = json!({
        "password_enabled": u.password_enabled,
        "two_factor_enabled": u.two_factor_enabled,
        "totp_enabled": u.two_factor_enabled,
        "backup_code_enabled": false,
        "mfa_enabled_at": null,
        "mfa_disabled_at": null,
        "password_last_updated_at": null,
        "external_accounts": external,
        "saml_accounts": [],
        "enterprise_accounts": [],
        "organization_memberships": null,
        "last_sign_in_at": u.last_sign_in_at.map(ms),
        "last_active_at": u.last_sign_in_at.map(ms),
        "banned": u.banned,
        "locked": false,
        "deprovisioned": false,
        "lockout_expires_in_seconds": null,
        "verification_attempts_remaining": null,
        "delete_self_enabled": true,
        "create_organization_enabled": true,
        "create_organizations_limit": null,
        "legal_accepted_at": null,
        "bypass_client_trust": false,
        "created_at": ms(u.created_at),
        "updated_at": ms(u.updated_at),
    });
    if let (Value::Object(mut head), Value::Object(tail)) = (head, rest) {
        head.extend(tail);
        return Value::Object(head);
    }
    Value::Null
}

/// `user.deleted`'s data.
pub fn deleted_user(id: &str) -> Value {
    json!({"object": "user", "id": id, "deleted": true})
}

/// A Backend API Session with its `user` (status: `active`, `ended`, `revoked`).
pub fn session(s: &SessionRow, status: &str, user: Option<Value>) -> Value {
    json!({
        "object": "session",
        "id": s.id,
        "client_id": format!("client_{}", s.id),
        "user_id": s.user_id,
        "status": status,
        "last_active_organization_id": null,
        "actor": null,
        "latest_activity": null,
        "last_active_at": ms(s.updated_at),
        "expire_at": ms(s.expires_at),
        "abandon_at": ms(s.expires_at),
        "created_at": ms(s.created_at),
        "updated_at": ms(s.updated_at),
        "user": user,
    })
}

/// A Backend API Organization.
pub fn organization(
    o: &OrgRow,
    members: Option<usize>,
    pending: Option<usize>,
    created_by: Option<&str>,
) -> Value {
    let public: Value = o
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    json!({
        "object": "organization",
        "id": o.id,
        "name": o.name,
        "slug": o.slug,
        "image_url": o.logo.clone().unwrap_or_default(),
        "has_image": o.logo.is_some(),
        "members_count": members,
        "pending_invitations_count": pending,
        "max_allowed_memberships": 0,
        "admin_delete_enabled": true,
        "public_metadata": public,
        "private_metadata": {},
        "created_by": created_by,
        "created_at": ms(o.created_at),
        "updated_at": ms(o.updated_at.unwrap_or(o.created_at)),
        "last_active_at": null,
        "missing_member_with_elevated_permissions": false,
        "role_set_key": null,
    })
}

/// `organization.deleted`'s data.
pub fn deleted_organization(id: &str, slug: Option<&str>) -> Value {
    json!({"object": "organization", "id": id, "slug": slug, "deleted": true})
}

/// The member's public user data: `(id, name, image, email, username)`.
pub type PublicUser = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// A Backend API OrganizationMembership.
pub fn membership(m: &MemberRow, org: Value, user: Option<&PublicUser>) -> Value {
    let key = clerk_role(&m.role);
    let (first, last) = split_name(user.and_then(|u| u.1.as_deref()));
    let image = user.and_then(|u| u.2.clone());
    json!({
        "object": "organization_membership",
        "id": m.id,
        "role": key,
        "role_name": role_name(&key),
        "permissions": permissions(&key),
        "public_metadata": {},
        "private_metadata": {},
        "organization": org,
        "public_user_data": {
            "user_id": m.user_id,
            "first_name": first,
            "last_name": last,
            "image_url": image.clone().unwrap_or_default(),
            "has_image": image.is_some(),
            "identifier": user.map(|u| u.3.clone()).unwrap_or_default(),
            "username": user.and_then(|u| u.4.clone()),
            "banned": false,
            "deprovisioned": false,
        },
        "created_at": ms(m.created_at),
        "updated_at": ms(m.updated_at.unwrap_or(m.created_at)),
    })
}

/// Kernia's invitation status → Clerk's (`cancelled` and `rejected` are
/// `revoked` at Clerk, which has no separate rejection).
pub fn invitation_status(status: &str) -> &'static str {
    match status {
        "accepted" => "accepted",
        "expired" => "expired",
        "cancelled" | "canceled" | "rejected" | "revoked" => "revoked",
        _ => "pending",
    }
}

/// A Backend API OrganizationInvitation; `accepted_by` adds `user_id`.
pub fn invitation(i: &InvitationRow, accepted_by: Option<&str>) -> Value {
    let key = clerk_role(i.role.as_deref().unwrap_or("member"));
    let mut v = json!({
        "object": "organization_invitation",
        "id": i.id,
        "email_address": i.email,
        "role": key,
        "role_name": role_name(&key),
        "organization_id": i.organization_id,
        "inviter_id": i.inviter_id,
        "status": invitation_status(&i.status),
        "public_metadata": {},
        "private_metadata": {},
        "url": null,
        "expires_at": i.expires_at.map(ms),
        "created_at": ms(i.created_at),
        "updated_at": ms(i.updated_at.unwrap_or(i.created_at)),
    });
    if let Some(user_id) = accepted_by {
        v["user_id"] = json!(user_id);
    }
    v
}

/// The event envelope Clerk sends.
pub fn envelope(
    event_type: &str,
    data: Value,
    instance_id: &str,
    timestamp_ms: i64,
    attributes: &RequestAttributes,
) -> Value {
    json!({
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": timestamp_ms,
        "instance_id": instance_id,
        "event_attributes": {
            "http_request": {
                "client_ip": attributes.client_ip,
                "user_agent": attributes.user_agent,
            }
        },
    })
}

/// What Clerk puts under `event_attributes.http_request`.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes {
    pub client_ip: String,
    pub user_agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_row() -> UserRow {
        UserRow {
            id: "user_2abc".into(),
            email: "ada@example.com".into(),
            email_verified: true,
            name: Some("Ada Lovelace King".into()),
            image: None,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_100,
            username: Some("ada".into()),
            phone_number: None,
            phone_number_verified: false,
            two_factor_enabled: false,
            banned: false,
            password_enabled: true,
            social: vec![(
                "google".into(),
                "g-123".into(),
                1_700_000_000,
                1_700_000_000,
            )],
            last_sign_in_at: Some(1_700_000_050),
        }
    }

    #[test]
    fn a_user_has_clerks_fields_with_millisecond_times() {
        let v = user(&user_row());
        assert_eq!(v["object"], "user");
        assert_eq!(v["id"], "user_2abc");
        assert_eq!(v["first_name"], "Ada");
        assert_eq!(v["last_name"], "Lovelace King");
        assert_eq!(v["created_at"], 1_700_000_000_000i64);
        assert_eq!(v["email_addresses"][0]["email_address"], "ada@example.com");
        assert_eq!(
            v["email_addresses"][0]["verification"]["status"],
            "verified"
        );
        assert_eq!(v["primary_email_address_id"], v["email_addresses"][0]["id"]);
        assert_eq!(v["external_accounts"][0]["provider"], "oauth_google");
        assert_eq!(
            v["email_addresses"][0]["linked_to"][0]["type"],
            "oauth_google"
        );
        assert!(v["primary_phone_number_id"].is_null());
        assert_eq!(v["password_enabled"], true);
    }

    #[test]
    fn identification_ids_are_stable_per_address_and_differ_between_them() {
        let a = identification_id("user_1", "email", "a@example.com");
        assert_eq!(a, identification_id("user_1", "email", "a@example.com"));
        assert_ne!(a, identification_id("user_1", "email", "b@example.com"));
        assert_ne!(a, identification_id("user_2", "email", "a@example.com"));
        assert!(a.starts_with("idn_") && a.len() == 31);
    }

    #[test]
    fn names_split_at_the_first_space() {
        assert_eq!(split_name(Some("Ada")), (Some("Ada".into()), None));
        assert_eq!(split_name(Some("  ")), (None, None));
        assert_eq!(split_name(None), (None, None));
        assert_eq!(
            split_name(Some("Jean Paul Sartre")),
            (Some("Jean".into()), Some("Paul Sartre".into()))
        );
    }

    #[test]
    fn roles_map_to_clerk_keys() {
        assert_eq!(clerk_role("owner"), "org:admin");
        assert_eq!(clerk_role("admin"), "org:admin");
        assert_eq!(clerk_role("member"), "org:member");
        assert_eq!(clerk_role("billing"), "org:billing");
        assert_eq!(role_name("org:member"), "Member");
        assert_eq!(invitation_status("cancelled"), "revoked");
        assert_eq!(invitation_status("rejected"), "revoked");
        assert_eq!(invitation_status("pending"), "pending");
    }

    #[test]
    fn the_envelope_is_clerks() {
        let v = envelope(
            "user.deleted",
            deleted_user("user_1"),
            "ins_1",
            1_700_000_000_123,
            &RequestAttributes::default(),
        );
        assert_eq!(v["object"], "event");
        assert_eq!(v["type"], "user.deleted");
        assert_eq!(v["timestamp"], 1_700_000_000_123i64);
        assert_eq!(v["instance_id"], "ins_1");
        assert_eq!(v["data"]["deleted"], true);
        assert!(v["event_attributes"]["http_request"].is_object());
    }
}
