//! Phase two of the request path: which upstream, or an answer of our own.
//!
//! [`decide`] is pure: it looks at the normalized path, who the caller is (from
//! identify), what cutover knows about that user (migrated? email?), the
//! browser's pin cookie and the settings, and returns a [`Decision`]. No I/O, so
//! every rule is unit-tested here. The rules, in order:
//!
//! 1. a denied path → 404 from cutover (Kernia 0.1.0 serves
//!    `/admin/create-user`, `/two-factor/view-backup-codes` and
//!    `/admin/has-permission` without authentication; they are denied by
//!    default);
//! 2. anything under Kernia's auth base path → kernia;
//! 3. a Kernia session → kernia (and the browser is pinned to Kernia);
//! 4. a Clerk session → legacy, unless the user is migrated and
//!    `reauth_migrated_clerk_sessions` is on: then re-authenticate at Kernia.
//!    The browser's pin follows the user's own bucket (or an override), so their
//!    next sign-in happens on the side the rollout chose for *them*;
//! 5. nobody → the kill switch sends everyone to legacy; otherwise the pin
//!    decides, and a browser without one gets a fresh random pin.

pub mod paths;
pub mod rollout;

use std::collections::HashSet;

use rollout::Pin;

/// Who the caller is, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    Kernia {
        /// The user's pin subject ([`rollout::UserSubject::of`] the id),
        /// made once per cached identity.
        subject: &'a str,
    },
    /// A correctly signed Kernia cookie whose session could not be looked up
    /// (database trouble): it goes to Kernia, which will check it itself.
    KerniaUnverified,
    Clerk {
        user_id: &'a str,
        org_id: Option<&'a str>,
        /// As for `Kernia`.
        subject: &'a str,
    },
    Anonymous,
}

/// What cutover knows about a Clerk-identified user (from the ledger).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserFacts<'a> {
    pub migrated: bool,
    pub email: Option<&'a str>,
}

/// Where the request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Legacy,
    Kernia,
    /// 404 from cutover.
    Deny,
    /// A migrated user still on a Clerk session: sign in again at Kernia
    /// (a redirect for page loads, `401 REAUTHENTICATE` for API calls).
    Reauthenticate,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Legacy => "legacy",
            Route::Kernia => "kernia",
            Route::Deny => "deny",
            Route::Reauthenticate => "reauthenticate",
        }
    }
}

/// Why — one word for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    DeniedPath,
    AuthRoute,
    KerniaSession,
    KerniaSessionUnverified,
    ClerkSession,
    ClerkSessionMigratedUser,
    KillSwitch,
    Rollout,
    NewBrowser,
    MigratedPin,
    OverrideAllow,
    OverrideDeny,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DeniedPath => "denied_path",
            Reason::AuthRoute => "auth_route",
            Reason::KerniaSession => "kernia_session",
            Reason::KerniaSessionUnverified => "kernia_session_unverified",
            Reason::ClerkSession => "clerk_session",
            Reason::ClerkSessionMigratedUser => "clerk_session_migrated_user",
            Reason::KillSwitch => "kill_switch",
            Reason::Rollout => "rollout",
            Reason::NewBrowser => "new_browser",
            Reason::MigratedPin => "migrated_pin",
            Reason::OverrideAllow => "override_allow",
            Reason::OverrideDeny => "override_deny",
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub route: Route,
    pub reason: Reason,
    /// A new value for the pin cookie, when it should change.
    pub set_pin: Option<Pin>,
}

/// Allow and deny lists: allow sends a known user to kernia, deny keeps them on
/// legacy. Deny wins over allow.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub allow_users: HashSet<String>,
    pub deny_users: HashSet<String>,
    /// Lower-case domains, without `@`.
    pub allow_email_domains: HashSet<String>,
    pub deny_email_domains: HashSet<String>,
    pub allow_orgs: HashSet<String>,
    pub deny_orgs: HashSet<String>,
}

