//! The validated configuration sections and how each is read from raw TOML.
//!
//! Each `read` takes its [`Section`], pushes every problem it finds and returns
//! `None` only when it pushed one, so the caller can report all of them at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;

use super::reader::{Env, Problems, Section};
use crate::secret::Secret;

// ---------------------------------------------------------------- [server]

/// Where cutover listens and whom it trusts for forwarding headers.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The HTTPS listener (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: Option<TlsListener>,
    /// An optional plain-HTTP listener.
    pub plain_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For` is kept (a load balancer in front of cutover).
    pub trusted_proxies: Vec<IpNet>,
    /// How long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// Threads that serve connections (`threads`; default: one per CPU
    /// this process may use). See `proxy::threads`.
    pub threads: usize,
}

#[derive(Debug, Clone)]
pub struct TlsListener {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> Option<ServerConfig> {
        let before = p.0.len();
        let listen = socket_addr(&mut s, p, "listen");
        let cert = s.nonempty(p, "tls_cert").map(PathBuf::from);
        let key = s.nonempty(p, "tls_key").map(PathBuf::from);
        let tls = match (listen, cert, key) {
            (Some(listen), Some(cert), Some(key)) => Some(TlsListener { listen, cert, key }),
            (None, None, None) => None,
            (listen, cert, key) => {
                for (name, missing) in [
                    ("listen", listen.is_none()),
                    ("tls_cert", cert.is_none()),
                    ("tls_key", key.is_none()),
                ] {
                    if missing && !p.0.iter().any(|x| x.key == s.key(name)) {
                        p.push(
                            s.key(name),
                            "is required for the TLS listener (give listen, tls_cert and tls_key together)",
                        );
                    }
                }
                None
            }
        };
        let plain_listen = socket_addr(&mut s, p, "plain_listen");
        if tls.is_none() && plain_listen.is_none() && p.0.len() == before {
            p.push(
                s.key("listen"),
                "no listener: set listen with tls_cert and tls_key, or plain_listen",
            );
        }
        let mut trusted_proxies = Vec::new();
        for (i, raw) in s.strings(p, "trusted_proxies").into_iter().enumerate() {
            match parse_net(&raw) {
                Some(net) => trusted_proxies.push(net),
                None => p.push(
                    format!("{}[{i}]", s.key("trusted_proxies")),
                    format!("`{raw}` is not an IP address or CIDR network"),
                ),
            }
        }
        let shutdown_grace = Duration::from_secs(s.int(p, "shutdown_grace_secs", 30, 0, 3600));
        let threads = s.int(
            p,
            "threads",
            crate::proxy::threads::default_count() as u64,
            1,
            1024,
        ) as usize;
        s.finish(p);
        (p.0.len() == before).then_some(ServerConfig {
            tls,
            plain_listen,
            trusted_proxies,
            shutdown_grace,
            threads,
        })
    }
}

fn parse_net(raw: &str) -> Option<IpNet> {
    raw.parse::<IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn socket_addr(s: &mut Section, p: &mut Problems, key: &str) -> Option<SocketAddr> {
    let raw = s.nonempty(p, key)?;
    match raw.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            p.push(
                s.key(key),
                format!("`{raw}` is not an address such as 127.0.0.1:8443 or [::]:8443"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------- [upstreams]

/// The two apps behind cutover. They may be one app with two modes.
#[derive(Debug, Clone)]
pub struct UpstreamsConfig {
    pub legacy: http::Uri,
    pub kernia: http::Uri,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

impl UpstreamsConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> Option<UpstreamsConfig> {
        let before = p.0.len();
        let legacy = upstream_url(&mut s, p, "legacy");
        let kernia = upstream_url(&mut s, p, "kernia");
        let connect_timeout =
            Duration::from_millis(s.int(p, "connect_timeout_ms", 2_000, 1, 600_000));
        let response_timeout =
            Duration::from_millis(s.int(p, "response_timeout_ms", 30_000, 1, 3_600_000));
        let pool_idle_timeout =
            Duration::from_secs(s.int(p, "pool_idle_timeout_secs", 90, 1, 3600));
        let pool_max_idle_per_host = s.int(p, "pool_max_idle_per_host", 256, 0, 65_536) as usize;
        s.finish(p);
        match (legacy, kernia) {
            (Some(legacy), Some(kernia)) if p.0.len() == before => Some(UpstreamsConfig {
                legacy,
                kernia,
                connect_timeout,
                response_timeout,
                pool_idle_timeout,
                pool_max_idle_per_host,
            }),
            _ => None,
        }
    }
}

fn upstream_url(s: &mut Section, p: &mut Problems, key: &str) -> Option<http::Uri> {
    let raw = s.required(p, key)?;
    match raw.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") || uri.scheme_str() == Some("https") => {
            if uri.host().is_none() {
                p.push(s.key(key), format!("`{raw}` has no host"));
                return None;
            }
            if uri.path() != "/" && !uri.path().is_empty() {
                p.push(
                    s.key(key),
                    format!("`{raw}` has a path; give the base URL only (scheme, host, port)"),
                );
                return None;
            }
            Some(uri)
        }
        _ => {
            p.push(
                s.key(key),
                format!("`{raw}` is not an http:// or https:// URL"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------- [kernia]

/// The Kernia app: where its routes live, its cookie secret, its database.
#[derive(Debug, Clone)]
pub struct KerniaConfig {
    /// Kernia's auth base path, `/api/auth` by default; no trailing slash.
    pub base_path: String,
    /// `KerniaOptions.secret`: the key of the session cookie's HMAC.
    pub secret: Secret,
    /// Kernia's database: `postgres://…` or `sqlite://…`. cutover's own tables
    /// live there too, so a credential write and a ledger change share a transaction.
    pub database_url: Secret,
    /// How long a looked-up Kernia session is trusted before it is read again.
    pub session_cache: Duration,
    /// The connection pool and the bounds of request-path look-ups.
    pub db: DbSettings,
    /// Where a page navigation is sent when it must sign in at Kernia.
    pub sign_in_url: String,
}

