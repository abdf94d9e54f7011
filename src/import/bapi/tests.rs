use serde_json::value::RawValue;

use super::*;
use crate::import::json_input::typed;

fn user(json: &str) -> Checked<ApiUser> {
    let raw = RawValue::from_string(json.to_string()).unwrap();
    match typed::<User>("$[4]", &raw) {
        Ok(u) => u.check("users-1.json", "$[4]"),
        Err((path, message)) => Err((
            None,
            vec![Issue::invalid(
                Entity::User,
                None,
                Location::json("users-1.json", path),
                message,
            )],
        )),
    }
}

const FULL: &str = r#"{
  "id": "user_2a", "object": "user", "primary_email_address_id": "idn_1", "primary_phone_number_id": "idn_p",
  "username": "Jane_D", "first_name": "Jane", "last_name": "Doe", "image_url": "https://img/x", "has_image": true,
  "email_addresses": [
    {"id": "idn_0", "email_address": "Old@Example.com", "verification": {"status": "unverified"}},
    {"id": "idn_1", "email_address": " Jane@Example.COM ", "verification": {"status": "verified", "strategy": "email_code"}}
  ],
  "phone_numbers": [{"id": "idn_p", "phone_number": "+14155550101", "verification": {"status": "verified"}}],
  "external_accounts": [
    {"id": "idn_g", "provider": "oauth_google", "provider_user_id": "1234", "approved_scopes": "email openid", "created_at": 1700000000000},
    {"id": "idn_h", "provider": "github", "provider_user_id": "99"}
  ],
  "passkeys": [{"id": "pk_1"}], "backup_code_enabled": true, "totp_enabled": true, "banned": true,
  "created_at": 1654012591514, "updated_at": 1654012599999, "unknown_future_field": {"x": 1}
}"#;

#[test]
fn a_full_user_maps_every_field() {
    let u = user(FULL).unwrap();
    assert_eq!(u.id, "user_2a");
    assert_eq!(
        u.primary_email,
        Some(Identifier {
            value: "jane@example.com".into(),
            verified: true
        })
    );
    assert_eq!(u.other_emails, vec!["old@example.com"]);
    assert_eq!(u.primary_phone.as_ref().unwrap().value, "+14155550101");
    assert_eq!(u.username.as_deref(), Some("Jane_D"));
    assert_eq!(u.image.as_deref(), Some("https://img/x"));
    assert_eq!(u.accounts.len(), 2);
    assert_eq!(u.accounts[0].provider_id, "google");
    assert_eq!(u.accounts[0].account_id, "1234");
    assert_eq!(u.accounts[0].created_at, Some(1_700_000_000));
    assert_eq!(u.accounts[1].provider_id, "github");
    assert!(u.has_passkeys && u.backup_codes && u.banned);
    assert_eq!(u.totp_enabled, Some(true));
    assert_eq!(u.created_at, Some(1_654_012_591));
}

