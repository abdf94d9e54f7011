//! Logging: `tracing` to stderr, as text or one JSON object per line.
//!
//! Text carries ANSI colours only when stderr is a terminal and `NO_COLOR` is
//! not set: a file, a pipe or a log collector gets plain text.
//!
//! Nothing logged anywhere in cutover may carry a token, cookie, password,
//! digest or secret; types that hold them redact themselves in `Debug`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Install the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_writer(std::io::stderr);
    // A second init (tests, or a command that logs before loading its config) is harmless.
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Logging for commands that run before or without a configuration file.
pub fn init_default() {
    init(&LogConfig {
        format: LogFormat::Text,
        level: "warn".into(),
    });
}

/// Colours on a terminal, unless `NO_COLOR` is set to anything non-empty
/// (<https://no-color.org>).
fn colours(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some("".into())));
        assert!(!colours(true, Some("1".into())));
        assert!(!colours(false, None));
    }
}
