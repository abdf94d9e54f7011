//! A verified token's claims: the checks that do not depend on the clock, and
//! the mapping of v1 and v2 claims to one [`ClerkIdentity`].
//!
//! Runs once per token (its result is cached, see `cache.rs`); the checks that
//! depend on time or on the request's cookies live in `decide.rs`.
//!
//! **Organization claims** (as Clerk's SDK reads them in
//! `jwtPayloadParser.ts`):
//! - v1 (`v` absent): `org_id`, `org_slug`, `org_role` (already `org:<role>`),
//!   `org_permissions` (already `org:<feature>:<permission>`), taken as they are.
//! - v2 (`v: 2`): `o: {id, slg, rol, per, fpm}`; the role becomes `org:<rol>`;
//!   permissions are decoded from `per`, `fpm` and `fea` by `permissions.rs`.

use serde::Deserialize;

use super::permissions::v2_permissions;
use super::reason::SignedOutReason;

/// Who a verified Clerk session token says is signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkIdentity {
    /// `sub`: `user_…`.
    pub user_id: String,
    /// `sid`: `sess_…`.
    pub session_id: String,
    /// The active organization, when one is active.
    pub org: Option<ClerkOrg>,
    /// `act.sub`: who is impersonating the user, if anyone.
    pub actor: Option<String>,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// The identity headers' values, made on first use.
    pub header_values: crate::identify::HeaderValues,
}

/// The session's active organization, the same shape for v1 and v2 tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClerkOrg {
    /// `org_…`.
    pub id: String,
    pub slug: Option<String>,
    /// Always the full key, `org:<role>` (e.g. `org:admin`). `None` only when
    /// the token names no role, which Clerk's own parser also allows.
    pub role: Option<String>,
    /// Full keys, `org:<feature>:<permission>`; never system permissions.
    pub permissions: Vec<String>,
}

/// The claims cutover reads. Unknown and custom claims are ignored; a known
/// claim of the wrong JSON type makes the token malformed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawClaims {
    sub: Option<String>,
    sid: Option<String>,
    iss: Option<String>,
    azp: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    v: Option<u32>,
    sts: Option<String>,
    act: Option<RawActor>,
    // v1
    org_id: Option<String>,
    org_slug: Option<String>,
    org_role: Option<String>,
    org_permissions: Option<Vec<String>>,
    // v2
    o: Option<RawOrg>,
    fea: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawActor {
    sub: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawOrg {
    id: Option<String>,
    slg: Option<String>,
    rol: Option<String>,
    per: Option<String>,
    fpm: Option<String>,
}

/// The configured expectations a token's claims are held to.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Accepted `iss` values, compared exactly.
    pub issuers: Vec<String>,
    /// Accepted `azp` values; empty = `azp` unchecked.
    pub authorized_parties: Vec<String>,
}

/// A token's time claims, whole Unix seconds (fractions dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTimes {
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
}

impl RawClaims {
    /// `exp` and `iat` are required (every Clerk session token has both; the
    /// cache needs `exp` and the `__client_uat` rule needs `iat`).
    pub fn times(&self) -> Result<TokenTimes, SignedOutReason> {
        match (self.exp, self.iat) {
            (Some(exp), Some(iat)) => Ok(TokenTimes {
                exp: exp.floor() as i64,
                iat: iat.floor() as i64,
                nbf: self.nbf.map(|n| n.floor() as i64),
            }),
            _ => Err(SignedOutReason::MissingTimes),
        }
    }

