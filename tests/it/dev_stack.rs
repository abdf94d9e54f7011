//! The README's first command and its walkthrough: `scripts/dev.sh` brings up the
//! legacy app with the Clerk stand-in, the Kernia app, the imported sample Clerk
//! export and cutover; `scripts/dev-walkthrough.py` then signs a demo user in at
//! "Clerk" (legacy app), out, and in at Kernia with the same password
//! (migrated, Kernia app), and checks `cutover status`.
//!
//! The stack runs as the user runs it (the real script, real processes), in a
//! state directory of its own and on shifted ports so it cannot meet a
//! developer's own `scripts/dev.sh`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{kernia, repo_root};

/// `scripts/dev.sh` as a child; stopped with SIGTERM (its trap stops the rest).
struct DevStack {
    child: Child,
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An offset that puts all six of the stack's ports (scripts/dev.sh's `port`
/// calls, the admin listener's 9901 included) on free ones.
fn free_offset() -> u16 {
    let base = [8443u16, 8080, 3001, 3002, 3010, 9901];
    for _ in 0..200 {
        let offset = 20_000 + (rand::random::<u16>() % 20_000);
        if base
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p + offset)).is_ok())
        {
            return offset;
        }
    }
    panic!("no free port offset for the dev stack");
}

#[test]
fn dev_sh_walkthrough_migrates_a_clerk_user() {
    let dir = tempfile::tempdir().unwrap();
    let offset = free_offset();
    let cutover = env!("CARGO_BIN_EXE_cutover");
    let python = kernia::python();
    let mut child = Command::new("bash")
        .arg(repo_root().join("scripts/dev.sh"))
        .current_dir(repo_root())
        .env("CUTOVER_BIN", cutover)
        .env("CUTOVER_KERNIA_PYTHON", &python)
        .env("CUTOVER_DEV_DIR", dir.path())
        .env("CUTOVER_DEV_PORT_OFFSET", offset.to_string())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting scripts/dev.sh");
    let stderr = child.stderr.take().unwrap();
    let stack = DevStack { child };

    // Every line dev.sh (and cutover, through it) writes, until it says ready.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(line) => {
                let ready = line.starts_with("dev: ready");
                seen.push(line);
                if ready {
                    break;
                }
            }
            Err(e) => panic!("dev.sh never said it was ready ({e}):\n{}", seen.join("\n")),
        }
    }
    let printed = seen.join("\n");
    // The demo passwords and the walkthrough are printed for the user.
    assert!(printed.contains("ada@demo.test") && printed.contains("ada-clerk-2026"));
    assert!(printed.contains("Walkthrough"), "{printed}");
    assert!(
        printed.contains("importing the sample Clerk export"),
        "{printed}"
    );

    let config = dir.path().join("dev.toml");
    let out = Command::new(&python)
        .arg(repo_root().join("scripts/dev-walkthrough.py"))
        .args(["--base", &format!("http://127.0.0.1:{}", 8080 + offset)])
        .args(["--clerk", &format!("http://127.0.0.1:{}", 3010 + offset)])
        .args(["--cutover", cutover])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "walkthrough failed:\n{report}\n--- dev.sh:\n{printed}"
    );
    assert!(report.contains("walkthrough: all steps passed"), "{report}");

    // `cutover validate` with the demo's plan passes on the sample stack...
    let plan = std::fs::read_to_string(repo_root().join("deploy/demo/validate.toml"))
        .unwrap()
        .replace(":8080", &format!(":{}", 8080 + offset));
    let plan_path = dir.path().join("validate.toml");
    std::fs::write(&plan_path, &plan).unwrap();
    let validate = |plan: &std::path::Path| {
        let out = Command::new(cutover)
            .args(["validate", "--json", "-c"])
            .arg(&config)
            .arg("--plan")
            .arg(plan)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), json)
    };
    let (code, result) = validate(&plan_path);
    assert_eq!(code, Some(0), "{result:#}");
    let checks = result["checks"].as_array().unwrap();
    let by = |r: &str| checks.iter().filter(|c| c["result"] == r).count();
    assert_eq!(
        (by("pass"), by("fail"), by("manual")),
        (6, 0, 3),
        "{result:#}"
    );
    assert_eq!(result["cleanup_left"], serde_json::json!([]), "{result:#}");

    // ... and fails, check by check with the request, on a broken one: the
    // plan's address is the legacy app itself, which has no Kernia routes.
    let broken = plan.replace(
        &format!("127.0.0.1:{}", 8080 + offset),
        &format!("127.0.0.1:{}", 3002 + offset),
    );
    let broken_path = dir.path().join("broken.toml");
    std::fs::write(&broken_path, broken).unwrap();
    let (code, result) = validate(&broken_path);
    assert_eq!(code, Some(1), "{result:#}");
    for c in result["checks"].as_array().unwrap() {
        if c["result"] == "manual" {
            continue;
        }
        assert_eq!(c["result"], "fail", "{c}");
        // The legacy app answers 501 to a POST it has no route for.
        assert!(
            c["reason"]
                .as_str()
                .unwrap()
                .starts_with("expected 200, got 501"),
            "{c}"
        );
        assert_eq!(c["request"], "POST /api/auth/sign-up/email", "{c}");
    }
    drop(stack);
    // The stand-in's signing key was generated into the state directory.
    assert!(dir.path().join("clerk-standin-key.pem").exists());
}
