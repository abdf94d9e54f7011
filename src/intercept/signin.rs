//! A password sign-in through Kernia's routes: the lazy migration itself.
//! The decisions are pure functions in [`super::decide`]; this file does the
//! I/O around them (ledger, counters, lock, hashing pool, the credential write).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::db::{kernia, ledger};
use crate::hash::{self, DigestError, LegacyDigest};
use crate::secret::Secret;
use crate::state::Lease;

use super::body::{AuthBody, Identifier};
use super::decide::{self, Check, SignInStep, Verdict, VerdictStep};
use super::pool::PoolError;
use super::{After, Interceptor, Outcome, Refusal};

/// How often a sign-in waiting for another's migration of the same user looks again.
const LOCK_POLL: Duration = Duration::from_millis(25);

/// How much longer than a dead holder's lease a sign-in waits for it: Redis
/// expires keys to the millisecond, this covers the poll and a slow round trip.
const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// What a sign-in does: go on to Kernia with an after-plan, or be refused.
type Step = (Result<After, Refusal>, Outcome);

const fn unavailable(secs: u64) -> Refusal {
    Refusal::Unavailable {
        retry_after: Duration::from_secs(secs),
    }
}

const fn busy(secs: u64) -> Refusal {
    Refusal::Busy {
        retry_after: Duration::from_secs(secs),
    }
}

pub(super) async fn run(ix: &Interceptor, body: &AuthBody, client: IpAddr) -> Step {
    let (Some(id), Some(password)) = (&body.identifier, &body.password) else {
        return (Ok(After::Nothing), "passthrough");
    };
    let key = match id {
        Identifier::Email(v) => ledger::Identifier::Email(v),
        Identifier::Username(v) => ledger::Identifier::Username(v),
        Identifier::Phone(v) => ledger::Identifier::Phone(v),
    };
    let entry = match ix.ledger_entry(&key).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "ledger unavailable; refusing sign-in");
            return (Err(unavailable(5)), "db_unavailable");
        }
    };
    let entry = match (
        decide::for_ledger_state(entry.as_ref().map(|e| e.state), ix.live.is_some()),
        entry,
    ) {
        (SignInStep::Unknown, _) => return unknown_to_ledger(ix, id, password, client).await,
        (SignInStep::Forward, _) => return (Ok(After::Nothing), "passthrough"),
        (SignInStep::RequireReset, Some(entry)) => return super::reset::required(ix, &entry).await,
        (SignInStep::Verify, Some(entry)) => entry,
        (_, None) => return (Ok(After::Nothing), "passthrough"),
    };

    // Throttle before any hashing: per client address (every attempt counts,
    // so spraying many accounts from one address is caught), then per account.
    if let Err(step) = throttle_address(ix, client).await {
        return step;
    }
    let m = &ix.cfg;
    if let Err(step) = throttle(
        ix,
        &format!("signin:acct:{}", entry.user_id),
        m.account_attempts,
        m.account_window,
    )
    .await
    {
        return step;
    }

    // One migration per user at a time, across copies: the user's lock, held
    // as a lease renewed while the migration runs.
    let lease = match acquire(ix, &format!("migrate:{}", entry.user_id)).await {
        Ok(Some(l)) => l,
        Ok(None) => return (Err(busy(2)), "lock_timeout"),
        Err(e) => {
            tracing::error!(error = %e, "shared state unavailable; refusing sign-in of a pending user");
            return (Err(unavailable(5)), "state_unavailable");
        }
    };
    let result = migrate_locked(ix, &entry.user_id, password.clone()).await;
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "cannot release a migration lock; it expires by itself");
    }
    result
}

/// Count one attempt from `client`; refused past `[migration].ip_attempts`.
async fn throttle_address(ix: &Interceptor, client: IpAddr) -> Result<(), Step> {
    let m = &ix.cfg;
    throttle(
        ix,
        &format!("signin:ip:{client}"),
        m.ip_attempts,
        m.ip_window,
    )
    .await
}

async fn throttle(ix: &Interceptor, key: &str, max: u64, window: Duration) -> Result<(), Step> {
    match ix.state.hit(key, window).await {
        Ok(n) if n > max => Err((
            Err(Refusal::Throttled {
                retry_after: window.max(Duration::from_secs(1)),
            }),
            "throttled",
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, "shared state unavailable; refusing a sign-in that would hash");
            Err((Err(unavailable(5)), "state_unavailable"))
        }
    }
}

