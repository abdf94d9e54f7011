//! Phase three: Kernia's sign-in, sign-up, reset, callback and sign-out
//! routes — lazy password migration.
//!
//! Intercept has two halves around the upstream call, and knows nothing of
//! HTTP responses: it returns domain values, and the proxy turns a
//! [`Refusal`] into an answer in one place.
//!
//! - [`Interceptor::before`] reads the body ([`body`]: the way Kernia reads
//!   it, identifiers in their one form) and decides: [`Before::Forward`]
//!   (with the rewritten body, maybe another path, and an [`After`] plan) or
//!   [`Before::Refuse`].
//! - [`Interceptor::after`] sees Kernia's answer ([`Answer`]) and completes
//!   the plan: mark a user migrated after a reset or social sign-in, reopen a
//!   failed reset, forget a signed-out session everywhere.
//!
//! For a password sign-in (`/sign-in/{email,username,phone-number}`) the
//! identifier is looked up in the ledger; what happens next is decided by
//! pure functions in [`decide`]:
//!
//! - **unknown** to the ledger: forwarded. When Kernia does not know the
//!   identifier either, the attempt is throttled per client address and a
//!   dummy verify runs, so an unknown identifier takes as long as a wrong
//!   password of a pending user, and a flood of them is stopped before it
//!   reaches the hashing pool;
//! - **migrated**, **social_only**, **removed**: forwarded, no hashing;
//! - **pending_password**: throttled per client address and per account
//!   (shared counters) → the per-user lock (one migration per user across
//!   copies) → the legacy digest verified on the bounded [`pool`] → on a
//!   match, Kernia's Argon2id hash is written as the user's credential and
//!   the ledger says `migrated`, in **one** transaction → the request goes
//!   on, so Kernia itself issues the session (or its two-factor challenge).
//!   A mismatch is counted and also goes on: Kernia's answer stands;
//! - **pending_reset** (no verifiable digest): refused with
//!   [`Refusal::ResetRequired`], and a reset is started at most once per
//!   window ([`reset`]).
//!
//! If the database or Redis cannot be asked, sign-ins of pending users fail
//! closed ([`Refusal::Unavailable`]); nothing else waits on them.

pub mod body;
pub mod decide;
mod live;
pub mod notify;
pub mod pool;
mod reset;
pub mod routes;
mod signin;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use crate::config::{Config, MigrationConfig};
use crate::db::{Db, kernia, ledger};
use crate::hash::{Caps, KerniaArgon2Params};
use crate::identify::kernia::{self as kernia_id, KerniaSessions};
use crate::secret::Secret;
use crate::state::SharedState;
pub use decide::AfterStep;
pub(crate) use reset::{StartError as ResetStartError, issue as issue_reset};
pub use routes::AuthRoute;

/// Why intercept answered by itself. The proxy turns each into a response
/// (`proxy::respond`); intercept never builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many attempts from this address or for this account (429).
    Throttled { retry_after: Duration },
    /// A dependency (database, Redis) cannot be asked (503).
    Unavailable { retry_after: Duration },
    /// The hashing pool or the user's lock is busy (503).
    Busy { retry_after: Duration },
    /// Hashing failed; trying again may work (503).
    Failed { retry_after: Duration },
    /// No verifiable password: the user must reset (403
    /// `PASSWORD_RESET_REQUIRED`); a link may be on its way.
    ResetRequired,
    /// A body cutover cannot read, though Kernia might (400).
    Unreadable(body::Unreadable),
}

/// What [`Interceptor::before`] decided.
#[derive(Debug)]
pub enum Before {
    Forward(Forward),
    Refuse(Refusal),
}

/// Send the request on to Kernia.
#[derive(Debug)]
pub struct Forward {
    /// The body to send instead of the client's (already read), if any.
    pub body: Option<Bytes>,
    /// The path below Kernia's base path to send it to, when it differs.
    pub path: Option<&'static str>,
    /// What to do once Kernia has answered.
    pub after: After,
}

/// Work for [`Interceptor::after`], planned before the request went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// On a 2xx, mark this user migrated, recording `method`.
    Migrate {
        user_id: String,
        method: &'static str,
    },
    /// A reset of this user's password: on a 2xx mark them migrated; on a
    /// failure let their next sign-in send a new link at once.
    Reset {
        user_id: String,
    },
    /// A social sign-in completing: when Kernia issues a session (its 302
    /// redirect carries it), mark that session's user migrated.
    SocialCallback,
    /// On a 2xx, forget this session on every copy.
    SignOut {
        token: Secret,
    },
}

