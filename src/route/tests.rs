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

fn anon(s: &RouteSettings, path: &str, pin: Option<&Pin>) -> Decision {
    decide(s, path, Who::Anonymous, UserFacts::default(), pin)
}

#[test]
fn denied_paths_win_over_everything() {
    let s = settings();
    let d = decide(
        &s,
        "/api/auth/admin/create-user",
        Who::Kernia { user_id: "u" },
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
        Who::Kernia { user_id: "user_1" },
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
        Who::Kernia { user_id: "user_1" },
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
