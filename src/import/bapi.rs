//! Clerk Backend API objects as they arrive (reference `clerk.md` §3, §5), and
//! their checked, normalized [`records`](super::records).
//!
//! The wire types are tolerant: every field Clerk may leave out or send as
//! `null` is optional, and unknown fields are ignored, because Clerk adds fields
//! between API versions. What the mapping needs is then checked field by field;
//! each problem names the element's JSON path. All times are milliseconds.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::issue::{Entity, Issue, Location};
use super::normalize;
use super::records::{ApiUser, ExternalAccount, Identifier, InviteRecord, MemberRecord, OrgRecord};

#[derive(Debug, Deserialize)]
pub struct User {
    pub id: Option<String>,
    pub primary_email_address_id: Option<String>,
    pub primary_phone_number_id: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image_url: Option<String>,
    pub has_image: Option<bool>,
    pub email_addresses: Option<Vec<EmailAddress>>,
    pub phone_numbers: Option<Vec<PhoneNumber>>,
    pub external_accounts: Option<Vec<ExternalAccountJson>>,
    pub passkeys: Option<Vec<IgnoredAny>>,
    pub backup_code_enabled: Option<bool>,
    pub totp_enabled: Option<bool>,
    pub password_enabled: Option<bool>,
    pub password_last_updated_at: Option<i64>,
    pub banned: Option<bool>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct Verification {
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct EmailAddress {
    pub id: Option<String>,
    pub email_address: Option<String>,
    pub verification: Option<Verification>,
}

#[derive(Debug, Deserialize)]
pub struct PhoneNumber {
    pub id: Option<String>,
    pub phone_number: Option<String>,
    pub verification: Option<Verification>,
}

#[derive(Debug, Deserialize)]
pub struct ExternalAccountJson {
    pub id: Option<String>,
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub approved_scopes: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

fn verified(v: &Option<Verification>) -> bool {
    v.as_ref()
        .and_then(|v| v.status.as_deref())
        .is_some_and(|s| s == "verified")
}

/// Collects the problems of one element, each with its path.
struct Check<'a> {
    file: &'a str,
    path: &'a str,
    entity: Entity,
    id: Option<String>,
    issues: Vec<Issue>,
}

impl Check<'_> {
    fn bad(&mut self, field: &str, message: String) {
        let at = Location::json(self.file, format!("{}{field}", self.path));
        self.issues
            .push(Issue::invalid(self.entity, self.id.as_deref(), at, message));
    }

    fn required(&mut self, field: &str, value: Option<&str>) -> String {
        match normalize::non_empty(value) {
            Some(v) if v.len() <= normalize::MAX_TEXT => v.to_string(),
            Some(_) => {
                self.bad(field, format!("longer than {} bytes", normalize::MAX_TEXT));
                String::new()
            }
            None => {
                self.bad(field, "is missing or empty".into());
                String::new()
            }
        }
    }

    fn time(&mut self, field: &str, ms: Option<i64>) -> Option<i64> {
        match ms.map(normalize::ms_to_secs)? {
            Ok(s) => Some(s),
            Err(message) => {
                self.bad(field, message);
                None
            }
        }
    }

    fn done<T>(self, value: T) -> Result<T, (Option<String>, Vec<Issue>)> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err((self.id, self.issues))
        }
    }
}

/// Outcome of checking one element: the record, or its id (when readable) and problems.
pub type Checked<T> = Result<T, (Option<String>, Vec<Issue>)>;

