//! A real headless Chromium driven over the Chrome DevTools Protocol, for
//! page tests: navigate with extra headers, evaluate in the page, answer
//! `confirm()` dialogs, take screenshots.
//!
//! The binary comes from `CUTOVER_CHROMIUM` (set by `scripts/test.sh` through
//! `scripts/browser-env.sh`) or `chromium` on the PATH; a missing browser
//! fails the test with what to install.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Browser {
    child: Child,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next: AtomicU64,
    pub events: Mutex<mpsc::UnboundedReceiver<Value>>,
    _profile: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("CUTOVER_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "Chromium is needed for this test: run scripts/browser-env.sh (installs Debian's chromium) or set CUTOVER_CHROMIUM"
    );
}

impl Browser {
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1600",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting Chromium");
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Some(p) = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let p2 = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = p2.lock().await.remove(&id) {
                        let _ = tx.send(v);
                    }
                } else {
                    let _ = ev_tx.send(v);
                }
            }
        });
        Browser {
            child,
            out,
            pending,
            next: AtomicU64::new(1),
            events: Mutex::new(ev_rx),
            _profile: profile,
        }
    }

    /// Send a command; a receiver for its answer (so a test can wait for an
    /// event, such as a dialog, while the command is still running).
    pub async fn send(&self, method: &str, params: Value) -> oneshot::Receiver<Value> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().await.insert(id, tx);
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.out.send(Message::Text(msg.into())).unwrap();
        rx
    }

    pub async fn call(&self, method: &str, params: Value) -> Value {
        let rx = self.send(method, params).await;
        let v = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{method} timed out"))
            .unwrap();
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// The next event named `method`.
    pub async fn event(&self, method: &str) -> Value {
        let mut events = self.events.lock().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = tokio::time::timeout(left, events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {method} event"))
                .expect("the browser went away");
            if ev["method"] == method {
                return ev["params"].clone();
            }
        }
    }

    /// Load `url` (with `headers` on every request of the page) and wait for it.
    pub async fn open(&self, url: &str, headers: Value) {
        self.call("Page.enable", json!({})).await;
        self.call("Network.enable", json!({})).await;
        self.call("Network.setExtraHTTPHeaders", json!({ "headers": headers }))
            .await;
        self.call("Page.navigate", json!({ "url": url })).await;
        self.event("Page.loadEventFired").await;
    }

    /// Evaluate `expr` in the page; its value.
    pub async fn eval(&self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// A PNG of the page as it is rendered now.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
