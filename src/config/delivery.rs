//! `[outbox]` (how queued deliveries are retried) and `[webhooks]` (the app's
//! webhook consumers that receive Clerk-shaped events).

use std::time::Duration;

use super::reader::{Env, Problems, Section};
use crate::svix::SigningSecret;

/// Svix's schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const SVIX_SCHEDULE_SECS: [u64; 8] = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// How the outbox worker delivers and retries (reset mail, reset webhooks,
/// Clerk-shaped webhooks). Every key is optional.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Delay before each attempt, the first counted from the enqueue; after
    /// the last failed attempt a delivery is `failed`.
    pub retry_schedule: Vec<Duration>,
    /// One attempt may take this long; only a 2xx within it is a success.
    pub delivery_timeout: Duration,
    /// A claimed row is someone's for this long; a copy that dies mid-delivery
    /// loses it when the lease runs out, and another copy delivers again.
    pub lease: Duration,
    /// How often an idle worker looks for due rows (a commit on this copy
    /// wakes it at once).
    pub poll: Duration,
    /// Rows claimed per round (bounded queue reads).
    pub batch: u32,
    /// A destination failing without a success for this long is disabled;
    /// `None` never disables.
    pub disable_after: Option<Duration>,
    /// Delivered and failed rows are deleted this long after their last change;
    /// `None` keeps them.
    pub retention: Option<Duration>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        let mut p = Problems::default();
        OutboxConfig::read(Section::root(toml::Table::new()), &mut p)
    }
}

impl OutboxConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> OutboxConfig {
        let schedule = match s.ints(p, "retry_schedule_secs", 0, 7 * 86_400) {
            Some(v) if v.is_empty() => {
                p.push(
                    s.key("retry_schedule_secs"),
                    "needs at least one attempt, e.g. [0, 5, 300]",
                );
                SVIX_SCHEDULE_SECS.to_vec()
            }
            Some(v) if v.len() > 50 => {
                p.push(s.key("retry_schedule_secs"), "at most 50 attempts");
                SVIX_SCHEDULE_SECS.to_vec()
            }
            Some(v) => v,
            None => SVIX_SCHEDULE_SECS.to_vec(),
        };
        let delivery_timeout = Duration::from_secs(s.int(p, "delivery_timeout_secs", 15, 1, 120));
        let lease = Duration::from_secs(s.int(p, "lease_secs", 60, 2, 3_600));
        if lease <= delivery_timeout {
            p.push(
                s.key("lease_secs"),
                format!(
                    "must be longer than delivery_timeout_secs ({}), or a slow delivery could be sent twice at once",
                    delivery_timeout.as_secs()
                ),
            );
        }
        let poll = Duration::from_millis(s.int(p, "poll_ms", 1_000, 10, 60_000));
        let batch = s.int(p, "batch", 32, 1, 1_000) as u32;
        let disable_days = s.float(p, "disable_after_days", 5.0, 0.0, 365.0);
        let retention_days = s.float(p, "retention_days", 30.0, 0.0, 3_650.0);
        s.finish(p);
        let days = |d: f64| (d > 0.0).then(|| Duration::from_secs_f64(d * 86_400.0));
        OutboxConfig {
            retry_schedule: schedule.into_iter().map(Duration::from_secs).collect(),
            delivery_timeout,
            lease,
            poll,
            batch,
            disable_after: days(disable_days),
            retention: days(retention_days),
        }
    }
}

/// The app's webhook consumers: where Clerk-shaped events go.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Clerk's `instance_id` put in every envelope (`ins_…`).
    pub instance_id: String,
    pub endpoints: Vec<EndpointConfig>,
    /// Also send `session.*` events (many per user).
    pub session_events: bool,
    /// Also send a `cutover.user.migrated` event when a password moves.
    pub migration_event: bool,
}

/// One consumer.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub url: String,
    /// The `whsec_` secret the consumer verifies with (the app's existing
    /// `CLERK_WEBHOOK_SIGNING_SECRET`).
    pub secret: SigningSecret,
    /// Event types this endpoint receives; empty means all.
    pub types: Vec<String>,
}

impl EndpointConfig {
    pub fn wants(&self, event_type: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == event_type)
    }
}

impl WebhooksConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<WebhooksConfig> {
        let before = p.0.len();
        let instance_id = s.required(p, "instance_id");
        let session_events = s.bool(p, "session_events", true);
        let migration_event = s.bool(p, "migration_event", false);
        let tables = s.tables(p, "endpoints");
        if tables.is_empty() && !p.0.iter().any(|x| x.key.starts_with(&s.key("endpoints"))) {
            p.push(
                s.key("endpoints"),
                "needs at least one [[webhooks.endpoints]] with url and secret_env",
            );
        }
        let mut endpoints = Vec::new();
        for mut t in tables {
            let url = t.required(p, "url");
            if let Some(u) = &url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                p.push(t.key("url"), format!("`{u}` is not an http(s) URL"));
            }
            let secret = t.secret(p, env, "secret");
            let secret = match secret {
                Some(raw) => match SigningSecret::parse(raw.expose()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        p.push(t.key("secret"), e.to_string());
                        None
                    }
                },
                None => {
                    if !p.0.iter().any(|x| x.key.starts_with(&t.key("secret"))) {
                        p.push(
                            t.key("secret"),
                            "is required (or secret_env): the consumer verifies with this whsec_ secret",
                        );
                    }
                    None
                }
            };
            let types = t.strings(p, "types");
            for (i, ty) in types.iter().enumerate() {
                if !crate::events::KNOWN_TYPES.contains(&ty.as_str()) {
                    p.push(
                        format!("{}[{i}]", t.key("types")),
                        format!(
                            "`{ty}` is not an event cutover sends (one of: {})",
                            crate::events::KNOWN_TYPES.join(", ")
                        ),
                    );
                }
            }
            t.finish(p);
            if let (Some(url), Some(secret)) = (url, secret) {
                if endpoints.iter().any(|e: &EndpointConfig| e.url == url) {
                    p.push(s.key("endpoints"), format!("`{url}` is listed twice"));
                }
                endpoints.push(EndpointConfig { url, secret, types });
            }
        }
        s.finish(p);
        match instance_id {
            Some(instance_id) if p.0.len() == before => Some(WebhooksConfig {
                instance_id,
                endpoints,
                session_events,
                migration_event,
            }),
            _ => None,
        }
    }
}
