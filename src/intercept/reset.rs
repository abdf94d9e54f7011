//! Forced resets: users whose exported digest cannot be verified.
//!
//! A `pending_reset` user who signs in gets `403 PASSWORD_RESET_REQUIRED`, and
//! — at most once per `[reset].window_secs` — cutover starts a reset the way
//! Kernia's own `/forget-password` would: a `verification` row with identifier
//! `reset:<userId>` and a random token, valid for `token_ttl_secs`. Kernia
//! 0.1.0 sends no mail, so cutover delivers the link itself: the link is
//! queued in the outbox in the transaction that issues the token
//! ([`super::notify::queue`]) and sent after the commit by the outbox worker,
//! with retries, so a slow or down mail server never slows the sign-in and a
//! crash after the commit loses no reset.
//!
//! Kernia's `/reset-password` only *updates* an existing credential row (with
//! none, it answers success and writes nothing), so before issuing a token
//! cutover makes sure the user has one, holding an unusable random Argon2id
//! string. When the reset then succeeds through cutover, the user is marked
//! migrated.

use base64::Engine as _;
use rand::RngCore as _;

use crate::config::ResetConfig;
use crate::db::{Db, DbError, kernia, ledger, now_secs};

use super::body::AuthBody;
use super::notify::{self, ResetNotice};
use super::{After, Interceptor, Outcome, Refusal};
use crate::outbox::Waker;

pub(super) struct Resets {
    cfg: ResetConfig,
    db: Db,
    waker: Waker,
}

impl Resets {
    pub(super) fn new(cfg: &ResetConfig, db: Db, waker: Waker) -> Resets {
        Resets {
            cfg: cfg.clone(),
            db,
            waker,
        }
    }

    /// Issue a token and queue the link, unless one went out within the
    /// window. The token, the ledger's note and the queued deliveries commit
    /// together; delivery happens after the commit.
    async fn start(&self, entry: &ledger::LedgerEntry) -> Result<bool, StartError> {
        let started = issue(
            &self.db,
            &self.cfg,
            &entry.user_id,
            entry.email.as_deref(),
            self.cfg.window.as_secs() as i64,
        )
        .await?;
        if started {
            self.waker.wake();
        }
        Ok(started)
    }
}

/// Start a reset for one user: claim it in the ledger (unless one was
/// requested within the last `window_secs`), make sure a credential row
/// exists, issue the token and queue the link for every configured channel —
/// all in one transaction. `Ok(false)`: one was already requested within the
/// window, nothing written. Used by the sign-in path and by
/// `cutover reset-campaign`; delivery is the outbox worker's.
pub(crate) async fn issue(
    db: &Db,
    cfg: &ResetConfig,
    user_id: &str,
    email: Option<&str>,
    window_secs: i64,
) -> Result<bool, StartError> {
    let now = now_secs();
    let token = random_token();
    let expires_at = now + cfg.token_ttl.as_secs() as i64;
    let mut tx = db.begin().await?;
    if !ledger::claim_reset(&mut tx.conn(), user_id, now, window_secs).await? {
        return Ok(false);
    }
    kernia::ensure_credential(&mut tx.conn(), user_id, &unusable_phc()).await?;
    kernia::insert_verification(
        &mut tx.conn(),
        &format!("reset:{user_id}"),
        &token,
        expires_at,
    )
    .await?;
    let link = cfg.link.replace("{token}", &token);
    let notice = ResetNotice {
        user_id,
        email,
        link: &link,
        expires_at,
    };
    let queued = notify::queue(&mut tx.conn(), cfg, &notice, crate::outbox::now_ms()).await?;
    if queued == 0 {
        // Mail only, and no address: nothing could deliver it (rolled back).
        return Err(StartError::NoChannel);
    }
    tx.commit().await?;
    Ok(true)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "the user has no email address and [reset] has no webhook: nothing can deliver the link"
    )]
    NoChannel,
}

/// [`Refusal::ResetRequired`], starting a reset when allowed.
pub(super) async fn required(
    ix: &Interceptor,
    entry: &ledger::LedgerEntry,
) -> (Result<After, Refusal>, Outcome) {
    let outcome = match &ix.reset {
        None => "reset_required",
        Some(resets) => match resets.start(entry).await {
            Ok(true) => {
                tracing::info!(user_id = %entry.user_id, "password reset started");
                "reset_started"
            }
            Ok(false) => "reset_required",
            Err(e) => {
                tracing::error!(user_id = %entry.user_id, error = %e, "cannot start a password reset");
                "reset_failed"
            }
        },
    };
    (Err(Refusal::ResetRequired), outcome)
}

/// `/reset-password`: find whose token this is before Kernia consumes it.
pub(super) async fn completing(
    ix: &Interceptor,
    parsed: &AuthBody,
) -> (Result<After, Refusal>, Outcome) {
    let after = match &parsed.reset_token {
        Some(token) => {
            let owner = async {
                let mut conn = ix.db.acquire().await?;
                kernia::find_verification(&mut conn.conn(), token.expose()).await
            };
            match owner.await {
                Ok(Some((identifier, _))) => match identifier.strip_prefix("reset:") {
                    Some(user_id) => After::Reset {
                        user_id: user_id.to_string(),
                    },
                    None => After::Nothing,
                },
                _ => After::Nothing,
            }
        }
        None => After::Nothing,
    };
    (Ok(after), "reset_password")
}

/// 32 random bytes, base64url: what Kernia's `secrets.token_urlsafe(32)` makes.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A well-formed Argon2id PHC string whose hash is random bytes: no password
/// verifies against it, and it costs nothing to make.
fn unusable_phc() -> String {
    let mut salt = [0u8; 16];
    let mut hash = [0u8; 32];
    rand::rng().fill_bytes(&mut salt);
    rand::rng().fill_bytes(&mut hash);
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m=65536,t=3,p=4${}${}",
        b64.encode(salt),
        b64.encode(hash)
    )
}
