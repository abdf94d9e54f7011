//! SIGHUP: re-read the configuration file and the TLS certificate and key
//! without restarting the listeners.
//!
//! What changes live: the TLS certificate chain and key (from the same or new
//! `server.tls_cert` / `server.tls_key` paths; new handshakes get the new
//! certificate, established connections keep theirs) and `log.level` (unless
//! `RUST_LOG` is set, which wins as it does at start). Every other key that
//! differs from what the process runs with is named in one warning and left as
//! it was: a restart applies it. A file that does not parse or validate, or a
//! certificate/key that cannot be read, changes nothing; the error is logged.
//! Each reload counts in `cutover_config_reloads_total{outcome}`.
//!
//! In-flight requests, WebSockets and HTTP/2 connections are never touched:
//! nothing here closes or rebinds a listener.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Config, ProcessEnv};
use crate::proxy::server::SharedTls;

/// Keys a reload applies to the running process.
const LIVE_KEYS: &[&str] = &["server.tls_cert", "server.tls_key", "log.level"];

/// The configuration the process runs with, as dotted keys and values.
pub struct Reloader {
    path: PathBuf,
    running: BTreeMap<String, toml::Value>,
    tls: Option<SharedTls>,
}

/// What one reload did (for the log and the tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub certificate_reloaded: bool,
    pub log_level: Option<String>,
    /// Keys that differ but cannot change while running.
    pub not_live: Vec<String>,
}

impl Reloader {
    /// `path` is the file the process was started with; its current text is
    /// the baseline later reloads are compared with.
    pub fn new(path: &Path, tls: Option<SharedTls>) -> Reloader {
        let running = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .map(|t| flatten(&t))
            .unwrap_or_default();
        Reloader {
            path: path.to_path_buf(),
            running,
            tls,
        }
    }

    /// Re-read everything; apply what can change live, all or nothing.
    pub fn reload(&mut self) -> anyhow::Result<Outcome> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let cfg = Config::parse(&text, &self.path, &ProcessEnv)?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", self.path.display()))?;
        let new = flatten(&table);

        let mut changed: Vec<String> = self
            .running
            .keys()
            .chain(new.keys())
            .filter(|k| self.running.get(*k) != new.get(*k))
            .cloned()
            .collect();
        changed.sort();
        changed.dedup();

        // The certificate only swaps when the process already terminates TLS
        // and the file still asks for it; adding or removing the TLS
        // listener needs a restart.
        let tls_now = match (&self.tls, &cfg.server.tls) {
            (Some(shared), Some(t)) => Some((
                shared,
                crate::proxy::tls::server_config(&t.cert, &t.key)
                    .context("server.tls_cert / server.tls_key")?,
            )),
            _ => None,
        };
        let log_changed = changed.iter().any(|k| k == "log.level");
        if log_changed {
            // Validated by `Config::parse`; checked again before anything swaps.
            tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
                .map_err(|e| anyhow::anyhow!("log.level: {e}"))?;
        }

        // Everything read and valid: apply.
        let mut outcome = Outcome::default();
        if let Some((shared, config)) = tls_now {
            shared.store(config);
            outcome.certificate_reloaded = true;
        }
        if log_changed {
            match crate::telemetry::set_level(&cfg.log.level) {
                Ok(crate::telemetry::LevelChange::Applied) => {
                    outcome.log_level = Some(cfg.log.level.clone());
                }
                Ok(crate::telemetry::LevelChange::OverriddenByEnv) => {
                    tracing::warn!("log.level changed in the file, but RUST_LOG is set and wins");
                }
                Err(e) => tracing::warn!(error = %e, "log.level not applied"),
            }
        }
        for key in changed {
            let live = LIVE_KEYS.contains(&key.as_str())
                && (key == "log.level" || outcome.certificate_reloaded);
            if live {
                match new.get(&key) {
                    Some(v) => self.running.insert(key, v.clone()),
                    None => self.running.remove(&key),
                };
            } else {
                outcome.not_live.push(key);
            }
        }
        Ok(outcome)
    }
}

/// `a.b.c = value` for every leaf; arrays are leaves.
fn flatten(table: &toml::Table) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, toml::Value>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                other => {
                    out.insert(key, other.clone());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// Reload on every SIGHUP until the process ends. Install before serving:
/// a SIGHUP that arrives with no handler would end the process.
#[cfg(unix)]
pub fn spawn(mut reloader: Reloader) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(path = %reloader.path.display(), "SIGHUP: reloading the configuration");
            match reloader.reload() {
                Ok(outcome) => {
                    crate::metrics::record_config_reload("ok");
                    tracing::info!(
                        certificate_reloaded = outcome.certificate_reloaded,
                        log_level = outcome.log_level.as_deref().unwrap_or("unchanged"),
                        "configuration reloaded"
                    );
                    if !outcome.not_live.is_empty() {
                        tracing::warn!(
                            keys = %outcome.not_live.join(", "),
                            "these settings cannot change while running and were left as they were; restart to apply them"
                        );
                    }
                }
                Err(e) => {
                    crate::metrics::record_config_reload("error");
                    tracing::error!(
                        error = format!("{e:#}"),
                        "configuration reload refused; nothing changed"
                    );
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub fn spawn(_reloader: Reloader) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_names_every_leaf_by_its_dotted_key() {
        let t: toml::Table = "a = 1\n[server]\nlisten = \"x\"\n[x.y]\nz = [1, 2]\n"
            .parse()
            .unwrap();
        let keys: Vec<_> = flatten(&t).into_keys().collect();
        assert_eq!(keys, ["a", "server.listen", "x.y.z"]);
    }

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (crt, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&crt, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (crt, key)
    }

    fn config(crt: &Path, key: &Path, grace: u32, level: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             shutdown_grace_secs = {grace}\n\
             [upstreams]\nlegacy = \"http://127.0.0.1:1\"\nkernia = \"http://127.0.0.1:1\"\n\
             [kernia]\nsecret = \"reload-test-secret-0123456789abcdef\"\n\
             database_url = \"sqlite:///nonexistent/kernia.db\"\n[log]\nlevel = \"{level}\"\n",
            crt.display(),
            key.display()
        )
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a_crt, a_key) = pair(dir.path(), "a");
        let (_, b_key) = pair(dir.path(), "b");
        let path = dir.path().join("cutover.toml");
        std::fs::write(&path, config(&a_crt, &a_key, 1, "info")).unwrap();
        let start = crate::proxy::tls::server_config(&a_crt, &a_key).unwrap();
        let shared: SharedTls = std::sync::Arc::new(arc_swap::ArcSwap::new(start.clone()));
        let mut r = Reloader::new(&path, Some(shared.clone()));

        // Certificate a with key b: refused, the configuration in force stays.
        std::fs::write(&path, config(&a_crt, &b_key, 1, "info")).unwrap();
        let err = r.reload().unwrap_err();
        assert!(format!("{err:#}").contains("server.tls_cert"), "{err:#}");
        assert!(std::sync::Arc::ptr_eq(&shared.load_full(), &start));

        // A valid file: the certificate swaps; a key that needs a restart is
        // named, the live ones are not.
        std::fs::write(&path, config(&a_crt, &a_key, 5, "info")).unwrap();
        let outcome = r.reload().unwrap();
        assert!(outcome.certificate_reloaded);
        assert!(!std::sync::Arc::ptr_eq(&shared.load_full(), &start));
        assert_eq!(outcome.not_live, ["server.shutdown_grace_secs"]);
    }
}