impl User {
    pub fn check(self, file: &str, path: &str) -> Checked<ApiUser> {
        let mut c = Check {
            file,
            path,
            entity: Entity::User,
            id: normalize::non_empty(self.id.as_deref()).map(str::to_string),
            issues: Vec::new(),
        };
        let id = c.required(".id", self.id.as_deref());
        let mut primary_email = None;
        let mut other_emails = Vec::new();
        for (i, e) in self.email_addresses.iter().flatten().enumerate() {
            let Some(raw) = normalize::non_empty(e.email_address.as_deref()) else {
                continue;
            };
            match normalize::email(raw) {
                Ok(value) => {
                    let is_primary = e.id.is_some() && e.id == self.primary_email_address_id;
                    if is_primary && primary_email.is_none() {
                        primary_email = Some(Identifier {
                            value,
                            verified: verified(&e.verification),
                        });
                    } else if !other_emails.contains(&value) {
                        other_emails.push(value);
                    }
                }
                Err(m) => c.bad(&format!(".email_addresses[{i}].email_address"), m),
            }
        }
        let mut primary_phone = None;
        for (i, p) in self.phone_numbers.iter().flatten().enumerate() {
            if p.id.is_none() || p.id != self.primary_phone_number_id {
                continue;
            }
            match normalize::non_empty(p.phone_number.as_deref()).map(normalize::phone) {
                Some(Ok(value)) => {
                    primary_phone = Some(Identifier {
                        value,
                        verified: verified(&p.verification),
                    })
                }
                Some(Err(m)) => c.bad(&format!(".phone_numbers[{i}].phone_number"), m),
                None => {}
            }
        }
        let mut accounts = Vec::new();
        for (i, a) in self.external_accounts.iter().flatten().enumerate() {
            let at = format!(".external_accounts[{i}]");
            let account_id = c.required(&format!("{at}.id"), a.id.as_deref());
            let provider = c.required(&format!("{at}.provider"), a.provider.as_deref());
            let provider_user_id = c.required(
                &format!("{at}.provider_user_id"),
                a.provider_user_id.as_deref(),
            );
            let provider_id = provider
                .strip_prefix("oauth_")
                .unwrap_or(&provider)
                .to_string();
            let scope = normalize::non_empty(a.approved_scopes.as_deref()).map(str::to_string);
            accounts.push(ExternalAccount {
                id: account_id,
                provider_id,
                account_id: provider_user_id,
                scope,
                created_at: c.time(&format!("{at}.created_at"), a.created_at),
                updated_at: c.time(&format!("{at}.updated_at"), a.updated_at),
            });
        }
        let username = normalize::non_empty(self.username.as_deref()).map(str::to_string);
        if username
            .as_ref()
            .is_some_and(|u| u.len() > normalize::MAX_TEXT)
        {
            c.bad(
                ".username",
                format!("longer than {} bytes", normalize::MAX_TEXT),
            );
        }
        // Clerk always answers an image_url (a generated avatar when the user
        // has none); only a picture the user set is worth keeping.
        let image = match self.has_image {
            Some(false) => None,
            _ => normalize::non_empty(self.image_url.as_deref()).map(str::to_string),
        };
        let user = ApiUser {
            id,
            primary_email,
            other_emails,
            primary_phone,
            username,
            first_name: normalize::non_empty(self.first_name.as_deref()).map(str::to_string),
            last_name: normalize::non_empty(self.last_name.as_deref()).map(str::to_string),
            image,
            banned: self.banned.unwrap_or(false),
            created_at: c.time(".created_at", self.created_at),
            updated_at: c.time(".updated_at", self.updated_at),
            accounts,
            has_passkeys: self.passkeys.is_some_and(|p| !p.is_empty()),
            backup_codes: self.backup_code_enabled.unwrap_or(false),
            totp_enabled: self.totp_enabled,
            password_enabled: self.password_enabled,
            password_last_updated_at: c
                .time(".password_last_updated_at", self.password_last_updated_at),
            path: path.to_string(),
        };
        c.done(user)
    }
}

#[derive(Debug, Deserialize)]
pub struct Organization {
    pub id: Option<String>,
    pub name: Option<String>,
    pub slug: Option<String>,
    pub image_url: Option<String>,
    pub has_image: Option<bool>,
    pub public_metadata: Option<serde_json::Value>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl Organization {
    pub fn check(self, file: &str, path: &str) -> Checked<OrgRecord> {
        let mut c = Check {
            file,
            path,
            entity: Entity::Organization,
            id: normalize::non_empty(self.id.as_deref()).map(str::to_string),
            issues: Vec::new(),
        };
        let id = c.required(".id", self.id.as_deref());
        let name = c.required(".name", self.name.as_deref());
        // Slugs can be switched off in Clerk; Kernia needs a unique one.
        let slug = match normalize::non_empty(self.slug.as_deref()) {
            Some(_) => c.required(".slug", self.slug.as_deref()),
            None => id.to_lowercase(),
        };
        let logo = match self.has_image {
            Some(false) => None,
            _ => normalize::non_empty(self.image_url.as_deref()).map(str::to_string),
        };
        let metadata = match self.public_metadata {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Object(m)) if m.is_empty() => None,
            Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
            Some(_) => {
                c.bad(".public_metadata", "is not a JSON object".into());
                None
            }
        };
        let org = OrgRecord {
            id,
            name,
            slug,
            logo,
            metadata,
            created_at: c.time(".created_at", self.created_at),
            updated_at: c.time(".updated_at", self.updated_at),
        };
        c.done(org)
    }
}

