//! Accepting connections: plain HTTP and TLS listeners, HTTP/1.1 and HTTP/2,
//! connection and header limits, and a graceful drain.
//!
//! [`serve`] is the seam tests call: give it bound listeners and a shutdown
//! future. When the future resolves, cutover stops accepting, asks every open
//! connection to finish its in-flight requests (HTTP/1 closes after the
//! current response, HTTP/2 sends GOAWAY), and waits for them up to the grace
//! period before returning.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::App;
use crate::config::ServerConfig;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound listeners.
pub struct Listeners {
    pub tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    pub plain: Option<TcpListener>,
}

impl Listeners {
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Bind every configured listener (and load the TLS material) before serving,
/// so a busy port or a bad key is a clear start-up error.
pub async fn bind(cfg: &ServerConfig) -> anyhow::Result<Listeners> {
    use anyhow::Context as _;
    let tls = match &cfg.tls {
        Some(t) => {
            let config = super::tls::server_config(&t.cert, &t.key)
                .context("server.tls_cert / server.tls_key")?;
            let listener = TcpListener::bind(t.listen)
                .await
                .with_context(|| format!("cannot listen on {} (server.listen)", t.listen))?;
            Some((listener, config))
        }
        None => None,
    };
    let plain = match cfg.plain_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (server.plain_listen)"))?,
        ),
        None => None,
    };
    Ok(Listeners { tls, plain })
}

/// Where a connection came from.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Serve until `shutdown` resolves, then drain for up to `grace`.
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let builder = Arc::new(http_builder(&app));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(app.limits.max_connections));
    let (tls_listener, acceptor) = match listeners.tls {
        Some((l, cfg)) => (Some(l), Some(TlsAcceptor::from(cfg))),
        None => (None, None),
    };
    let plain = listeners.plain;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer, tls) = tokio::select! {
            r = accept(tls_listener.as_ref()) => match r {
                Ok((s, peer)) => (s, peer, true),
                Err(e) => { accept_failed(e).await; continue; }
            },
            r = accept(plain.as_ref()) => match r {
                Ok((s, peer)) => (s, peer, false),
                Err(e) => { accept_failed(e).await; continue; }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let info = ConnInfo { peer, tls };
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(super::driver::handle(app, info, req).await) }
            });
            if tls {
                let Some(acceptor) = acceptor else { return };
                let stream = match tokio::time::timeout(
                    TLS_HANDSHAKE_TIMEOUT,
                    acceptor.accept(stream),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            } else {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
        });
    }

    drop(tls_listener);
    drop(plain);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        grace_secs = grace.as_secs_f64(),
        "draining"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections finished"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// HTTP/1.1 and HTTP/2 with cutover's limits.
fn http_builder(app: &App) -> auto::Builder<TokioExecutor> {
    let limits = &app.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Also the keep-alive idle limit: the timer runs while waiting for the next request head.
        .header_read_timeout(limits.idle_timeout)
        // Request heads must fit the read buffer (hyper's minimum is 8 KiB).
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(200);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(1024))
        .enable_connect_protocol();
    b
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accept errors (out of file descriptors, a reset before accept) are
/// transient: log, pause briefly so a hot loop cannot spin, go on.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
