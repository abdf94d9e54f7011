//! A pending user whose password no exported digest can decide, checked live
//! with Clerk ([`crate::clerk_sync::live`]) while Clerk still runs. Called
//! under the user's migration lock, after the throttles.

use crate::clerk_sync::live::{LiveDecision, decide};
use crate::db::{kernia, ledger};
use crate::hash;

use super::body::AuthBody;
use super::{After, Intercept, Interceptor, Outcome, unavailable};

/// How a user migrated by Clerk's word is recorded in the ledger.
pub const METHOD: &str = "clerk_password";

pub(super) async fn verify(
    ix: &Interceptor,
    mut entry: ledger::LedgerEntry,
    body: &AuthBody,
    password: String,
) -> (Intercept, Outcome) {
    let Some(live) = &ix.live else {
        return super::reset::required(ix, &entry).await;
    };
    let forward = |after: After| Intercept::Forward {
        body: body.bytes.clone(),
        after,
    };
    match decide(live.verify(&entry.user_id, &password).await) {
        LiveDecision::Migrate => {
            let params = ix.argon;
            let phc = match ix
                .pool
                .run(move || hash::kernia_argon2id(password.as_bytes(), &params))
                .await
            {
                Ok(Ok(phc)) => phc,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot make Kernia's hash");
                    return (unavailable(2, "Sign-in failed; try again."), "hash_failed");
                }
                Err(_) => {
                    return (
                        unavailable(2, "Sign-in is busy; try again in a moment."),
                        "saturated",
                    );
                }
            };
            let write = async {
                let mut tx = ix.db.begin().await?;
                kernia::upsert_credential(&mut tx.conn(), &entry.user_id, &phc).await?;
                ledger::mark_migrated(&mut tx.conn(), &entry.user_id, METHOD).await?;
                tx.commit().await
            };
            match write.await {
                Ok(()) => {
                    ix.announce(&entry.user_id).await;
                    tracing::info!(user_id = %entry.user_id, "password verified by Clerk and migrated");
                    (forward(After::Nothing), "migrated_live")
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the migrated credential");
                    (
                        unavailable(5, "Sign-in is temporarily unavailable."),
                        "db_unavailable",
                    )
                }
            }
        }
        // Kernia's answer stands: the user may hold a Kernia password set another way.
        LiveDecision::KerniaDecides => (
            forward(After::MigrateOnSuccess {
                user_id: entry.user_id.clone(),
                method: "kernia_password",
            }),
            "live_mismatch",
        ),
        LiveDecision::Reset => {
            if entry.state == ledger::LedgerState::PendingPassword {
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
            }
            super::reset::required(ix, &entry).await
        }
        LiveDecision::Busy { retry_after_secs } => (
            unavailable(
                retry_after_secs,
                "Sign-in is temporarily unavailable; try again shortly.",
            ),
            "clerk_unavailable",
        ),
    }
}
