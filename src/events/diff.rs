//! What changed in the organizations around a user between before and after
//! one request (pure).

use super::read::{InvitationRow, MemberRow, OrgState};

/// One change, in the order events should go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    OrgCreated(String),
    OrgUpdated(String),
    OrgDeleted(String),
    MemberCreated(MemberRow),
    MemberUpdated(MemberRow),
    MemberDeleted(MemberRow),
    InvitationCreated(InvitationRow),
    /// The invitation and the user who accepted it.
    InvitationAccepted(InvitationRow, String),
    InvitationRevoked(InvitationRow),
}

/// Compare two snapshots. `actor` is the user who made the request (the one
/// who accepts an invitation). An organization that went takes its members
/// and invitations with it: only `OrgDeleted` is reported for it, as Clerk does.
pub fn diff_orgs(before: &[OrgState], after: &[OrgState], actor: &str) -> Vec<Change> {
    let mut out = Vec::new();
    for a in after {
        let b = before.iter().find(|b| b.org.id == a.org.id);
        match b {
            None => out.push(Change::OrgCreated(a.org.id.clone())),
            Some(b) if b.org != a.org => out.push(Change::OrgUpdated(a.org.id.clone())),
            Some(_) => {}
        }
        let empty = OrgState {
            org: a.org.clone(),
            members: Vec::new(),
            invitations: Vec::new(),
        };
        let b = b.unwrap_or(&empty);
        // Invitations first: an accepted invitation comes before the
        // membership it made.
        for inv in &a.invitations {
            match b.invitations.iter().find(|x| x.id == inv.id) {
                None if inv.status == "pending" => out.push(Change::InvitationCreated(inv.clone())),
                None => {}
                Some(old) if old.status == "pending" && inv.status == "accepted" => {
                    out.push(Change::InvitationAccepted(inv.clone(), actor.to_string()))
                }
                Some(old)
                    if old.status == "pending"
                        && matches!(
                            inv.status.as_str(),
                            "cancelled" | "canceled" | "rejected" | "revoked"
                        ) =>
                {
                    out.push(Change::InvitationRevoked(inv.clone()))
                }
                Some(_) => {}
            }
        }
        for m in &a.members {
            match b.members.iter().find(|x| x.id == m.id) {
                None => out.push(Change::MemberCreated(m.clone())),
                Some(old) if old.role != m.role => out.push(Change::MemberUpdated(m.clone())),
                Some(_) => {}
            }
        }
        for m in &b.members {
            if !a.members.iter().any(|x| x.id == m.id) {
                out.push(Change::MemberDeleted(m.clone()));
            }
        }
    }
    for b in before {
        if !after.iter().any(|a| a.org.id == b.org.id) {
            // The caller also passes organizations the user left, so one
            // missing here is gone.
            out.push(Change::OrgDeleted(b.org.id.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::read::OrgRow;
    use super::*;

    fn org(id: &str, name: &str) -> OrgRow {
        OrgRow {
            id: id.into(),
            name: name.into(),
            slug: id.to_lowercase(),
            logo: None,
            metadata: None,
            created_at: 1,
            updated_at: Some(1),
        }
    }

    fn member(id: &str, user: &str, role: &str) -> MemberRow {
        MemberRow {
            id: id.into(),
            organization_id: "org_1".into(),
            user_id: user.into(),
            role: role.into(),
            created_at: 1,
            updated_at: None,
        }
    }

    fn invitation(id: &str, status: &str) -> InvitationRow {
        InvitationRow {
            id: id.into(),
            organization_id: "org_1".into(),
            email: "bob@example.com".into(),
            role: Some("member".into()),
            status: status.into(),
            inviter_id: Some("user_a".into()),
            expires_at: Some(9),
            created_at: 1,
            updated_at: None,
        }
    }

    fn state(name: &str, members: Vec<MemberRow>, invitations: Vec<InvitationRow>) -> OrgState {
        OrgState {
            org: org("org_1", name),
            members,
            invitations,
        }
    }

    #[test]
    fn creating_an_organization_reports_it_before_its_first_membership() {
        let after = [state("Acme", vec![member("m1", "user_a", "owner")], vec![])];
        assert_eq!(
            diff_orgs(&[], &after, "user_a"),
            vec![
                Change::OrgCreated("org_1".into()),
                Change::MemberCreated(member("m1", "user_a", "owner"))
            ]
        );
    }

    #[test]
    fn accepting_an_invitation_reports_the_acceptance_then_the_membership() {
        let owner = member("m1", "user_a", "owner");
        let before = [state(
            "Acme",
            vec![owner.clone()],
            vec![invitation("i1", "pending")],
        )];
        let after = [state(
            "Acme",
            vec![owner, member("m2", "user_b", "member")],
            vec![invitation("i1", "accepted")],
        )];
        assert_eq!(
            diff_orgs(&before, &after, "user_b"),
            vec![
                Change::InvitationAccepted(invitation("i1", "accepted"), "user_b".into()),
                Change::MemberCreated(member("m2", "user_b", "member"))
            ]
        );
    }

    #[test]
    fn renames_role_changes_removals_and_cancellations() {
        let before = [state(
            "Acme",
            vec![
                member("m1", "user_a", "owner"),
                member("m2", "user_b", "member"),
                member("m3", "user_c", "member"),
            ],
            vec![invitation("i1", "pending")],
        )];
        let after = [state(
            "Acme Inc",
            vec![
                member("m1", "user_a", "owner"),
                member("m2", "user_b", "admin"),
            ],
            vec![invitation("i1", "cancelled")],
        )];
        assert_eq!(
            diff_orgs(&before, &after, "user_a"),
            vec![
                Change::OrgUpdated("org_1".into()),
                Change::InvitationRevoked(invitation("i1", "cancelled")),
                Change::MemberUpdated(member("m2", "user_b", "admin")),
                Change::MemberDeleted(member("m3", "user_c", "member")),
            ]
        );
    }

    #[test]
    fn nothing_changed_reports_nothing() {
        let s = [state(
            "Acme",
            vec![member("m1", "user_a", "owner")],
            vec![invitation("i1", "pending")],
        )];
        assert!(diff_orgs(&s, &s, "user_a").is_empty());
    }

    #[test]
    fn a_deleted_organization_is_one_event() {
        let before = [state("Acme", vec![member("m1", "user_a", "owner")], vec![])];
        assert_eq!(
            diff_orgs(&before, &[], "user_a"),
            vec![Change::OrgDeleted("org_1".into())]
        );
    }
}
