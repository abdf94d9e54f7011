//! A password sign-in through Kernia's routes: the lazy migration itself.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::db::{kernia, ledger};
use crate::hash::{self, DigestError, LegacyDigest};
use crate::state::LockToken;

use super::body::{AuthBody, Identifier};
use super::pool::PoolError;
use super::{After, Intercept, Interceptor, Outcome, throttled, unavailable};

/// How often a sign-in waiting for another's migration of the same user looks again.
const LOCK_POLL: Duration = Duration::from_millis(25);

pub(super) async fn run(ix: &Interceptor, body: AuthBody, client: IpAddr) -> (Intercept, Outcome) {
    let forward = |body: &AuthBody, after: After| Intercept::Forward {
        body: body.bytes.clone(),
        after,
    };
    let (Some(id), Some(password)) = (body.identifier.clone(), body.password.clone()) else {
        return (forward(&body, After::Nothing), "passthrough");
    };
    let key = match &id {
        Identifier::Email(v) => ledger::Identifier::Email(v),
        Identifier::Username(v) => ledger::Identifier::Username(v),
        Identifier::Phone(v) => ledger::Identifier::Phone(v),
    };
    let entry = match ix.ledger_entry(&key).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "ledger unavailable; refusing sign-in");
            return (
                unavailable(5, "Sign-in is temporarily unavailable."),
                "db_unavailable",
            );
        }
    };
    let Some(entry) = entry else {
        return unknown_to_ledger(ix, &body, &id, password).await;
    };
    match entry.state {
        ledger::LedgerState::PendingPassword => {}
        // Clerk can still check it (digest missing, stale, unsupported).
        ledger::LedgerState::PendingReset if ix.live.is_some() => {}
        ledger::LedgerState::PendingReset => return super::reset::required(ix, &entry).await,
        ledger::LedgerState::Migrated
        | ledger::LedgerState::SocialOnly
        | ledger::LedgerState::Removed => {
            return (forward(&body, After::Nothing), "passthrough");
        }
    }

    // Throttle before any hashing: per client address (every attempt counts,
    // so spraying many accounts from one address is caught), then per account.
    let m = &ix.cfg;
    for (key, max, window) in [
        (format!("signin:ip:{client}"), m.ip_attempts, m.ip_window),
        (
            format!("signin:acct:{}", entry.user_id),
            m.account_attempts,
            m.account_window,
        ),
    ] {
        match ix.state.hit(&key, window).await {
            Ok(n) if n > max => return (throttled(window.as_secs().max(1)), "throttled"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "shared state unavailable; refusing sign-in of a pending user");
                return (
                    unavailable(5, "Sign-in is temporarily unavailable."),
                    "state_unavailable",
                );
            }
        }
    }

    // One migration per user at a time, across copies.
    let lock_key = format!("migrate:{}", entry.user_id);
    let token = match acquire(ix, &lock_key).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return (
                unavailable(2, "Sign-in is busy; try again in a moment."),
                "lock_timeout",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "shared state unavailable; refusing sign-in of a pending user");
            return (
                unavailable(5, "Sign-in is temporarily unavailable."),
                "state_unavailable",
            );
        }
    };
    let result = migrate_locked(ix, &entry.user_id, &body, password).await;
    if let Err(e) = ix.state.unlock(&lock_key, &token).await {
        tracing::warn!(error = %e, "cannot release a migration lock; it expires by itself");
    }
    result
}

