//! The live rollout as a value: what the database stores, what a change does
//! to it, and how it feeds the pure [`crate::route::decide`].
//!
//! [`Rollout`] is the part of `[rollout]` an operator changes while cutover
//! runs: the percentage, the kill switch, re-authentication of migrated Clerk
//! sessions and the allow/deny overrides. The salt is not in it: changing the
//! salt re-deals every bucket, so it stays in the file.
//!
//! A change is a function from the current rollout to the next one; [`diff`]
//! names what it changed (for the audit trail) and [`validate`] refuses what
//! cannot be stored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::route::{Overrides, RouteSettings};

/// The live rollout settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// Share of subjects sent to kernia, 0–100.
    pub percentage: f64,
    pub kill_switch: bool,
    pub reauth_migrated_clerk_sessions: bool,
    #[serde(default)]
    pub allow: Lists,
    #[serde(default)]
    pub deny: Lists,
}

/// One side of the overrides. Sorted sets, so the stored JSON is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lists {
    #[serde(default)]
    pub users: BTreeSet<String>,
    /// Lower-case, without `@`.
    #[serde(default)]
    pub email_domains: BTreeSet<String>,
    #[serde(default)]
    pub orgs: BTreeSet<String>,
}

impl Lists {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.email_domains.is_empty() && self.orgs.is_empty()
    }
}

/// Which list an override names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    User,
    Domain,
    Org,
}

impl Rollout {
    /// The `[rollout]` part of the file's routing settings.
    pub fn from_settings(s: &RouteSettings) -> Rollout {
        let set = |h: &std::collections::HashSet<String>| h.iter().cloned().collect();
        let o = &s.overrides;
        Rollout {
            percentage: s.percentage,
            kill_switch: s.kill_switch,
            reauth_migrated_clerk_sessions: s.reauth_migrated_clerk_sessions,
            allow: Lists {
                users: set(&o.allow_users),
                email_domains: set(&o.allow_email_domains),
                orgs: set(&o.allow_orgs),
            },
            deny: Lists {
                users: set(&o.deny_users),
                email_domains: set(&o.deny_email_domains),
                orgs: set(&o.deny_orgs),
            },
        }
    }

    /// The file's static settings (base path, denied paths, salt) with this
    /// rollout in place of the file's.
    pub fn apply_to(&self, file: &RouteSettings) -> RouteSettings {
        let set = |b: &BTreeSet<String>| b.iter().cloned().collect();
        RouteSettings {
            base_path: file.base_path.clone(),
            denied: file.denied.clone(),
            salt: file.salt.clone(),
            percentage: self.percentage,
            kill_switch: self.kill_switch,
            reauth_migrated_clerk_sessions: self.reauth_migrated_clerk_sessions,
            overrides: Overrides {
                allow_users: set(&self.allow.users),
                deny_users: set(&self.deny.users),
                allow_email_domains: set(&self.allow.email_domains),
                deny_email_domains: set(&self.deny.email_domains),
                allow_orgs: set(&self.allow.orgs),
                deny_orgs: set(&self.deny.orgs),
            },
        }
    }

    /// Add (or, with `remove`, take away) one override. Adding to one side
    /// takes the entry off the other, so "allow X" after "deny X" means allow.
    pub fn set_override(&mut self, allow: bool, subject: Subject, value: &str, remove: bool) {
        let value = match subject {
            Subject::Domain => normalize_domain(value),
            _ => value.trim().to_string(),
        };
        let (this, other) = if allow {
            (&mut self.allow, &mut self.deny)
        } else {
            (&mut self.deny, &mut self.allow)
        };
        if remove {
            this.list(subject).remove(&value);
        } else {
            other.list(subject).remove(&value);
            this.list(subject).insert(value);
        }
    }
}

impl Lists {
    fn list(&mut self, subject: Subject) -> &mut BTreeSet<String> {
        match subject {
            Subject::User => &mut self.users,
            Subject::Domain => &mut self.email_domains,
            Subject::Org => &mut self.orgs,
        }
    }
}

/// `@Example.COM ` → `example.com`.
pub fn normalize_domain(raw: &str) -> String {
    raw.trim().trim_start_matches('@').to_ascii_lowercase()
}

/// Why a rollout cannot be stored.
pub fn validate(r: &Rollout) -> Result<(), String> {
    if !r.percentage.is_finite() || !(0.0..=100.0).contains(&r.percentage) {
        return Err(format!(
            "percentage must be between 0 and 100, not {}",
            r.percentage
        ));
    }
    for (side, lists) in [("allow", &r.allow), ("deny", &r.deny)] {
        for d in &lists.email_domains {
            if d.is_empty() || d.contains('@') || d.contains('/') || d.contains(' ') {
                return Err(format!(
                    "{side}: `{d}` is not an email domain such as example.com"
                ));
            }
        }
        for (kind, set) in [("user", &lists.users), ("organization", &lists.orgs)] {
            for v in set {
                if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
                    return Err(format!("{side}: `{v}` is not a {kind} id"));
                }
            }
        }
    }
    let total = r.allow.users.len()
        + r.allow.email_domains.len()
        + r.allow.orgs.len()
        + r.deny.users.len()
        + r.deny.email_domains.len()
        + r.deny.orgs.len();
    if total > MAX_OVERRIDES {
        return Err(format!(
            "at most {MAX_OVERRIDES} overrides in all (this change makes {total})"
        ));
    }
    Ok(())
}

