//! The operator's control plane: the live rollout, "last seen" and progress.
//!
//! - [`rollout`] — the rollout as a value: changes, diffs, validation;
//! - [`store`] — `cutover_rollout` (versioned) and its audit trail;
//! - [`live`] — what every request routes by, kept in step with the database
//!   by Redis pub/sub and polling, and kept as it was when the database is down;
//! - [`seen`] — when users were last seen, batched (never a write per request);
//! - [`progress`] — the numbers behind `cutover status`, the API and the dashboard.
//!
//! The CLI (`cutover rollout …`) and the admin API (`PUT /api/rollout`) change
//! the rollout the same way: [`store::change`] then [`live::announce`].

pub mod live;
pub mod progress;
pub mod rollout;
pub mod seen;
pub mod store;
