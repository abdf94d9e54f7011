use super::*;

fn settings() -> RouteSettings {
    RouteSettings {
        base_path: "/api/auth".into(),
        denied: [
            "/api/auth/admin/create-user",
            "/api/auth/two-factor/view-backup-codes",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        percentage: 25.0,
        kill_switch: false,
        salt: "test".into(),
        reauth_migrated_clerk_sessions: false,
        overrides: Overrides::default(),
    }
}

fn subject(user_id: &str) -> String {
    rollout::UserSubject::of(user_id).as_str().to_owned()
}

fn anon(s: &RouteSettings, path: &str, pin: Option<&Pin>) -> Decision {
    decide(s, path, Who::Anonymous, UserFacts::default(), pin)
}

#[test]
fn denied_paths_win_over_everything() {
    let s = settings();
    let d = decide(
        &s,
        "/api/auth/admin/create-user",
        Who::Kernia {
            subject: &subject("u"),
        },
        UserFacts::default(),
        None,
    );
    assert_eq!((d.route, d.reason), (Route::Deny, Reason::DeniedPath));
}

#[test]
fn auth_routes_always_go_to_kernia_even_under_the_kill_switch() {
    let mut s = settings();
    s.kill_switch = true;
    s.percentage = 0.0;
    let d = anon(&s, "/api/auth/sign-in/email", None);
    assert_eq!((d.route, d.reason), (Route::Kernia, Reason::AuthRoute));
    assert_eq!(d.set_pin, None);
}

#[test]
fn kernia_sessions_go_to_kernia_and_pin_the_browser() {
    let mut s = settings();
    s.kill_switch = true;
    let d = decide(
        &s,
        "/dashboard",
        Who::Kernia {
            subject: &subject("user_1"),
        },
        UserFacts::default(),
        None,
    );
    assert_eq!(d.route, Route::Kernia);
    assert!(matches!(d.set_pin, Some(Pin::Migrated(_))));
    // Already pinned: nothing to set.
    let pin = Pin::for_user("user_1", true);
    let d = decide(
        &s,
        "/",
        Who::Kernia {
            subject: &subject("user_1"),
        },
        UserFacts::default(),
        Some(&pin),
    );
    assert_eq!(d.set_pin, None);
}

#[test]
fn clerk_sessions_go_to_legacy_and_pin_the_users_own_bucket() {
    let s = settings();
    let browser = Pin::new_browser();
    let d = decide(
        &s,
        "/",
        Who::Clerk {
            user_id: "user_1",
            org_id: None,
            subject: &subject("user_1"),
        },
        UserFacts::default(),
        Some(&browser),
    );
    assert_eq!((d.route, d.reason), (Route::Legacy, Reason::ClerkSession));
    assert_eq!(d.set_pin, Some(Pin::for_user("user_1", false)));
    // Later, signed out, the browser follows that user's bucket.
    let user_pin = Pin::for_user("user_1", false);
    let later = anon(&s, "/", Some(&user_pin));
    let expected = if rollout::to_kernia("test", &user_pin, 25.0) {
        Route::Kernia
    } else {
        Route::Legacy
    };
    assert_eq!(later.route, expected);
    assert_eq!(later.reason, Reason::Rollout);
}

#[test]
fn migrated_clerk_users_reauthenticate_only_when_configured() {
    let mut s = settings();
    let facts = UserFacts {
        migrated: true,
        email: None,
    };
    let who = Who::Clerk {
        user_id: "user_1",
        org_id: None,
        subject: &subject("user_1"),
    };
    let d = decide(&s, "/", who, facts, None);
    assert_eq!(d.route, Route::Legacy);
    assert!(
        matches!(d.set_pin, Some(Pin::Migrated(_))),
        "their next sign-in is at Kernia"
    );
    s.reauth_migrated_clerk_sessions = true;
    let d = decide(&s, "/", who, facts, None);
    assert_eq!(
        (d.route, d.reason),
        (Route::Reauthenticate, Reason::ClerkSessionMigratedUser)
    );
}

#[test]
fn kill_switch_sends_anonymous_and_migrated_pins_to_legacy() {
    let mut s = settings();
    s.kill_switch = true;
    s.percentage = 100.0;
    for pin in [
        None,
        Some(Pin::for_user("u", true)),
        Some(Pin::new_browser()),
    ] {
        let d = anon(&s, "/", pin.as_ref());
        assert_eq!((d.route, d.reason), (Route::Legacy, Reason::KillSwitch));
    }
}

#[test]
fn new_browsers_get_a_pin_and_keep_their_side() {
    let s = settings();
    let first = anon(&s, "/", None);
    assert_eq!(first.reason, Reason::NewBrowser);
    let pin = first.set_pin.clone().expect("a new browser is pinned");
    assert!(matches!(pin, Pin::Browser(_)));
    for _ in 0..5 {
        let again = anon(&s, "/", Some(&pin));
        assert_eq!(again.route, first.route);
        assert_eq!(again.set_pin, None);
    }
}

#[test]
fn overrides_by_user_domain_and_org_with_deny_winning() {
    let mut s = settings();
    s.percentage = 0.0;
    s.overrides.allow_email_domains.insert("example.com".into());
    s.overrides.allow_orgs.insert("org_beta".into());
    s.overrides.deny_users.insert("user_vip".into());
    let pin_after = |user_id: &str, org: Option<&str>, email: Option<&str>| {
        decide(
            &s,
            "/",
            Who::Clerk {
                user_id,
                org_id: org,
                subject: &subject(user_id),
            },
            UserFacts {
                migrated: false,
                email,
            },
            None,
        )
        .set_pin
        .unwrap()
    };
    let allowed = pin_after("user_a", None, Some("a@Example.com"));
    assert!(matches!(allowed, Pin::Allowed(_)));
    assert_eq!(
        anon(&s, "/", Some(&allowed)).route,
        Route::Kernia,
        "0% but allowed"
    );
    let by_org = pin_after("user_b", Some("org_beta"), None);
    assert_eq!(anon(&s, "/", Some(&by_org)).route, Route::Kernia);
    let denied = pin_after("user_vip", Some("org_beta"), Some("vip@example.com"));
    assert!(matches!(denied, Pin::Denied(_)));
    assert!(matches!(
        pin_after("user_c", None, Some("c@other.org")),
        Pin::User(_)
    ));
    s.percentage = 100.0;
    assert_eq!(
        anon(&s, "/", Some(&denied)).route,
        Route::Legacy,
        "100% but denied"
    );
}

#[test]
fn a_user_pin_is_set_again_when_only_its_kind_changes() {
    // The browser holds this user's subject under one kind; routing wants
    // another (migrated since, or an override added): the pin is re-set, with
    // the same subject. Holding exactly the wanted pin sets nothing.
    let mut s = settings();
    s.overrides.allow_users.insert("user_allowed".into());
    s.overrides.deny_users.insert("user_denied".into());
    let clerk = |user_id: &str, migrated: bool, pin: Option<&Pin>| {
        decide(
            &s,
            "/",
            Who::Clerk {
                user_id,
                org_id: None,
                subject: &subject(user_id),
            },
            UserFacts {
                migrated,
                email: None,
            },
            pin,
        )
        .set_pin
    };
    let kinds: [fn(String) -> Pin; 4] = [Pin::User, Pin::Migrated, Pin::Allowed, Pin::Denied];
    for (user_id, migrated, wanted) in [
        ("user_plain", false, Pin::User(subject("user_plain"))),
        ("user_plain", true, Pin::Migrated(subject("user_plain"))),
        ("user_allowed", false, Pin::Allowed(subject("user_allowed"))),
        ("user_denied", false, Pin::Denied(subject("user_denied"))),
    ] {
        for make in kinds {
            let held = make(subject(user_id));
            let expected = (held != wanted).then(|| wanted.clone());
            assert_eq!(
                clerk(user_id, migrated, Some(&held)),
                expected,
                "{user_id} (migrated: {migrated}) holding {held:?}"
            );
        }
        // Another user's pin of the wanted kind, or no pin: set.
        let other = Pin::for_user("someone_else", migrated);
        assert_eq!(clerk(user_id, migrated, Some(&other)), Some(wanted.clone()));
        assert_eq!(clerk(user_id, migrated, None), Some(wanted.clone()));
    }
    // A Kernia session: the migrated pin, unless held.
    let kernia = |pin: Option<&Pin>| {
        decide(
            &s,
            "/",
            Who::Kernia {
                subject: &subject("user_k"),
            },
            UserFacts::default(),
            pin,
        )
        .set_pin
    };
    let migrated = Pin::for_user("user_k", true);
    assert_eq!(kernia(Some(&migrated)), None);
    assert_eq!(
        kernia(Some(&Pin::for_user("user_k", false))),
        Some(migrated.clone())
    );
    assert_eq!(kernia(None), Some(migrated));
}

#[test]
fn user_subjects_stay_what_browsers_already_carry() {
    // The first 128 bits of SHA-256("user:" ‖ id), lower-case hex: the pins
    // set before the subject was kept on the identity must still match.
    for (user_id, hex) in [
        ("user_1", "7901e753321589f9b07f888d9ad7f18e"),
        ("user_2abc", "1e4c4bf03ae6c1e87537ca7981b09784"),
        ("", "0a478cd081990729d5e2dd4ece291e20"),
        ("ü", "ae8a891d2a8288b89531224730cd29d9"),
    ] {
        assert_eq!(rollout::UserSubject::of(user_id).as_str(), hex);
        assert_eq!(Pin::for_user(user_id, false).subject(), hex);
        assert_eq!(
            Pin::parse(&format!("u.{hex}")),
            Some(Pin::for_user(user_id, false))
        );
    }
}