/// What the after-step needs of Kernia's answer. Take it before any await
/// (a response body is not `Sync`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The new Kernia session cookie value (`token.signature`) the answer sets.
    pub session_cookie: Option<Secret>,
}

impl Answer {
    pub fn of(status: StatusCode, headers: &HeaderMap) -> Answer {
        let session_cookie = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.strip_prefix(kernia_id::COOKIE)
                    .and_then(|r| r.strip_prefix('='))
            })
            .and_then(|c| c.split(';').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Secret::new);
        Answer {
            status,
            session_cookie,
        }
    }
}

/// What the after-step found out.
#[derive(Debug, Default, Clone)]
pub struct AfterReport {
    /// The user of the session Kernia's answer issued, if any.
    pub session_user: Option<String>,
    /// The verified session token of that session.
    pub session_token: Option<Secret>,
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
    /// Clerk-shaped events: a migrated password is a `user.updated`.
    events: Option<std::sync::Arc<crate::events::Events>>,
    waker: crate::outbox::Waker,
    /// Live verification with Clerk (`[clerk_sync]`), while Clerk runs.
    pub live: Option<std::sync::Arc<crate::clerk_sync::live::LiveVerifier>>,
}

impl Interceptor {
    pub fn new(
        cfg: &Config,
        db: Db,
        state: SharedState,
        waker: crate::outbox::Waker,
    ) -> Interceptor {
        let m = &cfg.migration;
        let caps = Caps {
            bcrypt_cost: u64::from(m.caps.bcrypt_max_cost),
            pbkdf2_iterations: u64::from(m.caps.pbkdf2_max_iterations),
            scrypt_memory_bytes: m.caps.scrypt_max_memory_mib * 1024 * 1024,
            argon2_memory_kib: m.caps.argon2_max_memory_mib * 1024,
            ..Caps::default()
        };
        Interceptor {
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
                .map(|r| reset::Resets::new(r, db.clone(), waker.clone())),
            events: None,
            waker,
            live: live_verifier(cfg),
            db,
            state,
        }
    }

    /// Record Clerk-shaped events for the users whose password moves (set by
    /// the proxy when `[webhooks]` is configured).
    pub fn with_events(mut self, events: std::sync::Arc<crate::events::Events>) -> Interceptor {
        self.events = Some(events);
        self
    }

    pub fn pool(&self) -> &pool::HashPool {
        &self.pool
    }

    /// The half before Kernia. `body` is the request body read whole, for
    /// routes that [`AuthRoute::reads_body`]; `headers` and `sessions` serve
    /// the sign-out (whose session is this?); `client` keys the per-address
    /// throttle.
    pub async fn before(
        &self,
        route: AuthRoute,
        body: Option<&[u8]>,
        headers: &HeaderMap,
        sessions: &KerniaSessions,
        client: IpAddr,
    ) -> (Before, Outcome) {
        let forward = |body: Option<Bytes>, after: After| {
            Before::Forward(Forward {
                body,
                path: route.kernia_path(),
                after,
            })
        };
        match route {
            AuthRoute::SocialCallback => {
                return (forward(None, After::SocialCallback), "social_callback");
            }
            AuthRoute::SignOut => {
                let token = kernia_id::session_cookie(headers)
                    .and_then(|v| sessions.verified_token(v))
                    .map(Secret::new);
                let after = token.map_or(After::Nothing, |token| After::SignOut { token });
                return (forward(None, after), "sign_out");
            }
            _ => {}
        }
        let parsed = match body::parse(route, body.unwrap_or_default()) {
            Ok(p) => p,
            Err(why) => return (Before::Refuse(Refusal::Unreadable(why)), "unreadable_body"),
        };
        let (decision, outcome) = match route {
            r if r.is_sign_in() => signin::run(self, &parsed, client).await,
            AuthRoute::ResetPassword => reset::completing(self, &parsed).await,
            AuthRoute::PhoneResetPassword => self.phone_reset(&parsed).await,
            AuthRoute::ForgetPassword | AuthRoute::RequestPasswordReset => {
                (Ok(After::Nothing), "reset_request")
            }
            _ => (Ok(After::Nothing), "normalized"),
        };
        match decision {
            Ok(after) => (forward(Some(parsed.bytes), after), outcome),
            Err(refusal) => (Before::Refuse(refusal), outcome),
        }
    }

