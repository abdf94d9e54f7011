//! A value that must never be printed: a password digest or a TOTP secret.
//!
//! It travels through the import (and its sort files, which are private to the
//! run and removed at the end) as plain text, because it has to be written to
//! the ledger or to `twoFactor`. It is the crate's one redacted type,
//! [`crate::secret::Secret`], under the name the import has always used.

pub use crate::secret::Secret as Sensitive;
