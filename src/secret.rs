//! The one type for a value that must never be printed: a configured secret
//! (the Kernia secret, a database URL with a password, a signing key), a
//! legacy password digest or a TOTP secret on its way into the database, a
//! Kernia session token handed to an observer.
//!
//! [`Secret`] has no `Display`, and its `Debug` prints `<redacted>`, so a
//! secret cannot end up in a log line, an error message or a report by
//! accident — not even through `{:?}` on a whole configuration or record. It
//! serializes as the bare string (the import's private sort files need the
//! value); nothing that is logged is serialized.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call this only where the value is used, never to print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let s = Secret::new("hunter2-very-secret");
        let printed = format!("{s:?} {:#?}", Some(&s));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
    }

    #[test]
    fn it_serializes_as_the_bare_value() {
        let s = Secret::new("$2b$10$abcdefghijklmnopqrstuv");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#""$2b$10$abcdefghijklmnopqrstuv""#);
        assert_eq!(serde_json::from_str::<Secret>(&json).unwrap(), s);
    }
}