#[test]
fn nulls_and_missing_fields_are_tolerated() {
    let u = user(r#"{"id":"user_x","email_addresses":null,"phone_numbers":null,"external_accounts":null,"passkeys":null,"image_url":"https://img/default","has_image":false,"banned":null}"#).unwrap();
    assert_eq!(u.primary_email, None);
    assert_eq!(u.image, None);
    assert!(!u.banned);
}

#[test]
fn bad_fields_are_named_by_json_path() {
    let (id, issues) = user(r#"{"id":"user_x","email_addresses":[{"id":"a","email_address":"nope"}],"external_accounts":[{"id":"e","provider":"oauth_google"}],"created_at":-5}"#).unwrap_err();
    assert_eq!(id.as_deref(), Some("user_x"));
    let all: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
    let all = all.join("\n");
    assert!(
        all.contains("users-1.json: $[4].email_addresses[0].email_address"),
        "{all}"
    );
    assert!(
        all.contains("$[4].external_accounts[0].provider_user_id"),
        "{all}"
    );
    assert!(all.contains("$[4].created_at"), "{all}");
    let (_, issues) = user(r#"{"id":"user_x","created_at":"yesterday"}"#).unwrap_err();
    assert_eq!(
        issues[0].location.as_ref().unwrap().path.as_deref(),
        Some("$[4].created_at")
    );
}

fn check<W: serde::de::DeserializeOwned, T>(
    json: &str,
    f: impl FnOnce(W) -> Checked<T>,
) -> Checked<T> {
    let raw = RawValue::from_string(json.to_string()).unwrap();
    f(typed::<W>("$.data[0]", &raw).unwrap())
}

#[test]
fn organizations_keep_public_metadata_only() {
    let o = check(r#"{"id":"org_1","name":"Acme","slug":"acme","image_url":"https://logo","has_image":true,"public_metadata":{"plan":"pro"},"private_metadata":{"k":"secret"},"created_at":1700000000000}"#,
        |o: Organization| o.check("orgs.json", "$.data[0]")).unwrap();
    assert_eq!(o.metadata.as_deref(), Some(r#"{"plan":"pro"}"#));
    assert_eq!(o.logo.as_deref(), Some("https://logo"));
    let o = check(
        r#"{"id":"org_2","name":"B","slug":null,"public_metadata":{}}"#,
        |o: Organization| o.check("o", "$"),
    )
    .unwrap();
    assert_eq!(o.slug, "org_2");
    assert_eq!(o.metadata, None);
}

#[test]
fn memberships_know_their_creator() {
    let m = check(r#"{"id":"orgmem_1","role":"org:admin","organization":{"id":"org_1","created_by":"user_1"},"public_user_data":{"user_id":"user_1"}}"#,
        |m: Membership| m.check("m", "$")).unwrap();
    assert!(m.is_creator);
    assert_eq!(m.organization_id, "org_1");
    let (_, issues) = check(
        r#"{"id":"orgmem_2","role":"org:member","organization":{"id":"org_1"}}"#,
        |m: Membership| m.check("m.json", "$.data[0]"),
    )
    .unwrap_err();
    assert!(
        issues[0]
            .to_string()
            .contains("$.data[0].public_user_data.user_id"),
        "{}",
        issues[0]
    );
}

#[test]
fn invitations_normalize_email_and_default_to_pending() {
    let i = check(r#"{"id":"orginv_1","email_address":"A@B.com","role":"org:member","organization_id":"org_1","expires_at":1900000000000}"#,
        |i: OrganizationInvitation| i.check("i", "$")).unwrap();
    assert_eq!(i.email, "a@b.com");
    assert_eq!(i.status, "pending");
    assert_eq!(i.expires_at, Some(1_900_000_000));
}

#[test]
fn invitation_status_is_read_before_its_dates() {
    // Accepted and revoked invitations with dates Kernia could not store are
    // not invalid: they are skipped later as "not pending".
    for status in ["accepted", "revoked"] {
        let json = format!(
            r#"{{"id":"orginv_9","email_address":"a@b.com","role":"org:member","organization_id":"org_1","status":"{status}","expires_at":99999999999999,"created_at":-5}}"#
        );
        let i = check(&json, |i: OrganizationInvitation| i.check("i", "$"))
            .unwrap_or_else(|e| panic!("{status}: {e:?}"));
        assert_eq!(i.status, status);
    }
}

#[test]
fn a_pending_invitation_with_an_unstorable_expiry_is_kept_clamped() {
    let i = check(
        r#"{"id":"orginv_8","email_address":"a@b.com","role":"org:member","organization_id":"org_1","status":"pending","expires_at":99999999999999}"#,
        |i: OrganizationInvitation| i.check("i", "$"),
    )
    .expect("kept, not invalid");
    assert_eq!(i.expires_at, Some(i64::from(i32::MAX)));
    assert_eq!(i.expiry_clamped_from, Some(99_999_999_999_999));
    let fits = check(
        r#"{"id":"orginv_7","email_address":"a@b.com","role":"org:member","organization_id":"org_1","expires_at":1900000000000}"#,
        |i: OrganizationInvitation| i.check("i", "$"),
    )
    .unwrap();
    assert_eq!(fits.expiry_clamped_from, None);
}
