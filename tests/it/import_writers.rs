//! Batches written on two PostgreSQL connections at once (`[import] writers`)
//! end exactly where one writer ends — the same rows, counts and issues in the
//! same order — also when the export lists the same organization, membership,
//! invitation or social account in neighbouring batches, on a second run that
//! refreshes what the first wrote, and when a refresh moves an email to a user
//! one batch on. Without the rule that keeps batches sharing a value apart,
//! the first test ends in a lock cycle (stopped by the 30 s `lock_timeout`)
//! and the last one reports a conflict where one writer refreshes.
//! (Interrupted and resumed with two writers: `import_resume`.)

use std::path::Path;

use cutover::import::synth::{SynthOptions, generate};
use cutover::import::{self, ImportOptions, Inputs, Outcome};
use serde_json::{Value, json};

use crate::import_support::{Engine, TestDb};

const BATCH: usize = 5;

fn read(path: &Path) -> Vec<Value> {
    // A list endpoint's page (`{"data": […]}`) or a bare array (user pages).
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v.get("data").unwrap_or(&v).as_array().unwrap().clone()
}

fn write(path: &Path, data: Vec<Value>) {
    let n = data.len();
    std::fs::write(path, json!({"data": data, "total_count": n}).to_string()).unwrap();
}

/// Insert a copy of `data[at]`, changed by `change`, one batch further on.
fn repeat_later(data: &mut Vec<Value>, at: usize, change: impl Fn(&mut Value)) {
    let mut copy = data[at].clone();
    change(&mut copy);
    data.insert((at + BATCH).min(data.len()), copy);
}

