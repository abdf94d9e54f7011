//! The real Kernia 0.1.0 server, one per test.
//!
//! Runs `deploy/kernia-app/app.py` with the Python environment that
//! `scripts/kernia-env.sh` creates (pinned requirements), on a free loopback
//! port (the app binds port 0 itself and prints the port it got), against the
//! test's own database. The process is killed when the server value is dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::databases::TestDatabase;
use super::{Engine, repo_root};

/// The Kernia secret every test server uses.
pub const SECRET: &str = "cutover-test-secret-0123456789abcdef";

/// The Python interpreter of the Kernia environment.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CUTOVER_KERNIA_PYTHON") {
        return PathBuf::from(p);
    }
    let lock = std::fs::read(repo_root().join("deploy/kernia-app/requirements.lock.txt"))
        .expect("reading deploy/kernia-app/requirements.lock.txt");
    let hash = hex::encode(sha2::Sha256::digest(&lock));
    let cache = std::env::var("CUTOVER_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
                .join(".cache/cutover")
        });
    let python = cache
        .join(format!("kernia-venv-{}", &hash[..12]))
        .join("bin/python");
    assert!(
        python.exists(),
        "the Kernia Python environment is missing ({}). Create it with scripts/kernia-env.sh \
         (scripts/test.sh does this), or point CUTOVER_KERNIA_PYTHON at a Python that has \
         deploy/kernia-app/requirements.lock.txt installed.",
        python.display()
    );
    python
}

/// Options for one server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep Kernia's own rate limiter on (off by default in tests: without a
    /// real client address every request shares one bucket).
    pub rate_limit: bool,
    /// Another app script (a wrapper around `deploy/kernia-app/app.py`, e.g. one
    /// that adds an OAuth provider); it gets the same environment.
    pub app: Option<PathBuf>,
    /// Extra environment for the app.
    pub env: Vec<(String, String)>,
}

/// A running Kernia server on its own database.
pub struct KerniaServer {
    pub base_url: String,
    pub db: TestDatabase,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl KerniaServer {
    /// A fresh database of `engine` and a Kernia server on it.
    pub async fn start(engine: Engine) -> KerniaServer {
        Self::start_with(TestDatabase::create(engine).await, Options::default()).await
    }

    pub async fn start_with(db: TestDatabase, options: Options) -> KerniaServer {
        let app = options
            .app
            .clone()
            .unwrap_or_else(|| repo_root().join("deploy/kernia-app/app.py"));
        let mut child = Command::new(python())
            .arg(app)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .env("KERNIA_DATABASE_URL", &db.url)
            .env("KERNIA_SECRET", SECRET)
            .env("KERNIA_HOST", "127.0.0.1")
            .env("KERNIA_PORT", "0")
            .env(
                "KERNIA_RATE_LIMIT",
                if options.rate_limit { "on" } else { "off" },
            )
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the Kernia app with {}: {e}", python().display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let sink = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                    if s.len() < 64 * 1024 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let wait = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.strip_prefix("kernia-app listening on ") {
                    return Some(addr.trim().to_string());
                }
            }
            None
        };
        let addr = match tokio::time::timeout(Duration::from_secs(90), wait).await {
            Ok(Some(addr)) => addr,
            outcome => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let log = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                panic!(
                    "the Kernia app did not start ({}); its stderr:\n{log}",
                    if outcome.is_err() {
                        "timed out"
                    } else {
                        "exited"
                    }
                );
            }
        };
        // Keep draining stdout so the app never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        KerniaServer {
            base_url: format!("http://{addr}"),
            db,
            child,
            stderr,
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What the app printed on stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stop the server now (it also stops when dropped).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// An HTTP client for talking to Kernia (and cutover) in tests: no redirects
/// followed, no cookie store (tests handle cookies explicitly).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building an HTTP client")
}

/// The `better-auth.session_token` cookie (name=value) from a response.
pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("better-auth.session_token="))
        .and_then(|v| v.split(';').next())
        .filter(|c| c.len() > "better-auth.session_token=".len())
        .map(str::to_string)
}

/// Sign up through Kernia's real route; returns (user id, session cookie).
pub async fn sign_up(base: &str, email: &str, password: &str, name: &str) -> (String, String) {
    let resp = client()
        .post(format!("{base}/api/auth/sign-up/email"))
        .json(&serde_json::json!({ "email": email, "password": password, "name": name }))
        .send()
        .await
        .expect("sign-up request");
    assert_eq!(resp.status(), 200, "sign-up failed");
    let cookie = session_cookie(&resp).expect("sign-up sets a session cookie");
    let body: serde_json::Value = resp.json().await.expect("sign-up JSON");
    let id = body["user"]["id"].as_str().expect("user id").to_string();
    (id, cookie)
}

/// `GET /api/auth/get-session` with a cookie; the user id when signed in.
pub async fn session_user(base: &str, cookie: &str) -> Option<String> {
    let resp = client()
        .get(format!("{base}/api/auth/get-session?disableRefresh=true"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("get-session request");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("get-session body");
    if text.trim().is_empty() || text.trim() == "null" {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(&text).expect("get-session JSON");
    body["user"]["id"].as_str().map(str::to_string)
}
