//! The routing sections: `[rollout]`, `[routes]` and `[assertion]`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::{Env, Problems, Section};
use crate::route::paths;
use crate::route::{Overrides, RouteSettings};
use crate::secret::Secret;

/// Paths Kernia 0.1.0 serves without authentication, relative to its base
/// path. Denied unless `danger_allow_unauthenticated_kernia_routes`.
/// - `/admin/create-user`: creates any user, admins included, with no session;
/// - `/two-factor/view-backup-codes`: shows a user's backup codes;
/// - `/admin/has-permission`: answers for any `userId` or `role` with no
///   session, so an anonymous caller learns who is an admin (and, from its
///   404, which user ids exist).
pub const DEFAULT_DENIED: &[&str] = &[
    "/admin/create-user",
    "/two-factor/view-backup-codes",
    "/admin/has-permission",
];

/// `[rollout]` and `[routes]`, resolved against Kernia's base path.
pub(super) fn read_routing(
    rollout: Section,
    routes: Section,
    base_path: &str,
    p: &mut Problems,
) -> RouteSettings {
    let mut s = rollout;
    let percentage = s.float(p, "percentage", 0.0, 0.0, 100.0);
    let kill_switch = s.bool(p, "kill_switch", false);
    let salt = s.string(p, "salt").unwrap_or_else(|| "cutover".into());
    let reauth_migrated_clerk_sessions = s.bool(p, "reauth_migrated_clerk_sessions", false);
    let set = |v: Vec<String>| -> HashSet<String> { v.into_iter().collect() };
    let domains = |s: &mut Section, p: &mut Problems, key: &str| -> HashSet<String> {
        let mut out = HashSet::new();
        for (i, d) in s.strings(p, key).into_iter().enumerate() {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            if d.is_empty() || d.contains('@') || d.contains('/') {
                p.push(
                    format!("{}[{i}]", s.key(key)),
                    "is not an email domain such as example.com",
                );
            } else {
                out.insert(d);
            }
        }
        out
    };
    let overrides = Overrides {
        allow_users: set(s.strings(p, "allow_users")),
        deny_users: set(s.strings(p, "deny_users")),
        allow_email_domains: domains(&mut s, p, "allow_email_domains"),
        deny_email_domains: domains(&mut s, p, "deny_email_domains"),
        allow_orgs: set(s.strings(p, "allow_orgs")),
        deny_orgs: set(s.strings(p, "deny_orgs")),
    };
    s.finish(p);

    let mut r = routes;
    let mut denied = HashSet::new();
    if !r.bool(p, "danger_allow_unauthenticated_kernia_routes", false) {
        for path in DEFAULT_DENIED {
            denied.insert(format!("{base_path}{path}"));
        }
    }
    for (i, raw) in r.strings(p, "deny").into_iter().enumerate() {
        if !raw.starts_with('/') {
            p.push(
                format!("{}[{i}]", r.key("deny")),
                format!("`{raw}` must start with /"),
            );
            continue;
        }
        denied.insert(paths::normalize(&raw).into_owned());
    }
    r.finish(p);

    RouteSettings {
        base_path: base_path.to_string(),
        denied,
        percentage,
        kill_switch,
        salt,
        reauth_migrated_clerk_sessions,
        overrides,
    }
}

/// How the identity handed to the app is signed.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub key: AssertionKey,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: Option<String>,
}

#[derive(Debug, Clone)]
pub enum AssertionKey {
    /// HS256 with a shared secret.
    Hs256(Secret),
    /// EdDSA (Ed25519) with a PKCS#8 PEM private key; the app holds the public key.
    Ed25519 { pem: Secret, path: PathBuf },
}

impl AssertionConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<AssertionConfig> {
        let before = p.0.len();
        let secret = s.secret(p, env, "secret");
        let key_file = s.nonempty(p, "ed25519_key_file").map(PathBuf::from);
        let ttl = Duration::from_secs(s.int(p, "ttl_secs", 60, 5, 3600));
        let issuer = s.string(p, "issuer").unwrap_or_else(|| "cutover".into());
        let audience = s.nonempty(p, "audience");
        let key = match (secret, key_file) {
            (Some(secret), None) => {
                if secret.expose().len() < 32 {
                    p.push(s.key("secret"), "must be at least 32 characters for HS256");
                }
                Some(AssertionKey::Hs256(secret))
            }
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(pem) => {
                    if jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).is_err() {
                        p.push(
                            s.key("ed25519_key_file"),
                            format!(
                                "{} is not an Ed25519 private key in PKCS#8 PEM form",
                                path.display()
                            ),
                        );
                    }
                    Some(AssertionKey::Ed25519 {
                        pem: Secret::new(pem),
                        path,
                    })
                }
                Err(e) => {
                    p.push(
                        s.key("ed25519_key_file"),
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                p.push(
                    s.key("secret"),
                    "give either secret (HS256) or ed25519_key_file, not both",
                );
                None
            }
            (None, None) => {
                if !p.0.iter().any(|x| x.key.starts_with(&s.key("secret"))) {
                    p.push(
                        s.key("secret"),
                        "[assertion] needs a key: secret (HS256) or ed25519_key_file",
                    );
                }
                None
            }
        };
        s.finish(p);
        match key {
            Some(key) if p.0.len() == before => Some(AssertionConfig {
                key,
                ttl,
                issuer,
                audience,
            }),
            _ => None,
        }
    }
}
