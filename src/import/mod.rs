//! `cutover import`: load a Clerk export into Kernia's database, so that when
//! cutover starts serving, every Clerk user already exists in Kernia under the
//! same id and only their password waits to move.
//!
//! # What goes where
//!
//! Users (CSV export joined by id with Backend API users) become `"user"` rows,
//! social `account` rows and `"twoFactor"` rows, plus one ledger row each with
//! the legacy digest and the user's migration state; organizations,
//! memberships and pending invitations become the organization plugin's rows
//! (see [`plan`] and [`roles`] for the mapping and its decisions).
//!
//! # How a run goes
//!
//! 1. [`stage`]: every input is read as a stream and checked; bad records are
//!    reported with file, line and column (or JSON path); users go through an
//!    external sort by id ([`spool`]) so the join never needs the whole export
//!    in memory.
//!    Identifiers several users share are settled over the whole export
//!    ([`duplicates`]: verified first, then the older account).
//! 2. [`produce`] maps each user id's records ([`plan`]) and hands batches to
//!    the [`driver`], which writes each batch ([`store`]) in one transaction
//!    together with the run's position, counts and issues. On PostgreSQL three
//!    batches are written at once on three connections ([`writers`]),
//!    committed in order.
//! 3. A summary on the terminal and, with `--report`, a JSON report
//!    ([`report`]) in which every input record sits in exactly one bucket.
//!
//! A run killed at any point and started again with the same inputs resumes
//! after the last committed batch and ends in the same state as an
//! uninterrupted run; running a finished import again changes nothing (every
//! write is insert-if-absent, and rows Kernia already has are never touched).
//! [`clerk_api`] pulls the Backend API into files first (`--from-clerk-api`);
//! [`synth`] makes synthetic exports for tests and benchmarks.

pub mod bapi;
mod batch;
pub mod clerk_api;
pub mod csv_export;
pub mod driver;
pub mod duplicates;
pub mod hashers;
pub mod issue;
pub mod json_input;
pub mod normalize;
pub mod plan;
pub mod produce;
pub mod progress;
pub mod records;
pub mod report;
pub mod roles;
pub mod sensitive;
pub mod spool;
pub mod stage;
pub mod store;
pub mod synth;
pub mod writers;

use std::io;
use std::path::{Path, PathBuf};

use crate::db::{Db, DbError};

pub use issue::Issue;
pub use progress::ProgressMode;
pub use report::{Counters, RunInfo, Tally};
pub use roles::RoleMap;
pub use stage::Inputs;

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Input that cannot be read at all (no header, unreadable file).
    #[error("{0}")]
    Input(String),
    #[error("temporary files: {0}")]
    Spool(#[source] io::Error),
    #[error("stopped at the first bad record (--strict): {0}")]
    Strict(Box<Issue>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot write the report {}: {source}", path.display())]
    Report {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Api(#[from] clerk_api::ApiError),
    #[error("{0}")]
    Internal(String),
}

impl ImportError {
    pub(crate) fn io(path: &Path, source: io::Error) -> ImportError {
        ImportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Everything an import needs to know.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub inputs: Inputs,
    pub roles: RoleMap,
    /// Units (user ids, records) per transaction.
    pub batch_size: usize,
    /// Batches written at once, each on its own connection (PostgreSQL only;
    /// SQLite and dry runs always write one at a time). The database pool
    /// needs `writers + 2` connections.
    pub writers: usize,
    pub dry_run: bool,
    pub strict: bool,
    /// Start over instead of resuming an interrupted run of the same inputs.
    pub restart: bool,
    /// Where the run's private temporary directory goes.
    pub work_dir: PathBuf,
    /// Bytes of user records the sort holds in memory before spilling to disk.
    pub sort_budget: usize,
    pub progress: ProgressMode,
    pub report: Option<PathBuf>,
}

impl ImportOptions {
    pub fn new(inputs: Inputs) -> ImportOptions {
        ImportOptions {
            inputs,
            roles: RoleMap::default(),
            batch_size: 2000,
            writers: 3,
            dry_run: false,
            strict: false,
            restart: false,
            work_dir: std::env::temp_dir(),
            sort_budget: 64 << 20,
            progress: ProgressMode::None,
            report: None,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub run: RunInfo,
    pub counters: Counters,
    pub issue_count: u64,
    /// The text printed at the end.
    pub summary: String,
}

/// Run an import against `db` (cutover's tables must exist, except under
/// `dry_run`, which creates them in the transaction it rolls back).
pub async fn run(db: &Db, opts: &ImportOptions) -> Result<Outcome, ImportError> {
    driver::run(db, opts).await
}
