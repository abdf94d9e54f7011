//! A secret value from the configuration file or from the environment.
//!
//! `Secret` has no `Display` and its `Debug` prints `Secret(<redacted>)`, so a
//! secret cannot end up in a log line or an error message by accident, not even
//! through `{:?}` on the whole configuration.

use std::fmt;

/// A configured secret: a Kernia secret, a database URL with a password, a key.
#[derive(Clone, PartialEq, Eq)]
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
        f.write_str("Secret(<redacted>)")
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
        assert!(printed.contains("redacted"));
    }
}
