//! The checked, normalized records the import works with, one per input record.
//!
//! Parsing (`csv_export`, `bapi`) turns Clerk's rows and objects into these and
//! reports every bad value with its location; everything after works only with
//! values already known to fit Kernia. They are also what the sort files hold
//! (postcard, see `stage::Staged::encode_into`), so they carry just what the
//! mapping needs.

use serde::{Deserialize, Serialize};

use super::sensitive::Sensitive;

/// One row of the dashboard CSV export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvUser {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// As exported (case kept, for `displayUsername`).
    pub username: Option<String>,
    /// Normalized (trimmed, lower-cased).
    pub primary_email: Option<String>,
    /// E.164.
    pub primary_phone: Option<String>,
    pub verified_emails: Vec<String>,
    pub unverified_emails: Vec<String>,
    pub verified_phones: Vec<String>,
    pub unverified_phones: Vec<String>,
    /// Base32, upper-case, no padding.
    pub totp_secret: Option<Sensitive>,
    pub digest: Option<Sensitive>,
    /// Normalized (trimmed, lower-cased).
    pub hasher: Option<String>,
    /// From an optional trailing `created_at` column, epoch seconds.
    pub created_at: Option<i64>,
    /// The line the row starts on, for messages.
    pub line: u64,
}

/// An email address or phone number and whether Clerk had verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    pub value: String,
    pub verified: bool,
}

/// A social (OAuth) account linked to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalAccount {
    /// Clerk's id of the account (`idn_…`), kept as the Kernia `account.id`.
    pub id: String,
    /// The provider without `oauth_`, e.g. `google`.
    pub provider_id: String,
    /// The provider's user id.
    pub account_id: String,
    pub scope: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// One user object of the Backend API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUser {
    pub id: String,
    pub primary_email: Option<Identifier>,
    /// Every other address, normalized.
    pub other_emails: Vec<String>,
    pub primary_phone: Option<Identifier>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub image: Option<String>,
    pub banned: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub accounts: Vec<ExternalAccount>,
    pub has_passkeys: bool,
    pub backup_codes: bool,
    /// `totp_enabled` as the API said it, when it said it.
    pub totp_enabled: Option<bool>,
    /// `password_enabled`, when the API said it (live sync: a social-only
    /// user who set a password at Clerk can be verified live).
    #[serde(default)]
    pub password_enabled: Option<bool>,
    /// `password_last_updated_at`, epoch seconds: a change after the digest
    /// was exported makes the digest stale.
    #[serde(default)]
    pub password_last_updated_at: Option<i64>,
    /// The record's JSON path, for messages.
    pub path: String,
}

/// One organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub logo: Option<String>,
    /// `public_metadata`, as JSON text; `None` when absent or empty.
    pub metadata: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// One organization membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    /// Clerk's role key, e.g. `org:admin`.
    pub role: String,
    /// Whether this member created the organization (`created_by`).
    pub is_creator: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

/// One organization invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub id: String,
    pub organization_id: String,
    /// Normalized.
    pub email: String,
    pub role: String,
    pub status: String,
    pub inviter_id: Option<String>,
    pub expires_at: Option<i64>,
    /// The expiry as exported (milliseconds) when Kernia could not store it
    /// and `expires_at` holds the clamped value instead.
    #[serde(default)]
    pub expiry_clamped_from: Option<i64>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}