    /// The clock-free checks, in Clerk's order (`sub`, then `azp`), then ours
    /// (`iss`, `sid`, `sts`), and the identity they allow.
    pub fn into_identity(self, policy: &Policy) -> Result<ClerkIdentity, SignedOutReason> {
        let user_id = match self.sub {
            Some(sub) if sub.starts_with("user_") => sub,
            Some(sub) if sub.starts_with("mch_") => return Err(SignedOutReason::MachineToken),
            _ => return Err(SignedOutReason::SubjectNotAUser),
        };
        if !policy.authorized_parties.is_empty() {
            let azp = self.azp.ok_or(SignedOutReason::MissingAuthorizedParty)?;
            if !policy.authorized_parties.contains(&azp) {
                return Err(SignedOutReason::UnauthorizedParty);
            }
        }
        match &self.iss {
            Some(iss) if policy.issuers.contains(iss) => {}
            _ => return Err(SignedOutReason::WrongIssuer),
        }
        let session_id = self.sid.ok_or(SignedOutReason::MissingSessionId)?;
        if self.sts.as_deref() == Some("pending") {
            return Err(SignedOutReason::PendingSession);
        }
        let expires_at = self.exp.map_or(0, |e| e.max(0.0).floor() as u64);
        let org = if self.v == Some(2) {
            self.o.and_then(|o| {
                Some(ClerkOrg {
                    permissions: v2_permissions(
                        self.fea.as_deref(),
                        o.per.as_deref(),
                        o.fpm.as_deref(),
                    ),
                    id: o.id?,
                    slug: o.slg,
                    role: o.rol.map(|r| format!("org:{r}")),
                })
            })
        } else {
            self.org_id.map(|id| ClerkOrg {
                id,
                slug: self.org_slug,
                role: self.org_role,
                permissions: self.org_permissions.unwrap_or_default(),
            })
        };
        Ok(ClerkIdentity {
            user_id,
            session_id,
            org,
            actor: self.act.and_then(|a| a.sub),
            expires_at,
            header_values: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn policy(azp: &[&str]) -> Policy {
        Policy {
            issuers: vec!["https://clerk.example.test".into()],
            authorized_parties: azp.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn base() -> Value {
        json!({
            "sub": "user_2abc", "sid": "sess_2xyz", "iss": "https://clerk.example.test",
            "azp": "https://app.example.test", "iat": 1_713_158_400, "nbf": 1_713_158_395,
            "exp": 1_713_158_460, "fva": [7, -1]
        })
    }

    fn with(mut claims: Value, patch: Value) -> Value {
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn identify(claims: Value, azp: &[&str]) -> Result<ClerkIdentity, SignedOutReason> {
        serde_json::from_value::<RawClaims>(claims)
            .unwrap()
            .into_identity(&policy(azp))
    }

    #[test]
    fn v1_org_claims_are_taken_as_they_are() {
        let claims = with(
            base(),
            json!({
                "org_id": "org_1", "org_slug": "acme", "org_role": "org:admin",
                "org_permissions": ["org:teams:manage"], "act": {"sub": "user_admin", "sid": "sess_a"}
            }),
        );
        let id = identify(claims, &[]).unwrap();
        assert_eq!(id.user_id, "user_2abc");
        assert_eq!(id.session_id, "sess_2xyz");
        assert_eq!(id.actor.as_deref(), Some("user_admin"));
        assert_eq!(id.expires_at, 1_713_158_460);
        assert_eq!(
            id.org,
            Some(ClerkOrg {
                id: "org_1".into(),
                slug: Some("acme".into()),
                role: Some("org:admin".into()),
                permissions: vec!["org:teams:manage".into()],
            })
        );
    }

    #[test]
    fn v2_org_claims_map_to_the_same_shape() {
        let claims = with(
            base(),
            json!({
                "v": 2, "fea": "o:impersonation,o:memberships", "sts": "active",
                "o": {"id": "org_1", "slg": "acme", "rol": "admin", "per": "read,manage", "fpm": "1,3"}
            }),
        );
        let id = identify(claims, &[]).unwrap();
        assert_eq!(
            id.org,
            Some(ClerkOrg {
                id: "org_1".into(),
                slug: Some("acme".into()),
                role: Some("org:admin".into()),
                permissions: vec![
                    "org:impersonation:read".into(),
                    "org:memberships:read".into(),
                    "org:memberships:manage".into(),
                ],
            })
        );
        // v2 ignores v1 claims and the other way round.
        let v2_without_o = with(base(), json!({"v": 2, "org_id": "org_1"}));
        assert_eq!(identify(v2_without_o, &[]).unwrap().org, None);
        let v1_with_o = with(base(), json!({"o": {"id": "org_1"}}));
        assert_eq!(identify(v1_with_o, &[]).unwrap().org, None);
    }

    #[test]
    fn subject_must_be_a_user() {
        let machine = with(base(), json!({"sub": "mch_2abc"}));
        assert_eq!(identify(machine, &[]), Err(SignedOutReason::MachineToken));
        let other = with(base(), json!({"sub": "oat_2abc"}));
        assert_eq!(identify(other, &[]), Err(SignedOutReason::SubjectNotAUser));
        let missing = with(base(), json!({"sub": null}));
        assert_eq!(
            identify(missing, &[]),
            Err(SignedOutReason::SubjectNotAUser)
        );
        assert!(serde_json::from_value::<RawClaims>(with(base(), json!({"sub": 42}))).is_err());
    }

    #[test]
    fn issuer_is_compared_exactly() {
        for iss in [
            json!("https://clerk.example.test/"),
            json!("http://clerk.example.test"),
            Value::Null,
        ] {
            let claims = with(base(), json!({"iss": iss}));
            assert_eq!(identify(claims, &[]), Err(SignedOutReason::WrongIssuer));
        }
    }

    #[test]
    fn azp_is_required_and_listed_only_when_parties_are_configured() {
        let parties = ["https://app.example.test"];
        assert!(identify(base(), &parties).is_ok());
        let missing = with(base(), json!({"azp": null}));
        assert!(identify(missing.clone(), &[]).is_ok());
        assert_eq!(
            identify(missing, &parties),
            Err(SignedOutReason::MissingAuthorizedParty)
        );
        let other = with(base(), json!({"azp": "https://evil.example"}));
        assert!(identify(other.clone(), &[]).is_ok());
        assert_eq!(
            identify(other, &parties),
            Err(SignedOutReason::UnauthorizedParty)
        );
    }

    #[test]
    fn sid_is_required_and_pending_sessions_are_signed_out() {
        assert_eq!(
            identify(with(base(), json!({"sid": null})), &[]),
            Err(SignedOutReason::MissingSessionId)
        );
        let pending = with(base(), json!({"v": 2, "sts": "pending"}));
        assert_eq!(identify(pending, &[]), Err(SignedOutReason::PendingSession));
    }

    #[test]
    fn times_need_exp_and_iat() {
        let raw: RawClaims = serde_json::from_value(base()).unwrap();
        assert_eq!(
            raw.times(),
            Ok(TokenTimes {
                exp: 1_713_158_460,
                iat: 1_713_158_400,
                nbf: Some(1_713_158_395)
            })
        );
        let raw: RawClaims = serde_json::from_value(with(base(), json!({"iat": null}))).unwrap();
        assert_eq!(raw.times(), Err(SignedOutReason::MissingTimes));
        let raw: RawClaims =
            serde_json::from_value(with(base(), json!({"exp": 1_713_158_460.9}))).unwrap();
        assert_eq!(raw.times().unwrap().exp, 1_713_158_460);
    }
}
