//! `[admin]`: the private listener for probes, metrics, the rollout API and
//! the dashboard. Off when the section (or its `listen`) is absent.

use std::net::SocketAddr;
use std::time::Duration;

use super::reader::{Problems, Section};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// The environment variable holding the bearer token. Read when `serve`
    /// starts, not when the file is loaded, so `cutover rollout …` and
    /// `cutover status` work on machines that do not hold the token.
    pub token_env: String,
    pub max_connections: usize,
    /// Whole request, head to last byte of the answer.
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

/// Shortest token accepted: a guessable admin token is no token.
pub const MIN_TOKEN_CHARS: usize = 24;

impl AdminConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> Option<AdminConfig> {
        let before = p.0.len();
        let listen = s.nonempty(p, "listen");
        let token_env = s
            .nonempty(p, "token_env")
            .unwrap_or_else(|| "CUTOVER_ADMIN_TOKEN".into());
        if s.has("token") {
            s.string(p, "token");
            p.push(
                s.key("token"),
                "the admin token is never written in the file: put it in an environment variable and name it in token_env",
            );
        }
        let max_connections = s.int(p, "max_connections", 64, 1, 10_000) as usize;
        let request_timeout = Duration::from_secs(s.int(p, "request_timeout_secs", 10, 1, 300));
        let max_body_bytes = s.int(p, "max_body_bytes", 64 * 1024, 1024, 1024 * 1024) as usize;
        let listen = match listen {
            None => {
                s.finish(p);
                return None;
            }
            Some(raw) => match raw.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    p.push(
                        s.key("listen"),
                        format!("`{raw}` is not an address such as 127.0.0.1:9901"),
                    );
                    None
                }
            },
        };
        s.finish(p);
        match listen {
            Some(listen) if p.0.len() == before => Some(AdminConfig {
                listen,
                token_env,
                max_connections,
                request_timeout,
                max_body_bytes,
            }),
            _ => None,
        }
    }

    /// The token from the environment, or why not.
    pub fn token(&self) -> Result<Secret, String> {
        match std::env::var(&self.token_env) {
            Ok(t) if t.chars().count() >= MIN_TOKEN_CHARS => Ok(Secret::new(t)),
            Ok(_) => Err(format!(
                "admin.token_env: the token in {} must be at least {MIN_TOKEN_CHARS} characters",
                self.token_env
            )),
            Err(_) => Err(format!(
                "admin.token_env: environment variable {} is not set (the admin listener needs a bearer token)",
                self.token_env
            )),
        }
    }
}