/// `[kernia]` database keys: the pool, and how long a request may wait for a
/// session or ledger look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSettings {
    /// `db_pool_size`: connections per cutover process (default 16).
    pub pool_size: u32,
    /// `db_lookup_timeout_ms` (250) and `db_retry_after_ms` (1000).
    pub lookups: crate::db::bounded::LookupLimits,
}

impl KerniaConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<KerniaConfig> {
        let before = p.0.len();
        let base_path = s
            .string(p, "base_path")
            .unwrap_or_else(|| "/api/auth".into());
        let base_path = base_path.trim_end_matches('/').to_string();
        if !base_path.starts_with('/') {
            p.push(s.key("base_path"), "must start with `/`, e.g. /api/auth");
        }
        let secret = s.secret(p, env, "secret");
        if secret.is_none() && !p.0.iter().any(|x| x.key.starts_with(&s.key("secret"))) {
            p.push(
                s.key("secret"),
                "is required (or name a variable in secret_env)",
            );
        }
        if let Some(secret) = &secret
            && secret.expose().len() < 16
        {
            p.push(
                s.key("secret"),
                "is too short to be Kernia's secret (at least 16 characters)",
            );
        }
        let database_url = s.secret(p, env, "database_url");
        match &database_url {
            Some(url) => {
                let u = url.expose();
                if !(u.starts_with("postgres://")
                    || u.starts_with("postgresql://")
                    || u.starts_with("sqlite:"))
                {
                    p.push(
                        s.key("database_url"),
                        "must start with postgres://, postgresql:// or sqlite:",
                    );
                }
            }
            None if !p
                .0
                .iter()
                .any(|x| x.key.starts_with(&s.key("database_url"))) =>
            {
                p.push(
                    s.key("database_url"),
                    "is required (or name a variable in database_url_env)",
                )
            }
            None => {}
        }
        let session_cache = Duration::from_millis(s.int(p, "session_cache_ms", 5_000, 0, 300_000));
        let db = DbSettings {
            pool_size: s.int(p, "db_pool_size", 16, 1, 1_000) as u32,
            lookups: crate::db::bounded::LookupLimits {
                timeout: Duration::from_millis(s.int(p, "db_lookup_timeout_ms", 250, 10, 60_000)),
                retry_after: Duration::from_millis(s.int(p, "db_retry_after_ms", 1_000, 0, 60_000)),
            },
        };
        let sign_in_url = s
            .string(p, "sign_in_url")
            .unwrap_or_else(|| "/sign-in".into());
        s.finish(p);
        match (secret, database_url) {
            (Some(secret), Some(database_url)) if p.0.len() == before => Some(KerniaConfig {
                base_path,
                secret,
                database_url,
                session_cache,
                db,
                sign_in_url,
            }),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- [clerk]

/// How Clerk session tokens are recognised.
#[derive(Debug, Clone)]
pub struct ClerkConfig {
    /// `pk_live_…`/`pk_test_…`: names the cookie suffix and the default issuer.
    pub publishable_key: Option<String>,
    pub keys: ClerkKeys,
    /// Accepted `iss` values, compared exactly.
    pub issuers: Vec<String>,
    /// Accepted `azp` values; when non-empty, a token without `azp` is refused.
    pub authorized_parties: Vec<String>,
    pub clock_skew: Duration,
}

/// Where the token-signing keys come from.
#[derive(Debug, Clone)]
pub enum ClerkKeys {
    /// The networkless PEM public key (Dashboard → API keys → PEM Public Key).
    Pem(String),
    /// A JWKS URL, cached and refreshed in the background.
    Jwks {
        url: String,
        /// Sent as `Authorization: Bearer` (needed for the Backend API's `/v1/jwks`).
        secret_key: Option<Secret>,
        refresh: Duration,
        min_refetch: Duration,
    },
}

impl ClerkConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<ClerkConfig> {
        let before = p.0.len();
        let publishable_key = s.nonempty(p, "publishable_key");
        let derived_issuer = match &publishable_key {
            Some(pk) => match frontend_api_host(pk) {
                Some(host) => Some(format!("https://{host}")),
                None => {
                    p.push(
                        s.key("publishable_key"),
                        "is not a Clerk publishable key (pk_live_… or pk_test_… followed by base64 of `<host>$`)",
                    );
                    None
                }
            },
            None => None,
        };
        let pem = s.nonempty(p, "jwt_key");
        let pem_file = s.nonempty(p, "jwt_key_file");
        let jwks_url = s.nonempty(p, "jwks_url");
        let secret_key = s.secret(p, env, "secret_key");
        let refresh = Duration::from_secs(s.int(p, "jwks_refresh_secs", 300, 10, 86_400));
        let min_refetch = Duration::from_secs(s.int(p, "jwks_min_refetch_secs", 30, 1, 3_600));
        let keys = match (pem, pem_file, jwks_url) {
            (Some(pem), None, None) => Some(ClerkKeys::Pem(pem)),
            (None, Some(file), None) => match std::fs::read_to_string(&file) {
                Ok(pem) => Some(ClerkKeys::Pem(pem)),
                Err(e) => {
                    p.push(s.key("jwt_key_file"), format!("cannot read {file}: {e}"));
                    None
                }
            },
            (None, None, Some(url)) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    p.push(s.key("jwks_url"), format!("`{url}` is not an http(s) URL"));
                }
                Some(ClerkKeys::Jwks {
                    url,
                    secret_key,
                    refresh,
                    min_refetch,
                })
            }
            (None, None, None) => {
                p.push(
                    s.key("jwt_key"),
                    "Clerk needs keys: set one of jwt_key (PEM), jwt_key_file or jwks_url",
                );
                None
            }
            _ => {
                p.push(
                    s.key("jwt_key"),
                    "set only one of jwt_key, jwt_key_file and jwks_url",
                );
                None
            }
        };
        if let Some(ClerkKeys::Pem(pem)) = &keys
            && let Err(e) = crate::identify::clerk::check_pem_key(pem)
        {
            p.push(s.key("jwt_key"), e.to_string());
        }
        let mut issuers = Vec::new();
        match s.nonempty(p, "issuer").or(derived_issuer) {
            Some(iss) => issuers.push(iss),
            None => p.push(
                s.key("issuer"),
                "is required when publishable_key is not given (e.g. https://clerk.example.com)",
            ),
        }
        issuers.extend(s.strings(p, "proxy_issuers"));
        let authorized_parties = s.strings(p, "authorized_parties");
        let clock_skew = Duration::from_secs(s.int(p, "clock_skew_secs", 5, 0, 60));
        s.finish(p);
        match keys {
            Some(keys) if p.0.len() == before => Some(ClerkConfig {
                publishable_key,
                keys,
                issuers,
                authorized_parties,
                clock_skew,
            }),
            _ => None,
        }
    }
}

