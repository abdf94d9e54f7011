//! `cutover serve` — the proxy. `--check` validates the configuration and exits.

use crate::cli::ServeArgs;
use crate::config::{ClerkKeys, Config, StateBackend};

use super::Exit;

pub async fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    if args.check {
        print_summary(&args.config.path, &cfg);
        return Ok(Exit::Success);
    }
    let db = super::open_database(&cfg).await?;
    crate::db::KerniaSchema::read(&db).await?;
    let state = crate::state::SharedState::connect(&cfg.state).await?;
    tracing::info!(
        state = state.backend_name(),
        "database and shared state ready"
    );
    eprintln!("cutover serve: the proxy is not implemented yet");
    db.close().await;
    Ok(Exit::Failure)
}

/// What `--check` prints: enough to confirm the file says what was meant, and
/// never a secret.
fn print_summary(path: &std::path::Path, cfg: &Config) {
    println!("{}: configuration is valid", path.display());
    if let Some(tls) = &cfg.server.tls {
        println!("  https listener   {} ({})", tls.listen, tls.cert.display());
    }
    if let Some(plain) = cfg.server.plain_listen {
        println!("  http listener    {plain}");
    }
    println!("  legacy upstream  {}", cfg.upstreams.legacy);
    println!("  kernia upstream  {}", cfg.upstreams.kernia);
    println!("  kernia routes    {}", cfg.kernia.base_path);
    let engine = if cfg.kernia.database_url.expose().starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    println!("  database         {engine}");
    match &cfg.clerk {
        Some(clerk) => {
            let keys = match &clerk.keys {
                ClerkKeys::Pem(_) => "PEM key".to_string(),
                ClerkKeys::Jwks { url, .. } => format!("JWKS {url}"),
            };
            println!(
                "  clerk            {keys}; issuer {}",
                clerk.issuers.join(", ")
            );
        }
        None => println!("  clerk            not configured: no Clerk sessions are recognised"),
    }
    let state = match cfg.state.backend {
        StateBackend::Memory => "in-process",
        StateBackend::Redis { .. } => "redis",
    };
    println!("  shared state     {state}");
}
