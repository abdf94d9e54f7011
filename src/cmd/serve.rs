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
        print_live_rollout(&cfg).await;
        return Ok(Exit::Success);
    }
    // Before anything binds: a missing admin token is a configuration error.
    let admin_token = match &cfg.admin {
        Some(a) => Some(a.token().map_err(super::UsageError)?),
        None => None,
    };
    let db = super::open_database(&cfg).await?;
    let state = crate::state::SharedState::connect(&cfg.state)
        .await
        .context("connecting to the shared state (state.redis_url)")?;
    let listeners = server::bind(&cfg.server).await?;
    let admin_listener = match &cfg.admin {
        Some(a) => Some(crate::admin::bind(a).await?),
        None => None,
    };
    let app = App::new(&cfg, db.clone(), state).await?;
    // SIGHUP re-reads the file, the certificate and the Clerk key (see `reload`).
    super::reload::spawn(super::reload::Reloader::new(
        &args.config.path,
        &cfg,
        &app,
        listeners.tls.as_ref().map(|(_, tls)| Arc::clone(tls)),
    ))?;
    let (stop_admin, admin_stopped) = tokio::sync::watch::channel(());
    if let (Some(listener), Some(a), Some(token)) = (admin_listener, &cfg.admin, &admin_token) {
        let admin =
            crate::admin::Admin::new(Arc::clone(&app), a.clone(), token, cfg.routing.salt.clone());
        tracing::info!(admin = %a.listen, "admin listener: /healthz /readyz /metrics /api /");
        let mut stopped = admin_stopped.clone();
        tokio::spawn(crate::admin::serve(admin, listener, async move {
            let _ = stopped.changed().await;
        }));
    }
    tokio::spawn(snapshot_progress(Arc::downgrade(&app)));
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
    drop(stop_admin);
    if let Err(e) = app.seen.flush(&app.db).await {
        tracing::warn!(error = %e, "cannot record the last sightings of users");
    }
    // In-flight deliveries finish; what is still queued waits for the next start.
    app.shutdown().await;
    drop(app);
    db.close().await;
    Ok(Exit::Success)
}

/// Keep today's row of `cutover_progress_daily` up to date (every copy does;
/// the upsert is idempotent), so the dashboard can chart coverage over time.
async fn snapshot_progress(app: std::sync::Weak<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        let result = async {
            let p = crate::control::progress::compute(
                &app.db,
                crate::control::progress::DEFAULT_ACTIVE_DAYS,
            )
            .await?;
            crate::control::progress::snapshot(&app.db, &p).await
        };
        if let Err(e) = result.await {
            tracing::warn!(error = %e, "cannot record today's progress snapshot");
        }
    }
}

/// `--check`: the rollout the running copies use, beside the file's.
async fn print_live_rollout(cfg: &Config) {
    let url = cfg.kernia.database_url.expose();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        // `--check` must not create a database file that is not there yet.
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if !path.is_empty() && path != ":memory:" && !std::path::Path::new(path).exists() {
            println!(
                "  live rollout     not seeded yet (no database file): the first start seeds it from [rollout] above"
            );
            return;
        }
    }
    let read = async {
        let db = crate::db::Db::connect(cfg.kernia.database_url.expose(), 1).await?;
        let stored = crate::control::store::read(&db).await;
        db.close().await;
        Ok::<_, anyhow::Error>(stored?)
    };
    let file = crate::control::rollout::Rollout::from_settings(&cfg.routing);
    match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(Some(stored))) => {
            let mut out = Vec::new();
            let _ = super::rollout::write_rollout(&mut out, &stored);
            print!(
                "  live rollout (database; wins over the file):\n{}",
                indent(&out)
            );
            if stored.rollout != file {
                println!(
                    "  the file's [rollout] differs: it only seeded version 1; change the live rollout with `cutover rollout`"
                );
            }
        }
        Ok(Ok(None)) => println!(
            "  live rollout     not seeded yet: the first start seeds it from [rollout] above"
        ),
        Ok(Err(e)) => println!(
            "  live rollout     cannot be read ({e:#}); [rollout] above seeds it on first start"
        ),
        Err(_) => println!("  live rollout     the database did not answer within 5 s"),
    }
}

fn indent(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect()
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
        "  rollout (file)   {}% to kernia{}{}",
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
    match &cfg.admin {
        Some(a) => println!(
            "  admin listener   {} (token from ${})",
            a.listen, a.token_env
        ),
        None => println!("  admin listener   off"),
    }
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
