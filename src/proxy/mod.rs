//! `cutover serve`: the dual-run reverse proxy.
//!
//! Every request walks five phases (`docs/ARCHITECTURE.md`) over one per-request
//! [`context::Ctx`], in [`driver::drive`], which reads top to bottom:
//!
//! 1. **identify** (`crate::identify`) — a Kernia session, a Clerk session, or nobody;
//! 2. **route** (`crate::route`) — legacy or kernia upstream, or an answer of our own;
//! 3. **intercept** (`crate::intercept`, glued in by `intercept.rs`) — before
//!    Kernia's auth routes (lazy migration; may answer by itself) and after
//!    Kernia answered (sign-out, social callback, reset completion);
//! 4. **forward** ([`forward`]) — header hygiene, identity headers, streamed to a pooled upstream;
//! 5. **observe** ([`observe`]) — the access line and every registered
//!    [`observe::Observer`], on every outcome (a client hang-up is a 499).
//!
//! [`App`] holds what every request shares; [`server::serve`] accepts
//! connections and is the seam integration tests start cutover through.
//! A SIGHUP reload (`crate::cmd::reload`) swaps `[limits]`, the upstreams and
//! the Clerk verifier in place ([`App::swap`]); the request path reads them
//! through [`App::limits`], [`App::upstreams`] and [`App::clerk`], one load
//! each, and a request keeps what it loaded to its end.
//!
//! # Layout
//! - `server.rs` — listeners, TLS, HTTP/1.1 + HTTP/2, limits, graceful drain
//! - `connections.rs` — the connection limit, resizable while serving
//! - `tls.rs` — rustls configuration from PEM files
//! - `driver.rs` — the phases, in order (`handle`, `drive`)
//! - `context.rs` — the per-request context
//! - `intercept.rs` — reading intercepted bodies; intercept's before and after around Kernia
//! - `relay.rs` — the upstream request: hygiene, forwarding and identity headers
//! - `headers.rs` — hop-by-hop, forwarding and `x-cutover-*` header hygiene
//! - `forward.rs` — the upstream client (the [`forward::Forward`] seam), streaming, upgrades
//! - `pool.rs` — idle upstream connections, per serving thread
//! - `assertion.rs` — the signed identity header for the app
//! - `respond.rs` — the one place refusals and errors become answers
//! - `facts.rs` — what the ledger says about a user, cached
//! - `observe.rs` — the access line and the observer hooks

pub mod assertion;
mod connections;
pub mod context;
pub mod driver;
mod events;
pub mod facts;
pub mod forward;
pub mod headers;
mod intercept;
pub mod observe;
mod pool;
mod relay;
pub mod respond;
pub mod server;
pub mod threads;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use ipnet::IpNet;

use crate::config::{Config, LimitsConfig};
use crate::db::Db;
use crate::identify::clerk::ClerkVerifier;
use crate::identify::kernia::KerniaSessions;
use crate::state::SharedState;

pub use crate::web::{BoxError, ProxyBody};

/// How often "last seen" sightings are written.
const SEEN_FLUSH: Duration = Duration::from_secs(5);

/// What every request shares.
pub struct App {
    /// The live rollout (seeded from `[rollout]`, then the database's).
    pub routing: Arc<crate::control::live::LiveRollout>,
    /// When identified users were last seen (batched writes).
    pub seen: Arc<crate::control::seen::SeenRecorder>,
    pub kernia_base_path: String,
    pub sign_in_url: String,
    /// `[limits]` in force ([`App::limits`]); a reload swaps it.
    limits: ArcSwap<LimitsConfig>,
    /// `[limits].max_connections`, resized with it.
    connections: connections::ConnectionLimit,
    pub trusted_proxies: Vec<IpNet>,
    /// The upstreams ([`App::upstreams`]): [`forward::Upstreams`], or a
    /// test's own. A reload swaps in new [`forward::Upstreams`]. (The
    /// double `Arc`: `ArcSwap` holds sized values only.)
    upstreams: ArcSwap<Arc<dyn forward::Forward>>,
    pub kernia: KerniaSessions,
    /// Clerk session tokens ([`App::clerk`]); `None` without `[clerk]`. A
    /// reload swaps in a new verifier (with an empty verified-token cache).
    clerk: ArcSwapOption<ClerkVerifier>,
    pub facts: facts::FactsCache,
    pub assertion: Option<assertion::Signer>,
    pub intercept: crate::intercept::Interceptor,
    pub db: Db,
    pub state: SharedState,
    /// Clerk-shaped webhook events (`[webhooks]`); `None` when off.
    pub events: Option<Arc<crate::events::Events>>,
    /// The outbox worker of this copy (reset links, webhooks); `None` when
    /// nothing is configured to deliver to.
    pub outbox: Option<crate::outbox::WorkerHandle>,
    /// Clerk's webhooks in (`[clerk_sync]` with a webhook secret).
    pub clerk_sync: Option<crate::clerk_sync::ClerkSync>,
    /// What sees every finished request besides the access line.
    pub observers: Arc<observe::Observers>,
    /// The threads connections are served on (stopped when the app is dropped).
    pub serving: threads::ServingThreads,
}

