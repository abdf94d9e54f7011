//! `cutover serve`: the dual-run reverse proxy.
//!
//! Every request walks the five phases of DESIGN.md over one per-request
//! context, in [`driver::handle`], which reads top to bottom:
//!
//! 1. **identify** (`crate::identify`) — a Kernia session, a Clerk session, or nobody;
//! 2. **route** (`crate::route`) — legacy or kernia upstream, or an answer of our own;
//! 3. **intercept** — Kernia's sign-in, reset and callback routes (lazy migration);
//! 4. **forward** ([`forward`]) — header hygiene, identity headers, streamed to a pooled upstream;
//! 5. **observe** ([`observe`]) — one structured log line.
//!
//! [`App`] holds what every request shares; [`server::serve`] accepts
//! connections and is the seam integration tests start cutover through.
//!
//! # Layout
//! - `server.rs` — listeners, TLS, HTTP/1.1 + HTTP/2, limits, graceful drain
//! - `tls.rs` — rustls configuration from PEM files
//! - `driver.rs` — the phases, in order
//! - `auth_routes.rs` — which Kernia routes are intercepted; their bodies; after Kernia answers
//! - `relay.rs` — the upstream request: hygiene, forwarding and identity headers
//! - `headers.rs` — hop-by-hop, forwarding and `x-cutover-*` header hygiene
//! - `forward.rs` — the upstream client, streaming, upgrades
//! - `assertion.rs` — the signed identity header for the app
//! - `respond.rs` — cutover's own answers; errors to responses
//! - `facts.rs` — what the ledger says about a user, cached
//! - `observe.rs` — the per-request context and its log line

pub mod assertion;
mod auth_routes;
mod driver;
pub mod facts;
pub mod forward;
pub mod headers;
pub mod observe;
mod relay;
pub mod respond;
pub mod server;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::{Config, LimitsConfig};
use crate::db::Db;
use crate::identify::kernia::KerniaSessions;
use crate::route::RouteSettings;
use crate::state::SharedState;

/// Errors of request and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body cutover hands to hyper: streamed from the peer, or its own bytes.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// What every request shares.
pub struct App {
    pub routing: RouteSettings,
    pub kernia_base_path: String,
    pub sign_in_url: String,
    pub limits: LimitsConfig,
    pub trusted_proxies: Vec<IpNet>,
    pub upstreams: forward::Upstreams,
    pub kernia: KerniaSessions,
    pub clerk: Option<crate::identify::clerk::ClerkVerifier>,
    pub facts: facts::FactsCache,
    pub assertion: Option<assertion::Signer>,
    pub intercept: crate::intercept::Interceptor,
    pub db: Db,
    pub state: SharedState,
    /// Clerk's webhooks in (`[clerk_sync]` with a webhook secret).
    pub clerk_sync: Option<crate::clerk_sync::ClerkSync>,
}

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot set up the upstream client: {0}")]
    Upstreams(#[source] std::io::Error),
    #[error("cannot set up the assertion signer: {0}")]
    Assertion(#[source] jsonwebtoken::errors::Error),
    #[error("cannot set up Clerk token verification: {0}")]
    Clerk(#[source] crate::identify::clerk::ClerkSetupError),
    #[error("cannot set up reset delivery: {0}")]
    Notifier(#[source] crate::intercept::notify::NotifyError),
}

impl App {
    /// Build the shared parts from a validated configuration and open
    /// connections to the database and the shared state.
    pub async fn new(cfg: &Config, db: Db, state: SharedState) -> Result<Arc<App>, SetupError> {
        let app = Arc::new(App {
            routing: cfg.routing.clone(),
            kernia_base_path: cfg.kernia.base_path.clone(),
            sign_in_url: cfg.kernia.sign_in_url.clone(),
            limits: cfg.limits.clone(),
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            upstreams: forward::Upstreams::new(&cfg.upstreams).map_err(SetupError::Upstreams)?,
            kernia: KerniaSessions::new(
                cfg.kernia.secret.expose(),
                db.clone(),
                cfg.kernia.session_cache,
            ),
            clerk: match &cfg.clerk {
                Some(c) => Some(
                    crate::identify::clerk::ClerkVerifier::new(c)
                        .await
                        .map_err(SetupError::Clerk)?,
                ),
                None => None,
            },
            facts: facts::FactsCache::new(db.clone(), Duration::from_secs(30)),
            assertion: cfg
                .assertion
                .as_ref()
                .map(assertion::Signer::new)
                .transpose()
                .map_err(SetupError::Assertion)?,
            intercept: crate::intercept::Interceptor::new(cfg, db.clone(), state.clone())
                .map_err(SetupError::Notifier)?,
            clerk_sync: cfg.clerk_sync.as_ref().and_then(|c| {
                crate::clerk_sync::ClerkSync::new(
                    c,
                    crate::import::RoleMap::new(
                        cfg.import.roles.clone(),
                        cfg.import.creator_role.clone(),
                    ),
                    db.clone(),
                    state.clone(),
                )
            }),
            db,
            state,
        });
        tokio::spawn(listen_for_invalidations(Arc::downgrade(&app)));
        Ok(app)
    }

    fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// Drop cached entries when any cutover copy says they changed.
async fn listen_for_invalidations(app: std::sync::Weak<App>) {
    let Some(mut rx) = app.upgrade().map(|a| a.state.invalidations()) else {
        return;
    };
    loop {
        let msg = rx.recv().await;
        let Some(app) = app.upgrade() else { return };
        match msg {
            Ok(topic) => {
                app.kernia.forget_topic(&topic);
                app.facts.forget_topic(&topic);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                app.kernia.forget_all();
                app.facts.forget_all();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
