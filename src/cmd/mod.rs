//! One module per subcommand, and the one place where an outcome becomes an
//! exit status.
//!
//! Exit status (also in `cutover --help`):
//! - 0: success;
//! - 1: failure — something went wrong while doing the work (for `hash verify`:
//!   the password does not match);
//! - 2: usage or configuration error — the command could not start (for
//!   `hash verify`: unknown or unsupported hasher, malformed or over-cap digest).
//!
//! Errors are printed once, here, with their whole cause chain.

mod dev_cert;
mod hash;
mod import;
mod serve;
mod status;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::{Config, ConfigError};

/// What a command asks the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failure,
    Usage,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        match e {
            Exit::Success => ExitCode::SUCCESS,
            Exit::Failure => ExitCode::from(1),
            Exit::Usage => ExitCode::from(2),
        }
    }
}

/// An error that means "the command could not start": exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::DevCert(args) => dev_cert::run(args),
        Command::Hash(args) => hash::run(args),
        command => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run_async(command)),
            Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
        },
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("cutover: error: {err:#}");
            let usage = err.downcast_ref::<ConfigError>().is_some()
                || err.downcast_ref::<UsageError>().is_some();
            if usage { Exit::Usage } else { Exit::Failure }.into()
        }
    }
}

async fn run_async(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::DevCert(_) | Command::Hash(_) => unreachable!("handled synchronously in run"),
    }
}

/// Load the configuration named on the command line and start logging by it.
fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    crate::telemetry::init(&cfg.log);
    Ok(cfg)
}

/// Connect to Kernia's database and bring cutover's tables up to date.
async fn open_database(cfg: &Config) -> anyhow::Result<crate::db::Db> {
    use anyhow::Context as _;
    let db = crate::db::Db::connect(cfg.kernia.database_url.expose(), cfg.kernia.db.pool_size)
        .await
        .context("kernia.database_url")?;
    db.migrate().await.context("creating cutover's tables")?;
    Ok(db)
}