/// Take the lock, waiting (politely) while another sign-in of the same user
/// holds it. `Ok(None)` when it is not free within the queue deadline.
async fn acquire(
    ix: &Interceptor,
    key: &str,
) -> Result<Option<LockToken>, crate::state::StateError> {
    let deadline =
        Instant::now() + ix.cfg.queue_deadline + ix.cfg.lock_ttl.min(Duration::from_secs(10));
    loop {
        if let Some(t) = ix.state.try_lock(key, ix.cfg.lock_ttl).await? {
            return Ok(Some(t));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Under the user's lock: read the row again (someone may just have migrated
/// them), verify, and write.
async fn migrate_locked(
    ix: &Interceptor,
    user_id: &str,
    body: &AuthBody,
    password: String,
) -> (Intercept, Outcome) {
    let forward = |after: After| Intercept::Forward {
        body: body.bytes.clone(),
        after,
    };
    let entry = {
        let fresh = async {
            let mut conn = ix.db.acquire().await?;
            ledger::find_by_user(&mut conn.conn(), user_id).await
        };
        match fresh.await {
            Ok(Some(e)) => e,
            Ok(None) => return (forward(After::Nothing), "passthrough"),
            Err(e) => {
                tracing::error!(error = %e, "ledger unavailable; refusing sign-in");
                return (
                    unavailable(5, "Sign-in is temporarily unavailable."),
                    "db_unavailable",
                );
            }
        }
    };
    if entry.state == ledger::LedgerState::PendingReset {
        return super::live::verify(ix, entry, body, password).await;
    }
    if entry.state != ledger::LedgerState::PendingPassword {
        // Migrated by a concurrent sign-in: Kernia now verifies the new hash.
        return (forward(After::Nothing), "already_migrated");
    }
    let digest = match hash::parse(
        entry.hasher.as_deref().unwrap_or(""),
        entry.digest.as_deref().unwrap_or(""),
        &ix.caps,
    ) {
        Ok(d) => d,
        Err(_) if ix.live.is_some() => return super::live::verify(ix, entry, body, password).await,
        Err(e) => return unverifiable(ix, entry, e).await,
    };

    let params = ix.argon;
    let job = move || verify_and_rehash(&digest, password.as_bytes(), &params);
    let verdict = match ix.pool.run(job).await {
        Ok(v) => v,
        Err(PoolError::Saturated) => {
            return (
                unavailable(2, "Sign-in is busy; try again in a moment."),
                "saturated",
            );
        }
        Err(PoolError::Panicked) => {
            return (unavailable(2, "Sign-in failed; try again."), "hash_failed");
        }
    };
    match verdict {
        Verdict::Match(phc) => match write_credential(ix, user_id, &phc).await {
            Ok(()) => {
                ix.announce(user_id).await;
                tracing::info!(
                    user_id,
                    hasher = entry.hasher.as_deref().unwrap_or("-"),
                    "password migrated"
                );
                (forward(After::Nothing), "migrated")
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the migrated credential");
                (
                    unavailable(5, "Sign-in is temporarily unavailable."),
                    "db_unavailable",
                )
            }
        },
        Verdict::Mismatch => {
            if let Ok(mut conn) = ix.db.acquire().await
                && let Err(e) = ledger::count_legacy_failure(&mut conn.conn(), user_id).await
            {
                tracing::warn!(error = %e, "cannot count a failed legacy verify");
            }
            // Kernia's answer stands: the user may hold a Kernia password set another way.
            let after = After::MigrateOnSuccess {
                user_id: user_id.to_string(),
                method: "kernia_password",
            };
            (forward(after), "legacy_mismatch")
        }
        Verdict::HashFailed => (unavailable(2, "Sign-in failed; try again."), "hash_failed"),
    }
}

enum Verdict {
    Match(String),
    Mismatch,
    HashFailed,
}

/// On the blocking pool: the legacy verify, then (on a match) Kernia's hash.
fn verify_and_rehash(
    digest: &LegacyDigest,
    password: &[u8],
    params: &hash::KerniaArgon2Params,
) -> Verdict {
    if !digest.verify(password) {
        return Verdict::Mismatch;
    }
    match hash::kernia_argon2id(password, params) {
        Ok(phc) => Verdict::Match(phc),
        Err(e) => {
            tracing::error!(error = %e, "cannot make Kernia's hash");
            Verdict::HashFailed
        }
    }
}

/// The credential and the ledger change, in one transaction.
async fn write_credential(
    ix: &Interceptor,
    user_id: &str,
    phc: &str,
) -> Result<(), crate::db::DbError> {
    let mut tx = ix.db.begin().await?;
    kernia::upsert_credential(&mut tx.conn(), user_id, phc).await?;
    ledger::mark_migrated(&mut tx.conn(), user_id, "legacy_password").await?;
    tx.commit().await
}

/// The stored digest cannot be verified after all (malformed, over a cap, an
/// unsupported hasher): the user must reset, like any `pending_reset` user.
async fn unverifiable(
    ix: &Interceptor,
    mut entry: ledger::LedgerEntry,
    why: DigestError,
) -> (Intercept, Outcome) {
    tracing::warn!(user_id = %entry.user_id, reason = %why, "stored digest cannot be verified; the user must reset");
    if let Ok(mut conn) = ix.db.acquire().await
        && let Err(e) = ledger::set_state(
            &mut conn.conn(),
            &entry.user_id,
            ledger::LedgerState::PendingReset,
        )
        .await
    {
        tracing::warn!(error = %e, "cannot move the user to pending_reset");
    }
    entry.state = ledger::LedgerState::PendingReset;
    super::reset::required(ix, &entry).await
}

/// Not in the ledger: a native Kernia user, or nobody. Nobody gets a dummy
/// verify so the answer takes as long as a pending user's wrong password.
async fn unknown_to_ledger(
    ix: &Interceptor,
    body: &AuthBody,
    id: &Identifier,
    password: String,
) -> (Intercept, Outcome) {
    let forward = Intercept::Forward {
        body: body.bytes.clone(),
        after: After::Nothing,
    };
    let (column, value) = match id {
        Identifier::Email(v) => (kernia::UserKey::Email, v),
        Identifier::Username(v) => (kernia::UserKey::Username, v),
        Identifier::Phone(v) => (kernia::UserKey::Phone, v),
    };
    let known = async {
        let mut conn = ix.db.acquire().await?;
        kernia::user_id_by(&mut conn.conn(), column, value).await
    };
    match known.await {
        Ok(Some(_)) => (forward, "passthrough"),
        Ok(None) => {
            let _ = ix
                .pool
                .run(move || hash::dummy_verify(password.as_bytes()))
                .await;
            (forward, "dummy_verify")
        }
        // Kernia shares this database: it will fail the same way.
        Err(_) => (forward, "passthrough"),
    }
}
