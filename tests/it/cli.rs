//! The command line contract: subcommands, exit codes, `serve --check`.

use std::process::Command;

use crate::harness::repo_root;

fn cutover() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cutover"));
    c.current_dir(repo_root());
    c.env_remove("CUTOVER_CONFIG");
    c
}

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let out = cutover().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "serve",
        "import",
        "hash",
        "status",
        "rollout",
        "stragglers",
        "dev-cert",
    ] {
        assert!(text.contains(sub), "--help does not list {sub}:\n{text}");
    }
    assert!(text.contains("Exit status"), "{text}");
}

#[test]
fn serve_check_accepts_the_dev_config() {
    let out = cutover()
        .args(["serve", "--check", "-c", "config/dev.toml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(
        !text.contains("cutover-dev-secret"),
        "secrets are never printed"
    );
}

#[test]
fn serve_check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nplain_listen = \"nope\"\nwat = 1\n[upstreams]\nlegacy = \"http://x\"\n[kernia]\nsecret = \"super-secret-value-123\"\n",
    )
    .unwrap();
    let out = cutover()
        .args(["serve", "--check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "server.plain_listen",
        "server.wat",
        "upstreams.kernia",
        "kernia.database_url",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(!err.contains("super-secret-value-123"), "{err}");
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let out = cutover()
        .args(["status", "-c", "/nonexistent/cutover.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/cutover.toml"));
}

#[test]
fn dev_cert_writes_a_pair_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        cutover()
            .args(["dev-cert", "--dir"])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(run(&[]).status.code(), Some(0));
    let key = std::fs::read_to_string(dir.path().join("dev.key")).unwrap();
    assert!(key.contains("PRIVATE KEY"));
    assert!(
        std::fs::read_to_string(dir.path().join("dev.crt"))
            .unwrap()
            .contains("CERTIFICATE")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("dev.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["--force"]).status.code(), Some(0));
}

/// `cutover status` used to close its database pool while still holding a
/// connection from it; closing waits for every connection to come back, so about
/// half of the runs printed the counts and then never exited. Ten runs in a row
/// must each exit (a hung run is stopped after 30 s and fails the test).
#[test]
fn status_exits_after_printing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nplain_listen = \"127.0.0.1:0\"\n\
             [upstreams]\nlegacy = \"http://127.0.0.1:1\"\nkernia = \"http://127.0.0.1:1\"\n\
             [kernia]\nsecret = \"status-test-secret-0123456789abcdef\"\n\
             database_url = \"sqlite://{}\"\n",
            dir.path().join("kernia.db").display()
        ),
    )
    .unwrap();
    // A database the Kernia app has set up (the CLI refuses any other).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite://{}", dir.path().join("kernia.db").display());
        let db = cutover::db::Db::connect(&url, 1).await.unwrap();
        crate::import_support::create_kernia_schema(&db, crate::harness::Engine::Sqlite).await;
        db.close().await;
    });
    for run in 1..=10 {
        let mut child = cutover()
            .args(["status", "--json", "-c"])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("run {run}: `cutover status` printed its counts but did not exit");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(status.success(), "run {run}: {status}");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        let counts: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(counts["total"], 0, "{out}");
    }
}

#[test]
fn validate_refuses_an_unknown_check_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cutover.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nplain_listen = \"127.0.0.1:0\"\n\
             [upstreams]\nlegacy = \"http://127.0.0.1:1\"\nkernia = \"http://127.0.0.1:1\"\n\
             [kernia]\nsecret = \"validate-test-secret-0123456789abcdef\"\n\
             database_url = \"sqlite://{}\"\n",
            dir.path().join("kernia.db").display()
        ),
    )
    .unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "base_url = \"http://127.0.0.1:1\"\nchecks = [\"email_sign_in\", \"telepathy\"]\n",
    )
    .unwrap();
    let out = cutover()
        .args(["validate", "-c"])
        .arg(&config)
        .arg("--plan")
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown check `telepathy`"), "{err}");
}
