//! cutover: a dual-run authentication proxy for moving an app from Clerk to
//! Kernia (the Python port of Better Auth) without a big-bang cutover.
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap); [`cmd`] — one module per subcommand, and
//!   the one place an outcome becomes an exit status.
//! - [`config`] — one TOML file read into validated types; every problem
//!   reported at once. [`secret`] — the one type for values never printed.
//! - [`db`] — Kernia 0.1.0's tables on PostgreSQL or SQLite, and cutover's own
//!   `cutover_*` tables (the migration ledger) beside them.
//! - [`import`] — `cutover import`: a Clerk export (CSV, Backend API JSON or a
//!   live pull) into Kernia's tables and the ledger, resumable and idempotent.
//! - [`state`] — ephemeral state shared by several cutover copies: counters,
//!   locks, invalidation messages; in-process or Redis.
//! - [`identify`], [`route`], [`intercept`], [`proxy`] — the request path:
//!   who is this, where does it go, lazy password migration, forwarding,
//!   observing (`docs/ARCHITECTURE.md` walks it). [`web`] — the low layer
//!   they share: bodies and cutover's own answers. [`identifier`] — the one
//!   form of emails, usernames and phone numbers (intercept and import).
//! - [`hash`] — legacy password digests from Clerk (parse with work-factor
//!   caps, verify in constant time) and Kernia's own Argon2id hash.
//! - [`clerk_sync`] — the live half while Clerk runs: Clerk's webhooks in,
//!   live password verification with Clerk's Backend API.
//! - [`svix`] — Svix's webhook signatures (Clerk's webhooks in, cutover's out).
//! - [`control`] — the live rollout shared by every copy (versioned, audited),
//!   "last seen" records and migration progress; [`admin`] — the private
//!   listener: probes, Prometheus [`metrics`], the rollout API, the dashboard.
//! - [`outbox`] — durable, retried delivery after a commit: reset links and
//!   webhooks, claimed by a worker on any copy.
//! - [`events`] — Clerk-shaped webhook events from Kernia-side changes.
//! - [`telemetry`] — logging setup.
//!
#![forbid(unsafe_code)]

pub mod admin;
pub mod clerk_sync;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod control;
pub mod db;
pub mod events;
pub mod hash;
pub mod identifier;
pub mod identify;
pub mod import;
pub mod intercept;
pub mod metrics;
pub mod outbox;
pub mod proxy;
pub mod route;
pub mod secret;
pub mod state;
pub mod svix;
pub mod telemetry;
pub mod web;
