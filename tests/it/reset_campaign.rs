//! Issue #10 §3: `cutover reset-campaign` — reset links in bulk to the users
//! not migrated yet, through the outbox, once per user however often it runs.
//! The real binary queues; the running cutover's outbox worker delivers to a
//! real SMTP capture.

use cutover::db::ledger::LedgerState;
use cutover::db::on_conn;

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::copies::cli;
use crate::harness::pending::{entry, seed, vector};
use crate::harness::server::toml;
use crate::harness::smtp::SmtpSink;
use crate::migration::{fixture, sign_in};
use crate::webhooks::FAST_OUTBOX;

fn report(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

async fn outbox_rows(db: &cutover::db::Db) -> usize {
    let mut conn = db.acquire().await.unwrap();
    cutover::outbox::store::list(
        &mut conn.conn(),
        &cutover::outbox::store::ListFilter {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .len()
}

/// Who got mail, sorted (one entry per message).
fn recipients(mail: &[String]) -> Vec<String> {
    let mut to: Vec<String> = mail
        .iter()
        .map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap_or_else(|| panic!("no To: in {m}"))
                .trim()
                .to_string()
        })
        .collect();
    to.sort();
    to
}

async fn reset_campaign_sends_one_link_per_user_and_resumes(engine: Engine) {
    let sink = SmtpSink::start().await;
    let reset = format!(
        "[reset]\nlink = \"https://app.example.test/reset?token={{token}}\"\n[reset.smtp]\nurl = \"{}\"\nfrom = \"Accounts <no-reply@example.test>\"\n{FAST_OUTBOX}",
        sink.url()
    );
    let f = fixture(engine, &reset).await;
    let users = [
        ("user_rc_a", "a@example.com", LedgerState::PendingPassword),
        ("user_rc_b", "b@example.com", LedgerState::PendingPassword),
        ("user_rc_c", "c@example.com", LedgerState::PendingPassword),
        ("user_rc_d", "d@example.com", LedgerState::PendingReset),
    ];
    let (digest, password) = vector("bcrypt", "realistic");
    for (id, email, state) in users {
        let (hasher, digest) = match state {
            LedgerState::PendingPassword => (Some("bcrypt"), Some(digest.as_str())),
            _ => (None, None),
        };
        seed(&f.db, id, email, state, hasher, digest).await;
    }
    // user_rc_c was seen through cutover today; user_rc_a long ago.
    let today = cutover::control::seen::today();
    {
        let mut conn = f.db.acquire().await.unwrap();
        for (id, day) in [("user_rc_c", today), ("user_rc_a", today - 90)] {
            on_conn!(&mut conn.conn(), |c| {
                sqlx::query(
                    "INSERT INTO cutover_user_seen (user_id, last_seen_day) VALUES ($1, $2)",
                )
                .bind(id)
                .bind(day)
                .execute(c)
                .await
                .unwrap();
            });
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            toml(
                &f._legacy.url(),
                &f.kernia.base_url,
                &f.kernia.db.url,
                extra,
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    let cfg = write("c.toml", &reset);
    let no_reset = write("none.toml", "");
    let today_s = cutover::control::progress::date_of_day(today);

    // No [reset]: a clear usage error, nothing written.
    let (ok, _, err) = cli(&[
        "reset-campaign",
        "-c",
        &no_reset,
        "--state",
        "pending_password",
    ]);
    assert!(!ok);
    assert!(err.contains("no [reset] section"), "{err}");
    // A bad rate or date: usage errors too.
    let (ok, _, err) = cli(&[
        "reset-campaign",
        "-c",
        &cfg,
        "--state",
        "pending_password",
        "--rate",
        "fast",
    ]);
    assert!(!ok && err.contains("--rate"), "{err}");

    // Dry run: counts, writes nothing.
    let (ok, out, err) = cli(&[
        "reset-campaign",
        "-c",
        &cfg,
        "--state",
        "pending_password",
        "--dry-run",
        "--json",
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(
        (r["selected"].as_u64(), r["queued"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    assert_eq!(r["dry_run"], true);
    for (id, _, _) in users {
        assert!(entry(&f.db, id).await.reset_requested_at.is_none(), "{id}");
    }
    assert_eq!(outbox_rows(&f.db).await, 0, "a dry run queues nothing");

    // Only pending_password users not seen since today: a and b.
    let (ok, out, err) = cli(&[
        "reset-campaign",
        "-c",
        &cfg,
        "--state",
        "pending_password",
        "--inactive-since",
        &today_s,
        "--rate",
        "50/s",
        "--json",
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["selected"], 2, "{r}");
    assert_eq!(r["queued"], 2, "{r}");
    assert_eq!(r["already_sent"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let mail = sink.wait_for(2).await;
    assert_eq!(recipients(&mail), ["a@example.com", "b@example.com"]);
    assert!(mail[0].contains("https://app.example.test/reset?token="));
    assert!(entry(&f.db, "user_rc_c").await.reset_requested_at.is_none());

    // Everyone not migrated: c and d are new, a and b already have theirs
    // (the run resumes where the last one stopped).
    let (ok, out, err) = cli(&[
        "reset-campaign",
        "-c",
        &cfg,
        "--state",
        "pending_password",
        "--state",
        "pending_reset",
        "--rate",
        "50/s",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("queued        2"), "{out}");
    assert!(out.contains("already sent  2"), "{out}");
    let mail = sink.wait_for(4).await;
    assert_eq!(
        recipients(&mail),
        [
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com"
        ]
    );

    // Again: nothing new, whatever the selection.
    let (ok, out, err) = cli(&[
        "reset-campaign",
        "-c",
        &cfg,
        "--state",
        "pending_password",
        "--state",
        "pending_reset",
        "--json",
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(
        (r["selected"].as_u64(), r["queued"].as_u64()),
        (Some(4), Some(0)),
        "{r}"
    );
    assert_eq!(r["already_sent"], 4, "{r}");
    assert_eq!(outbox_rows(&f.db).await, 4, "one queued link per user");
    // The worker polls every 100 ms: anything queued would be out by now.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 4, "each user got exactly one link");
    for (id, _, _) in users {
        assert!(entry(&f.db, id).await.reset_requested_at.is_some(), "{id}");
    }
    // A pending_password user sent a link can still sign in with the password
    // Clerk had (the link adds a way in, it takes none away) and migrates.
    let resp = sign_in(&f.cutover, "a@example.com", &password).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(entry(&f.db, "user_rc_a").await.state, LedgerState::Migrated);
}
both_engines!(reset_campaign_sends_one_link_per_user_and_resumes);
