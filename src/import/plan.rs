//! The mapping: what one Clerk user becomes in Kernia. Pure
//! code over the checked records of one user id.
//!
//! The CSV brings the password digest and TOTP secret; the Backend API brings
//! verification status, external accounts, image, banned and times. Where both
//! say something, the API wins (it is the richer and usually the newer source).
//! Decisions on points the references leave open are documented on each item.

use crate::db::kernia::NewUser;
use crate::db::ledger::{LedgerState, NewLedgerEntry};

use super::hashers;
use super::issue::{Entity, Issue, IssueKind, Location};
use super::normalize::{self, MAX_TEXT};
use super::records::{ApiUser, CsvUser, ExternalAccount};
use super::sensitive::Sensitive;

/// Every record the input holds for one user id.
#[derive(Debug, Default)]
pub struct UserGroup {
    pub id: String,
    pub csv: Vec<CsvUser>,
    pub api: Vec<ApiUser>,
    /// Problems with records of this id, found while parsing.
    pub bad: Vec<Issue>,
}

/// What to write for one user.
#[derive(Debug)]
pub struct UserPlan {
    pub user: NewUser,
    pub accounts: Vec<ExternalAccount>,
    pub totp_secret: Option<Sensitive>,
    pub ledger: NewLedgerEntry,
    /// Warnings and re-enrolment notes, recorded if the user is imported.
    pub notes: Vec<Issue>,
    /// Set when another user of the export keeps one of this user's unique
    /// values ([`super::duplicates`]): then this one is a conflict.
    pub loses_to: Option<super::duplicates::Loss>,
    /// What the Backend API said about the account now, when it was an input
    /// (a later run or a webhook refreshes a pending user with it).
    pub clerk: Option<ClerkNow>,
}

/// The Backend API's word on an account's current state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClerkNow {
    pub banned: bool,
    pub password_enabled: Option<bool>,
    /// `password_last_updated_at`, epoch seconds.
    pub password_changed_at: Option<i64>,
}

/// A user's fate, decided before any database is asked.
#[derive(Debug)]
pub enum Planned {
    User(Box<UserPlan>),
    Invalid(Vec<Issue>),
}

