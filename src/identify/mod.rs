//! Phase one of the request path: who is this?
//!
//! Pure decision code over the request's headers and cookies, plus cached key
//! material and session look-ups. Each identity provider has a module of its
//! own that answers for its tokens only; the driver combines their answers:
//! Kernia is asked first, Clerk only when there is no Kernia session (a
//! request carrying both is a Kernia request).
//!
//! - [`kernia`] — Kernia's signed session cookie, checked against its
//!   `session` table behind a short cache;
//! - [`clerk`] — Clerk session tokens (JWTs signed with the instance's RSA key),
//!   verified offline against a PEM key or a cached JWKS;
//! - [`cookies`] — reading `Cookie` headers.

pub mod clerk;
pub mod cookies;
pub mod kernia;

use std::sync::{Arc, OnceLock};

use clerk::ClerkIdentity;
use http::HeaderValue;
use kernia::KerniaIdentity;

/// Who a request comes from, once identify has run.
#[derive(Debug, Clone)]
pub enum Identity {
    Kernia(Arc<KerniaIdentity>),
    /// A correctly signed Kernia cookie whose session could not be looked up
    /// (database trouble). It goes to Kernia, which checks it itself; cutover
    /// claims nobody for it.
    KerniaUnverified,
    Clerk(Arc<ClerkIdentity>),
    Anonymous,
}

impl Identity {
    /// `kernia`, `clerk` or `anonymous` (the `x-cutover-provider` header).
    pub fn provider(&self) -> &'static str {
        match self {
            Identity::Kernia(_) => "kernia",
            Identity::Clerk(_) => "clerk",
            Identity::KerniaUnverified | Identity::Anonymous => "anonymous",
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Identity::Kernia(k) => Some(&k.user_id),
            Identity::Clerk(c) => Some(&c.user_id),
            Identity::KerniaUnverified | Identity::Anonymous => None,
        }
    }

    /// The user and their identity's "last seen" mark, for a signed-in identity.
    pub fn seen_mark(&self) -> Option<(&str, &crate::control::seen::SeenMark)> {
        match self {
            Identity::Kernia(k) => Some((&k.user_id, k.header_values.seen())),
            Identity::Clerk(c) => Some((&c.user_id, c.header_values.seen())),
            Identity::KerniaUnverified | Identity::Anonymous => None,
        }
    }

    /// The routing view of this identity.
    pub fn who(&self) -> crate::route::Who<'_> {
        use crate::route::Who;
        match self {
            Identity::Kernia(k) => Who::Kernia {
                subject: k.header_values.subject(&k.user_id),
            },
            Identity::KerniaUnverified => Who::KerniaUnverified,
            Identity::Clerk(c) => Who::Clerk {
                user_id: &c.user_id,
                org_id: c.org.as_ref().map(|o| o.id.as_str()),
                subject: c.header_values.subject(&c.user_id),
            },
            Identity::Anonymous => Who::Anonymous,
        }
    }
}

/// What is made or remembered once per identity rather than once per
/// request (identities are cached): the values of the identity headers handed
/// to the app (`x-cutover-user-id`, …; a cloned `HeaderValue` shares its
/// bytes), the user's rollout pin subject (a SHA-256 of the user id), and the
/// day the user was last noted as seen. Not part of an identity's equality.
#[derive(Debug, Default)]
pub struct HeaderValues {
    values: OnceLock<IdentityHeaderValues>,
    subject: OnceLock<crate::route::rollout::UserSubject>,
    seen: crate::control::seen::SeenMark,
}

impl Clone for HeaderValues {
    fn clone(&self) -> Self {
        HeaderValues {
            values: self.values.clone(),
            subject: self.subject.clone(),
            seen: Default::default(),
        }
    }
}

/// See [`HeaderValues`]. `None` where the value is absent or not a valid
/// header value (it is then not sent, as before).
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaderValues {
    pub user_id: Option<HeaderValue>,
    pub session_id: Option<HeaderValue>,
    pub org_id: Option<HeaderValue>,
    pub org_role: Option<HeaderValue>,
}

impl HeaderValues {
    /// The values, made from `make` the first time.
    pub fn get_or_make(
        &self,
        make: impl FnOnce() -> IdentityHeaderValues,
    ) -> &IdentityHeaderValues {
        self.values.get_or_init(make)
    }

    /// The identity's "last seen" mark (see [`crate::control::seen`]).
    pub fn seen(&self) -> &crate::control::seen::SeenMark {
        &self.seen
    }

    /// The pin subject of `user_id`, the identity's user, made the first time.
    pub fn subject(&self, user_id: &str) -> &str {
        self.subject
            .get_or_init(|| crate::route::rollout::UserSubject::of(user_id))
            .as_str()
    }
}

impl PartialEq for HeaderValues {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeaderValues {}

/// A header value from an identity's text, `None` when it cannot be one.
pub fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Who, rollout::Pin};

    #[test]
    fn who_carries_the_users_own_pin_subject_made_once() {
        let kernia = Identity::Kernia(Arc::new(KerniaIdentity {
            user_id: "user_k".into(),
            session_id: "sess_k".into(),
            expires_at: 0,
            header_values: HeaderValues::default(),
        }));
        let clerk = Identity::Clerk(Arc::new(ClerkIdentity {
            user_id: "user_c".into(),
            session_id: "sess_c".into(),
            org: None,
            actor: None,
            expires_at: 0,
            header_values: HeaderValues::default(),
        }));
        for (identity, user) in [(&kernia, "user_k"), (&clerk, "user_c")] {
            let subject = match identity.who() {
                Who::Kernia { subject, .. } | Who::Clerk { subject, .. } => subject,
                other => panic!("{other:?}"),
            };
            assert_eq!(subject, Pin::for_user(user, false).subject());
            // The same bytes on the next request: kept, not made again.
            let again = match identity.who() {
                Who::Kernia { subject, .. } | Who::Clerk { subject, .. } => subject,
                other => panic!("{other:?}"),
            };
            assert!(std::ptr::eq(subject, again));
        }
    }
}
