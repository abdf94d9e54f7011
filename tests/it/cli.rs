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
