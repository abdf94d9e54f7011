use super::*;
use crate::import::records::Identifier;

fn csv(id: &str) -> CsvUser {
    CsvUser {
        id: id.into(),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        primary_email: Some("jane@x.com".into()),
        verified_emails: vec!["jane@x.com".into(), "alt@x.com".into()],
        digest: Some(Sensitive::new(
            "$2b$10$abcdefghijklmnopqrstuuK2m8vJ3gXoHcGZ3j1r7zqWlZ2qR2o6",
        )),
        hasher: Some("bcrypt".into()),
        line: 7,
        ..CsvUser::default()
    }
}

fn api(id: &str) -> ApiUser {
    ApiUser {
        id: id.into(),
        primary_email: Some(Identifier {
            value: "jane@x.com".into(),
            verified: true,
        }),
        first_name: Some("Janet".into()),
        created_at: Some(100),
        updated_at: Some(200),
        path: "$[0]".into(),
        ..ApiUser::default()
    }
}

fn user(g: UserGroup) -> UserPlan {
    match plan(g, "users.csv", 999) {
        Planned::User(p) => *p,
        Planned::Invalid(i) => panic!("{i:?}"),
    }
}

fn group(csv_rows: Vec<CsvUser>, api_users: Vec<ApiUser>) -> UserGroup {
    UserGroup {
        id: "user_1".into(),
        csv: csv_rows,
        api: api_users,
        bad: vec![],
    }
}

#[test]
fn csv_and_api_join_with_the_api_winning_the_profile() {
    let p = user(group(vec![csv("user_1")], vec![api("user_1")]));
    assert_eq!(p.user.email, "jane@x.com");
    assert!(p.user.email_verified);
    assert_eq!(p.user.name.as_deref(), Some("Janet"));
    assert_eq!((p.user.created_at, p.user.updated_at), (100, 200));
    assert_eq!(p.ledger.state, Some(LedgerState::PendingPassword));
    assert_eq!(p.ledger.hasher.as_deref(), Some("bcrypt"));
    assert_eq!(p.ledger.secondary_emails, vec!["alt@x.com"]);
    assert!(!format!("{p:?}").contains("$2b$"), "digest in Debug");
}

#[test]
fn ledger_states_follow_digest_hasher_and_social_accounts() {
    let mut cognito = csv("user_1");
    cognito.hasher = Some("awscognito".into());
    assert_eq!(
        user(group(vec![cognito], vec![])).ledger.state,
        Some(LedgerState::PendingReset)
    );
    let mut unknown = csv("user_1");
    unknown.hasher = Some("sha1".into());
    assert_eq!(
        user(group(vec![unknown], vec![])).ledger.state,
        Some(LedgerState::PendingReset)
    );
    let mut none = csv("user_1");
    none.digest = None;
    assert_eq!(
        user(group(vec![none.clone()], vec![])).ledger.state,
        Some(LedgerState::PendingReset)
    );
    let mut social = api("user_1");
    social.accounts.push(ExternalAccount {
        id: "idn_g".into(),
        provider_id: "google".into(),
        account_id: "1".into(),
        scope: None,
        created_at: None,
        updated_at: None,
    });
    let p = user(group(vec![none], vec![social]));
    assert_eq!(p.ledger.state, Some(LedgerState::SocialOnly));
    assert_eq!(p.ledger.hasher, None);
    assert_eq!(p.accounts.len(), 1);
}

#[test]
fn csv_only_users_get_verification_from_the_lists_and_the_run_time() {
    let mut c = csv("user_1");
    c.unverified_emails = vec!["jane@x.com".into()];
    let p = user(group(vec![c], vec![]));
    assert!(!p.user.email_verified);
    assert_eq!(p.user.created_at, 999);
    let mut c = csv("user_1");
    c.created_at = Some(50);
    assert_eq!(user(group(vec![c], vec![])).user.created_at, 50);
}

#[test]
fn usernames_are_lower_cased_with_the_display_form_kept() {
    let mut c = csv("user_1");
    c.username = Some("JaneD".into());
    let p = user(group(vec![c], vec![]));
    assert_eq!(p.user.username.as_deref(), Some("janed"));
    assert_eq!(p.user.display_username.as_deref(), Some("JaneD"));
    assert_eq!(p.ledger.username.as_deref(), Some("janed"));
}

#[test]
fn users_without_email_get_kernias_placeholders() {
    let mut c = csv("user_1");
    c.primary_email = None;
    c.verified_emails.clear();
    c.username = Some("Jane".into());
    let p = user(group(vec![c.clone()], vec![]));
    assert_eq!(p.user.email, "jane@username.local");
    assert_eq!(p.ledger.email, None);
    c.username = None;
    c.primary_phone = Some("+14155550101".into());
    assert_eq!(
        user(group(vec![c.clone()], vec![])).user.email,
        "+14155550101@phone.local"
    );
    c.primary_phone = None;
    let Planned::Invalid(issues) = plan(group(vec![c], vec![]), "users.csv", 0) else {
        panic!("expected invalid")
    };
    assert!(
        issues[0].to_string().contains("users.csv:7"),
        "{}",
        issues[0]
    );
}

#[test]
fn totp_moves_unless_the_api_says_it_is_off_and_lost_factors_are_noted() {
    let mut c = csv("user_1");
    c.totp_secret = Some(Sensitive::new("JBSWY3DPEHPK3PXP"));
    let p = user(group(vec![c.clone()], vec![]));
    assert!(p.user.two_factor_enabled);
    assert!(p.totp_secret.is_some());
    let mut off = api("user_1");
    off.totp_enabled = Some(false);
    let p = user(group(vec![c], vec![off]));
    assert!(!p.user.two_factor_enabled);
    assert!(p.notes.iter().any(|n| n.kind == IssueKind::Warning));
    let mut lost = api("user_1");
    lost.totp_enabled = Some(true);
    lost.backup_codes = true;
    lost.has_passkeys = true;
    let p = user(group(vec![csv("user_1")], vec![lost]));
    assert!(!p.user.two_factor_enabled);
    assert!(p.ledger.had_backup_codes && p.ledger.had_passkeys);
    let note = p
        .notes
        .iter()
        .find(|n| n.kind == IssueKind::Reenrol)
        .unwrap();
    for word in ["backup codes", "passkeys", "authenticator"] {
        assert!(note.message.contains(word), "{}", note.message);
    }
}

#[test]
fn bad_records_make_the_user_invalid_and_duplicates_are_noted() {
    let bad = Issue::invalid(
        Entity::User,
        Some("user_1"),
        Location::csv("users.csv", 3),
        "bad email",
    );
    let g = UserGroup {
        id: "user_1".into(),
        csv: vec![csv("user_1")],
        api: vec![],
        bad: vec![bad],
    };
    assert!(matches!(plan(g, "users.csv", 0), Planned::Invalid(_)));
    let mut second = csv("user_1");
    second.line = 9;
    let p = user(group(
        vec![csv("user_1"), second],
        vec![api("user_1"), api("user_1")],
    ));
    assert_eq!(
        p.notes
            .iter()
            .filter(|n| n.kind == IssueKind::Warning)
            .count(),
        2
    );
}

#[test]
fn long_images_are_dropped_with_a_warning() {
    let mut a = api("user_1");
    a.image = Some(format!("https://img.clerk.com/{}", "x".repeat(300)));
    let p = user(group(vec![], vec![a]));
    assert_eq!(p.user.image, None);
    assert_eq!(p.notes.len(), 1);
}
