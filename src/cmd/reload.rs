//! SIGHUP: re-read the configuration file, the TLS certificate and key and the
//! Clerk key file without restarting the listeners.
//!
//! # What changes live
//!
//! | what | who gets the new value |
//! |---|---|
//! | `server.tls_cert`, `server.tls_key` and the files they name (re-read on every reload) | new TLS handshakes; an established connection keeps its certificate |
//! | `log.level` | at once (unless `RUST_LOG` is set: it wins, as at start) |
//! | `[limits]` `max_body_bytes`, `auth_body_bytes`, `auth_body_timeout_secs` | new requests, also on established connections |
//! | `[limits]` `max_header_bytes`, `idle_timeout_secs`, `header_read_timeout_ms` | new connections; an established one keeps those it was accepted with |
//! | `[limits]` `max_connections` | at once: larger admits more, smaller accepts no new connection until enough have closed (none is closed for it; see `proxy::connections::ConnectionLimit`) |
//! | `[upstreams]` (URLs, timeouts, pool) | new requests, through a new upstream client; a request in flight and an upgraded connection (WebSocket) finish on the upstream they started with |
//! | `[clerk]` and the `jwt_key_file` it names (re-read on every reload) | new requests, through a new verifier whose verified-token cache starts empty, so a token whose key is gone is refused at once; adding or removing `[clerk]` turns Clerk sessions on or off |
//!
//! A part is rebuilt only when something of it changed: an unchanged
//! `[upstreams]` keeps its pooled connections, an unchanged `[clerk]` its cache.
//! Every other key that differs from what the process runs with is named in
//! one warning and left as it was: a restart applies it.
//!
//! # All or nothing
//!
//! The file is parsed and validated and everything to swap is built — the TLS
//! configuration, the upstream client, the Clerk verifier (a JWKS URL is
//! fetched) — before anything changes. A file that does not parse or
//! validate, a certificate/key that cannot be read, an upstream client or
//! Clerk key that cannot be set up: nothing changes, the error is logged
//! with the key or file at fault. Each reload counts in
//! `cutover_config_reloads_total{outcome="ok"|"error"}`.
//!
//! In-flight requests, WebSockets and HTTP/2 connections are never touched:
//! nothing here closes or rebinds a listener, and a request keeps the
//! upstreams and verifier it loaded (see [`App::swap`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use anyhow::Context as _;

use crate::config::{ClerkConfig, ClerkKeys, Config, ProcessEnv};
use crate::identify::clerk::ClerkVerifier;
use crate::proxy::server::SharedTls;
use crate::proxy::{App, Swap, forward};

/// Sections a reload rebuilds and swaps into the running proxy.
const LIVE_SECTIONS: [&str; 3] = ["limits", "upstreams", "clerk"];

/// Re-reads the file the process was started with and applies it.
pub struct Reloader {
    path: PathBuf,
    /// The configuration the process runs with, as dotted keys and values.
    running: BTreeMap<String, toml::Value>,
    /// The Clerk PEM key in force, to notice a key file rewritten in place.
    clerk_pem: Option<String>,
    tls: Option<SharedTls>,
    app: Weak<App>,
}

/// What one reload did (for the log and the tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub certificate_reloaded: bool,
    pub log_level: Option<String>,
    /// The parts of the proxy swapped: `limits`, `upstreams`, `clerk`.
    pub swapped: Vec<&'static str>,
    /// Keys that differ but cannot change while running.
    pub not_live: Vec<String>,
}

impl Reloader {
    /// `path` is the file the process was started with and `cfg` what it
    /// said then; its current text is the baseline later reloads are
    /// compared with.
    pub fn new(path: &Path, cfg: &Config, app: &Arc<App>, tls: Option<SharedTls>) -> Reloader {
        let running = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .map(|t| flatten(&t))
            .unwrap_or_default();
        Reloader {
            path: path.to_path_buf(),
            running,
            clerk_pem: pem_of(cfg.clerk.as_ref()),
            tls,
            app: Arc::downgrade(app),
        }
    }

