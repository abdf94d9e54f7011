//! Logging: `tracing` to stderr, as text or one JSON object per line.
//!
//! Nothing logged anywhere in cutover may carry a token, cookie, password,
//! digest or secret; types that hold them redact themselves in `Debug`.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Install the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
