//! Forced resets: users whose exported digest cannot be verified.
//!
//! A `pending_reset` user who signs in gets `403 PASSWORD_RESET_REQUIRED`, and
//! — at most once per `[reset].window_secs` — cutover starts a reset the way
//! Kernia's own `/forget-password` would: a `verification` row with identifier
//! `reset:<userId>` and a random token, valid for `token_ttl_secs`. Kernia
//! 0.1.0 sends no mail, so cutover delivers the link itself ([`super::notify`]).
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
use super::notify::{Notifier, NotifyError, ResetNotice};
use super::{After, Interceptor, Outcome, Refusal};

pub(super) struct Resets {
    cfg: ResetConfig,
    notifier: Notifier,
    db: Db,
}

impl Resets {
    pub(super) fn new(cfg: &ResetConfig, db: Db) -> Result<Resets, NotifyError> {
        Ok(Resets {
            notifier: Notifier::new(cfg)?,
            cfg: cfg.clone(),
            db,
        })
    }

    /// Issue a token and deliver the link, unless one went out within the window.
    async fn start(&self, entry: &ledger::LedgerEntry) -> Result<bool, StartError> {
        let now = now_secs();
        let token = random_token();
        let expires_at = now + self.cfg.token_ttl.as_secs() as i64;
        let mut tx = self.db.begin().await?;
        if !ledger::claim_reset(
            &mut tx.conn(),
            &entry.user_id,
            now,
            self.cfg.window.as_secs() as i64,
        )
        .await?
        {
            return Ok(false);
        }
        kernia::ensure_credential(&mut tx.conn(), &entry.user_id, &unusable_phc()).await?;
        kernia::insert_verification(
            &mut tx.conn(),
            &format!("reset:{}", entry.user_id),
            &token,
            expires_at,
        )
        .await?;
        tx.commit().await?;
        let link = self.cfg.link.replace("{token}", &token);
        let notice = ResetNotice {
            user_id: &entry.user_id,
            email: entry.email.as_deref(),
            link: &link,
            expires_at,
        };
        if let Err(e) = self.notifier.deliver(&notice).await {
            // Let the next sign-in try again rather than wait out the window.
            if let Ok(mut conn) = self.db.acquire().await {
                let _ = ledger::set_reset_requested(&mut conn.conn(), &entry.user_id, None).await;
            }
            return Err(e.into());
        }
        Ok(true)
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
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
