//! Batches written on two PostgreSQL connections at once (`[import] writers`)
//! end exactly where one writer ends — the same rows, counts and issues in the
//! same order — also when the export lists the same organization, membership,
//! invitation or social account in neighbouring batches, and on a second run
//! that refreshes what the first wrote. (Interrupted and resumed with two
//! writers: `import_resume`.)

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