/// The Frontend API host named by a publishable key: `pk_test_` or `pk_live_`
/// followed by base64 of `<host>$`.
pub fn frontend_api_host(publishable_key: &str) -> Option<String> {
    let encoded = publishable_key
        .strip_prefix("pk_live_")
        .or_else(|| publishable_key.strip_prefix("pk_test_"))?;
    let trimmed = encoded.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let host = text.strip_suffix('$')?;
    (!host.is_empty() && !host.contains('/')).then(|| host.to_string())
}

// ---------------------------------------------------------------- [state]

/// Where the ephemeral state that several cutover copies share lives.
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub backend: StateBackend,
    /// Prefix of every Redis key and channel cutover uses.
    pub key_prefix: String,
}

#[derive(Debug, Clone)]
pub enum StateBackend {
    /// In this process only: right for a single cutover.
    Memory,
    /// Redis, shared by every copy.
    Redis { url: Secret },
}

impl StateConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems, env: &dyn Env) -> Option<StateConfig> {
        let before = p.0.len();
        let backend = s.choice(p, "backend", "memory", &["memory", "redis"]);
        let url = s.secret(p, env, "redis_url");
        let key_prefix = s
            .string(p, "key_prefix")
            .unwrap_or_else(|| "cutover:".into());
        let backend = match (backend, url) {
            ("redis", Some(url)) => {
                if !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
                {
                    p.push(s.key("redis_url"), "must start with redis:// or rediss://");
                }
                StateBackend::Redis { url }
            }
            ("redis", None) => {
                if !p.0.iter().any(|x| x.key.starts_with(&s.key("redis_url"))) {
                    p.push(s.key("redis_url"), "is required when backend = \"redis\"");
                }
                StateBackend::Memory
            }
            (_, Some(_)) => {
                p.push(
                    s.key("redis_url"),
                    "is set but backend is \"memory\"; set backend = \"redis\" to use it",
                );
                StateBackend::Memory
            }
            _ => StateBackend::Memory,
        };
        s.finish(p);
        (p.0.len() == before).then_some(StateConfig {
            backend,
            key_prefix,
        })
    }
}

