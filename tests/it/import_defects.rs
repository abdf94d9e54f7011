//! `cutover import` never loses a row without saying so (issue #9): rows with
//! the wrong number of fields, duplicate identifiers decided by a rule a user
//! would agree with, invitations judged by status before dates, the command
//! asking only for the database and creating nothing in the wrong one, and
//! counts that agree with each other.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cutover::import::{self, ImportOptions, Inputs};
use serde_json::{Value, json};

use crate::both_engines;
use crate::harness::databases::TestDatabase;
use crate::import_support::{Engine, TestDb, fixture, small_inputs};

const HEADER: &str = "id,first_name,last_name,username,primary_email_address,primary_phone_number,verified_email_addresses,unverified_email_addresses,verified_phone_numbers,unverified_phone_numbers,totp_secret,password_digest,password_hasher\n";
const BCRYPT: &str = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn options(inputs: Inputs, report: PathBuf) -> ImportOptions {
    let mut o = ImportOptions::new(inputs);
    o.batch_size = 2;
    o.report = Some(report);
    o
}

fn issues(report: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["issues"].as_array().unwrap().clone()
}

fn issue_of<'a>(issues: &'a [Value], id: &str) -> &'a Value {
    issues
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no issue for {id}: {issues:#?}"))
}

async fn csv_rows_with_the_wrong_number_of_fields_are_invalid(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    let dir = tempfile::tempdir().unwrap();
    // Line 2 is cut after the email (its digest gone); line 3 has two extra
    // fields; line 4 is whole.
    let csv = write(
        dir.path(),
        "users.csv",
        &format!(
            "{HEADER}user_short,Ann,Lee,,ann@example.com\n\
             user_long,Bob,Ray,,bob@example.com,,,,,,,{BCRYPT},bcrypt,extra,more\n\
             user_whole,Cy,Po,,cy@example.com,,cy@example.com,,,,,{BCRYPT},bcrypt\n"
        ),
    );
    let report = dir.path().join("report.json");
    let out = import::run(
        &t.db,
        &options(
            Inputs {
                csv: vec![csv],
                ..Inputs::default()
            },
            report.clone(),
        ),
    )
    .await
    .unwrap();
    let c = &out.counters;
    assert_eq!(
        (c.users.input, c.users.imported, c.users.invalid),
        (3, 1, 2),
        "{}",
        out.summary
    );
    assert!(c.adds_up());
    let ids = t.rows(r#"SELECT id FROM "user" ORDER BY id"#).await;
    assert_eq!(ids, vec![vec![Some("user_whole".to_string())]]);
    let issues = issues(&report);
    for (id, line, fields) in [("user_short", 2, 5), ("user_long", 3, 15)] {
        let i = issue_of(&issues, id);
        assert_eq!(i["kind"], "invalid");
        assert_eq!(i["location"]["line"], line);
        assert!(
            i["location"]["file"]
                .as_str()
                .unwrap()
                .ends_with("users.csv")
        );
        let m = i["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("{fields} fields")) && m.contains("header has 13"),
            "{m}"
        );
    }
    t.drop_db().await;
}
both_engines!(csv_rows_with_the_wrong_number_of_fields_are_invalid);

/// An API user object with one email address, verified or not, and optionally
/// a Google account.
fn api_user(id: &str, email: &str, verified: bool, created_ms: i64, google: Option<&str>) -> Value {
    let accounts = match google {
        Some(sub) => json!([{ "object": "google_account", "id": format!("idn_{id}_google"),
            "provider": "oauth_google", "provider_user_id": sub, "approved_scopes": "email openid",
            "email_address": email, "created_at": created_ms, "updated_at": created_ms }]),
        None => json!([]),
    };
    json!({
        "id": id, "object": "user", "primary_email_address_id": format!("idn_{id}"),
        "first_name": id, "email_addresses": [{ "id": format!("idn_{id}"), "email_address": email,
            "verification": { "status": if verified { "verified" } else { "unverified" } } }],
        "phone_numbers": [], "external_accounts": accounts,
        "created_at": created_ms, "updated_at": created_ms
    })
}

/// Two users claim one address; `keeper` must keep it whichever id sorts first.
async fn import_pair(engine: Engine, users: Value, keeper: &str, loser: &str, google: bool) {
    let t = TestDb::fresh(engine, true).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "users.json", &users.to_string());
    let report = dir.path().join("report.json");
    let out = import::run(
        &t.db,
        &options(
            Inputs {
                users: vec![file],
                ..Inputs::default()
            },
            report.clone(),
        ),
    )
    .await
    .unwrap();
    let c = &out.counters;
    assert_eq!(
        (c.users.imported, c.users.conflicts),
        (1, 1),
        "{}",
        out.summary
    );
    let owner = t
        .rows(r#"SELECT id FROM "user" WHERE email = 'jo@example.com'"#)
        .await;
    assert_eq!(
        owner,
        vec![vec![Some(keeper.to_string())]],
        "{}",
        out.summary
    );
    if google {
        let linked = t
            .rows(r#"SELECT "userId" FROM account WHERE "providerId" = 'google'"#)
            .await;
        assert_eq!(linked, vec![vec![Some(keeper.to_string())]]);
    }
    // The report names both: the loser, and the user who keeps the address.
    let all = issues(&report);
    let i = issue_of(&all, loser);
    assert_eq!(i["kind"], "conflict");
    let m = i["message"].as_str().unwrap();
    assert!(m.contains(keeper) && m.contains("jo@example.com"), "{m}");
    t.drop_db().await;
}

async fn a_duplicate_email_goes_to_the_verified_address_in_either_sort_order(engine: Engine) {
    // The real user has the verified address and a Google account; the
    // duplicate (unverified, even older) sorts first in one run and last in
    // the other.
    for (real, dup) in [("user_2real", "user_1dup"), ("user_1real", "user_2dup")] {
        let users = json!([
            api_user(dup, "jo@example.com", false, 1_600_000_000_000, None),
            api_user(
                real,
                "Jo@Example.com",
                true,
                1_700_000_000_000,
                Some("1234567890")
            ),
        ]);
        import_pair(engine, users, real, dup, true).await;
    }
}
both_engines!(a_duplicate_email_goes_to_the_verified_address_in_either_sort_order);

async fn a_duplicate_email_both_verified_goes_to_the_older_account_in_either_sort_order(
    engine: Engine,
) {
    for (old, new) in [("user_2old", "user_1new"), ("user_1old", "user_2new")] {
        let users = json!([
            api_user(new, "jo@example.com", true, 1_700_000_000_000, None),
            api_user(old, "jo@example.com", true, 1_600_000_000_000, None),
        ]);
        import_pair(engine, users, old, new, false).await;
    }
}
both_engines!(a_duplicate_email_both_verified_goes_to_the_older_account_in_either_sort_order);

async fn invitations_are_judged_by_status_before_dates_and_a_far_expiry_is_clamped(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "users.csv",
        &format!(
            "{HEADER}user_inviter,In,Viter,,inviter@example.com,,inviter@example.com,,,,,{BCRYPT},bcrypt\n"
        ),
    );
    let orgs = write(
        dir.path(),
        "orgs.json",
        &json!({"data": [{"object": "organization", "id": "org_far", "name": "Far", "slug": "far",
            "created_by": "user_inviter", "created_at": 1_700_000_000_000i64}], "total_count": 1})
        .to_string(),
    );
    // Far beyond what a 32-bit epoch-seconds column holds.
    let far = 99_999_999_999_999i64;
    let invite = |id: &str, status: &str| {
        json!({"object": "organization_invitation", "id": id, "email_address": format!("{id}@example.com"),
            "role": "org:member", "organization_id": "org_far", "inviter_id": "user_inviter",
            "status": status, "expires_at": far, "created_at": 1_700_000_000_000i64})
    };
    let invites = write(
        dir.path(),
        "invites.json",
        &json!({"data": [invite("inv_pending", "pending"), invite("inv_accepted", "accepted"),
            invite("inv_revoked", "revoked")], "total_count": 3})
        .to_string(),
    );
    let report = dir.path().join("report.json");
    let out = import::run(
        &t.db,
        &options(
            Inputs {
                csv: vec![csv],
                organizations: vec![orgs],
                invitations: vec![invites],
                ..Inputs::default()
            },
            report.clone(),
        ),
    )
    .await
    .unwrap();
    let c = &out.counters;
    assert_eq!(
        (
            c.invitations.input,
            c.invitations.imported,
            c.invitations.skipped,
            c.invitations.invalid
        ),
        (3, 1, 2, 0),
        "{}",
        out.summary
    );
    assert_eq!(
        c.skipped_reasons.get("invitation: not pending"),
        Some(&2),
        "{:?}",
        c.skipped_reasons
    );
    let stored = t
        .rows(r#"SELECT id, CAST("expiresAt" AS TEXT) FROM invitation"#)
        .await;
    assert_eq!(
        stored,
        vec![vec![
            Some("inv_pending".to_string()),
            Some(i32::MAX.to_string())
        ]]
    );
    let issues = issues(&report);
    let clamped = issue_of(&issues, "inv_pending");
    assert_eq!(clamped["kind"], "warning");
    assert!(
        clamped["message"]
            .as_str()
            .unwrap()
            .contains(&far.to_string()),
        "{clamped}"
    );
    for id in ["inv_accepted", "inv_revoked"] {
        assert_eq!(issue_of(&issues, id)["kind"], "skipped");
    }
    t.drop_db().await;
}
both_engines!(invitations_are_judged_by_status_before_dates_and_a_far_expiry_is_clamped);

async fn a_rerun_counts_the_social_accounts_it_saw(engine: Engine) {
    let t = TestDb::fresh(engine, true).await;
    let run = || async {
        let mut o = ImportOptions::new(small_inputs());
        o.batch_size = 3;
        import::run(&t.db, &o).await.unwrap()
    };
    let first = run().await;
    assert_eq!(
        (
            first.counters.accounts.input,
            first.counters.accounts.imported
        ),
        (1, 1)
    );
    let again = run().await;
    let a = &again.counters.accounts;
    assert_eq!(
        (a.input, a.imported, a.already_present),
        (1, 0, 1),
        "{}",
        again.summary
    );
    t.drop_db().await;
}
both_engines!(a_rerun_counts_the_social_accounts_it_saw);

fn cutover() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

#[tokio::test]
async fn import_needs_only_the_database_in_its_configuration() {
    let t = TestDb::fresh(Engine::Sqlite, true).await;
    let dir = tempfile::tempdir().unwrap();
    // No [server], no [upstreams], no Kernia secret.
    let config = write(
        dir.path(),
        "import.toml",
        &format!("[kernia]\ndatabase_url = \"{}\"\n", t.url()),
    );
    let out = cutover()
        .args(["import", "-c"])
        .arg(&config)
        .arg("--csv")
        .arg(fixture("small/users.csv"))
        .args(["--progress", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(t.count(r#""user""#).await > 0);
    // Keys it does not know in [import] are still reported.
    let bad = write(
        dir.path(),
        "bad.toml",
        &format!(
            "[kernia]\ndatabase_url = \"{}\"\n[import]\nbatch_sise = 3\n",
            t.url()
        ),
    );
    let out = cutover()
        .args(["import", "-c"])
        .arg(&bad)
        .arg("--csv")
        .arg(fixture("small/users.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("import.batch_sise"));
    t.drop_db().await;
}

#[tokio::test]
async fn a_mistyped_sqlite_path_creates_no_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("kernai.db");
    let config = write(
        dir.path(),
        "cutover.toml",
        &crate::harness::server::toml(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            &format!("sqlite://{}", typo.display()),
            "",
        ),
    );
    let out = cutover()
        .args(["import", "-c"])
        .arg(&config)
        .arg("--csv")
        .arg(fixture("small/users.csv"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the SQLite database") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!typo.exists(), "an empty database file was created");
}

/// The cutover_* tables in a database.
async fn cutover_tables(db: &cutover::db::Db) -> Vec<String> {
    let tables: Vec<String> = match db {
        cutover::db::Db::Postgres(p) => sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(p)
        .await
        .unwrap(),
        cutover::db::Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(p)
                .await
                .unwrap()
        }
    };
    tables
        .into_iter()
        .filter(|t| t.starts_with("cutover_"))
        .collect()
}

async fn serve_and_import_check_kernias_schema_before_creating_tables(engine: Engine) {
    // A database that exists but where Kernia never created its tables.
    let inner = TestDatabase::create(engine).await;
    let db = inner.connect().await;
    match &db {
        cutover::db::Db::Postgres(p) => sqlx::query("CREATE TABLE unrelated (x INTEGER)")
            .execute(p)
            .await
            .map(|_| ()),
        cutover::db::Db::Sqlite(p) => sqlx::query("CREATE TABLE unrelated (x INTEGER)")
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "cutover.toml",
        &crate::harness::server::toml("http://127.0.0.1:9", "http://127.0.0.1:9", &inner.url, ""),
    );
    let serve = cutover()
        .arg("serve")
        .arg("-c")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(stderr.contains("\"user\" table does not exist"), "{stderr}");
    let import = cutover()
        .args(["import", "-c"])
        .arg(&config)
        .arg("--csv")
        .arg(fixture("small/users.csv"))
        .output()
        .unwrap();
    assert!(!import.status.success());
    assert_eq!(cutover_tables(&db).await, Vec::<String>::new());
    db.close().await;
}
both_engines!(serve_and_import_check_kernias_schema_before_creating_tables);

#[tokio::test]
async fn the_progress_line_and_the_summary_count_users_alike() {
    let t = TestDb::fresh(Engine::Sqlite, true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "cutover.toml",
        &crate::harness::server::toml("http://127.0.0.1:9", "http://127.0.0.1:9", t.url(), ""),
    );
    let inputs = small_inputs();
    let mut cmd = cutover();
    cmd.args(["import", "-c"]).arg(&config);
    for (flag, files) in [
        ("--csv", &inputs.csv),
        ("--users", &inputs.users),
        ("--organizations", &inputs.organizations),
    ] {
        cmd.arg(flag).args(files.iter());
    }
    let out = cmd.args(["--progress", "plain"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    // "cutover import: user records 21/21 (100.0%), …"
    let line = stderr
        .lines()
        .find(|l| l.starts_with("cutover import: user records "))
        .unwrap_or_else(|| panic!("no user progress line: {stderr}"));
    let done = line
        .trim_start_matches("cutover import: user records ")
        .split(' ')
        .next()
        .unwrap();
    let (done, total) = done.split_once('/').unwrap();
    assert_eq!(done, total, "{line}");
    // "user records:    21 read (CSV rows and API objects) for 12 users"
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("user records:"))
        .unwrap_or_else(|| panic!("no user records line: {stdout}"));
    let words: Vec<&str> = summary.split_whitespace().collect();
    assert_eq!(words[2], total, "{summary} vs {line}");
    let users_row = stdout.lines().find(|l| l.starts_with("users ")).unwrap();
    let users_input = users_row.split_whitespace().nth(1).unwrap();
    assert_eq!(
        words[words.len() - 2],
        users_input,
        "{summary}\n{users_row}"
    );
    t.drop_db().await;
}
