//! Several real `cutover serve` processes side by side, each with its admin
//! listener, for the control-plane tests; a private Redis server a test may
//! stop; and the `cutover` CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The admin token the copies read from the environment.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
pub const ADMIN_TOKEN_ENV: &str = "CUTOVER_TEST_ADMIN_TOKEN";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `cutover serve` process with a public and an admin listener.
pub struct Copy {
    child: Child,
    pub url: String,
    pub admin: String,
    pub config: PathBuf,
}

impl Copy {
    /// `config` must contain `@PUBLIC@` and `@ADMIN@` where the two listen
    /// addresses go (both on loopback).
    pub fn start(dir: &Path, name: &str, config: &str) -> Copy {
        let (public, admin) = (free_port(), free_port());
        let text = config
            .replace("@PUBLIC@", &format!("127.0.0.1:{public}"))
            .replace("@ADMIN@", &format!("127.0.0.1:{admin}"));
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["serve", "-c"])
            .arg(&path)
            .env(ADMIN_TOKEN_ENV, ADMIN_TOKEN)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for_port(public, name, &mut child);
        wait_for_port(admin, name, &mut child);
        Copy {
            child,
            url: format!("http://127.0.0.1:{public}"),
            admin: format!("http://127.0.0.1:{admin}"),
            config: path,
        }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET` an admin path with the token; the JSON answer.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cutover <args>` to completion; (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Redis server of the test's own on a free port (never the shared one),
/// so the test can stop it.
pub struct PrivateRedis {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test starts its own redis-server, which is not installed ({e}); scripts/services.sh installs it")
            });
        wait_for_port(port, "redis-server", &mut child);
        PrivateRedis {
            child: Some(child),
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