/// Overrides are for named exceptions, not for moving cohorts: the percentage does that.
pub const MAX_OVERRIDES: usize = 10_000;

/// What one change did, field by field: `(field, from, to)` as JSON values.
pub type Diff = BTreeMap<&'static str, (serde_json::Value, serde_json::Value)>;

/// The fields that differ between two rollouts.
pub fn diff(old: &Rollout, new: &Rollout) -> Diff {
    let mut d = Diff::new();
    let json = |v: &dyn erased::ToJson| v.to_json();
    if old.percentage != new.percentage {
        d.insert("percentage", (json(&old.percentage), json(&new.percentage)));
    }
    if old.kill_switch != new.kill_switch {
        d.insert(
            "kill_switch",
            (json(&old.kill_switch), json(&new.kill_switch)),
        );
    }
    if old.reauth_migrated_clerk_sessions != new.reauth_migrated_clerk_sessions {
        d.insert(
            "reauth_migrated_clerk_sessions",
            (
                json(&old.reauth_migrated_clerk_sessions),
                json(&new.reauth_migrated_clerk_sessions),
            ),
        );
    }
    for (name, a, b) in [
        ("allow.users", &old.allow.users, &new.allow.users),
        (
            "allow.email_domains",
            &old.allow.email_domains,
            &new.allow.email_domains,
        ),
        ("allow.orgs", &old.allow.orgs, &new.allow.orgs),
        ("deny.users", &old.deny.users, &new.deny.users),
        (
            "deny.email_domains",
            &old.deny.email_domains,
            &new.deny.email_domains,
        ),
        ("deny.orgs", &old.deny.orgs, &new.deny.orgs),
    ] {
        if a != b {
            d.insert(name, (json(a), json(b)));
        }
    }
    d
}

mod erased {
    pub trait ToJson {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> ToJson for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

/// One line for people: `percentage 5 → 12.5; kill_switch false → true`.
pub fn describe(d: &Diff) -> String {
    d.iter()
        .map(|(k, (a, b))| format!("{k} {a} → {b}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Rollout {
        Rollout {
            percentage: 5.0,
            kill_switch: false,
            reauth_migrated_clerk_sessions: false,
            allow: Lists::default(),
            deny: Lists::default(),
        }
    }

    #[test]
    fn allowing_takes_the_entry_off_the_deny_list() {
        let mut r = base();
        r.set_override(false, Subject::User, "user_1", false);
        r.set_override(true, Subject::User, "user_1", false);
        assert!(r.allow.users.contains("user_1"));
        assert!(!r.deny.users.contains("user_1"));
        r.set_override(true, Subject::Domain, " @Example.COM", false);
        assert!(r.allow.email_domains.contains("example.com"));
        r.set_override(true, Subject::Domain, "example.com", true);
        assert!(r.allow.email_domains.is_empty());
    }

    #[test]
    fn diff_names_only_what_changed() {
        let a = base();
        let mut b = base();
        b.percentage = 12.5;
        b.deny.orgs.insert("org_1".into());
        let d = diff(&a, &b);
        assert_eq!(
            d.keys().copied().collect::<Vec<_>>(),
            ["deny.orgs", "percentage"]
        );
        assert_eq!(
            describe(&d),
            "deny.orgs [] → [\"org_1\"]; percentage 5.0 → 12.5"
        );
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn validation_refuses_what_routing_could_not_use() {
        let mut r = base();
        r.percentage = 100.5;
        assert!(validate(&r).is_err());
        r.percentage = f64::NAN;
        assert!(validate(&r).is_err());
        let mut r = base();
        r.allow.email_domains.insert("a@b".into());
        assert!(validate(&r).is_err());
        assert!(validate(&base()).is_ok());
    }

    #[test]
    fn the_stored_form_round_trips_and_applies_to_the_file_settings() {
        let mut r = base();
        r.allow.users.insert("user_1".into());
        let text = serde_json::to_string(&r).unwrap();
        let back: Rollout = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let file = RouteSettings {
            base_path: "/api/auth".into(),
            denied: Default::default(),
            percentage: 0.0,
            kill_switch: true,
            salt: "s".into(),
            reauth_migrated_clerk_sessions: false,
            overrides: Default::default(),
        };
        let live = r.apply_to(&file);
        assert_eq!(live.percentage, 5.0);
        assert!(!live.kill_switch);
        assert_eq!(live.salt, "s");
        assert!(live.overrides.allow_users.contains("user_1"));
    }
}
