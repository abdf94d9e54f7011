//! Phase three: Kernia's sign-in, sign-up, reset and callback routes — lazy
//! password migration.
//!
//! For `POST <base>/sign-in/{email,username,phone-number}` the body is read
//! whole (under `[limits].auth_body_bytes`), its identifier normalized
//! ([`body`]) and looked up in the ledger:
//!
//! - **unknown** to the ledger: forwarded. When Kernia does not know the
//!   identifier either, a dummy verify runs first, so an unknown identifier
//!   takes as long as a wrong password of a pending user;
//! - **migrated**, **social_only**, **removed**: forwarded, no hashing;
//! - **pending_password**: throttled per account and per client address (shared
//!   counters) → the per-user lock (one migration per user across copies) →
//!   the legacy digest verified on the bounded [`pool`] → on a match, Kernia's
//!   Argon2id hash is written as the user's credential and the ledger says
//!   `migrated`, in **one** transaction → the original request goes on, so
//!   Kernia itself issues the session (or its two-factor challenge). A
//!   mismatch is counted and also goes on: Kernia's answer stands, and when it
//!   is a success (the user holds a Kernia password set another way) the user
//!   is marked migrated. A stale ledger never locks anyone out;
//! - **pending_reset** (no verifiable digest): `403 PASSWORD_RESET_REQUIRED`,
//!   and a reset is started at most once per window ([`reset`]).
//!
//! Sign-ups are normalized the same way. A successful `/reset-password` (or
//! `/phone-number/reset-password`) or social callback marks the user migrated.
//! If the database or Redis cannot be asked, sign-ins of pending users fail
//! closed with 503; nothing else waits on them.

pub mod body;
mod live;
pub mod notify;
pub mod pool;
mod reset;
mod signin;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::config::{Config, MigrationConfig};
use crate::db::{Db, ledger};
use crate::hash::{Caps, KerniaArgon2Params};
use crate::proxy::{ProxyBody, respond};
use crate::state::SharedState;
use body::AuthRoute;

/// What intercept decided.
pub enum Intercept {
    /// Forward `body` (possibly normalized) to Kernia, then run `after` with
    /// Kernia's answer.
    Forward { body: Bytes, after: After },
    /// Answer by ourselves.
    Answer(Response<ProxyBody>),
}

/// Work to do once Kernia has answered a forwarded auth request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// On a 2xx, mark this user migrated, recording `method`.
    MigrateOnSuccess {
        user_id: String,
        method: &'static str,
    },
    /// On a 2xx carrying a new Kernia session cookie, mark its user migrated
    /// (a social sign-in callback).
    MigrateSessionUser {
        method: &'static str,
    },
}

/// One word for the log line.
pub type Outcome = &'static str;

/// Everything intercept needs, built once.
pub struct Interceptor {
    db: Db,
    state: SharedState,
    pool: pool::HashPool,
    caps: Caps,
    argon: KerniaArgon2Params,
    cfg: MigrationConfig,
    reset: Option<reset::Resets>,
    /// Live verification with Clerk (`[clerk_sync]`), while Clerk runs.
    pub live: Option<std::sync::Arc<crate::clerk_sync::live::LiveVerifier>>,
}

impl Interceptor {
    pub fn new(
        cfg: &Config,
        db: Db,
        state: SharedState,
    ) -> Result<Interceptor, notify::NotifyError> {
        let m = &cfg.migration;
        let caps = Caps {
            bcrypt_cost: u64::from(m.caps.bcrypt_max_cost),
            pbkdf2_iterations: u64::from(m.caps.pbkdf2_max_iterations),
            scrypt_memory_bytes: m.caps.scrypt_max_memory_mib * 1024 * 1024,
            argon2_memory_kib: m.caps.argon2_max_memory_mib * 1024,
            ..Caps::default()
        };
        Ok(Interceptor {
            pool: pool::HashPool::new(
                m.hash_pool_size,
                m.queue_limit,
                m.queue_deadline,
                m.hash_thread_nice,
            ),
            caps,
            argon: KerniaArgon2Params {
                m_cost: m.argon2_memory_kib,
                t_cost: m.argon2_iterations,
                p_cost: m.argon2_parallelism,
            },
            cfg: m.clone(),
            reset: cfg
                .reset
                .as_ref()
                .map(|r| reset::Resets::new(r, db.clone()))
                .transpose()?,
            live: live_verifier(cfg),
            db,
            state,
        })
    }

    pub fn pool(&self) -> &pool::HashPool {
        &self.pool
    }