#[derive(Debug, Deserialize)]
pub struct Membership {
    pub id: Option<String>,
    pub role: Option<String>,
    pub organization: Option<MembershipOrganization>,
    /// Not in Clerk's shape, but accepted when the organization is not embedded.
    pub organization_id: Option<String>,
    pub public_user_data: Option<PublicUserData>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct MembershipOrganization {
    pub id: Option<String>,
    pub created_by: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PublicUserData {
    pub user_id: Option<String>,
}

impl Membership {
    pub fn check(self, file: &str, path: &str) -> Checked<MemberRecord> {
        let mut c = Check {
            file,
            path,
            entity: Entity::Membership,
            id: normalize::non_empty(self.id.as_deref()).map(str::to_string),
            issues: Vec::new(),
        };
        let id = c.required(".id", self.id.as_deref());
        let (org_field, org_id) = match self.organization.as_ref().and_then(|o| o.id.as_deref()) {
            Some(org) => (".organization.id", Some(org)),
            None => (".organization_id", self.organization_id.as_deref()),
        };
        let organization_id = c.required(org_field, org_id);
        let user_id = c.required(
            ".public_user_data.user_id",
            self.public_user_data
                .as_ref()
                .and_then(|u| u.user_id.as_deref()),
        );
        let role = c.required(".role", self.role.as_deref());
        let is_creator = self
            .organization
            .as_ref()
            .and_then(|o| o.created_by.as_deref())
            .is_some_and(|creator| creator == user_id);
        let member = MemberRecord {
            id,
            organization_id,
            user_id,
            role,
            is_creator,
            created_at: c.time(".created_at", self.created_at),
            updated_at: c.time(".updated_at", self.updated_at),
        };
        c.done(member)
    }
}

#[derive(Debug, Deserialize)]
pub struct OrganizationInvitation {
    pub id: Option<String>,
    pub email_address: Option<String>,
    pub role: Option<String>,
    pub organization_id: Option<String>,
    pub inviter_id: Option<String>,
    pub status: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl OrganizationInvitation {
    /// Status first: only a pending invitation moves, so an accepted or
    /// revoked one is never "invalid" for its other fields (it is skipped as
    /// not pending when written). A pending invitation whose expiry Kernia's
    /// 32-bit column cannot hold is kept with the expiry clamped, and says so.
    pub fn check(self, file: &str, path: &str) -> Checked<InviteRecord> {
        let mut c = Check {
            file,
            path,
            entity: Entity::Invitation,
            id: normalize::non_empty(self.id.as_deref()).map(str::to_string),
            issues: Vec::new(),
        };
        let id = c.required(".id", self.id.as_deref());
        let status = normalize::non_empty(self.status.as_deref())
            .unwrap_or("pending")
            .to_string();
        if status != "pending" {
            let text = |v: Option<&str>| normalize::non_empty(v).unwrap_or("").to_string();
            let invite = InviteRecord {
                id,
                organization_id: text(self.organization_id.as_deref()),
                email: text(self.email_address.as_deref()),
                role: text(self.role.as_deref()),
                status,
                inviter_id: None,
                expires_at: None,
                expiry_clamped_from: None,
                created_at: None,
                updated_at: None,
            };
            return c.done(invite);
        }
        let email = match normalize::non_empty(self.email_address.as_deref()) {
            Some(raw) => normalize::email(raw).unwrap_or_else(|m| {
                c.bad(".email_address", m);
                String::new()
            }),
            None => {
                c.bad(".email_address", "is missing or empty".into());
                String::new()
            }
        };
        let (expires_at, expiry_clamped_from) = match self.expires_at {
            None => (None, None),
            Some(ms) => match normalize::ms_to_secs(ms) {
                Ok(secs) => (Some(secs), None),
                Err(_) => (Some(clamp_secs(ms)), Some(ms)),
            },
        };
        let invite = InviteRecord {
            id,
            organization_id: c.required(".organization_id", self.organization_id.as_deref()),
            email,
            role: c.required(".role", self.role.as_deref()),
            status,
            inviter_id: normalize::non_empty(self.inviter_id.as_deref()).map(str::to_string),
            expires_at,
            expiry_clamped_from,
            created_at: c.time(".created_at", self.created_at),
            updated_at: c.time(".updated_at", self.updated_at),
        };
        c.done(invite)
    }
}

/// Milliseconds as epoch seconds within what Kernia's 32-bit `INTEGER` dates
/// hold: 0 to 2038-01-19T03:14:07Z.
pub fn clamp_secs(ms: i64) -> i64 {
    ms.div_euclid(1000).clamp(0, i64::from(i32::MAX))
}

#[cfg(test)]
mod tests;
