//! A real kill: the `cutover import` process is killed with SIGKILL in the
//! middle of writing, started again with the same command, and must end in
//! exactly the state (rows, counts, issues) of an uninterrupted run. The
//! killed and resumed runs write two batches at once (`--writers 2`, on
//! PostgreSQL), the uninterrupted reference one at a time.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover::import::synth::{SynthOptions, generate};

use crate::both_engines;
use crate::harness::Engine;
use crate::harness::server::toml;
use crate::import_support::TestDb;

struct Export {
    _dir: tempfile::TempDir,
    args: Vec<String>,
}

fn export() -> Export {
    let dir = tempfile::tempdir().unwrap();
    let mut synth = SynthOptions::new(12_000);
    synth.page_size = 2_500;
    let files = generate(&synth, dir.path()).unwrap();
    let mut args = vec![
        "--csv".to_string(),
        files.csv.display().to_string(),
        "--users".into(),
    ];
    args.extend(files.users.iter().map(|p| p.display().to_string()));
    for (flag, f) in [
        ("--organizations", &files.organizations),
        ("--memberships", &files.memberships),
        ("--invitations", &files.invitations),
    ] {
        args.push(flag.into());
        args.push(f.display().to_string());
    }
    args.extend(["--batch-size", "40", "--progress", "none"].map(String::from));
    args.push("--work-dir".into());
    args.push(dir.path().join("work").display().to_string());
    Export { _dir: dir, args }
}

fn command(config: &std::path::Path, e: &Export, writers: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("import")
        .arg("-c")
        .arg(config)
        .args(&e.args)
        .args(["--writers", &writers.to_string()])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn config(t: &TestDb, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join(format!("cutover-{}.toml", crate::harness::unique("")));
    std::fs::write(
        &path,
        toml("http://127.0.0.1:9", "http://127.0.0.1:9", t.url(), ""),
    )
    .unwrap();
    path
}

async fn units_done(t: &TestDb) -> i64 {
    let rows = t.rows("SELECT CAST(COALESCE(SUM(units_done), 0) AS TEXT), CAST(COUNT(*) AS TEXT) FROM cutover_import_runs WHERE state = 'running'").await;
    rows[0][0].as_deref().unwrap_or("0").parse().unwrap()
}

/// What a finished run recorded: its counts and its issues in order.
async fn run_record(t: &TestDb) -> (String, Vec<String>) {
    let run = t
        .rows("SELECT id, counters FROM cutover_import_runs WHERE state = 'finished'")
        .await;
    assert_eq!(run.len(), 1, "one finished run: {run:?}");
    let id = run[0][0].clone().unwrap();
    let issues = t
        .rows(&format!("SELECT kind, entity, record_id, location, message FROM cutover_import_issues WHERE run_id = '{id}' ORDER BY seq"))
        .await
        .into_iter()
        .map(|r| format!("{r:?}"))
        .collect();
    (run[0][1].clone().unwrap(), issues)
}

async fn a_killed_import_resumes_to_the_same_end(engine: Engine) {
    let e = export();
    let cfg_dir = tempfile::tempdir().unwrap();

    // The reference: one uninterrupted run.
    let reference = TestDb::fresh(engine, true).await;
    let out = command(&config(&reference, cfg_dir.path()), &e, 1)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same import, killed with SIGKILL once some batches are committed.
    let t = TestDb::fresh(engine, true).await;
    let cfg = config(&t, cfg_dir.path());
    let mut child = command(&cfg, &e, 2)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if units_done(&t).await > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "no batch committed in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_at_kill = units_done(&t).await;
    assert!(done_at_kill > 0);
    assert_eq!(
        t.count("cutover_import_runs WHERE state = 'finished'")
            .await,
        0,
        "killed before the end"
    );

    // Started again: it resumes, and ends exactly where the reference ended.
    let out = command(&cfg, &e, 2).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("(resumed)"), "{stdout}");
    assert_eq!(t.dump().await, reference.dump().await);
    assert_eq!(run_record(&t).await, run_record(&reference).await);

    // And once more: nothing changes.
    let before = t.dump().await;
    let out = command(&cfg, &e, 2).output().unwrap();
    assert!(out.status.success());
    assert_eq!(t.dump().await, before);
    t.drop_db().await;
    reference.drop_db().await;
}

both_engines!(a_killed_import_resumes_to_the_same_end);