/// Take the user's lease, waiting (politely) while another sign-in of the
/// same user holds it. `Ok(None)` when it is not free in time.
///
/// A live holder renews its lease, so it is never overtaken: it finishes and
/// releases. A dead one (a copy killed mid-migration) stops renewing, so its
/// lease is gone at most one TTL after this wait starts. Waiting the queue
/// deadline (what a live holder may spend waiting for a hashing slot) plus one
/// lease and a margin therefore means a user retrying after a crash always
/// gets the lock, and `Ok(None)` means a live holder is still at work.
async fn acquire(ix: &Interceptor, key: &str) -> Result<Option<Lease>, crate::state::StateError> {
    let deadline = Instant::now() + ix.cfg.queue_deadline + ix.cfg.lock_lease + LEASE_MARGIN;
    loop {
        if let Some(lease) = ix.state.try_lease(key, ix.cfg.lock_lease).await? {
            return Ok(Some(lease));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Under the user's lock: read the row again (someone may just have migrated
/// them), verify (the exported digest, or Clerk live), and write.
async fn migrate_locked(ix: &Interceptor, user_id: &str, password: Secret) -> Step {
    let entry = {
        let fresh = async {
            let mut conn = ix.db.acquire().await?;
            ledger::find_by_user(&mut conn.conn(), user_id).await
        };
        match fresh.await {
            Ok(Some(e)) => e,
            Ok(None) => return (Ok(After::Nothing), "passthrough"),
            Err(e) => {
                tracing::error!(error = %e, "ledger unavailable; refusing sign-in");
                return (Err(unavailable(5)), "db_unavailable");
            }
        }
    };
    let parsed = (entry.state == ledger::LedgerState::PendingPassword).then(|| {
        hash::parse(
            entry.hasher.as_deref().unwrap_or(""),
            entry.digest.as_deref().unwrap_or(""),
            &ix.caps,
        )
    });
    let check = decide::check_for(
        entry.state,
        matches!(parsed, Some(Ok(_))),
        ix.live.is_some(),
    );
    let verdict = match (check, parsed) {
        // Migrated by a concurrent sign-in: Kernia now verifies the new hash.
        (Check::Settled, _) => return (Ok(After::Nothing), "already_migrated"),
        (Check::RequireReset, _) => return super::reset::required(ix, &entry).await,
        (Check::Unverifiable, parsed) => {
            let why = parsed.and_then(Result::err);
            return unverifiable(ix, entry, why).await;
        }
        (Check::Digest, Some(Ok(digest))) => {
            let params = ix.argon;
            let password = password.clone();
            let job = move || verify_and_rehash(&digest, password.expose().as_bytes(), &params);
            ix.pool.run(job).await
        }
        (Check::Live, _) => super::live::verdict(ix, &entry.user_id, &password).await,
        (Check::Digest, _) => return (Err(unavailable(2)), "hash_failed"),
    };
    let live = check == Check::Live;
    let hasher = entry.hasher.as_deref().unwrap_or("-");
    let verdict = match verdict {
        Ok(v) => v,
        Err(PoolError::Saturated) => {
            crate::metrics::record_migration(hasher, "saturated");
            return (Err(busy(2)), "saturated");
        }
        Err(PoolError::Panicked) => {
            crate::metrics::record_migration(hasher, "hash_failed");
            return (
                Err(Refusal::Failed {
                    retry_after: Duration::from_secs(2),
                }),
                "hash_failed",
            );
        }
    };
    match (decide::for_verdict(&verdict, user_id), verdict) {
        (VerdictStep::WriteAndForward, Verdict::Match(phc)) => {
            let method = if live {
                super::live::METHOD
            } else {
                "legacy_password"
            };
            match write_credential(ix, user_id, phc.expose(), method).await {
                Ok(()) => {
                    crate::metrics::record_migration(hasher, "migrated");
                    ix.announce(user_id).await;
                    tracing::info!(
                        user_id,
                        hasher = entry.hasher.as_deref().unwrap_or("-"),
                        method,
                        "password migrated"
                    );
                    (
                        Ok(After::Nothing),
                        if live { "migrated_live" } else { "migrated" },
                    )
                }
                Err(e) => {
                    crate::metrics::record_migration(hasher, "db_unavailable");
                    tracing::error!(error = %e, "cannot write the migrated credential");
                    (Err(unavailable(5)), "db_unavailable")
                }
            }
        }
        // Clerk's "wrong password" is not a failed legacy verify: not counted.
        (VerdictStep::CountAndForward(after), _) if live => (Ok(after), "live_mismatch"),
        (VerdictStep::CountAndForward(after), _) => {
            crate::metrics::record_migration(hasher, "mismatch");
            if let Ok(mut conn) = ix.db.acquire().await
                && let Err(e) = ledger::count_legacy_failure(&mut conn.conn(), user_id).await
            {
                tracing::warn!(error = %e, "cannot count a failed legacy verify");
            }
            (Ok(after), "legacy_mismatch")
        }
        (VerdictStep::RequireReset, _) => {
            tracing::info!(
                user_id,
                "Clerk holds no password for the user; the user must reset"
            );
            to_pending_reset(ix, entry).await
        }
        (VerdictStep::Refuse(refusal), _) if live => {
            crate::metrics::record_migration(hasher, "clerk_unavailable");
            (Err(refusal), "clerk_unavailable")
        }
        (VerdictStep::Refuse(refusal), _) => {
            crate::metrics::record_migration(hasher, "hash_failed");
            (Err(refusal), "hash_failed")
        }
        (VerdictStep::WriteAndForward, _) => {
            crate::metrics::record_migration(hasher, "hash_failed");
            (Err(unavailable(2)), "hash_failed")
        }
    }
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
        Ok(phc) => Verdict::Match(Secret::new(phc)),
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
    method: &str,
) -> Result<(), crate::db::DbError> {
    let mut tx = ix.db.begin().await?;
    kernia::upsert_credential(&mut tx.conn(), user_id, phc).await?;
    ledger::mark_migrated(&mut tx.conn(), user_id, method).await?;
    // The password moved: a `user.updated` for the app's consumers, queued in
    // this same transaction.
    ix.queue_migration_events(&mut tx.conn(), user_id, method)
        .await?;
    tx.commit().await?;
    ix.waker.wake();
    Ok(())
}

/// The stored digest cannot be verified after all (malformed, over a cap, an
/// unsupported hasher): the user must reset, like any `pending_reset` user.
async fn unverifiable(
    ix: &Interceptor,
    entry: ledger::LedgerEntry,
    why: Option<DigestError>,
) -> Step {
    let reason = why.map_or_else(|| "no digest".to_string(), |e| e.to_string());
    tracing::warn!(user_id = %entry.user_id, %reason, "stored digest cannot be verified; the user must reset");
    crate::metrics::record_migration(entry.hasher.as_deref().unwrap_or("-"), "unverifiable");
    to_pending_reset(ix, entry).await
}

/// Move a `pending_password` user to `pending_reset`, and refuse like any
/// `pending_reset` user.
async fn to_pending_reset(ix: &Interceptor, mut entry: ledger::LedgerEntry) -> Step {
    if entry.state == ledger::LedgerState::PendingReset {
        return super::reset::required(ix, &entry).await;
    }
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

/// Not in the ledger: a native Kernia user, or nobody. Nobody is throttled
/// per client address (a flood of made-up identifiers must not reach the
/// hashing pool), then gets a dummy verify so the answer takes as long as a
/// pending user's wrong password.
async fn unknown_to_ledger(
    ix: &Interceptor,
    id: &Identifier,
    password: &Secret,
    client: IpAddr,
) -> Step {
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
        Ok(Some(_)) => (Ok(After::Nothing), "passthrough"),
        Ok(None) => {
            if let Err(step) = throttle_address(ix, client).await {
                return step;
            }
            let password = password.clone();
            let _ = ix
                .pool
                .run(move || hash::dummy_verify(password.expose().as_bytes()))
                .await;
            (Ok(After::Nothing), "dummy_verify")
        }
        // Kernia shares this database: it will fail the same way.
        Err(_) => (Ok(After::Nothing), "passthrough"),
    }
}
