//! Configuration: one TOML file, read into validated types before anything starts.
//!
//! `load` is the only way in. It reports every problem at once, each naming its
//! dotted key (unknown keys included), so `cutover serve --check` can tell an
//! operator everything that is wrong with a file in one go. Every secret may be
//! given inline or through an environment variable named by a `*_env` key, and
//! is held as a [`Secret`] that never prints.
//!
//! `config/cutover.example.toml` documents every key; keep it in step with this
//! module (a test loads it).

mod admin;
mod clerk_sync;
mod delivery;
mod import_only;
mod migration;
mod reader;
mod routing;
mod sections;

use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::secret::Secret;
pub use admin::{AdminConfig, MIN_TOKEN_CHARS};
pub use clerk_sync::{ClerkSyncConfig, DEFAULT_WEBHOOK_PATH, LiveVerifyConfig};
pub use delivery::{EndpointConfig, OutboxConfig, SVIX_SCHEDULE_SECS, WebhooksConfig};
pub use import_only::ImportSettings;
pub use migration::{CapsConfig, MigrationConfig, ResetConfig, SmtpConfig, WebhookConfig};
pub use reader::{Env, Problem, ProcessEnv};
pub use routing::{AssertionConfig, AssertionKey, DEFAULT_DENIED};
pub use sections::*;

use reader::{Problems, Section};

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstreams: UpstreamsConfig,
    pub kernia: KerniaConfig,
    pub clerk: Option<ClerkConfig>,
    pub state: StateConfig,
    pub limits: LimitsConfig,
    pub import: ImportConfig,
    pub log: LogConfig,
    /// `[rollout]` and `[routes]`. The `[rollout]` part only seeds the live
    /// rollout in the database (see `control`).
    pub routing: crate::route::RouteSettings,
    /// How often each copy reads the live rollout (`[rollout] poll_ms`).
    pub rollout_poll: std::time::Duration,
    /// `[admin]`: off when absent.
    pub admin: Option<AdminConfig>,
    pub assertion: Option<AssertionConfig>,
    pub migration: MigrationConfig,
    /// Without `[reset]`, users who must reset are told so but no link is sent.
    pub reset: Option<ResetConfig>,
    /// `[outbox]`: how queued deliveries (reset links, webhooks) are retried.
    pub outbox: OutboxConfig,
    /// `[webhooks]`: Clerk-shaped events to the app's consumers; off without it.
    pub webhooks: Option<WebhooksConfig>,
    /// `[clerk_sync]`: Clerk's webhooks in and live password verification.
    pub clerk_sync: Option<ClerkSyncConfig>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path} has {} problem(s):\n{}", .problems.len(), ProblemList(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Read and validate the file at `path`, taking `*_env` secrets from the
    /// process environment. Relative file paths inside the config (certificates,
    /// key files) are resolved against the file's directory's parent when they
    /// do not exist relative to the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path, &ProcessEnv)
    }

    /// Validate TOML text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    message: e.to_string(),
                })?;
        let mut p = Problems::default();
        let mut root = Section::root(table);

        let server = ServerConfig::read(root.section(&mut p, "server"), &mut p);
        let upstreams = UpstreamsConfig::read(root.section(&mut p, "upstreams"), &mut p);
        let kernia = KerniaConfig::read(root.section(&mut p, "kernia"), &mut p, env);
        let clerk = root
            .optional_section(&mut p, "clerk")
            .and_then(|s| ClerkConfig::read(s, &mut p, env));
        let state = StateConfig::read(root.section(&mut p, "state"), &mut p, env);
        let limits = LimitsConfig::read(root.section(&mut p, "limits"), &mut p);
        let import = ImportConfig::read(root.section(&mut p, "import"), &mut p);
        let log = LogConfig::read(root.section(&mut p, "log"), &mut p);
        let rollout = root.section(&mut p, "rollout");
        let routes = root.section(&mut p, "routes");
        let base_path = kernia
            .as_ref()
            .map(|k| k.base_path.clone())
            .unwrap_or_else(|| "/api/auth".into());
        let (routing, rollout_poll) = routing::read_routing(rollout, routes, &base_path, &mut p);
        let admin = root
            .optional_section(&mut p, "admin")
            .and_then(|s| AdminConfig::read(s, &mut p));
        if let (Some(a), Some(server)) = (&admin, &server) {
            let public = [server.tls.as_ref().map(|t| t.listen), server.plain_listen];
            if public.contains(&Some(a.listen)) && a.listen.port() != 0 {
                p.push(
                    "admin.listen",
                    "must not be a public listener's address: the admin listener is private",
                );
            }
        }
        let assertion = root
            .optional_section(&mut p, "assertion")
            .and_then(|s| AssertionConfig::read(s, &mut p, env));
        let migration = MigrationConfig::read(root.section(&mut p, "migration"), &mut p);
        let reset = root
            .optional_section(&mut p, "reset")
            .and_then(|s| ResetConfig::read(s, &mut p, env));
        let outbox = OutboxConfig::read(root.section(&mut p, "outbox"), &mut p);
        let webhooks = root
            .optional_section(&mut p, "webhooks")
            .and_then(|s| WebhooksConfig::read(s, &mut p, env));
        let clerk_sync = root
            .optional_section(&mut p, "clerk_sync")
            .and_then(|s| ClerkSyncConfig::read(s, &mut p, env, &import.clerk_api_url));
        root.finish(&mut p);

        if !p.is_empty() {
            return Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                problems: p.0,
            });
        }
        // Every `read` above returns `Some` when it pushed no problem.
        match (server, upstreams, kernia, state) {
            (Some(server), Some(upstreams), Some(kernia), Some(state)) => Ok(Config {
                server,
                upstreams,
                kernia,
                clerk,
                state,
                limits,
                import,
                log,
                routing,
                rollout_poll,
                admin,
                assertion,
                migration,
                reset,
                outbox,
                webhooks,
                clerk_sync,
            }),
            _ => Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                problems: vec![Problem {
                    key: String::new(),
                    message: "incomplete configuration".into(),
                }],
            }),
        }
    }
}

#[cfg(test)]
mod tests;
