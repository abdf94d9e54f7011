//! The per-request decision over a verified token: the checks that can change
//! during a token's life, applied on every request, cached verdict or not.
//!
//! - **Time** (Clerk's session-token rules, with the configured skew, 5 s by
//!   default): refused when `exp ≤ now − skew`, when `nbf > now + skew`, or
//!   when `iat > now + skew`. A token that is not valid *yet* is cached like
//!   any other and starts signing in once its `nbf` is reached.
//! - **Sign-out through `__client_uat`** (cookie tokens only): refused when the
//!   token was issued before the client's last change (`iat < client_uat`). The
//!   missing-or-zero case is decided earlier, before any verification work.
//!
//! These run against the caller's `now`, not the system clock, so they are
//! tested without waiting (which is also why `jsonwebtoken`'s own time
//! validation, with its 60 s default leeway, is not used).

use std::sync::Arc;

use super::claims::{ClerkIdentity, TokenTimes};
use super::reason::SignedOutReason;

/// What verifying a token once concluded, kept until the token expires.
#[derive(Debug)]
pub(crate) struct Verified {
    pub times: TokenTimes,
    /// The identity, or a refusal that no later request can change
    /// (wrong `iss`, `sts: pending`, …) for a token whose signature is good.
    pub verdict: Result<Arc<ClerkIdentity>, SignedOutReason>,
}

/// The outcome for one request, given the verified token, the request's
/// `__client_uat` (`None` for a header token) and the time.
pub(crate) fn decide(
    verified: &Verified,
    client_uat: Option<u64>,
    now: u64,
    skew_secs: u64,
) -> Result<Arc<ClerkIdentity>, SignedOutReason> {
    let identity = verified.verdict.as_ref().map_err(|reason| *reason)?;
    check_times(&verified.times, now, skew_secs)?;
    if let Some(uat) = client_uat
        && verified.times.iat < i64::try_from(uat).unwrap_or(i64::MAX)
    {
        return Err(SignedOutReason::IssuedBeforeClientUat);
    }
    Ok(Arc::clone(identity))
}

fn check_times(times: &TokenTimes, now: u64, skew_secs: u64) -> Result<(), SignedOutReason> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let skew = i64::try_from(skew_secs).unwrap_or(i64::MAX);
    if times.exp <= now.saturating_sub(skew) {
        return Err(SignedOutReason::Expired);
    }
    if times.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(SignedOutReason::NotYetValid);
    }
    if times.iat > now.saturating_add(skew) {
        return Err(SignedOutReason::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IAT: i64 = 1_713_158_400;

    fn verified(nbf: Option<i64>) -> Verified {
        Verified {
            times: TokenTimes {
                exp: IAT + 60,
                iat: IAT,
                nbf,
            },
            verdict: Ok(Arc::new(ClerkIdentity {
                user_id: "user_1".into(),
                session_id: "sess_1".into(),
                org: None,
                actor: None,
                expires_at: (IAT + 60) as u64,
                header_values: Default::default(),
            })),
        }
    }

    fn at(offset: i64) -> u64 {
        (IAT + offset) as u64
    }

    #[test]
    fn exp_allows_the_skew_and_no_more() {
        let v = verified(Some(IAT - 5));
        assert!(decide(&v, None, at(60), 5).is_ok());
        assert!(decide(&v, None, at(64), 5).is_ok());
        assert_eq!(decide(&v, None, at(65), 5), Err(SignedOutReason::Expired));
        assert_eq!(decide(&v, None, at(60), 0), Err(SignedOutReason::Expired));
    }

    #[test]
    fn nbf_and_iat_in_the_future_allow_the_skew_and_no_more() {
        let v = verified(Some(IAT + 10));
        assert_eq!(
            decide(&v, None, at(4), 5),
            Err(SignedOutReason::NotYetValid)
        );
        assert!(decide(&v, None, at(5), 5).is_ok());
        let v = verified(None);
        assert_eq!(
            decide(&v, None, at(-6), 5),
            Err(SignedOutReason::IssuedInFuture)
        );
        assert!(decide(&v, None, at(-5), 5).is_ok());
    }

    #[test]
    fn a_token_older_than_client_uat_is_signed_out() {
        let v = verified(None);
        assert!(decide(&v, Some(IAT as u64), at(1), 5).is_ok());
        assert!(decide(&v, Some(IAT as u64 - 100), at(1), 5).is_ok());
        assert_eq!(
            decide(&v, Some(IAT as u64 + 1), at(1), 5),
            Err(SignedOutReason::IssuedBeforeClientUat)
        );
        assert_eq!(
            decide(&v, Some(u64::MAX), at(1), 5),
            Err(SignedOutReason::IssuedBeforeClientUat)
        );
    }

    #[test]
    fn a_cached_refusal_stays_a_refusal() {
        let v = Verified {
            times: TokenTimes {
                exp: IAT + 60,
                iat: IAT,
                nbf: None,
            },
            verdict: Err(SignedOutReason::PendingSession),
        };
        assert_eq!(
            decide(&v, None, at(1), 5),
            Err(SignedOutReason::PendingSession)
        );
    }
}