impl Overrides {
    fn verdict(&self, user_id: &str, org_id: Option<&str>, email: Option<&str>) -> Option<bool> {
        let domain = email
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let hit = |users: &HashSet<String>, domains: &HashSet<String>, orgs: &HashSet<String>| {
            users.contains(user_id)
                || domain.as_ref().is_some_and(|d| domains.contains(d))
                || org_id.is_some_and(|o| orgs.contains(o))
        };
        if hit(&self.deny_users, &self.deny_email_domains, &self.deny_orgs) {
            Some(false)
        } else if hit(
            &self.allow_users,
            &self.allow_email_domains,
            &self.allow_orgs,
        ) {
            Some(true)
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.allow_users.is_empty()
            && self.deny_users.is_empty()
            && self.allow_email_domains.is_empty()
            && self.deny_email_domains.is_empty()
            && self.allow_orgs.is_empty()
            && self.deny_orgs.is_empty()
    }
}

/// The routing settings (from `[rollout]` and `[routes]`).
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// Kernia's auth base path, e.g. `/api/auth`.
    pub base_path: String,
    /// Normalized paths answered with 404 (exact match).
    pub denied: HashSet<String>,
    /// Share of subjects sent to kernia, 0–100.
    pub percentage: f64,
    pub kill_switch: bool,
    pub salt: String,
    pub reauth_migrated_clerk_sessions: bool,
    pub overrides: Overrides,
}

/// Pure routing. `path` must be [`paths::normalize`]d.
pub fn decide(
    s: &RouteSettings,
    path: &str,
    who: Who<'_>,
    facts: UserFacts<'_>,
    pin: Option<&Pin>,
) -> Decision {
    let keep = |route, reason| Decision {
        route,
        reason,
        set_pin: None,
    };
    if s.denied.contains(path) {
        return keep(Route::Deny, Reason::DeniedPath);
    }
    if paths::is_under(path, &s.base_path) {
        return keep(Route::Kernia, Reason::AuthRoute);
    }
    match who {
        Who::Kernia { subject } => Decision {
            route: Route::Kernia,
            reason: Reason::KerniaSession,
            set_pin: changed_to(pin, Pin::Migrated, subject),
        },
        Who::KerniaUnverified => keep(Route::Kernia, Reason::KerniaSessionUnverified),
        Who::Clerk {
            user_id,
            org_id,
            subject,
        } => {
            let verdict = s.overrides.verdict(user_id, org_id, facts.email);
            let user_pin: fn(String) -> Pin = match verdict {
                _ if facts.migrated => Pin::Migrated,
                Some(true) => Pin::Allowed,
                Some(false) => Pin::Denied,
                None => Pin::User,
            };
            let set_pin = changed_to(pin, user_pin, subject);
            if facts.migrated && s.reauth_migrated_clerk_sessions {
                Decision {
                    route: Route::Reauthenticate,
                    reason: Reason::ClerkSessionMigratedUser,
                    set_pin,
                }
            } else {
                Decision {
                    route: Route::Legacy,
                    reason: Reason::ClerkSession,
                    set_pin,
                }
            }
        }
        Who::Anonymous => {
            if s.kill_switch {
                return keep(Route::Legacy, Reason::KillSwitch);
            }
            // The browser's own pin is only read (no copy per request).
            let new_pin;
            let (pin, set_pin, fresh) = match pin {
                Some(p) => (p, None, false),
                None => {
                    new_pin = Pin::new_browser();
                    (&new_pin, Some(new_pin.clone()), true)
                }
            };
            let (route, reason) = match pin {
                Pin::Migrated(_) => (Route::Kernia, Reason::MigratedPin),
                Pin::Allowed(_) => (Route::Kernia, Reason::OverrideAllow),
                Pin::Denied(_) => (Route::Legacy, Reason::OverrideDeny),
                _ => {
                    let side = if rollout::to_kernia(&s.salt, pin, s.percentage) {
                        Route::Kernia
                    } else {
                        Route::Legacy
                    };
                    (
                        side,
                        if fresh {
                            Reason::NewBrowser
                        } else {
                            Reason::Rollout
                        },
                    )
                }
            };
            Decision {
                route,
                reason,
                set_pin,
            }
        }
    }
}

/// The pin `make(subject)`, unless the browser carries it already: the
/// common case, compared without building it.
fn changed_to(current: Option<&Pin>, make: fn(String) -> Pin, subject: &str) -> Option<Pin> {
    // An empty `String` does not allocate: this only names the kind.
    let kind = make(String::new()).kind();
    match current {
        Some(p) if p.kind() == kind && p.subject() == subject => None,
        _ => Some(make(subject.to_owned())),
    }
}

#[cfg(test)]
mod tests;