/// A synthetic export with records repeated in the next batch: organizations
/// (same id renamed; a new id with a taken slug), memberships (same id, another
/// role), an invitation, and users holding another user's social account (the
/// same provider account; the same Clerk account id).
fn export_with_repeats(dir: &Path) -> Inputs {
    let mut synth = SynthOptions::new(400);
    synth.page_size = 400;
    let files = generate(&synth, dir).unwrap();

    let mut orgs = read(&files.organizations);
    for at in [6, 2, 0] {
        repeat_later(&mut orgs, at, |o| {
            o["name"] = json!("Renamed");
            o["updated_at"] = json!(o["updated_at"].as_i64().unwrap() + 1000);
        });
    }
    repeat_later(&mut orgs, 3, |o| o["id"] = json!("org_2repeatedslug"));
    write(&files.organizations, orgs);

    let mut members = read(&files.memberships);
    for at in [9, 1] {
        repeat_later(&mut members, at, |m| {
            m["role"] = json!("org:admin");
            m["updated_at"] = json!(m["updated_at"].as_i64().unwrap() + 1000);
        });
    }
    write(&files.memberships, members);

    let mut invites = read(&files.invitations);
    repeat_later(&mut invites, 0, |_| {});
    write(&files.invitations, invites);

    // Users are written in id order: hand a Google account of one user to
    // users one batch further on in that order.
    let mut users: Vec<Value> = files.users.iter().flat_map(|f| read(f)).collect();
    users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let google: Vec<usize> = (0..users.len())
        .filter(|&i| {
            users[i]["external_accounts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    let mut handed = 0;
    for &from in &google {
        let to = from + BATCH;
        if to >= users.len() || handed == 4 {
            break;
        }
        let mut account = users[from]["external_accounts"][0].clone();
        if handed % 2 == 0 {
            // The same provider account under another Clerk id.
            account["id"] = json!(format!("idn_repeated{handed}"));
        } else {
            // The same Clerk id for another provider account.
            account["provider_user_id"] = json!(format!("99{handed}"));
        }
        account["identification_id"] = Value::Null;
        users[to]["external_accounts"] = json!([account]);
        handed += 1;
    }
    assert_eq!(handed, 4, "the synthetic export has Google accounts");
    let all_users = dir.join("users-all.json");
    write(&all_users, users);

    Inputs {
        csv: vec![files.csv],
        users: vec![all_users],
        organizations: vec![files.organizations],
        memberships: vec![files.memberships],
        invitations: vec![files.invitations],
    }
}

async fn run(t: &TestDb, inputs: &Inputs, writers: usize, work: &Path) -> Outcome {
    let mut o = ImportOptions::new(inputs.clone());
    o.batch_size = BATCH;
    o.writers = writers;
    o.work_dir = work.to_path_buf();
    import::run(&t.db, &o).await.unwrap()
}

/// The run's issues in order, as stored.
async fn issues(t: &TestDb, run_id: &str) -> Vec<String> {
    t.rows(&format!("SELECT kind, entity, record_id, location, message FROM cutover_import_issues WHERE run_id = '{run_id}' ORDER BY seq"))
        .await
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_end_exactly_where_one_writer_ends() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = export_with_repeats(dir.path());
    let one = TestDb::fresh(Engine::Postgres, true).await;
    let two = TestDb::fresh(Engine::Postgres, true).await;

    // The first run, then a second that finds everything and refreshes it.
    for round in ["first", "second"] {
        let a = run(&one, &inputs, 1, dir.path()).await;
        let b = run(&two, &inputs, 2, dir.path()).await;
        assert_eq!(b.counters, a.counters, "{round} run");
        assert!(a.counters.adds_up(), "{:#?}", a.counters);
        assert_eq!(two.dump().await, one.dump().await, "{round} run");
        assert_eq!(
            issues(&two, &b.run.id).await,
            issues(&one, &a.run.id).await,
            "{round} run"
        );
        let c = &a.counters;
        if round == "first" {
            // The repeats did what they should, so the comparison means something.
            assert!(c.organizations.conflicts >= 1, "{c:#?}");
            assert!(c.organizations.already_present >= 3, "{c:#?}");
            assert!(c.memberships.already_present >= 2, "{c:#?}");
            assert!(c.invitations.already_present >= 1, "{c:#?}");
            assert!(c.accounts.conflicts >= 1, "{c:#?}");
            assert!(c.accounts.already_present >= 1, "{c:#?}");
        }
    }
    one.drop_db().await;
    two.drop_db().await;
}

/// Users sorted by id hand their email to the user one batch further on, at
/// Clerk, after the first import: the refresh of the later batch needs the
/// earlier batch's change committed (`Keys::held_now`).
fn move_emails_one_batch_on(users_file: &Path) {
    let mut users = read(users_file);
    users.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let primary = |u: &Value| -> usize {
        let id = &u["primary_email_address_id"];
        u["email_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .position(|e| &e["id"] == id)
            .unwrap()
    };
    for from in [10, 40, 70] {
        let to = from + BATCH;
        let (pf, pt) = (primary(&users[from]), primary(&users[to]));
        let old = users[from]["email_addresses"][pf]["email_address"].clone();
        users[from]["email_addresses"][pf]["email_address"] =
            json!(format!("moved{from}@example.org"));
        users[to]["email_addresses"][pt]["email_address"] = old;
        for i in [from, to] {
            let later = users[i]["updated_at"].as_i64().unwrap() + 3_600_000;
            users[i]["updated_at"] = json!(later);
        }
    }
    write(users_file, users);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_moved_to_a_user_one_batch_on_is_refreshed_as_with_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = export_with_repeats(dir.path());
    let one = TestDb::fresh(Engine::Postgres, true).await;
    let two = TestDb::fresh(Engine::Postgres, true).await;
    run(&one, &inputs, 1, dir.path()).await;
    run(&two, &inputs, 2, dir.path()).await;
    assert_eq!(two.dump().await, one.dump().await);

    move_emails_one_batch_on(&inputs.users[0]);
    let a = run(&one, &inputs, 1, dir.path()).await;
    let b = run(&two, &inputs, 2, dir.path()).await;
    let profiles = a.counters.refreshed.get("users: profile").copied();
    assert!(
        profiles >= Some(4),
        "the moves were refreshed: {:#?}",
        a.counters
    );
    assert_eq!(b.counters, a.counters);
    assert_eq!(two.dump().await, one.dump().await);
    assert_eq!(issues(&two, &b.run.id).await, issues(&one, &a.run.id).await);
    one.drop_db().await;
    two.drop_db().await;
}

/// The settings of every import transaction on PostgreSQL (`tuning::tune`).
/// Without `max_parallel_workers_per_gather = 0`, PostgreSQL planned each
/// batch's ledger lookup with a parallel worker once the tables held a few
/// hundred thousand users, and starting it took ~30 ms of a 40 ms statement,
/// every batch (#13).
#[tokio::test]
async fn the_import_s_transactions_never_start_parallel_workers() {
    let t = TestDb::fresh(Engine::Postgres, true).await;
    let mut tx = t.db.begin().await.unwrap();
    cutover::import::store::tuning::tune(&mut tx.conn())
        .await
        .unwrap();
    let cutover::db::Conn::Postgres(c) = tx.conn() else {
        panic!("a PostgreSQL transaction");
    };
    let mut settings = Vec::new();
    for name in [
        "max_parallel_workers_per_gather",
        "plan_cache_mode",
        "enable_seqscan",
        "synchronous_commit",
    ] {
        let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(&mut *c)
            .await
            .unwrap();
        settings.push(v);
    }
    assert_eq!(settings, ["0", "force_custom_plan", "off", "off"]);
    drop(tx);
    t.drop_db().await;
}
