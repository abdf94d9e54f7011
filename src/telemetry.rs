//! Logging: `tracing` to stderr, as text or one JSON object per line.
//!
//! Text carries ANSI colours only when stderr is a terminal and `NO_COLOR` is
//! not set: a file, a pipe or a log collector gets plain text.
//!
//! Nothing logged anywhere in cutover may carry a token, cookie, password,
//! digest or secret; types that hold them redact themselves in `Debug`.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// The installed filter, swapped by [`set_level`] on a configuration reload.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Install the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = colours(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let output = match cfg.format {
        LogFormat::Json => output
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
        LogFormat::Text => output.boxed(),
    };
    // A second init (tests, or a command that logs before loading its config) is harmless.
    if tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
}

/// What [`set_level`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LevelChange {
    /// The new filter is in force.
    Applied,
    /// `RUST_LOG` is set and wins over the file: nothing changed.
    OverriddenByEnv,
}

/// Replace the log filter of the running process (SIGHUP reload). `RUST_LOG`,
/// when set, keeps winning, as it does at start.
pub fn set_level(level: &str) -> Result<LevelChange, String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(LevelChange::OverriddenByEnv);
    }
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("`{level}` is not a log filter: {e}"))?;
    let handle = FILTER
        .get()
        .ok_or_else(|| "logging was not installed by cutover".to_string())?;
    handle
        .reload(filter)
        .map_err(|e| format!("cannot replace the log filter: {e}"))?;
    Ok(LevelChange::Applied)
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
