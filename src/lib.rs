//! cutover: a dual-run authentication proxy for moving an app from Clerk to
//! Kernia (the Python port of Better Auth) without a big-bang cutover.
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap); [`cmd`] — one module per subcommand, and
//!   the one place an outcome becomes an exit status.
//! - [`config`] — one TOML file read into validated types; every problem
//!   reported at once; secrets that never print.
//! - [`db`] — Kernia 0.1.0's tables on PostgreSQL or SQLite, and cutover's own
//!   `cutover_*` tables (the migration ledger) beside them.
//! - [`identify`] — the first phase of the request path: who is this? Clerk
//!   session tokens verified offline ([`identify::clerk`]).
//! - [`state`] — ephemeral state shared by several cutover copies: counters,
//!   locks, invalidation messages; in-process or Redis.
//! - [`telemetry`] — logging setup.
//!
//! The request path (identify → route → intercept → forward → observe) and the
//! import and hash modules are described in `DESIGN.md` and land in later issues.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cmd;
pub mod config;
pub mod db;
pub mod identify;
pub mod state;
pub mod telemetry;
