//! The **identify** phase: who is making this request?
//!
//! Pure decision code over the request's headers and cookies, plus cached key
//! material and session look-ups. Each identity provider has a module of its
//! own that answers for its tokens only; the phase combines their answers
//! (Kernia wins when both are present, `DESIGN.md`).
//!
//! - [`clerk`] — Clerk session tokens (JWTs signed with the instance's RSA key),
//!   verified offline against a PEM key or a cached JWKS.

pub mod clerk;
