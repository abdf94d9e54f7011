//! The real `cutover serve` binary as a child process, for tests that need
//! signals (SIGTERM, SIGKILL) or its log output.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `cutover serve` child process and the lines it writes to stderr.
pub struct Process {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Process {
    pub fn start(config: &str) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = config.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
        let path = dir.path().join("cutover.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["serve", "-c"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cutover did not start: {:?}",
                lines.lock().unwrap()
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("cutover exited with {status}: {:?}", lines.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Process {
            child,
            lines,
            url,
            _dir: dir,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// SIGKILL: no drain, no cleanup, as a crash or an OOM kill would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