    /// Re-read everything; apply what can change live, all or nothing.
    pub async fn reload(&mut self) -> anyhow::Result<Outcome> {
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
        let touched = |section: &str| changed.iter().any(|k| in_section(k, section));

        // Build and check everything before anything swaps.
        //
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
        let app = self
            .app
            .upgrade()
            .context("the proxy has stopped; nothing to reload")?;
        let mut swap = Swap::default();
        if touched("limits") {
            swap.limits = Some(cfg.limits.clone());
        }
        if touched("upstreams") {
            let upstreams = forward::Upstreams::new(&cfg.upstreams)
                .context("upstreams: cannot set up the upstream client")?;
            swap.upstreams = Some(Arc::new(upstreams));
        }
        let clerk_pem = pem_of(cfg.clerk.as_ref());
        if touched("clerk") || clerk_pem != self.clerk_pem {
            swap.clerk = Some(match &cfg.clerk {
                Some(c) => Some(clerk_verifier(c).await?),
                None => None,
            });
        }

        // Everything read and valid: apply.
        let mut outcome = Outcome::default();
        let tls_swaps = tls_now.is_some();
        if let Some((shared, config)) = tls_now {
            shared.store(config);
            outcome.certificate_reloaded = true;
        }
        outcome.swapped = [
            ("limits", swap.limits.is_some()),
            ("upstreams", swap.upstreams.is_some()),
            ("clerk", swap.clerk.is_some()),
        ]
        .into_iter()
        .filter_map(|(part, swapped)| swapped.then_some(part))
        .collect();
        app.swap(swap);
        self.clerk_pem = clerk_pem;
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
            if applies_live(&key, tls_swaps) {
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

/// A verifier for the reloaded `[clerk]`. Unlike at start, a JWKS that gives
/// no key refuses the reload: swapping it in would sign every Clerk user out
/// of a proxy that recognises them now.
async fn clerk_verifier(cfg: &ClerkConfig) -> anyhow::Result<ClerkVerifier> {
    let verifier = ClerkVerifier::new(cfg)
        .await
        .context("clerk: cannot set up Clerk token verification")?;
    if let ClerkKeys::Jwks { url, .. } = &cfg.keys
        && verifier.stats().keys == 0
    {
        anyhow::bail!("clerk.jwks_url: no signing key could be fetched from {url}");
    }
    Ok(verifier)
}

/// Whether a changed key takes effect on reload. The certificate keys do
/// only when the process terminates TLS and the file still asks for it.
fn applies_live(key: &str, tls_swaps: bool) -> bool {
    match key {
        "server.tls_cert" | "server.tls_key" => tls_swaps,
        "log.level" => true,
        _ => LIVE_SECTIONS.iter().any(|s| in_section(key, s)),
    }
}

/// `limits.max_body_bytes` is in `limits`; `limits_x.y` is not.
fn in_section(key: &str, section: &str) -> bool {
    key.strip_prefix(section)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The PEM text of a networkless Clerk key (`jwt_key` or the file
/// `jwt_key_file` names, as read by `Config::parse`).
fn pem_of(clerk: Option<&ClerkConfig>) -> Option<String> {
    match clerk.map(|c| &c.keys) {
        Some(ClerkKeys::Pem(pem)) => Some(pem.clone()),
        _ => None,
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
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(path = %reloader.path.display(), "SIGHUP: reloading the configuration");
            match reloader.reload().await {
                Ok(outcome) => {
                    crate::metrics::record_config_reload("ok");
                    let swapped = if outcome.swapped.is_empty() {
                        "nothing".to_string()
                    } else {
                        outcome.swapped.join(", ")
                    };
                    tracing::info!(
                        certificate_reloaded = outcome.certificate_reloaded,
                        log_level = outcome.log_level.as_deref().unwrap_or("unchanged"),
                        swapped = %swapped,
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
#[path = "reload_tests.rs"]
mod tests;
