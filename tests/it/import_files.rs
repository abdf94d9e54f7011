//! `cutover import` from files, against Kernia's schema on SQLite and
//! PostgreSQL: the mapping row by row, the accounting, idempotence, dry runs,
//! strict mode and never overwriting what Kernia already has.

use cutover::import::{self, ImportOptions, Inputs};

use crate::both_engines;
use crate::import_support::{
    Engine, TestDb, create_kernia_schema_edited, seed_native_rows, small_inputs,
};

fn options(inputs: Inputs, report: Option<std::path::PathBuf>) -> ImportOptions {
    let mut o = ImportOptions::new(inputs);
    o.batch_size = 3; // several batches even for the small export
    o.report = report;
    o
}

fn one(rows: Vec<Vec<Option<String>>>) -> Vec<Option<String>> {
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().unwrap()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

async fn small_export_lands_exactly(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    seed_native_rows(&t).await;
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let out = import::run(&t.db, &options(small_inputs(), Some(report_path.clone())))
        .await
        .unwrap();
    let c = &out.counters;

    // Every input user is in exactly one bucket.
    assert_eq!(
        (
            c.users.input,
            c.users.imported,
            c.users.conflicts,
            c.users.invalid,
            c.users.already_present
        ),
        (12, 7, 1, 4, 0),
        "{c:#?}"
    );
    assert!(c.adds_up(), "{c:#?}");
    assert_eq!(c.ledger.get("pending_password"), Some(&4));
    assert_eq!(c.ledger.get("social_only"), Some(&1));
    assert_eq!(c.ledger.get("pending_reset"), Some(&2));
    assert_eq!(c.hashers.get("bcrypt"), Some(&2));
    assert_eq!(c.hashers.get("none"), Some(&2));
    assert_eq!(c.two_factor, 1);
    assert_eq!((c.accounts.input, c.accounts.imported), (1, 1));
    assert_eq!(c.reenrol.get("backup_codes"), Some(&1));
    assert_eq!(c.reenrol.get("passkeys"), Some(&1));
    assert_eq!(
        (
            c.organizations.input,
            c.organizations.imported,
            c.organizations.conflicts,
            c.organizations.invalid
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(
        (
            c.memberships.input,
            c.memberships.imported,
            c.memberships.skipped,
            c.memberships.invalid
        ),
        (8, 5, 2, 1)
    );
    assert_eq!(c.custom_roles.get("billing"), Some(&1));
    assert_eq!(
        (
            c.invitations.input,
            c.invitations.imported,
            c.invitations.skipped
        ),
        (5, 2, 3)
    );

    // The user rows, exactly.
    let alice = one(t.rows(r#"SELECT email, name, image, username, "displayUsername", "phoneNumber", CAST("createdAt" AS TEXT), CAST("updatedAt" AS TEXT) FROM "user" WHERE id = 'user_alice'"#).await);
    assert_eq!(
        alice,
        vec![
            s("alice@example.com"),
            s("Alice Smith"),
            s("https://img.example.com/alice.png"),
            s("alice"),
            s("Alice"),
            s("+14155550001"),
            s("1700000000"),
            s("1700000500")
        ]
    );
    let flags = |id: &str| {
        format!(
            r#"SELECT CASE WHEN "emailVerified" THEN 'y' ELSE 'n' END, CASE WHEN "phoneNumberVerified" THEN 'y' ELSE 'n' END, CASE WHEN "twoFactorEnabled" THEN 'y' ELSE 'n' END, CASE WHEN banned THEN 'y' ELSE 'n' END FROM "user" WHERE id = '{id}'"#
        )
    };
    assert_eq!(
        one(t.rows(&flags("user_alice")).await),
        vec![s("y"), s("y"), s("y"), s("n")]
    );
    assert_eq!(
        one(t.rows(&flags("user_bob")).await),
        vec![s("y"), s("n"), s("n"), s("n")]
    );
    assert_eq!(
        one(t.rows(&flags("user_judy")).await),
        vec![s("y"), s("n"), s("n"), s("y")]
    );
    assert_eq!(
        one(t.rows(&flags("user_carol")).await),
        vec![s("n"), s("n"), s("n"), s("n")]
    );
    // Heidi's CSV secret is not imported: the API says TOTP is off.
    assert_eq!(one(t.rows(&flags("user_heidi")).await)[2], s("n"));
    let bob = one(t
        .rows(r#"SELECT image, name FROM "user" WHERE id = 'user_bob'"#)
        .await);
    assert_eq!(bob, vec![None, s("Bob Builder")]);
    let grace = one(t
        .rows(r#"SELECT email, username FROM "user" WHERE id = 'user_grace'"#)
        .await);
    assert_eq!(grace, vec![s("grace_h@username.local"), s("grace_h")]);
    let dave = one(t
        .rows(r#"SELECT CAST("createdAt" AS TEXT) FROM "user" WHERE id = 'user_dave'"#)
        .await);
    assert_eq!(dave, vec![s("1704164645")]);
    let judy = one(t
        .rows(r#"SELECT email FROM "user" WHERE id = 'user_judy'"#)
        .await);
    assert_eq!(judy, vec![s("judy@example.com")]);

    // Never overwrite: Frank's native row is as it was, the Clerk Frank is absent.
    assert_eq!(
        one(t
            .rows(r#"SELECT id, name FROM "user" WHERE email = 'frank@example.com'"#)
            .await),
        vec![s("native_frank"), s("Frank (native)")]
    );
    assert_eq!(t.count(r#""user""#).await, 8);
    assert_eq!(
        one(t
            .rows("SELECT name FROM organization WHERE slug = 'taken'")
            .await),
        vec![s("Native")]
    );

    // Social account, two-factor, ledger.
    let account = one(t.rows(r#"SELECT id, "userId", "providerId", "accountId", scope, "accessToken", password FROM account"#).await);
    assert_eq!(
        account,
        vec![
            s("idn_bob_google"),
            s("user_bob"),
            s("google"),
            s("109876543210987654321"),
            s("email openid profile"),
            None,
            None
        ]
    );
    let tf = one(t.rows(r#"SELECT "userId", secret, "backupCodes", CASE WHEN verified THEN 'y' ELSE 'n' END FROM "twoFactor""#).await);
    assert_eq!(
        tf,
        vec![
            s("user_alice"),
            s("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
            s("[]"),
            s("y")
        ]
    );
    let ledger = t.rows("SELECT user_id, state, hasher, email, secondary_emails FROM cutover_ledger ORDER BY user_id").await;
    let states: Vec<(String, String)> = ledger
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("user_alice", "pending_password"),
            ("user_bob", "social_only"),
            ("user_carol", "pending_reset"),
            ("user_dave", "pending_password"),
            ("user_grace", "pending_password"),
            ("user_heidi", "pending_password"),
            ("user_judy", "pending_reset")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(ledger[0][4], s(r#"["alice.work@example.com"]"#));
    assert_eq!(ledger[3][4], s(r#"["old.dave@example.com"]"#));
    assert_eq!(
        ledger[4][3], None,
        "a placeholder email is not a sign-in email"
    );
    let digest = one(t
        .rows("SELECT digest FROM cutover_ledger WHERE user_id = 'user_alice'")
        .await);
    assert_eq!(
        digest,
        vec![s(
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
        )]
    );

    // Organizations, members, invitations.
    let acme = one(t.rows("SELECT name, slug, logo, CAST(metadata AS TEXT) FROM organization WHERE id = 'org_acme'").await);
    assert_eq!(
        acme[..3],
        [
            s("Acme Inc"),
            s("acme"),
            s("https://img.example.com/acme.png")
        ]
    );
    let metadata: serde_json::Value = serde_json::from_str(acme[3].as_deref().unwrap()).unwrap();
    assert_eq!(
        metadata,
        serde_json::json!({"plan": "pro"}),
        "private metadata stays out"
    );
    let roles = t.rows(r#"SELECT id, role FROM member ORDER BY id"#).await;
    let roles: Vec<String> = roles
        .iter()
        .map(|r| format!("{}={}", r[0].as_deref().unwrap(), r[1].as_deref().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            "orgmem_alice_acme=owner",
            "orgmem_bob_acme=member",
            "orgmem_bob_beta=member",
            "orgmem_carol_acme=billing",
            "orgmem_dave_beta=admin"
        ]
    );
    let invites = t.rows(r#"SELECT id, email, role, status, "inviterId", CAST("expiresAt" AS TEXT) FROM invitation ORDER BY id"#).await;
    assert_eq!(
        invites,
        vec![
            vec![
                s("orginv_1"),
                s("new.hire@example.org"),
                s("member"),
                s("pending"),
                s("user_alice"),
                s("2000000000")
            ],
            vec![
                s("orginv_4"),
                s("ops@example.org"),
                s("admin"),
                s("pending"),
                s("user_dave"),
                s("2000000000")
            ],
        ]
    );

    // The report: valid JSON, adds up, names bad rows by place, never a secret.
    let text = std::fs::read_to_string(&report_path).unwrap();
    for secret in [
        "N9qo8uLOickgx2ZMRZoMye",
        "JBSWY3DPEHPK3PXP",
        "KRUGS4ZANFZS",
        "c29tZXNhbHRzb21lc2FsdA",
        "cus_secret",
    ] {
        assert!(!text.contains(secret), "report leaks {secret}");
        assert!(!out.summary.contains(secret), "summary leaks {secret}");
    }
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["adds_up"], true);
    assert_eq!(report["counts"]["users"]["input"], 12);
    let issues = report["issues"].as_array().unwrap();
    let find = |needle: &str| {
        issues
            .iter()
            .find(|i| i.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no issue with {needle}: {issues:#?}"))
            .clone()
    };
    let erin = find("user_erin");
    assert_eq!(erin["kind"], "invalid");
    assert_eq!(erin["location"]["line"], 6);
    assert_eq!(erin["location"]["column"], "5 (primary_email_address)");
    assert!(
        erin["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("users.csv")
    );
    let mallory = find("user_mallory");
    assert_eq!(mallory["location"]["path"], "$[1].created_at");
    assert_eq!(
        find("user_ivan")["location"]["column"],
        "13 (password_hasher)"
    );
    let orphan = find("1 (id)");
    assert_eq!(
        (
            orphan["kind"].as_str(),
            orphan["location"]["line"].as_u64(),
            orphan.get("id")
        ),
        (Some("invalid"), Some(10), None)
    );
    assert_eq!(find("native_frank")["kind"], "conflict");
    assert_eq!(find("expired before")["id"], "orginv_2");
    let issue_kinds: Vec<&str> = issues.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(issue_kinds.contains(&"reenrol"));
    assert_eq!(issues.len() as u64, out.issue_count);
    t.drop_db().await;
}

both_engines!(small_export_lands_exactly);

async fn rerunning_changes_nothing(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    seed_native_rows(&t).await;
    let first = import::run(&t.db, &options(small_inputs(), None))
        .await
        .unwrap();
    let before = t.dump().await;
    let again = import::run(&t.db, &options(small_inputs(), None))
        .await
        .unwrap();
    assert_eq!(t.dump().await, before);
    let c = &again.counters;
    assert!(!again.run.resumed, "a finished run is not resumed");
    assert_eq!(
        (c.users.imported, c.users.already_present),
        (0, first.counters.users.imported)
    );
    assert_eq!(c.users.input, first.counters.users.input);
    assert_eq!(
        (
            c.organizations.imported,
            c.memberships.imported,
            c.invitations.imported
        ),
        (0, 0, 0)
    );
    assert!(c.adds_up(), "{c:#?}");
    t.drop_db().await;
}

both_engines!(rerunning_changes_nothing);

async fn dry_run_counts_like_a_run_and_writes_nothing(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    seed_native_rows(&t).await;
    let before = t.dump().await;
    let mut o = options(small_inputs(), None);
    o.dry_run = true;
    let dry = import::run(&t.db, &o).await.unwrap();
    assert_eq!(t.dump().await, before);
    assert_eq!(t.count("cutover_import_runs").await, 0);
    assert!(dry.summary.contains("nothing was written"));
    let real = import::run(&t.db, &options(small_inputs(), None))
        .await
        .unwrap();
    assert_eq!(dry.counters, real.counters);
    t.drop_db().await;
}

both_engines!(dry_run_counts_like_a_run_and_writes_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_stops_at_the_first_bad_row_before_writing() {
    let t = TestDb::fresh(Engine::Sqlite, true).await;
    let mut o = options(small_inputs(), None);
    o.strict = true;
    let err = import::run(&t.db, &o).await.unwrap_err().to_string();
    assert!(err.contains("--strict"), "{err}");
    assert!(
        err.contains("users.csv:6: column 5 (primary_email_address)"),
        "{err}"
    );
    assert_eq!(t.count(r#""user""#).await, 0);
    assert_eq!(t.count("cutover_ledger").await, 0);
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_without_the_organization_plugin_skips_organizations() {
    let t = TestDb::fresh(Engine::Sqlite, true).await;
    t.exec("DROP TABLE invitation; DROP TABLE member; DROP TABLE organization;")
        .await;
    let out = import::run(&t.db, &options(small_inputs(), None))
        .await
        .unwrap();
    let c = &out.counters;
    assert_eq!(
        (
            c.organizations.skipped,
            c.memberships.skipped,
            c.invitations.skipped
        ),
        (3, 7, 5)
    );
    assert!(c.adds_up(), "{c:#?}");
    assert_eq!(c.users.imported, 8);
    t.drop_db().await;
}

/// The files of a synthetic export as an import's inputs.
fn synth_inputs(files: import::synth::SynthFiles) -> Inputs {
    Inputs {
        csv: vec![files.csv],
        users: files.users,
        organizations: vec![files.organizations],
        memberships: vec![files.memberships],
        invitations: vec![files.invitations],
    }
}

async fn synthetic_export_adds_up(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut synth = import::synth::SynthOptions::new(3000);
    synth.page_size = 700;
    let files = import::synth::generate(&synth, dir.path()).unwrap();
    let inputs = synth_inputs(files);
    let mut o = options(inputs, None);
    o.batch_size = 500;
    o.sort_budget = 1 << 16; // force the external sort through many runs
    o.work_dir = dir.path().join("work");
    let out = import::run(&t.db, &o).await.unwrap();
    let c = &out.counters;
    assert_eq!(c.users.input, 3000);
    assert!(c.adds_up(), "{c:#?}");
    assert_eq!(c.users.invalid, 0, "{}", out.summary);
    assert!(c.users.imported > 2900, "{c:#?}");
    assert_eq!(t.count(r#""user""#).await as u64, c.users.imported);
    assert_eq!(t.count("cutover_ledger").await as u64, c.users.imported);
    assert_eq!(t.count(r#""twoFactor""#).await as u64, c.two_factor);
    assert!(c.ledger.len() == 3 && c.hashers.len() >= 6, "{c:#?}");
    assert_eq!(c.organizations.imported, 60);
    assert_eq!(c.invitations.invalid, 0, "{}", out.summary);
    assert!(
        c.invitations.imported > 0 && c.invitations.skipped > 0,
        "{c:#?}"
    );
    assert!(
        !dir.path().join("work").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("cutover-import-")),
        "temporary files left behind"
    );
    t.drop_db().await;
}

both_engines!(synthetic_export_adds_up);

/// Kernia's schema with `username` not unique (a plain index instead).
fn without_unique_username(engine: Engine) -> impl Fn(String) -> String {
    move |ddl: String| {
        let (from, to) = match engine {
            Engine::Sqlite => ("\tUNIQUE (username), \n", ""),
            Engine::Postgres => (
                "ALTER TABLE ONLY \"user\"\n    ADD CONSTRAINT user_username_key UNIQUE (username);",
                "CREATE INDEX user_username_idx ON \"user\" (username);",
            ),
        };
        assert!(ddl.contains(from), "the fixture's DDL changed");
        ddl.replace(from, to)
    }
}

/// Users are looked up after their insert, and only those it skipped, when
/// Kernia's unique indexes stand behind it; every user is looked up first when
/// they do not. Either way the answers are the same: a value a native user
/// holds is a conflict naming that user (and never a second holder), a re-run
/// finds everyone already present, and a user deleted from Kernia since is not
/// brought back.
async fn users_are_checked_alike_with_or_without_unique_indexes(engine: Engine) {
    for unique in [true, false] {
        let t = TestDb::fresh(engine, unique).await;
        if !unique {
            create_kernia_schema_edited(&t.db, engine, without_unique_username(engine)).await;
        }
        let schema = cutover::import::store::ImportSchema::read(&t.db)
            .await
            .unwrap();
        assert_eq!(schema.unique_user_values, unique);
        seed_native_rows(&t).await;
        // A native user holding Alice's username (lower-cased, as imported).
        t.exec(r#"INSERT INTO "user" (id, email, "emailVerified", name, "createdAt", "updatedAt", role, username) VALUES ('native_al', 'al@native.test', true, 'Al', 1, 1, 'user', 'alice')"#).await;

        let dir = tempfile::tempdir().unwrap();
        let report_path = dir.path().join("report.json");
        let first = import::run(&t.db, &options(small_inputs(), Some(report_path.clone())))
            .await
            .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        let message = |id: &str| {
            report["issues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == id && i["kind"] == "conflict")
                .unwrap_or_else(|| panic!("unique={unique}: no conflict for {id}: {report:#}"))["message"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(
            message("user_alice")
                .contains("username \"alice\" already belongs to Kernia user native_al"),
            "unique={unique}: {}",
            message("user_alice")
        );
        assert!(
            message("user_frank").contains("already belongs to Kernia user native_frank"),
            "unique={unique}: {}",
            message("user_frank")
        );
        assert_eq!(
            t.rows(r#"SELECT id FROM "user" WHERE username = 'alice'"#)
                .await,
            vec![vec![s("native_al")]],
            "unique={unique}"
        );
        let c = &first.counters;
        assert_eq!(
            (c.users.conflicts, c.users.skipped),
            (2, 0),
            "unique={unique}: {c:#?}"
        );
        assert!(c.adds_up(), "{c:#?}");

        // Carol is deleted from Kernia (with what hangs off her); the re-run
        // leaves her out and finds everyone else already present.
        for table in [r#""twoFactor""#, "account", "member", "session"] {
            t.exec(&format!(
                r#"DELETE FROM {table} WHERE "userId" = 'user_carol'"#
            ))
            .await;
        }
        t.exec(r#"DELETE FROM invitation WHERE "inviterId" = 'user_carol'"#)
            .await;
        t.exec(r#"DELETE FROM "user" WHERE id = 'user_carol'"#)
            .await;
        let again = import::run(&t.db, &options(small_inputs(), None))
            .await
            .unwrap();
        let c = &again.counters;
        assert_eq!(
            (
                c.users.imported,
                c.users.skipped,
                c.users.already_present,
                c.users.conflicts
            ),
            (0, 1, first.counters.users.imported - 1, 2),
            "unique={unique}: {c:#?}"
        );
        assert_eq!(
            t.rows(r#"SELECT id FROM "user" WHERE id = 'user_carol'"#)
                .await
                .len(),
            0
        );
        t.drop_db().await;
    }
}

both_engines!(users_are_checked_alike_with_or_without_unique_indexes);

/// Batches of 500 users: on PostgreSQL each is first inserted without its
/// `ON CONFLICT` clause (`store::sql::plain_first`). The two batches holding a
/// user whose email a native Kernia user has fail that way on the unique
/// index, roll back to their savepoint, and are written as before: the rival
/// is a conflict naming the holder, every other user of the batch lands, and
/// the ledger has exactly the users imported.
async fn large_batches_that_meet_a_native_holder_are_written_around_it(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    let natives = [
        ("native_100", "user100@example3.com"),
        ("native_2500", "user2500@example75.com"),
    ];
    for (id, email) in natives {
        t.exec(&format!(r#"INSERT INTO "user" (id, email, "emailVerified", name, "createdAt", "updatedAt", role) VALUES ('{id}', '{email}', true, 'Native', 1, 1, 'user')"#)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let files =
        import::synth::generate(&import::synth::SynthOptions::new(3000), dir.path()).unwrap();
    let inputs = synth_inputs(files);
    let report_path = dir.path().join("report.json");
    let mut o = options(inputs, Some(report_path.clone()));
    o.batch_size = 500;
    let out = import::run(&t.db, &o).await.unwrap();
    let c = &out.counters;
    assert!(c.adds_up(), "{c:#?}");
    assert_eq!(
        (c.users.input, c.users.invalid),
        (3000, 0),
        "{}",
        out.summary
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    for (id, email) in natives {
        let named: Vec<_> = report["issues"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| {
                i["kind"] == "conflict"
                    && i["message"].as_str().unwrap().contains(&format!(
                        "email {email:?} already belongs to Kernia user {id}"
                    ))
            })
            .collect();
        assert_eq!(named.len(), 1, "{id}: {named:?}");
    }
    assert_eq!(c.users.conflicts, 2, "{c:#?}");
    assert_eq!(c.users.imported + 2 + c.users.skipped, 3000, "{c:#?}");
    assert_eq!(t.count(r#""user""#).await as u64, c.users.imported + 2);
    assert_eq!(t.count("cutover_ledger").await as u64, c.users.imported);
    t.drop_db().await;
}

both_engines!(large_batches_that_meet_a_native_holder_are_written_around_it);