// ---------------------------------------------------------------- [limits]

/// Limits on what a client may send and how long it may idle.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_header_bytes: usize,
    /// Largest request body streamed to an upstream.
    pub max_body_bytes: u64,
    /// Largest body of an intercepted auth route, which cutover reads whole.
    pub auth_body_bytes: usize,
    /// How long the whole body of an intercepted auth route may take to arrive.
    pub auth_body_timeout: Duration,
    /// How long an HTTP connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// From accept to a complete first request head: TLS handshake, protocol
    /// detection (HTTP/1.1 or the HTTP/2 preface) and the head itself.
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl LimitsConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> LimitsConfig {
        let limits = LimitsConfig {
            max_header_bytes: s.int(p, "max_header_bytes", 32 * 1024, 1024, 1024 * 1024) as usize,
            max_body_bytes: s.int(p, "max_body_bytes", 10 * 1024 * 1024, 0, 1 << 40),
            auth_body_bytes: s.int(p, "auth_body_bytes", 16 * 1024, 256, 1024 * 1024) as usize,
            auth_body_timeout: Duration::from_secs(s.int(p, "auth_body_timeout_secs", 10, 1, 300)),
            idle_timeout: Duration::from_secs(s.int(p, "idle_timeout_secs", 60, 1, 3600)),
            header_read_timeout: Duration::from_millis(s.int(
                p,
                "header_read_timeout_ms",
                10_000,
                50,
                300_000,
            )),
            max_connections: s.int(p, "max_connections", 10_000, 1, 1_000_000) as usize,
        };
        s.finish(p);
        limits
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let mut p = Problems::default();
        LimitsConfig::read(Section::root(toml::Table::new()), &mut p)
    }
}

