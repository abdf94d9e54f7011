//! The decisions of lazy migration, as pure functions: what a sign-in does
//! for a ledger state, what it does with the verdict of a legacy verify, and
//! what the after-step does with Kernia's answer. The I/O around them lives
//! in `signin.rs` and `mod.rs`; every rule is unit-tested here.

use std::time::Duration;

use http::StatusCode;

use super::{After, Refusal};
use crate::db::ledger::LedgerState;

/// What a password sign-in does, by the ledger's state for its identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStep {
    /// Not in the ledger: a native Kernia user (forward) or nobody (throttle
    /// per address, then a dummy verify so the answer takes as long as a
    /// real one, then forward).
    Unknown,
    /// Migrated, social-only or removed: Kernia alone decides.
    Forward,
    /// `pending_password`, or `pending_reset` while Clerk can still be asked
    /// (live verification configured): throttle, lock, then [`check_for`].
    Verify,
    /// `pending_reset` with no one to ask: refuse and start a reset.
    RequireReset,
}

/// `live`: whether live verification with Clerk is configured.
pub fn for_ledger_state(state: Option<LedgerState>, live: bool) -> SignInStep {
    match state {
        None => SignInStep::Unknown,
        Some(LedgerState::PendingPassword) => SignInStep::Verify,
        // Clerk can still check it (digest missing, stale, unsupported).
        Some(LedgerState::PendingReset) if live => SignInStep::Verify,
        Some(LedgerState::PendingReset) => SignInStep::RequireReset,
        Some(LedgerState::Migrated | LedgerState::SocialOnly | LedgerState::Removed) => {
            SignInStep::Forward
        }
    }
}

/// Who checks the password, under the user's lock (the row read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The exported digest (parsed and within the caps).
    Digest,
    /// Clerk, live: no usable digest, and live verification is configured.
    Live,
    /// No usable digest and no one to ask: move to `pending_reset`, refuse.
    Unverifiable,
    /// `pending_reset` and no one to ask: refuse and start a reset.
    RequireReset,
    /// Migrated (or otherwise settled) by a concurrent request: forward.
    Settled,
}

/// `digest_usable`: the stored digest parses within the caps.
pub fn check_for(state: LedgerState, digest_usable: bool, live: bool) -> Check {
    match state {
        LedgerState::PendingPassword if digest_usable => Check::Digest,
        LedgerState::PendingPassword | LedgerState::PendingReset if live => Check::Live,
        LedgerState::PendingPassword => Check::Unverifiable,
        LedgerState::PendingReset => Check::RequireReset,
        LedgerState::Migrated | LedgerState::SocialOnly | LedgerState::Removed => Check::Settled,
    }
}

/// The result of verifying a password: against the exported digest, or
/// live with Clerk.
#[derive(Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It matched; Kernia's Argon2id PHC string of the password.
    Match(crate::secret::Secret),
    Mismatch,
    /// Kernia's hash could not be made.
    HashFailed,
    /// Live only: Clerk holds no password for the user (or no such user).
    NoPassword,
    /// Live only: Clerk cannot be asked now (throttled, failing, circuit open).
    CheckerUnavailable {
        retry_after: Duration,
    },
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Match(_) => "Match",
            Verdict::Mismatch => "Mismatch",
            Verdict::HashFailed => "HashFailed",
            Verdict::NoPassword => "NoPassword",
            Verdict::CheckerUnavailable { .. } => "CheckerUnavailable",
        })
    }
}

/// What a sign-in does with a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictStep {
    /// Write the credential and mark the user migrated in one transaction,
    /// then forward: Kernia verifies the fresh hash and issues the session.
    WriteAndForward,
    /// Count the failure and forward anyway: Kernia's answer stands (the user
    /// may hold a Kernia password set another way); on a 2xx, `after` marks
    /// the user migrated. A stale ledger never locks anyone out.
    CountAndForward(After),
    /// No password to verify anywhere: move to `pending_reset` and refuse
    /// (a reset link may be sent).
    RequireReset,
    Refuse(Refusal),
}

pub fn for_verdict(verdict: &Verdict, user_id: &str) -> VerdictStep {
    match verdict {
        Verdict::Match(_) => VerdictStep::WriteAndForward,
        Verdict::Mismatch => VerdictStep::CountAndForward(After::Migrate {
            user_id: user_id.to_string(),
            method: "kernia_password",
        }),
        Verdict::HashFailed => VerdictStep::Refuse(Refusal::Failed {
            retry_after: Duration::from_secs(2),
        }),
        Verdict::NoPassword => VerdictStep::RequireReset,
        // For this sign-in only; the user stays pending.
        Verdict::CheckerUnavailable { retry_after } => VerdictStep::Refuse(Refusal::Unavailable {
            retry_after: *retry_after,
        }),
    }
}

/// What the after-step does, given the plan and Kernia's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStep {
    Nothing,
    /// Mark this user migrated, recording how.
    MarkMigrated {
        user_id: String,
        method: &'static str,
    },
    /// Mark the user of the session Kernia just issued migrated (social).
    MarkSessionUserMigrated {
        method: &'static str,
    },
    /// A reset through cutover failed: let the next sign-in send a new link
    /// at once, so a user who must reset is never left without a way in.
    ReopenReset {
        user_id: String,
    },
    /// Signed out: forget the session everywhere.
    ForgetSession,
}

