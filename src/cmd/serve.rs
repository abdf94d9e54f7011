//! `cutover serve` — the proxy. `--check` validates the configuration and exits.

use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::ServeArgs;
use crate::config::{ClerkKeys, Config, StateBackend};
use crate::proxy::App;
use crate::proxy::server;

use super::Exit;

pub async fn run(args: ServeArgs) -> anyhow::Result<Exit> {
    let cfg = super::load_config(&args.config.path)?;
    if args.check {
        print_summary(&args.config.path, &cfg);
        return Ok(Exit::Success);
    }
    let db = super::open_database(&cfg).await?;
    crate::db::KerniaSchema::read(&db).await?;
    let state = crate::state::SharedState::connect(&cfg.state)
        .await
        .context("connecting to the shared state (state.redis_url)")?;
    let listeners = server::bind(&cfg.server).await?;
    let app = App::new(&cfg, db.clone(), state).await?;
    tracing::info!(
        https = ?cfg.server.tls.as_ref().map(|t| t.listen),
        http = ?cfg.server.plain_listen,
        legacy = %cfg.upstreams.legacy,
        kernia = %cfg.upstreams.kernia,
        "cutover is serving"
    );
    server::serve(
        Arc::clone(&app),
        listeners,
        shutdown_signal(),
        cfg.server.shutdown_grace,
    )
    .await;
    // In-flight deliveries finish; what is still queued waits for the next start.
    app.shutdown().await;
    drop(app);
    db.close().await;
    Ok(Exit::Success)
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: no new connections; draining in-flight requests");
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
    let r = &cfg.routing;
    println!(
        "  rollout          {}% to kernia{}{}",
        r.percentage,
        if r.kill_switch {
            "; KILL SWITCH ON"
        } else {
            ""
        },
        if r.overrides.is_empty() {
            ""
        } else {
            "; with overrides"
        }
    );
    let s = &cfg.outbox.retry_schedule;
    println!(
        "  outbox           {} attempt(s) over {} s; {} s timeout",
        s.len(),
        s.iter().map(|d| d.as_secs()).sum::<u64>(),
        cfg.outbox.delivery_timeout.as_secs()
    );
    match &cfg.webhooks {
        Some(w) => println!(
            "  webhooks         {} endpoint(s); instance {}",
            w.endpoints.len(),
            w.instance_id
        ),
        None => println!("  webhooks         off: no Clerk-shaped events are sent"),
    }
    println!(
        "  assertion        {}",
        if cfg.assertion.is_some() {
            "signed"
        } else {
            "off"
        }
    );
}
