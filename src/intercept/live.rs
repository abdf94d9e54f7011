//! A pending user whose password no exported digest can decide, checked live
//! with Clerk ([`crate::clerk_sync::live`]) while Clerk still runs. Called
//! under the user's migration lock, after the throttles; Clerk's answer
//! becomes a [`Verdict`] that [`super::decide::for_verdict`] decides on, like
//! a digest's.

use std::time::Duration;

use crate::clerk_sync::live::{LiveDecision, decide};
use crate::hash;
use crate::secret::Secret;

use super::Interceptor;
use super::decide::Verdict;
use super::pool::PoolError;

/// How a user migrated by Clerk's word is recorded in the ledger.
pub const METHOD: &str = "clerk_password";

/// Ask Clerk; on "verified", make Kernia's hash on the bounded pool.
pub(super) async fn verdict(
    ix: &Interceptor,
    user_id: &str,
    password: &Secret,
) -> Result<Verdict, PoolError> {
    let Some(live) = &ix.live else {
        return Ok(Verdict::NoPassword);
    };
    match decide(live.verify(user_id, password.expose()).await) {
        LiveDecision::Migrate => {
            let params = ix.argon;
            let password = password.clone();
            let made = ix
                .pool
                .run(move || hash::kernia_argon2id(password.expose().as_bytes(), &params))
                .await?;
            Ok(match made {
                Ok(phc) => Verdict::Match(Secret::new(phc)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot make Kernia's hash");
                    Verdict::HashFailed
                }
            })
        }
        // Kernia's answer stands: the user may hold a Kernia password set another way.
        LiveDecision::KerniaDecides => Ok(Verdict::Mismatch),
        LiveDecision::Reset => Ok(Verdict::NoPassword),
        LiveDecision::Busy { retry_after_secs } => Ok(Verdict::CheckerUnavailable {
            retry_after: Duration::from_secs(retry_after_secs),
        }),
    }
}
