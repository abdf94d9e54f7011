//! `cutover import` — load a Clerk export into Kernia's database (see
//! [`crate::import`]). Exit 0 when the run finished, whatever it had to report
//! (invalid rows, conflicts, skips: the summary and `--report` say what; with
//! `--strict` the first invalid record stops the run instead); 1 when it
//! stopped; 2 for usage or configuration errors.
//!
//! It reads only what it needs from the configuration (the database, `[import]`
//! and `[log]`; see [`ImportSettings`]), and refuses a database in which Kernia
//! has not created its tables before writing anything to it.

use anyhow::Context as _;

use crate::cli::{ImportArgs, ProgressArg};
use crate::config::ImportSettings;
use crate::import::{self, ImportOptions, Inputs, ProgressMode, RoleMap, clerk_api};

use super::{Exit, UsageError};

pub async fn run(args: ImportArgs) -> anyhow::Result<Exit> {
    let cfg = ImportSettings::load(&args.config.path)?;
    crate::telemetry::init(&cfg.log);
    let mut inputs = Inputs {
        csv: args.csv,
        users: args.users,
        organizations: args.organizations,
        memberships: args.memberships,
        invitations: args.invitations,
    };
    for f in inputs.all() {
        if !f.is_file() {
            return Err(UsageError(format!("{} is not a readable file", f.display())).into());
        }
    }
    let writers = args.writers.unwrap_or(cfg.import.writers).clamp(1, 16);
    // One connection per writer, one for the run's lock, one for reads
    // between batches (`import::writers`).
    let pool = (writers as u32 + 2).max(4);
    // The database first: a wrong URL or a database Kernia has not set up is
    // found before any pull from Clerk or any write.
    // SQLite connections set up for bulk writes (`SqliteUse::BulkLoad`).
    const BULK: crate::db::SqliteUse = crate::db::SqliteUse::BulkLoad;
    let db = if args.dry_run {
        // A dry run creates cutover's tables inside the transaction it rolls back.
        let db = crate::db::Db::connect_existing_for(cfg.database_url.expose(), pool, BULK)
            .await
            .context("kernia.database_url")?;
        crate::db::KerniaSchema::read(&db)
            .await
            .context("kernia.database_url")?;
        db
    } else {
        super::open_kernia_database(cfg.database_url.expose(), pool, BULK).await?
    };
    let mut pulled_files = None;
    if args.from_clerk_api {
        let var = &cfg.import.clerk_secret_key_env;
        let key = std::env::var(var)
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                UsageError(format!(
                    "--from-clerk-api needs the Backend API secret key in ${var}"
                ))
            })?;
        if clerk_api::restart_if_finished(&args.api_dir)
            .context("reading the previous pull's state")?
        {
            eprintln!(
                "cutover import: {} holds a finished pull; pulling again to catch up with Clerk",
                args.api_dir.display()
            );
        }
        let pull = clerk_api::PullOptions::new(
            &cfg.import.clerk_api_url,
            key,
            &args.api_dir,
            cfg.import.requests_per_10s,
        );
        let pulled = clerk_api::pull(&pull)
            .await
            .context("pulling from Clerk's Backend API")?;
        eprintln!(
            "cutover import: pulled {} ({} requests, {} answered 429)",
            pulled.summary(),
            pulled.requests,
            pulled.throttled
        );
        pulled_files = Some(pulled.files.clone());
        inputs.users.extend(pulled.files.users);
        inputs.organizations.extend(pulled.files.organizations);
        inputs.memberships.extend(pulled.files.memberships);
        inputs.invitations.extend(pulled.files.invitations);
    }
    if inputs.all().next().is_none() {
        return Err(UsageError(
            "nothing to import: give --csv and/or --users, --organizations, --memberships, --invitations, or --from-clerk-api".into(),
        )
        .into());
    }
    let mut opts = ImportOptions::new(inputs);
    opts.roles = RoleMap::new(cfg.import.roles.clone(), cfg.import.creator_role.clone());
    opts.batch_size = args
        .batch_size
        .unwrap_or(cfg.import.batch_size)
        .clamp(1, 50_000);
    opts.writers = writers;
    opts.dry_run = args.dry_run;
    opts.strict = args.strict;
    opts.restart = args.restart;
    if let Some(dir) = args.work_dir {
        opts.work_dir = dir;
    }
    opts.sort_budget = args.sort_memory_mb.clamp(1, 16 * 1024) << 20;
    opts.report = args.report;
    opts.progress = match args.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Bar => ProgressMode::Bar,
        ProgressArg::Plain => ProgressMode::Plain,
        ProgressArg::None => ProgressMode::None,
    };

    let outcome = import::run(&db, &opts).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            db.close().await;
            return Err(e.into());
        }
    };
    print!("{}", outcome.summary);
    // A complete pull is Clerk's whole state: what it no longer lists is gone.
    if let Some(files) = pulled_files.filter(|_| !opts.dry_run) {
        let gone = remove_absent(&db, &files).await;
        db.close().await;
        match gone? {
            Ok(g) => println!(
                "refreshed:       gone at Clerk since the last run: {} users removed, {} memberships deleted, {} invitations no longer pending",
                g.users, g.memberships, g.invitations
            ),
            Err(refused) => eprintln!("cutover import: WARNING: {refused}"),
        }
    } else {
        db.close().await;
    }
    if let Some(path) = &opts.report {
        println!("report: {}", path.display());
    }
    Ok(Exit::Success)
}

/// Apply what a complete pull no longer lists, in one transaction.
async fn remove_absent(
    db: &crate::db::Db,
    files: &clerk_api::PulledFiles,
) -> anyhow::Result<Result<import::store::refresh::Gone, import::store::refresh::AbsentError>> {
    use import::store::refresh::{AbsentError, absent};
    let users = clerk_api::listed_ids(&files.users)?;
    let memberships = clerk_api::listed_ids(&files.memberships)?;
    let invitations = clerk_api::listed_ids(&files.invitations)?;
    let schema = import::store::ImportSchema::read(db).await?;
    let mut tx = db.begin().await?;
    match absent(
        &mut tx.conn(),
        &schema,
        &users,
        &memberships,
        &invitations,
        0.2,
    )
    .await
    {
        Ok(g) => {
            tx.commit().await?;
            Ok(Ok(g))
        }
        Err(AbsentError::Db(e)) => Err(e.into()),
        Err(refused) => Ok(Err(refused)),
    }
}