// ---------------------------------------------------------------- [import]

/// How `cutover import` maps and pulls. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportConfig {
    /// Users (or records) written per transaction.
    pub batch_size: usize,
    /// Batches written at once on PostgreSQL, each on its own connection
    /// (SQLite: always one).
    pub writers: usize,
    /// Extra Clerk role key → Kernia role pairs (`org:admin` → `admin` and
    /// `org:member` → `member` are built in and may be overridden here).
    pub roles: Vec<(String, String)>,
    /// The role of an organization's creator who is still `org:admin`;
    /// `None` (configured as `""`) keeps them `admin`.
    pub creator_role: Option<String>,
    /// The Backend API's base URL, for `--from-clerk-api`.
    pub clerk_api_url: String,
    /// The environment variable holding the Backend API secret key; read only
    /// when pulling, so an import from files needs no key.
    pub clerk_secret_key_env: String,
    /// Requests per 10 s the pull may make (Clerk: 1000 in production, 100 in
    /// development).
    pub requests_per_10s: u32,
}

impl Default for ImportConfig {
    fn default() -> Self {
        let mut p = Problems::default();
        ImportConfig::read(Section::root(toml::Table::new()), &mut p)
    }
}

impl ImportConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> ImportConfig {
        let batch_size = s.int(p, "batch_size", 2000, 1, 50_000) as usize;
        let writers = s.int(p, "writers", 3, 1, 16) as usize;
        let creator_role = match s.string(p, "creator_role") {
            None => Some("owner".to_string()),
            Some(r) if r.trim().is_empty() => None,
            Some(r) => Some(r.trim().to_string()),
        };
        let clerk_api_url = s
            .string(p, "clerk_api_url")
            .unwrap_or_else(|| "https://api.clerk.com/v1".into())
            .trim_end_matches('/')
            .to_string();
        if !(clerk_api_url.starts_with("https://") || clerk_api_url.starts_with("http://")) {
            p.push(
                s.key("clerk_api_url"),
                format!("`{clerk_api_url}` is not an http(s) URL"),
            );
        }
        let clerk_secret_key_env = s
            .string(p, "clerk_secret_key_env")
            .unwrap_or_else(|| "CLERK_SECRET_KEY".into());
        let requests_per_10s = s.int(p, "requests_per_10s", 900, 1, 1000) as u32;
        let roles_key = s.key("roles");
        let roles = match s.optional_section(p, "roles") {
            Some(section) => section.string_pairs(p),
            None => Vec::new(),
        };
        for (from, to) in &roles {
            if to.trim().is_empty() || to.contains(char::is_whitespace) {
                p.push(
                    format!("{roles_key}.\"{from}\""),
                    "must be a Kernia role name without spaces",
                );
            }
        }
        s.finish(p);
        ImportConfig {
            batch_size,
            writers,
            roles,
            creator_role,
            clerk_api_url,
            clerk_secret_key_env,
            requests_per_10s,
        }
    }
}

// ---------------------------------------------------------------- [log]

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `cutover=debug,info`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogConfig {
    pub(super) fn read(mut s: Section, p: &mut Problems) -> LogConfig {
        let format = match s.choice(p, "format", "text", &["text", "json"]) {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let level = s.string(p, "level").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            p.push(
                s.key("level"),
                format!("`{level}` is not a log filter such as info or cutover=debug"),
            );
        }
        s.finish(p);
        LogConfig { format, level }
    }
}