    /// Phase three for one intercepted route. `client` keys the per-address throttle.
    pub async fn run(
        &self,
        route: AuthRoute,
        raw: Bytes,
        client: std::net::IpAddr,
    ) -> (Intercept, Outcome) {
        let parsed = body::parse(route, raw);
        match route {
            AuthRoute::SignInEmail | AuthRoute::SignInUsername | AuthRoute::SignInPhone => {
                signin::run(self, parsed, client).await
            }
            AuthRoute::SignUpEmail | AuthRoute::SignUpUsername => (
                Intercept::Forward {
                    body: parsed.bytes,
                    after: After::Nothing,
                },
                "normalized",
            ),
            AuthRoute::ResetPassword => reset::completing(self, parsed).await,
            AuthRoute::PhoneResetPassword => self.phone_reset(parsed).await,
        }
    }

    async fn phone_reset(&self, parsed: body::AuthBody) -> (Intercept, Outcome) {
        let after = match &parsed.identifier {
            Some(body::Identifier::Phone(phone)) => {
                match self.ledger_entry(&ledger::Identifier::Phone(phone)).await {
                    Ok(Some(e)) if is_pending(e.state) => After::MigrateOnSuccess {
                        user_id: e.user_id,
                        method: "reset",
                    },
                    _ => After::Nothing,
                }
            }
            _ => After::Nothing,
        };
        (
            Intercept::Forward {
                body: parsed.bytes,
                after,
            },
            "reset_phone",
        )
    }

    async fn ledger_entry(
        &self,
        id: &ledger::Identifier<'_>,
    ) -> Result<Option<ledger::LedgerEntry>, crate::db::DbError> {
        let mut conn = self.db.acquire().await?;
        ledger::find(&mut conn.conn(), *id).await
    }

    /// After Kernia answered: complete what `after` asks for.
    pub async fn complete(&self, after: After, status: StatusCode, session_user: Option<&str>) {
        if !status.is_success() {
            return;
        }
        let (user_id, method) = match (&after, session_user) {
            (After::Nothing, _) => return,
            (After::MigrateOnSuccess { user_id, method }, _) => (user_id.as_str(), *method),
            (After::MigrateSessionUser { method }, Some(user)) => (user, *method),
            (After::MigrateSessionUser { .. }, None) => return,
        };
        if let Err(e) = self.mark_migrated(user_id, method).await {
            tracing::warn!(error = %e, "cannot mark a user migrated; the next sign-in tries again");
        }
    }

    async fn mark_migrated(&self, user_id: &str, method: &str) -> Result<(), crate::db::DbError> {
        let mut conn = self.db.acquire().await?;
        if ledger::mark_migrated(&mut conn.conn(), user_id, method).await? {
            tracing::info!(user_id, method, "user migrated");
            self.announce(user_id).await;
        }
        Ok(())
    }

    /// Tell every copy that this user's ledger row changed.
    async fn announce(&self, user_id: &str) {
        if let Err(e) = self
            .state
            .invalidate(&crate::proxy::facts::topic(user_id))
            .await
        {
            tracing::warn!(error = %e, "cannot broadcast a migration; other copies learn it when their cache expires");
        }
    }
}

/// The live verifier, when `[clerk_sync]` configures one.
fn live_verifier(cfg: &Config) -> Option<std::sync::Arc<crate::clerk_sync::live::LiveVerifier>> {
    let live = cfg.clerk_sync.as_ref()?.live.as_ref()?;
    match crate::clerk_sync::live::LiveVerifier::new(live) {
        Ok(v) => Some(std::sync::Arc::new(v)),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up live verification with Clerk; users without a usable digest must reset");
            None
        }
    }
}

fn is_pending(state: ledger::LedgerState) -> bool {
    matches!(
        state,
        ledger::LedgerState::PendingPassword
            | ledger::LedgerState::PendingReset
            | ledger::LedgerState::SocialOnly
    )
}

/// `503` with `Retry-After`: busy or a dependency is down; try again shortly.
pub fn unavailable(retry_after_secs: u64, message: &str) -> Intercept {
    Intercept::Answer(unavailable_response(retry_after_secs, message))
}

fn unavailable_response(retry_after_secs: u64, message: &str) -> Response<ProxyBody> {
    let mut resp = respond::json(
        StatusCode::SERVICE_UNAVAILABLE,
        "TEMPORARILY_UNAVAILABLE",
        message,
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// `429` with `Retry-After`.
pub fn throttled(retry_after_secs: u64) -> Intercept {
    Intercept::Answer(throttled_response(retry_after_secs))
}

fn throttled_response(retry_after_secs: u64) -> Response<ProxyBody> {
    let mut resp = respond::json(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_ATTEMPTS",
        "Too many sign-in attempts. Try again later.",
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
