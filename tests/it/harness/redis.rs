//! Redis for tests: the server URL and a key prefix of the test's own, so tests
//! running side by side never see each other's keys.

use cutover::config::{Secret, StateBackend, StateConfig};

pub fn redis_url() -> String {
    std::env::var("CUTOVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A state configuration on the test Redis with a fresh prefix.
pub fn state_config() -> StateConfig {
    StateConfig {
        backend: StateBackend::Redis {
            url: Secret::new(redis_url()),
        },
        key_prefix: super::unique("cutover-test:") + ":",
    }
}

/// Connect, failing the test with a clear message when Redis is not there.
pub async fn connect(cfg: &StateConfig) -> cutover::state::SharedState {
    cutover::state::SharedState::connect(cfg)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is needed for this test but {} is unreachable ({e}). \
             Start it (scripts/test.sh does) or set CUTOVER_TEST_REDIS_URL.",
                redis_url()
            )
        })
}