    async fn phone_reset(&self, parsed: &body::AuthBody) -> (Result<After, Refusal>, Outcome) {
        let after = match &parsed.identifier {
            Some(body::Identifier::Phone(phone)) => {
                match self.ledger_entry(&ledger::Identifier::Phone(phone)).await {
                    Ok(Some(e)) if is_pending(e.state) => After::Reset { user_id: e.user_id },
                    _ => After::Nothing,
                }
            }
            _ => After::Nothing,
        };
        (Ok(after), "reset_phone")
    }

    async fn ledger_entry(
        &self,
        id: &ledger::Identifier<'_>,
    ) -> Result<Option<ledger::LedgerEntry>, crate::db::DbError> {
        let mut conn = self.db.acquire().await?;
        ledger::find(&mut conn.conn(), *id).await
    }

    /// The half after Kernia answered: complete the plan. Also finds out
    /// whose session the answer issued (for observers), on every route.
    pub async fn after(
        &self,
        plan: &After,
        answer: &Answer,
        sessions: &KerniaSessions,
    ) -> AfterReport {
        let mut report = AfterReport::default();
        if let Some(cookie) = &answer.session_cookie
            && let Some(token) = sessions.verified_token(cookie.expose())
        {
            report.session_user = self.session_user(token).await;
            report.session_token = Some(Secret::new(token));
        }
        let step = decide::after_step(plan, answer.status, answer.session_cookie.is_some());
        match step {
            AfterStep::Nothing => {}
            AfterStep::MarkMigrated { user_id, method } => {
                self.mark_migrated(&user_id, method).await;
            }
            AfterStep::MarkSessionUserMigrated { method } => match &report.session_user {
                Some(user_id) => self.mark_migrated(user_id, method).await,
                None => tracing::warn!(
                    "a social sign-in set a session cutover cannot look up; its user is marked migrated at their next sign-in"
                ),
            },
            AfterStep::ReopenReset { user_id } => self.reopen_reset(&user_id).await,
            AfterStep::ForgetSession => {
                if let After::SignOut { token } = plan {
                    self.forget_session(sessions, token).await;
                }
            }
        }
        report
    }

    async fn session_user(&self, token: &str) -> Option<String> {
        let mut conn = self.db.acquire().await.ok()?;
        kernia::find_session(&mut conn.conn(), token)
            .await
            .ok()
            .flatten()
            .map(|s| s.user_id)
    }

    /// Mark the user migrated and queue its events (when `[webhooks]` is on)
    /// in one transaction.
    async fn mark_migrated(&self, user_id: &str, method: &str) {
        let done = async {
            let mut tx = self.db.begin().await?;
            let changed = ledger::mark_migrated(&mut tx.conn(), user_id, method).await?;
            if changed {
                self.queue_migration_events(&mut tx.conn(), user_id, method)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, crate::db::DbError>(changed)
        };
        match done.await {
            Ok(true) => {
                self.waker.wake();
                tracing::info!(user_id, method, "user migrated");
                self.announce(user_id).await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot mark a user migrated; the next sign-in tries again")
            }
        }
    }

    /// A reset through cutover failed (a bad or expired token, a refused
    /// password): the user's next sign-in may send a new link at once.
    async fn reopen_reset(&self, user_id: &str) {
        let done = async {
            let mut conn = self.db.acquire().await?;
            ledger::set_reset_requested(&mut conn.conn(), user_id, None).await
        };
        if let Err(e) = done.await {
            tracing::warn!(error = %e, "cannot reopen a failed reset");
        }
    }

    async fn forget_session(&self, sessions: &KerniaSessions, token: &Secret) {
        sessions.forget(token.expose());
        if let Err(e) = self
            .state
            .invalidate(&kernia_id::topic(token.expose()))
            .await
        {
            tracing::warn!(error = %e, "cannot broadcast a sign-out; other copies forget it when their cache expires");
        }
    }

    /// Queue the events of a migration (when `[webhooks]` is on) inside the
    /// transaction that marks it.
    pub(crate) async fn queue_migration_events(
        &self,
        conn: &mut crate::db::Conn<'_>,
        user_id: &str,
        method: &str,
    ) -> Result<(), crate::db::DbError> {
        match &self.events {
            Some(events) => events.migrated(conn, user_id, method).await,
            None => Ok(()),
        }
    }

    /// Tell every copy that this user's ledger row changed.
    async fn announce(&self, user_id: &str) {
        if let Err(e) = self.state.invalidate(&ledger::topic(user_id)).await {
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
