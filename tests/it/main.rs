//! cutover's integration tests: one binary, shared helpers in `harness`.
//!
//! They run against real parts: the Kernia 0.1.0 server from `deploy/kernia-app`,
//! PostgreSQL, SQLite and Redis. `scripts/test.sh` prepares all of them.

// Helpers serve many tests; not every one is used by every test module.
#[allow(dead_code)]
mod harness;

mod admin;
mod better_auth_client;
mod binary;
mod clerk_identify;
mod clerk_routing;
mod clerk_sync;
mod cli;
mod control;
mod dev_stack;
mod edge;
mod foundation;
mod hash_cli;
mod import_api;
mod import_defects;
mod import_files;
mod import_kernia;
mod import_resume;
mod import_support;
mod import_writers;
mod kernia_sessions;
mod migration;
mod migration_safety;
mod outbox;
mod proxy;
mod request_path;
mod reset_campaign;
mod reset_delivery;
mod sighup;
mod upstream_pool;
mod webhooks;
