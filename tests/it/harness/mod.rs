//! Shared helpers for the integration tests: real services, fresh state per test.
//!
//! - [`browser`]: a real headless Chromium over the DevTools protocol;
//! - [`clerk`]: the Clerk emulator at its wire formats (signing keys, token
//!   minter, JWKS server);
//! - [`kernia`]: the real Kernia 0.1.0 server (`deploy/kernia-app`), started on a
//!   free loopback port against a fresh database and stopped with the test;
//! - [`databases`]: a fresh SQLite file or a fresh PostgreSQL database per test,
//!   dropped afterwards;
//! - [`redis`]: the Redis URL and a key prefix of the test's own;
//! - [`server`]: cutover itself, in-process on loopback ports;
//! - [`copies`]: several real `cutover serve` processes with admin listeners, a
//!   private Redis a test may stop, the CLI; [`relay`]: a TCP relay a test can cut;
//! - [`echo`]: an upstream that answers with what it received;
//! - [`clerk_api`]: a local Clerk Backend API (pagination, 429s) for imports,
//!   and its `verify_password` for live verification;
//! - [`better_auth`]: the real Better Auth JS client (Node), one browser per cookie jar;
//! - [`svix_sender`]: Clerk's webhooks, signed as Svix signs them.
//!
//! Nothing here skips: when a service a test needs is missing, the test fails
//! and says what to start (`scripts/test.sh` starts or installs them).

pub mod better_auth;
pub mod browser;
pub mod clerk;
pub mod clerk_api;
pub mod consumer;
pub mod copies;
pub mod databases;
pub mod echo;
pub mod kernia;
pub mod pending;
pub mod process;
pub mod redis;
pub mod relay;
pub mod server;
pub mod smtp;
pub mod svix_sender;

use std::path::PathBuf;

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A short random hex string for names that must not collide between tests.
pub fn unique(prefix: &str) -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// Which database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Declares one `#[tokio::test]` per engine for an `async fn(Engine)`:
/// `both_engines!(name);` → tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Engine::Postgres).await
            }
        }
    };
}
