//! Pulling the Clerk Backend API into files (`--from-clerk-api`).

/// A failure talking to the Backend API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Clerk Backend API: {0}")]
    Failed(String),
}
