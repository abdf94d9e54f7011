use super::*;
use crate::import::records::{MemberRecord, OrgRecord};

fn org(id: &str, slug: &str) -> Record<OrgRecord> {
    Record::Valid(OrgRecord {
        id: id.into(),
        name: id.into(),
        slug: slug.into(),
        logo: None,
        metadata: None,
        created_at: None,
        updated_at: None,
    })
}

fn member(id: &str) -> Record<MemberRecord> {
    Record::Valid(MemberRecord {
        id: id.into(),
        organization_id: "org_1".into(),
        user_id: "user_1".into(),
        role: "org:member".into(),
        is_creator: false,
        created_at: None,
        updated_at: None,
    })
}

#[test]
fn batches_of_different_organizations_may_be_written_together() {
    let a = Keys::of(&Items::Organizations(vec![
        org("org_1", "one"),
        org("org_2", "two"),
    ]));
    let b = Keys::of(&Items::Organizations(vec![org("org_3", "three")]));
    assert!(!a.overlaps(&b));
}

#[test]
fn an_organization_listed_twice_makes_its_batches_wait_for_each_other() {
    let a = Keys::of(&Items::Organizations(vec![org("org_1", "one")]));
    let same_id = Keys::of(&Items::Organizations(vec![org("org_1", "renamed")]));
    let same_slug = Keys::of(&Items::Organizations(vec![org("org_9", "one")]));
    assert!(a.overlaps(&same_id));
    assert!(a.overlaps(&same_slug));
}

#[test]
fn a_value_is_a_key_only_for_its_own_kind() {
    // An organization whose slug equals a member id shares nothing with it.
    let orgs = Keys::of(&Items::Organizations(vec![org("x", "mem_1")]));
    let members = Keys::of(&Items::Memberships(vec![member("mem_1")]));
    assert!(!orgs.overlaps(&members));
    let again = Keys::of(&Items::Memberships(vec![member("mem_1")]));
    assert!(members.overlaps(&again));
}

#[test]
fn invalid_records_have_no_keys() {
    let k = Keys::of(&Items::Memberships(vec![Record::Invalid(Vec::new())]));
    assert!(k.0.is_empty());
}
