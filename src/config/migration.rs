//! `[migration]` (lazy password migration at sign-in) and `[reset]` (forced
//! resets and how their links are delivered).

use std::time::Duration;

use super::reader::{Env, Problems, Section};
use crate::secret::Secret;

/// How sign-ins of pending users are verified and throttled.
#[derive(Debug, Clone)]
pub struct MigrationConfig {
    /// Threads for password work; 0 in the file means the core count.
    pub hash_pool_size: usize,
    /// Their niceness: 0 = normal priority, 19 = lowest.
    pub hash_thread_nice: u8,
    /// Sign-ins that may wait for a hashing slot; beyond it, 503 at once.
    pub queue_limit: usize,
    /// How long a sign-in may wait for a slot before 503.
    pub queue_deadline: Duration,
    /// The TTL of a migration's per-user lock, a lease its holder renews every
    /// third of it while it works: how long a copy killed mid-migration keeps
    /// the user's other sign-ins waiting.
    pub lock_lease: Duration,
    /// Sign-in attempts of one pending account per window, then 429.
    pub account_attempts: u64,
    pub account_window: Duration,
    /// Sign-in attempts of pending accounts from one client address per window.
    pub ip_attempts: u64,
    pub ip_window: Duration,
    /// Kernia's Argon2id parameters for the hash cutover writes.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Work-factor caps on exported digests, checked before any hashing.
    pub caps: CapsConfig,
}

/// Limits on the work a legacy digest may demand.
#[derive(Debug, Clone, Copy)]
pub struct CapsConfig {
    pub bcrypt_max_cost: u32,
    pub pbkdf2_max_iterations: u32,
    pub scrypt_max_memory_mib: u64,
    pub argon2_max_memory_mib: u64,
}

impl MigrationConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> MigrationConfig {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let pool = s.int(p, "hash_pool_size", 0, 0, 1024) as usize;
        let cfg = MigrationConfig {
            hash_pool_size: if pool == 0 { cores } else { pool },
            hash_thread_nice: s.int(p, "hash_thread_nice", 10, 0, 19) as u8,
            queue_limit: s.int(p, "queue_limit", 64, 0, 100_000) as usize,
            queue_deadline: Duration::from_millis(s.int(p, "queue_deadline_ms", 2_000, 1, 60_000)),
            lock_lease: Duration::from_secs(s.int(p, "lock_lease_secs", 5, 2, 60)),
            account_attempts: s.int(p, "account_attempts", 10, 1, 1_000_000),
            account_window: Duration::from_secs(s.int(p, "account_window_secs", 900, 1, 86_400)),
            ip_attempts: s.int(p, "ip_attempts", 60, 1, 1_000_000),
            ip_window: Duration::from_secs(s.int(p, "ip_window_secs", 60, 1, 86_400)),
            argon2_memory_kib: s.int(p, "argon2_memory_kib", 65_536, 8, 4 * 1024 * 1024) as u32,
            argon2_iterations: s.int(p, "argon2_iterations", 3, 1, 100) as u32,
            argon2_parallelism: s.int(p, "argon2_parallelism", 4, 1, 64) as u32,
            caps: CapsConfig {
                bcrypt_max_cost: s.int(p, "bcrypt_max_cost", 14, 4, 31) as u32,
                pbkdf2_max_iterations: s.int(p, "pbkdf2_max_iterations", 5_000_000, 1, 100_000_000)
                    as u32,
                scrypt_max_memory_mib: s.int(p, "scrypt_max_memory_mib", 256, 1, 16_384),
                argon2_max_memory_mib: s.int(p, "argon2_max_memory_mib", 256, 1, 16_384),
            },
        };
        s.retired(
            p,
            "lock_ttl_secs",
            "was replaced by lock_lease_secs (default 5): the migration lock is now a lease \
             renewed while its migration runs, so it no longer needs to cover the longest \
             migration; remove this key (see docs/RUNBOOK.md, \"Several copies\")",
        );
        s.finish(p);
        cfg
    }
}

/// Forced resets for users whose digest cannot be verified.
#[derive(Debug, Clone)]
pub struct ResetConfig {
    /// The reset page; `{token}` is replaced by the token Kernia's
    /// `/reset-password` accepts.
    pub link: String,
    /// At most one reset is started per user per window.
    pub window: Duration,
    pub token_ttl: Duration,
    pub smtp: Option<SmtpConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://…`.
    pub url: Secret,
    pub from: String,
    pub subject: String,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Signs the body (Svix / Standard Webhooks: `v1,<base64>`): a `whsec_` secret.
    pub secret: crate::svix::SigningSecret,
}

impl ResetConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<ResetConfig> {
        let before = p.0.len();
        let link = s.required(p, "link");
        if let Some(l) = &link
            && !l.contains("{token}")
        {
            p.push(
                s.key("link"),
                "must contain {token}, e.g. https://app.example.com/reset?token={token}",
            );
        }
        let window = Duration::from_secs(s.int(p, "window_secs", 3_600, 0, 30 * 86_400));
        let token_ttl = Duration::from_secs(s.int(p, "token_ttl_secs", 3_600, 60, 7 * 86_400));
        let declared = s.has("smtp") || s.has("webhook");
        let smtp = s.optional_section(p, "smtp").and_then(|mut t| {
            let url = t.secret(p, env, "url");
            if url.is_none() && !p.0.iter().any(|x| x.key.starts_with(&t.key("url"))) {
                p.push(
                    t.key("url"),
                    "is required (smtp://host:port or smtps://…), or url_env",
                );
            }
            if let Some(u) = &url
                && !(u.expose().starts_with("smtp://") || u.expose().starts_with("smtps://"))
            {
                p.push(t.key("url"), "must start with smtp:// or smtps://");
            }
            let from = t.required(p, "from");
            if let Some(f) = &from
                && f.parse::<lettre::message::Mailbox>().is_err()
            {
                p.push(
                    t.key("from"),
                    format!("`{f}` is not a mailbox such as Accounts <no-reply@example.com>"),
                );
            }
            let subject = t
                .string(p, "subject")
                .unwrap_or_else(|| "Reset your password".into());
            t.finish(p);
            Some(SmtpConfig {
                url: url?,
                from: from?,
                subject,
            })
        });
        let webhook = s.optional_section(p, "webhook").and_then(|mut t| {
            let url = t.required(p, "url");
            let secret = t.secret(p, env, "secret");
            if secret.is_none() && !p.0.iter().any(|x| x.key.starts_with(&t.key("secret"))) {
                p.push(
                    t.key("secret"),
                    "is required (or secret_env): the app checks the signature with it",
                );
            }
            let secret = secret.and_then(|raw| {
                crate::svix::SigningSecret::parse(raw.expose())
                    .map_err(|e| p.push(t.key("secret"), e.to_string()))
                    .ok()
            });
            t.finish(p);
            Some(WebhookConfig {
                url: url?,
                secret: secret?,
            })
        });
        if !declared {
            p.push(
                s.key("smtp"),
                "[reset] needs a way to deliver links: [reset.smtp] or [reset.webhook]",
            );
        }
        s.finish(p);
        match link {
            Some(link) if p.0.len() == before => Some(ResetConfig {
                link,
                window,
                token_ttl,
                smtp,
                webhook,
            }),
            _ => None,
        }
    }
}
