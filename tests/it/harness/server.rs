//! cutover itself, started in-process on loopback ports for a test.
//!
//! [`toml`] writes a configuration for the given upstreams and database (every
//! test goes through the real loader), [`Cutover::start`] binds port 0
//! listeners, runs the migrations and serves until [`Cutover::stop`] (which
//! drains like SIGTERM does) or the end of the test.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cutover::config::{Config, ProcessEnv};
use cutover::proxy::{App, server};
use tokio::sync::oneshot;

use super::kernia::SECRET;

/// A configuration for tests. `extra` is appended (more sections, e.g. `[rollout]`).
pub fn toml(legacy: &str, kernia: &str, database_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
plain_listen = "127.0.0.1:0"
shutdown_grace_secs = 5
[upstreams]
legacy = "{legacy}"
kernia = "{kernia}"
connect_timeout_ms = 1000
response_timeout_ms = 5000
[kernia]
secret = "{SECRET}"
database_url = "{database_url}"
session_cache_ms = 200
[log]
level = "warn"
{extra}
"#
    )
}

/// A TLS listener section with a fresh self-signed certificate for `localhost`.
/// Keep the returned directory alive as long as the server.
pub fn tls_section() -> (String, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("t.crt");
    let key = dir.path().join("t.key");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let section = format!(
        "listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    (section, dir, certified.cert.pem())
}

/// `config` with a TLS listener ([`tls_section`]) added to its `[server]`.
pub fn with_tls(config: &str, tls_section: &str) -> String {
    config.replace("[server]\n", &format!("[server]\n{tls_section}"))
}

pub struct Cutover {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Cutover {
    pub async fn start(text: &str) -> Cutover {
        let cfg = Config::parse(text, Path::new("test.toml"), &ProcessEnv)
            .unwrap_or_else(|e| panic!("{e}"));
        let db =
            cutover::db::Db::connect(cfg.kernia.database_url.expose(), cfg.kernia.db.pool_size)
                .await
                .unwrap();
        db.migrate().await.unwrap();
        let state = cutover::state::SharedState::connect(&cfg.state)
            .await
            .unwrap();
        let app = App::new(&cfg, db, state).await.unwrap();
        let listeners = server::bind(&cfg.server).await.unwrap();
        let http = listeners
            .plain_addr()
            .expect("tests configure plain_listen");
        let https = listeners.tls_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let grace = cfg.server.shutdown_grace;
        let task = tokio::spawn(server::serve(
            app.clone(),
            listeners,
            async {
                let _ = rx.await;
            },
            grace,
        ));
        Cutover {
            http,
            https,
            app,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Begin the graceful shutdown (like SIGTERM) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Shut down and wait for the drain to finish.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        self.app.shutdown().await;
    }
}

impl Drop for Cutover {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