/// Map one user. `now` stands in for a creation time neither source gives.
pub fn plan(group: UserGroup, csv_name: &str, now: i64) -> Planned {
    if !group.bad.is_empty() {
        return Planned::Invalid(group.bad);
    }
    let id = group.id;
    let mut notes = Vec::new();
    let mut csv_rows = group.csv.into_iter();
    let csv = csv_rows.next();
    for extra in csv_rows {
        notes.push(warn(
            &id,
            format!(
                "the CSV has more than one row for this user; line {} was used, line {} ignored",
                csv.as_ref().map_or(0, |c| c.line),
                extra.line
            ),
        ));
    }
    let mut api_users = group.api.into_iter();
    let api = api_users.next();
    for extra in api_users {
        notes.push(warn(
            &id,
            format!(
                "the API export has this user more than once; {} was used, {} ignored",
                api.as_ref().map_or("", |a| a.path.as_str()),
                extra.path
            ),
        ));
    }
    let invalid = |message: &str| {
        let at = match (&csv, &api) {
            (Some(c), _) => Location::csv(csv_name, c.line),
            (None, Some(a)) => Location::json("api", a.path.clone()),
            (None, None) => Location::file(csv_name),
        };
        Planned::Invalid(vec![Issue::invalid(Entity::User, Some(&id), at, message)])
    };

    // Email: the API's primary address, else the CSV's; verified as the API
    // says, or (CSV only) unless the CSV lists it as unverified — Clerk does not
    // let an unverified address become primary in its normal flows.
    let csv_email = csv.as_ref().and_then(|c| {
        c.primary_email.clone().map(|e| {
            let verified = !c.unverified_emails.contains(&e);
            (e, verified)
        })
    });
    let email = match api.as_ref().and_then(|a| a.primary_email.clone()) {
        Some(e) => Some((e.value, e.verified)),
        None => csv_email,
    };
    let phone = match api.as_ref().and_then(|a| a.primary_phone.clone()) {
        Some(p) => Some((p.value, p.verified)),
        None => csv.as_ref().and_then(|c| {
            c.primary_phone
                .clone()
                .map(|p| (p.clone(), !c.unverified_phones.contains(&p)))
        }),
    };
    let display_username = api
        .as_ref()
        .and_then(|a| a.username.clone())
        .or_else(|| csv.as_ref().and_then(|c| c.username.clone()));
    let username = display_username
        .as_ref()
        .map(|u| crate::identifier::username(u));

    // Kernia needs an email. Without one, use the placeholder Kernia's own
    // username and phone-number plugins use, so the user signs in with those.
    let (kernia_email, email_verified, real_email) = match &email {
        Some((e, v)) => (e.clone(), *v, Some(e.clone())),
        None => match (&username, &phone) {
            (Some(u), _) => (format!("{u}@username.local"), false, None),
            (None, Some((p, _))) => (format!("{p}@phone.local"), false, None),
            (None, None) => {
                return invalid("no email address, username or phone number: Kernia needs one");
            }
        },
    };
    if kernia_email.len() > MAX_TEXT {
        return invalid("the placeholder email would be longer than 255 bytes");
    }

    let mut secondary: Vec<String> = Vec::new();
    let candidates = api.iter().flat_map(|a| a.other_emails.iter()).chain(
        csv.iter()
            .flat_map(|c| c.verified_emails.iter().chain(c.unverified_emails.iter())),
    );
    for e in candidates {
        if Some(e) != real_email.as_ref() && !secondary.contains(e) {
            secondary.push(e.clone());
        }
    }

    let (first, last) = match &api {
        Some(a) if a.first_name.is_some() || a.last_name.is_some() => {
            (a.first_name.clone(), a.last_name.clone())
        }
        _ => csv
            .as_ref()
            .map(|c| (c.first_name.clone(), c.last_name.clone()))
            .unwrap_or_default(),
    };
    let mut name = normalize::full_name(first.as_deref(), last.as_deref());
    if let Some(n) = name.as_mut()
        && normalize::clip(n)
    {
        notes.push(warn(&id, "the name was cut to 255 bytes".into()));
    }
    let mut image = api.as_ref().and_then(|a| a.image.clone());
    if image.as_ref().is_some_and(|i| i.len() > MAX_TEXT) {
        image = None;
        notes.push(warn(
            &id,
            "the image URL is longer than Kernia's 255 bytes and was left out".into(),
        ));
    }
    let created_at = api
        .as_ref()
        .and_then(|a| a.created_at)
        .or_else(|| csv.as_ref().and_then(|c| c.created_at))
        .unwrap_or(now);
    let updated_at = api
        .as_ref()
        .and_then(|a| a.updated_at)
        .unwrap_or(created_at);

    // TOTP: the CSV's secret, unless the API says TOTP is off now (the secret
    // would put the user behind a factor they no longer have).
    let api_totp = api.as_ref().and_then(|a| a.totp_enabled);
    let mut totp_secret = csv.as_ref().and_then(|c| c.totp_secret.clone());
    if totp_secret.is_some() && api_totp == Some(false) {
        totp_secret = None;
        notes.push(warn(
            &id,
            "the CSV has a TOTP secret but the API says TOTP is off: not imported".into(),
        ));
    }
    let totp_lost = totp_secret.is_none() && api_totp == Some(true);
    let had_backup_codes = api.as_ref().is_some_and(|a| a.backup_codes);
    let had_passkeys = api.as_ref().is_some_and(|a| a.has_passkeys);
    let mut lost = Vec::new();
    if had_backup_codes {
        lost.push("backup codes");
    }
    if had_passkeys {
        lost.push("passkeys");
    }
    if totp_lost {
        lost.push("an authenticator app (no TOTP secret in the export)");
    }
    if !lost.is_empty() {
        notes.push(Issue::new(
            IssueKind::Reenrol,
            Entity::User,
            Some(&id),
            format!(
                "had {} at Clerk: ask them to set it up again",
                lost.join(", ")
            ),
        ));
    }

    let mut accounts: Vec<ExternalAccount> = Vec::new();
    for mut a in api.as_ref().map(|a| a.accounts.clone()).unwrap_or_default() {
        if accounts
            .iter()
            .any(|b| b.provider_id == a.provider_id && b.account_id == a.account_id)
        {
            continue;
        }
        if let Some(scope) = a.scope.as_mut()
            && normalize::clip(scope)
        {
            notes.push(warn(
                &id,
                format!("the {} scopes were cut to 255 bytes", a.provider_id),
            ));
        }
        accounts.push(a);
    }

    let digest = csv.as_ref().and_then(|c| c.digest.clone());
    let hasher = csv.as_ref().and_then(|c| c.hasher.clone());
    let state = match (&digest, &hasher) {
        (Some(_), Some(h)) if hashers::is_verifiable(h) => LedgerState::PendingPassword,
        (Some(_), _) => LedgerState::PendingReset,
        (None, _) if !accounts.is_empty() => LedgerState::SocialOnly,
        (None, _) => LedgerState::PendingReset,
    };
    let user = NewUser {
        id: id.clone(),
        email: kernia_email,
        email_verified,
        name,
        image,
        created_at,
        updated_at,
        username: username.clone(),
        display_username,
        phone_number: phone.as_ref().map(|p| p.0.clone()),
        phone_number_verified: phone.as_ref().is_some_and(|p| p.1),
        two_factor_enabled: totp_secret.is_some(),
        banned: api.as_ref().is_some_and(|a| a.banned),
    };
    let ledger = NewLedgerEntry {
        user_id: id,
        email: real_email,
        username,
        phone: phone.map(|p| p.0),
        secondary_emails: secondary,
        hasher: if digest.is_some() { hasher } else { None },
        digest: digest.map(|d| d.expose().to_string()),
        state: Some(state),
        had_backup_codes,
        had_passkeys,
    };
    let clerk = api.as_ref().map(|a| ClerkNow {
        banned: a.banned,
        password_enabled: a.password_enabled,
        password_changed_at: a.password_last_updated_at,
    });
    Planned::User(Box::new(UserPlan {
        user,
        accounts,
        totp_secret,
        ledger,
        notes,
        loses_to: None,
        clerk,
    }))
}

fn warn(id: &str, message: String) -> Issue {
    Issue::new(IssueKind::Warning, Entity::User, Some(id), message)
}

#[cfg(test)]
mod tests;
