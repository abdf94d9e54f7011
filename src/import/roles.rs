//! Clerk organization roles → Kernia member roles.
//!
//! Clerk role keys carry an `org:` prefix (`org:admin`, `org:member`, custom
//! `org:<key>`); Kernia's organization plugin knows `owner`, `admin` and
//! `member`. The default mapping is `org:admin` → `admin`, `org:member` →
//! `member`, and the organization's creator → `owner` — but only while the
//! creator still holds `org:admin` at Clerk, so a creator who was demoted does
//! not come back with more rights. Any other role is kept without its `org:`
//! prefix and reported: Kernia gives a role it does not know no permissions
//! unless the deployment defines it.

/// The configured mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap {
    map: Vec<(String, String)>,
    /// The role of an organization's creator who is still an admin; `None`
    /// turns the rule off.
    creator: Option<String>,
}

/// A mapped role, and whether it is a custom one (not in the mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRole {
    pub role: String,
    pub custom: bool,
}

impl Default for RoleMap {
    fn default() -> Self {
        RoleMap::new(Vec::new(), Some("owner".into()))
    }
}

impl RoleMap {
    /// `extra` adds to (or replaces entries of) the default mapping.
    pub fn new(extra: Vec<(String, String)>, creator: Option<String>) -> RoleMap {
        let mut map = vec![
            ("org:admin".to_string(), "admin".to_string()),
            ("org:member".to_string(), "member".to_string()),
        ];
        for (from, to) in extra {
            match map.iter_mut().find(|(f, _)| *f == from) {
                Some(slot) => slot.1 = to,
                None => map.push((from, to)),
            }
        }
        RoleMap { map, creator }
    }

    /// The Kernia role for a Clerk role key.
    pub fn map(&self, clerk_role: &str, is_creator: bool) -> MappedRole {
        if is_creator
            && clerk_role == "org:admin"
            && let Some(owner) = &self.creator
        {
            return MappedRole {
                role: owner.clone(),
                custom: false,
            };
        }
        match self.map.iter().find(|(f, _)| f == clerk_role) {
            Some((_, to)) => MappedRole {
                role: to.clone(),
                custom: false,
            },
            None => MappedRole {
                role: clerk_role
                    .strip_prefix("org:")
                    .unwrap_or(clerk_role)
                    .to_string(),
                custom: true,
            },
        }
    }

    /// A stable text of the mapping, part of a run's fingerprint.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.map.iter().map(|(f, t)| format!("{f}={t}")).collect();
        parts.push(format!("creator={}", self.creator.as_deref().unwrap_or("")));
        parts.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mapping_follows_the_design() {
        let m = RoleMap::default();
        assert_eq!(m.map("org:admin", false).role, "admin");
        assert_eq!(m.map("org:member", false).role, "member");
        assert_eq!(m.map("org:admin", true).role, "owner");
        // A demoted creator keeps the role they have now.
        assert_eq!(m.map("org:member", true).role, "member");
        let custom = m.map("org:billing_manager", false);
        assert_eq!(
            custom,
            MappedRole {
                role: "billing_manager".into(),
                custom: true
            }
        );
    }

    #[test]
    fn configured_entries_extend_and_override() {
        let m = RoleMap::new(
            vec![
                ("org:billing".into(), "billing".into()),
                ("org:member".into(), "viewer".into()),
            ],
            None,
        );
        assert_eq!(
            m.map("org:billing", false),
            MappedRole {
                role: "billing".into(),
                custom: false
            }
        );
        assert_eq!(m.map("org:member", false).role, "viewer");
        assert_eq!(m.map("org:admin", true).role, "admin");
    }
}
