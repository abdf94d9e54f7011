//! Synthetic Clerk exports.
