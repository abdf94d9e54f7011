//! Phase one of the request path: who is this?
//!
//! A request carries a Kernia session, a Clerk session, both (then it is a
//! Kernia request), or neither. Each provider has its own module; the driver
//! asks Kernia first and Clerk only when there is no Kernia session.

pub mod cookies;
pub mod kernia;
