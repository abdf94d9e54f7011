//! Why a Clerk token did not sign anyone in.
//!
//! One variant per refusal so logs and metrics can count them; the labels are
//! stable snake_case strings. A reason never carries the token or any claim.

use std::fmt;

/// Why a request carrying a Clerk token is not signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignedOutReason {
    // --- the cookie sign-out signal (cookie tokens only) ---
    /// No `__client_uat` cookie beside the session cookie.
    ClientUatMissing,
    /// `__client_uat=0` (or not a number): the browser signed out.
    ClientUatZero,
    /// The token was issued before the client last changed (sign-out elsewhere).
    IssuedBeforeClientUat,

    // --- shape and header ---
    /// Not three base64url parts with JSON header and claims, or oversized.
    Malformed,
    /// `alg` is not RS256 (`none`, HS*, ES*, PS*, RS384, RS512, …).
    UnsupportedAlgorithm,
    /// `typ` is neither absent nor `JWT` (e.g. an OAuth `at+jwt`).
    WrongTokenType,
    /// `cat` names another token category (JWT template, M2M, unknown).
    WrongCategory,
    /// No `kid` while keys come from a JWKS.
    MissingKeyId,
    /// `kid` not in the key set, even after the allowed refetch.
    UnknownKeyId,
    /// The signature does not verify with the key.
    BadSignature,

    // --- claims (checked after the signature) ---
    /// `sub` starts with `mch_`: a machine (M2M) token.
    MachineToken,
    /// `sub` is missing or not a `user_…` id.
    SubjectNotAUser,
    /// No `sid`.
    MissingSessionId,
    /// `iss` missing or not one of the configured issuers.
    WrongIssuer,
    /// Authorized parties are configured and the token has no `azp`.
    MissingAuthorizedParty,
    /// `azp` is not one of the configured authorized parties.
    UnauthorizedParty,
    /// No `exp` or no `iat`.
    MissingTimes,
    /// `exp` is past (beyond the clock skew).
    Expired,
    /// `nbf` is still ahead (beyond the clock skew).
    NotYetValid,
    /// `iat` is ahead (beyond the clock skew).
    IssuedInFuture,
    /// `sts: pending`: the user still has session tasks; Clerk treats it as signed out.
    PendingSession,
}

impl SignedOutReason {
    /// A stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        use SignedOutReason::*;
        match self {
            ClientUatMissing => "client_uat_missing",
            ClientUatZero => "client_uat_zero",
            IssuedBeforeClientUat => "issued_before_client_uat",
            Malformed => "malformed",
            UnsupportedAlgorithm => "unsupported_algorithm",
            WrongTokenType => "wrong_token_type",
            WrongCategory => "wrong_category",
            MissingKeyId => "missing_kid",
            UnknownKeyId => "unknown_kid",
            BadSignature => "bad_signature",
            MachineToken => "machine_token",
            SubjectNotAUser => "subject_not_a_user",
            MissingSessionId => "missing_sid",
            WrongIssuer => "wrong_issuer",
            MissingAuthorizedParty => "missing_azp",
            UnauthorizedParty => "unauthorized_azp",
            MissingTimes => "missing_times",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IssuedInFuture => "issued_in_future",
            PendingSession => "pending_session",
        }
    }

    /// Reasons that happen in normal traffic (a token aged out, the user signed
    /// out, session tasks pending) as opposed to ones worth a warning
    /// (forged, foreign or misconfigured tokens).
    pub fn is_routine(self) -> bool {
        use SignedOutReason::*;
        matches!(
            self,
            ClientUatMissing
                | ClientUatZero
                | IssuedBeforeClientUat
                | Expired
                | NotYetValid
                | PendingSession
        )
    }
}

impl fmt::Display for SignedOutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
