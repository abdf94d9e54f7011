//! Shared helpers for the integration tests.
//!
//! - [`clerk`]: the Clerk emulator (signing keys, token minter, JWKS server).

pub mod clerk;
