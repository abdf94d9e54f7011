//! The real Better Auth JS client (npm `better-auth`, pinned in
//! `tests/client/package-lock.json`, installed by `scripts/client-env.sh`),
//! one call at a time, as a browser tab makes it.
//!
//! A [`Browser`] is a cookie jar (a file the Node side reads before and writes
//! after each call, through the client's `customFetchImpl`) plus the page's
//! origin; [`Browser::call`] runs `tests/client/call.mjs` with a client method
//! such as `signIn.email` and returns what the client returned.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::repo_root;

/// The origin of the app's pages in these tests. The Kernia app is started
/// with it in `KERNIA_TRUSTED_ORIGINS`, as a real deployment lists its site.
pub const ORIGIN: &str = "http://app.example.test";

/// Node.js, and a check that the client is installed.
pub fn node() -> PathBuf {
    let installed = repo_root().join("tests/client/node_modules/better-auth/package.json");
    assert!(
        installed.exists(),
        "the Better Auth client is not installed ({} is missing). Run scripts/client-env.sh \
         (scripts/test.sh does); it needs Node.js 18+ and npm.",
        installed.display()
    );
    PathBuf::from(std::env::var("CUTOVER_NODE").unwrap_or_else(|_| "node".into()))
}

/// What one client call returned: `{data, error}` as the client gives them,
/// and the names of the cookies the server set during the call.
#[derive(Debug, Clone)]
pub struct Answer {
    pub method: String,
    pub data: Value,
    pub error: Value,
    pub set_cookies: Vec<String>,
}

impl Answer {
    /// The data, after checking the client saw no error.
    pub fn ok(&self) -> &Value {
        assert!(
            self.error.is_null(),
            "{}: the client returned an error: {}",
            self.method,
            self.error
        );
        &self.data
    }

    /// The error's HTTP status, when there is an error.
    pub fn status(&self) -> Option<u64> {
        self.error["status"].as_u64()
    }

    /// The error's code, when there is an error.
    pub fn code(&self) -> Option<&str> {
        self.error["code"].as_str()
    }
}

/// One simulated browser: its own cookie jar, talking to `base`.
pub struct Browser {
    base: String,
    jar: PathBuf,
    _dir: tempfile::TempDir,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        let dir = tempfile::tempdir().expect("a temporary directory for the cookie jar");
        Browser {
            base: base.trim_end_matches('/').to_string(),
            jar: dir.path().join("cookies.json"),
            _dir: dir,
        }
    }

    /// Call a client method (`signIn.email`, `organization.create`, …) with
    /// one argument (`Value::Null`: none).
    pub async fn call(&self, method: &str, arg: Value) -> Answer {
        let mut cmd = tokio::process::Command::new(node());
        cmd.current_dir(repo_root().join("tests/client"))
            .arg("call.mjs")
            .arg(&self.base)
            .arg(&self.jar)
            .arg(ORIGIN)
            .arg(method);
        if !arg.is_null() {
            cmd.arg(arg.to_string());
        }
        let out = cmd.stdin(Stdio::null()).kill_on_drop(true).output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .unwrap_or_else(|_| panic!("{method}: the client did not answer within 60 s"))
            .unwrap_or_else(|e| panic!("running node for {method}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{method}: call.mjs failed ({}): {stderr}",
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or("");
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {stdout}\n{stderr}"));
        Answer {
            method: method.to_string(),
            data: v["data"].clone(),
            error: v["error"].clone(),
            set_cookies: v["setCookies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The names of the cookies the browser holds now.
    pub fn cookie_names(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(&self.jar) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v.as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}
