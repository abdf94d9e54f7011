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
mod reload;
mod reset_campaign;
mod rollout;
mod serve;
mod status;
mod stragglers;
mod validate;
mod webhooks;

use std::process::ExitCode;

pub(crate) use rollout::timestamp;

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
        Command::Validate(args) => validate::run(args).await,
        Command::Rollout(args) => rollout::run(args).await,
        Command::Stragglers(args) => stragglers::run(args).await,
        Command::ResetCampaign(args) => reset_campaign::run(args).await,
        Command::Webhooks(command) => webhooks::run(command).await,
        Command::DevCert(_) | Command::Hash(_) => unreachable!("handled synchronously in run"),
    }
}

/// Load the configuration named on the command line and start logging by it.
fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    crate::telemetry::init(&cfg.log);
    Ok(cfg)
}

/// Connect to Kernia's database, check Kernia's schema is there, then bring
/// cutover's tables up to date. In that order: a database Kernia has not set up
/// (a wrong URL, a mistyped SQLite path) is refused before cutover creates
/// anything in it.
async fn open_database(cfg: &Config) -> anyhow::Result<crate::db::Db> {
    // A small SQLite page cache per pooled connection: serving does point
    // lookups and small writes, the OS caches the file, and SQLite's 2 MiB
    // default would let a pool of 16 hold 32 MiB.
    open_kernia_database(
        cfg.kernia.database_url.expose(),
        cfg.kernia.db.pool_size,
        crate::db::SqliteUse::Serving {
            page_cache_kib: SERVING_PAGE_CACHE_KIB,
        },
    )
    .await
}

/// SQLite page cache per connection of the serving pool, KiB.
const SERVING_PAGE_CACHE_KIB: u32 = 512;

async fn open_kernia_database(
    url: &str,
    connections: u32,
    sqlite_use: crate::db::SqliteUse,
) -> anyhow::Result<crate::db::Db> {
    use anyhow::Context as _;
    let db = crate::db::Db::connect_existing_for(url, connections, sqlite_use)
        .await
        .context("kernia.database_url")?;
    crate::db::KerniaSchema::read(&db)
        .await
        .context("kernia.database_url")?;
    db.migrate().await.context("creating cutover's tables")?;
    Ok(db)
}