/// What a reload swaps into a running [`App`]; `None` leaves a part as it is.
/// Everything here is built and checked before [`App::swap`], which cannot
/// fail, so a reload changes all of it or nothing.
#[derive(Default)]
pub struct Swap {
    pub limits: Option<LimitsConfig>,
    pub upstreams: Option<Arc<dyn forward::Forward>>,
    /// `Some(None)` turns Clerk sessions off (`[clerk]` removed).
    pub clerk: Option<Option<ClerkVerifier>>,
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
    #[error("cannot load the live rollout: {0}")]
    Rollout(#[source] crate::control::store::ControlError),
    #[error("cannot set up outbox delivery: {0}")]
    Outbox(#[source] crate::outbox::send::SendSetupError),
    #[error("cannot set up webhook events: {0}")]
    Events(#[source] crate::db::DbError),
    #[error("cannot start the serving threads: {0}")]
    Threads(#[source] std::io::Error),
}

impl App {
    /// Build the shared parts from a validated configuration and open
    /// connections to the database and the shared state.
    pub async fn new(cfg: &Config, db: Db, state: SharedState) -> Result<Arc<App>, SetupError> {
        let upstreams = forward::Upstreams::new(&cfg.upstreams).map_err(SetupError::Upstreams)?;
        App::with_upstreams(cfg, db, state, Arc::new(upstreams)).await
    }

    /// [`App::new`] with other upstreams (tests of the request path).
    pub async fn with_upstreams(
        cfg: &Config,
        db: Db,
        state: SharedState,
        upstreams: Arc<dyn forward::Forward>,
    ) -> Result<Arc<App>, SetupError> {
        let waker = crate::outbox::Waker::default();
        let events = match &cfg.webhooks {
            Some(w) => {
                let schema = crate::db::KerniaSchema::read(&db)
                    .await
                    .map_err(SetupError::Events)?;
                Some(crate::events::Events::new(
                    w,
                    db.clone(),
                    schema,
                    waker.clone(),
                ))
            }
            None => None,
        };
        let senders = crate::outbox::send::Senders::new(cfg).map_err(SetupError::Outbox)?;
        let outbox = (!senders.is_empty()).then(|| {
            crate::outbox::Worker::new(db.clone(), senders, cfg.outbox.clone()).spawn(waker.clone())
        });
        let mut intercept =
            crate::intercept::Interceptor::new(cfg, db.clone(), state.clone(), waker);
        if let Some(e) = &events {
            intercept = intercept.with_events(e.clone());
        }
        let lookups = Arc::new(crate::db::bounded::Bounded::new(cfg.kernia.db.lookups));
        let routing = crate::control::live::LiveRollout::start(
            cfg.routing.clone(),
            db.clone(),
            state.clone(),
            cfg.rollout_poll,
        )
        .await
        .map_err(SetupError::Rollout)?;
        let seen = crate::control::seen::SeenRecorder::new();
        seen.start_flusher(db.clone(), SEEN_FLUSH);
        let app = Arc::new(App {
            routing,
            seen,
            kernia_base_path: cfg.kernia.base_path.clone(),
            sign_in_url: cfg.kernia.sign_in_url.clone(),
            limits: ArcSwap::from_pointee(cfg.limits.clone()),
            connections: connections::ConnectionLimit::new(cfg.limits.max_connections),
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            upstreams: ArcSwap::from_pointee(upstreams),
            kernia: KerniaSessions::new(
                cfg.kernia.secret.expose(),
                db.clone(),
                lookups.clone(),
                cfg.kernia.session_cache,
            ),
            clerk: ArcSwapOption::from(match &cfg.clerk {
                Some(c) => Some(Arc::new(
                    ClerkVerifier::new(c).await.map_err(SetupError::Clerk)?,
                )),
                None => None,
            }),
            facts: facts::FactsCache::new(db.clone(), lookups, Duration::from_secs(30)),
            assertion: cfg
                .assertion
                .as_ref()
                .map(assertion::Signer::new)
                .transpose()
                .map_err(SetupError::Assertion)?,
            intercept,
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
            events,
            outbox,
            observers: Arc::new(observe::Observers::default()),
            serving: threads::ServingThreads::start(cfg.server.threads)
                .map_err(SetupError::Threads)?,
        });
        // Prometheus request metrics hang off the observe phase.
        app.observers.add(Arc::new(crate::metrics::RequestMetrics));
        tokio::spawn(listen_for_invalidations(Arc::downgrade(&app)));
        Ok(app)
    }

    /// Stop this copy's outbox worker after the deliveries in hand (graceful
    /// shutdown; undelivered rows stay queued for the next start).
    pub async fn shutdown(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.shutdown().await;
        }
    }

    /// `[limits]` in force now. Read what you need and let the guard go:
    /// do not hold it across an `.await`.
    pub fn limits(&self) -> arc_swap::Guard<Arc<LimitsConfig>> {
        self.limits.load()
    }

    /// The upstreams new requests go to. A request keeps the ones it loaded
    /// until its answer is in (an upgraded connection for its life), whatever
    /// a reload swaps meanwhile.
    pub fn upstreams(&self) -> Arc<dyn forward::Forward> {
        Arc::clone(&self.upstreams.load())
    }

    /// The Clerk verifier in force; `None` without `[clerk]`.
    pub fn clerk(&self) -> Option<Arc<ClerkVerifier>> {
        self.clerk.load_full()
    }

    /// Put a reload's parts in force. New connections and requests get them;
    /// what is in flight keeps what it loaded.
    pub fn swap(&self, swap: Swap) {
        if let Some(limits) = swap.limits {
            self.connections.resize(limits.max_connections);
            self.limits.store(Arc::new(limits));
        }
        if let Some(upstreams) = swap.upstreams {
            self.upstreams.store(Arc::new(upstreams));
        }
        if let Some(clerk) = swap.clerk {
            self.clerk.store(clerk.map(Arc::new));
        }
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
