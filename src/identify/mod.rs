//! Phase one of the request path: who is this?
//!
//! Pure decision code over the request's headers and cookies, plus cached key
//! material and session look-ups. Each identity provider has a module of its
//! own that answers for its tokens only; the driver combines their answers:
//! Kernia is asked first, Clerk only when there is no Kernia session (a
//! request carrying both is a Kernia request, `DESIGN.md`).
//!
//! - [`kernia`] — Kernia's signed session cookie, checked against its
//!   `session` table behind a short cache;
//! - [`clerk`] — Clerk session tokens (JWTs signed with the instance's RSA key),
//!   verified offline against a PEM key or a cached JWKS;
//! - [`cookies`] — reading `Cookie` headers.

pub mod clerk;
pub mod cookies;
pub mod kernia;