/// `new_session`: whether Kernia's answer sets a (non-empty) session cookie.
pub fn after_step(plan: &After, status: StatusCode, new_session: bool) -> AfterStep {
    let ok = status.is_success();
    match plan {
        After::Nothing => AfterStep::Nothing,
        After::Migrate { user_id, method } if ok => AfterStep::MarkMigrated {
            user_id: user_id.clone(),
            method,
        },
        After::Migrate { .. } => AfterStep::Nothing,
        After::Reset { user_id } if ok => AfterStep::MarkMigrated {
            user_id: user_id.clone(),
            method: "reset",
        },
        After::Reset { user_id } => AfterStep::ReopenReset {
            user_id: user_id.clone(),
        },
        // Kernia's callback answers with a redirect (302) that carries the
        // new session; a success without one signed nobody in.
        After::SocialCallback if new_session && (ok || status.is_redirection()) => {
            AfterStep::MarkSessionUserMigrated { method: "social" }
        }
        After::SocialCallback => AfterStep::Nothing,
        After::SignOut { .. } if ok => AfterStep::ForgetSession,
        After::SignOut { .. } => AfterStep::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ledger_state_has_its_step() {
        for live in [false, true] {
            assert_eq!(for_ledger_state(None, live), SignInStep::Unknown);
            assert_eq!(
                for_ledger_state(Some(LedgerState::PendingPassword), live),
                SignInStep::Verify
            );
            for s in [
                LedgerState::Migrated,
                LedgerState::SocialOnly,
                LedgerState::Removed,
            ] {
                assert_eq!(
                    for_ledger_state(Some(s), live),
                    SignInStep::Forward,
                    "{s:?}"
                );
            }
        }
        assert_eq!(
            for_ledger_state(Some(LedgerState::PendingReset), false),
            SignInStep::RequireReset
        );
    }

    #[test]
    fn a_pending_reset_user_is_verified_live_when_clerk_can_be_asked() {
        assert_eq!(
            for_ledger_state(Some(LedgerState::PendingReset), true),
            SignInStep::Verify
        );
        assert_eq!(
            check_for(LedgerState::PendingReset, false, true),
            Check::Live
        );
        assert_eq!(
            check_for(LedgerState::PendingReset, false, false),
            Check::RequireReset
        );
    }

    #[test]
    fn a_missing_stale_or_unsupported_digest_goes_live_when_configured() {
        let p = LedgerState::PendingPassword;
        assert_eq!(check_for(p, true, false), Check::Digest);
        assert_eq!(
            check_for(p, true, true),
            Check::Digest,
            "a usable digest needs no call"
        );
        assert_eq!(check_for(p, false, true), Check::Live);
        assert_eq!(check_for(p, false, false), Check::Unverifiable);
        for s in [
            LedgerState::Migrated,
            LedgerState::SocialOnly,
            LedgerState::Removed,
        ] {
            assert_eq!(check_for(s, false, true), Check::Settled, "{s:?}");
        }
    }

    #[test]
    fn clerk_verdicts_reset_or_refuse_for_this_sign_in_only() {
        assert_eq!(
            for_verdict(&Verdict::NoPassword, "u"),
            VerdictStep::RequireReset
        );
        let after = Duration::from_secs(7);
        assert_eq!(
            for_verdict(&Verdict::CheckerUnavailable { retry_after: after }, "u"),
            VerdictStep::Refuse(Refusal::Unavailable { retry_after: after })
        );
    }

    #[test]
    fn verdicts_decide_write_count_or_refuse() {
        let m = Verdict::Match(crate::secret::Secret::new("$argon2id$…"));
        assert_eq!(for_verdict(&m, "u"), VerdictStep::WriteAndForward);
        assert_eq!(
            for_verdict(&Verdict::Mismatch, "u"),
            VerdictStep::CountAndForward(After::Migrate {
                user_id: "u".into(),
                method: "kernia_password"
            })
        );
        assert!(matches!(
            for_verdict(&Verdict::HashFailed, "u"),
            VerdictStep::Refuse(Refusal::Failed { .. })
        ));
        assert_eq!(format!("{m:?}"), "Match", "no hash in Debug");
    }

    #[test]
    fn a_social_callback_that_redirects_with_a_session_migrates_its_user() {
        let found = StatusCode::FOUND;
        assert_eq!(
            after_step(&After::SocialCallback, found, true),
            AfterStep::MarkSessionUserMigrated { method: "social" }
        );
        assert_eq!(
            after_step(&After::SocialCallback, StatusCode::OK, true),
            AfterStep::MarkSessionUserMigrated { method: "social" }
        );
        // A redirect back to an error page sets no session.
        assert_eq!(
            after_step(&After::SocialCallback, found, false),
            AfterStep::Nothing
        );
        assert_eq!(
            after_step(&After::SocialCallback, StatusCode::BAD_REQUEST, true),
            AfterStep::Nothing
        );
    }

    #[test]
    fn a_failed_reset_reopens_the_reset_and_a_good_one_migrates() {
        let plan = After::Reset {
            user_id: "u".into(),
        };
        assert_eq!(
            after_step(&plan, StatusCode::OK, false),
            AfterStep::MarkMigrated {
                user_id: "u".into(),
                method: "reset"
            }
        );
        assert_eq!(
            after_step(&plan, StatusCode::BAD_REQUEST, false),
            AfterStep::ReopenReset {
                user_id: "u".into()
            }
        );
    }

    #[test]
    fn migrations_and_sign_outs_need_a_success() {
        let plan = After::Migrate {
            user_id: "u".into(),
            method: "kernia_password",
        };
        assert_eq!(
            after_step(&plan, StatusCode::UNAUTHORIZED, false),
            AfterStep::Nothing
        );
        let sign_out = After::SignOut {
            token: crate::secret::Secret::new("t"),
        };
        assert_eq!(
            after_step(&sign_out, StatusCode::OK, false),
            AfterStep::ForgetSession
        );
        assert_eq!(
            after_step(&sign_out, StatusCode::UNAUTHORIZED, false),
            AfterStep::Nothing
        );
    }
}
