//! Accepting connections: plain HTTP and TLS listeners, HTTP/1.1 and HTTP/2,
//! connection and header limits, and a graceful drain.
//!
//! Every connection holds one of `[limits].max_connections` permits, so every
//! connection must end on its own: the header-read deadline
//! (`[limits].header_read_timeout_ms`) runs from accept through the TLS
//! handshake, protocol detection and the first request head; after that a
//! connection with no request in flight for `[limits].idle_timeout_secs` is
//! closed (HTTP/1.1 by hyper's header timer, HTTP/2 with a GOAWAY).
//!
//! A SIGHUP reload may change `[limits]` while serving. A connection takes the
//! limits in force when it is accepted (header-read deadline, idle timeout,
//! header sizes, HTTP/2 settings) and keeps them for its life; the request
//! limits (`max_body_bytes`, `auth_body_*`) are read per request, so new
//! requests on an established connection get the new ones. A new
//! `max_connections` resizes the [`ConnectionLimit`](super::connections::ConnectionLimit) at once: larger admits
//! more right away, smaller stops accepting until enough connections have
//! closed on their own — none is closed for it.
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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http_body_util::BodyExt as _;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::{App, ProxyBody};
use crate::config::{LimitsConfig, ServerConfig};

/// The TLS configuration new handshakes use. A SIGHUP reload swaps it;
/// connections already established keep the one they were made with.
pub type SharedTls = Arc<arc_swap::ArcSwap<rustls::ServerConfig>>;

/// Bound listeners.
pub struct Listeners {
    pub tls: Option<(TcpListener, SharedTls)>,
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
            Some((listener, Arc::new(arc_swap::ArcSwap::new(config))))
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
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's address as a header value (`X-Real-IP` and the like),
    /// made once for all the connection's requests.
    pub peer_value: http::HeaderValue,
}

/// Serve until `shutdown` resolves, then drain for up to `grace`.
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut shape = Shape::new(&app);
    // Every connection task holds a receiver: `true` asks it to finish its
    // in-flight requests and close; the sender sees when all have gone.
    let (drain_tx, drain_rx) = watch::channel(false);
    let (tls_listener, tls_config) = match listeners.tls {
        Some((l, cfg)) => (Some(l), Some(cfg)),
        None => (None, None),
    };
    let plain = listeners.plain;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            p = app.connections.acquire() => match p {
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
        // The limits in force now are this connection's for its life.
        let (limits, builder) = shape.current(&app);
        // The header-read deadline runs from here: TLS, protocol detection and
        // the first request head all have to fit in it.
        let deadline = Instant::now() + limits.header_read_timeout;
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            builder,
            info: ConnInfo {
                peer,
                tls,
                peer_value: super::headers::ip_value(peer.ip()),
            },
            deadline,
            idle: limits.idle_timeout,
            drain: drain_rx.clone(),
        };
        // The certificate in force now: a reload never touches this handshake.
        let acceptor = match (&tls_config, tls) {
            (Some(cfg), true) => Some(TlsAcceptor::from(cfg.load_full())),
            _ => None,
        };
        // The connection lives on one serving thread (see `threads`): it
        // leaves this runtime's reactor and joins that thread's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand the connection to a serving thread");
                continue;
            }
        };
        app.serving.next().spawn(async move {
            let _permit = permit;
            let stream = match TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot register the connection on its serving thread");
                    return;
                }
            };
            match acceptor {
                None => conn.run_plain(stream).await,
                // On the heap: a TLS connection's future is twice a plain
                // one's, and the task of every plain connection would carry it.
                Some(acceptor) => Box::pin(conn.run_tls(acceptor, stream)).await,
            }
        });
    }

    drop(tls_listener);
    drop(plain);
    drop(drain_rx);
    let open = drain_tx.receiver_count();
    tracing::info!(
        open_connections = open,
        grace_secs = grace.as_secs_f64(),
        "draining"
    );
    let _ = drain_tx.send(true);
    match tokio::time::timeout(grace, drain_tx.closed()).await {
        Ok(()) => tracing::info!("all connections finished"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// One accepted connection, after TLS.
struct Connection {
    app: Arc<App>,
    builder: Arc<Builders>,
    info: ConnInfo,
    /// When the first request head must have arrived.
    deadline: Instant,
    /// How long it may stay open with no request in flight.
    idle: Duration,
    drain: watch::Receiver<bool>,
}

impl Connection {
    /// Plain TCP: the first bytes, peeked (not consumed) within the
    /// header-read deadline, tell HTTP/1 from HTTP/2's preface.
    async fn run_plain(mut self, stream: TcpStream) {
        let peer = self.info.peer;
        let mut first = [0u8; 24];
        let peeked = tokio::select! {
            r = tokio::time::timeout_at(self.deadline, stream.peek(&mut first)) => r,
            // Draining: a connection that has not sent a request yet is closed.
            _ = self.drain.wait_for(|draining| *draining) => return,
        };
        let proto = match peeked {
            Ok(Ok(0)) => return, // closed before sending anything
            Ok(Ok(n)) => proto_of_first_bytes(&first[..n]),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first request");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "no request head within the header-read timeout; closed");
                return;
            }
        };
        self.run(stream, proto).await
    }

    /// The TLS handshake, within the header-read deadline, then [`Self::run`]
    /// with the protocol ALPN chose.
    async fn run_tls(self, acceptor: TlsAcceptor, stream: TcpStream) {
        let peer = self.info.peer;
        match tokio::time::timeout_at(self.deadline, acceptor.accept(stream)).await {
            Ok(Ok(s)) => {
                let proto = proto_of_alpn(s.get_ref().1.alpn_protocol());
                self.run(s, proto).await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not finished within the header-read timeout");
            }
        }
    }

    /// Serve HTTP/1.1 or HTTP/2 on `io` until the client closes, the server
    /// drains, or a limit ends it:
    /// - no complete request head by the header-read deadline (a silent
    ///   socket, a partial HTTP/2 preface, a slow head) — closed;
    /// - no request in flight for `idle_timeout` — asked to close gracefully
    ///   (HTTP/2: GOAWAY), then closed. HTTP/2 keep-alive pings are no
    ///   activity: they only tell that the peer is alive.
    async fn run<I>(mut self, io: I, proto: Proto)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = {
            let (app, info, activity) = (self.app.clone(), self.info.clone(), activity.clone());
            service_fn(move |req| {
                let app = app.clone();
                let info = info.clone();
                let guard = InFlight::enter(&activity);
                async move {
                    let resp = super::driver::handle(app, info, req).await;
                    Ok::<_, Infallible>(resp.map(|body| {
                        GuardedBody {
                            inner: body,
                            _guard: guard,
                        }
                        .boxed_unsync()
                    }))
                }
            })
        };
        let builders = self.builder.clone();
        let io = TokioIo::new(io);
        match proto {
            Proto::Http1 => {
                let conn = builders.http1.serve_connection(io, service).with_upgrades();
                tokio::pin!(conn);
                self.watch(conn, &activity).await;
            }
            Proto::Http2 => {
                let conn = builders.http2.serve_connection(io, service);
                tokio::pin!(conn);
                self.watch(conn, &activity).await;
            }
            Proto::Detect => {
                let conn = builders.detect.serve_connection_with_upgrades(io, service);
                tokio::pin!(conn);
                self.watch(conn, &activity).await;
            }
        }
    }

    /// Drive `conn` under the connection's deadlines (see [`Self::run`]).
    async fn watch<C, E>(&mut self, mut conn: std::pin::Pin<&mut C>, activity: &Activity)
    where
        C: Served + Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let peer = self.info.peer;
        let idle = self.idle;
        let mut closing = false;
        let mut hard_stop: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let mut wake = now + idle;
            if activity.requests.load(Ordering::Acquire) == 0 {
                wake = wake.min(self.deadline);
            } else if activity.in_flight.load(Ordering::Acquire) == 0 {
                wake = wake.min(activity.last() + idle);
            }
            if let Some(stop) = hard_stop {
                wake = wake.min(stop);
            }
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                changed = self.drain.changed(), if !closing => {
                    if changed.is_err() || *self.drain.borrow() {
                        conn.as_mut().shutdown();
                        closing = true;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if hard_stop.is_some_and(|stop| now >= stop) {
                        tracing::debug!(%peer, "connection did not close when asked; dropped");
                        return;
                    }
                    if activity.requests.load(Ordering::Acquire) == 0 {
                        if now >= self.deadline {
                            tracing::debug!(%peer, "no request head within the header-read timeout; closed");
                            return;
                        }
                    } else if activity.in_flight.load(Ordering::Acquire) == 0
                        && now >= activity.last() + idle
                        && !closing
                    {
                        tracing::debug!(%peer, "idle connection closed");
                        conn.as_mut().shutdown();
                        closing = true;
                        hard_stop = Some(now + CLOSE_GRACE);
                    }
                }
            }
        }
    }
}

/// How long an idle connection asked to close may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a connection is doing, for its deadlines.
struct Activity {
    started: Instant,
    /// Requests whose head has arrived, ever.
    requests: AtomicU64,
    /// Requests whose response has not finished.
    in_flight: AtomicUsize,
    /// Milliseconds after `started` of the last request start or end.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Acquire))
    }
}

/// One request in flight, from its head until its response body is done
/// (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> InFlight {
        activity.requests.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.touch();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight.
struct GuardedBody {
    inner: ProxyBody,
    _guard: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The limits new connections get, and the HTTP builders made from them;
/// rebuilt when a reload has swapped the limits.
struct Shape {
    limits: Arc<LimitsConfig>,
    builder: Arc<Builders>,
}

impl Shape {
    fn new(app: &App) -> Shape {
        let limits = app.limits.load_full();
        Shape {
            builder: Arc::new(Builders::new(&limits)),
            limits,
        }
    }

    fn current(&mut self, app: &App) -> (Arc<LimitsConfig>, Arc<Builders>) {
        let now = app.limits.load();
        if !Arc::ptr_eq(&now, &self.limits) {
            self.limits = arc_swap::Guard::into_inner(now);
            self.builder = Arc::new(Builders::new(&self.limits));
        }
        (self.limits.clone(), self.builder.clone())
    }
}

/// HTTP/1.1 and HTTP/2 with cutover's limits: hyper's own builder for each,
/// used when the protocol is known before the first read, and hyper-util's
/// detecting builder for the rest.
///
/// Why not always the detecting one: it reads the first 24 bytes on its own,
/// to look for HTTP/2's preface, and hands them back; hyper's read buffer then
/// gets the request head in two reads and doubles to 16 KiB, which every idle
/// keep-alive connection keeps.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    detect: auto::Builder<TokioExecutor>,
}

/// cutover's HTTP/1 settings, on hyper's builder or hyper-util's (the same
/// methods on two types).
macro_rules! http1_limits {
    ($b:expr, $limits:expr) => {
        $b.timer(TokioTimer::new())
            // No timer of hyper's per request head: `Connection::watch` already
            // closes a connection whose first head is not in by the header-read
            // deadline, and one with no request in flight (a slow next head
            // included) after `idle_timeout`. hyper's would cost an allocation
            // and a timer registration per request.
            .header_read_timeout(None)
            // Request heads must fit the read buffer (hyper's minimum is 8 KiB).
            // At most 100 header lines (hyper's default; more get 431): a
            // larger count makes hyper allocate its header index per request.
            .max_buf_size($limits.max_header_bytes.max(8192))
    };
}

/// cutover's HTTP/2 settings, on hyper's builder or hyper-util's.
/// Extended CONNECT (RFC 8441, WebSocket over HTTP/2) is not offered: the
/// upstream leg is HTTP/1.1 and cutover does not translate it into an Upgrade
/// handshake, so a client falls back to HTTP/1.1 WebSockets.
macro_rules! http2_limits {
    ($b:expr, $limits:expr) => {
        $b.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from($limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(256)
            .keep_alive_interval(Some($limits.idle_timeout / 2))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_pending_accept_reset_streams(Some(64))
            .max_local_error_reset_streams(Some(1024))
    };
}

impl Builders {
    fn new(limits: &LimitsConfig) -> Builders {
        let mut http1 = http1::Builder::new();
        // `max_buf_size` alone is a soft cap: a head that arrives in one large
        // read is parsed whole. hyper checks this one on the parsed head (431).
        // (hyper-util's detecting builder has no such setting: there the buffer
        // cap is the limit, for the rare connections it serves.)
        http1_limits!(http1, limits).max_header_size(limits.max_header_bytes);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2_limits!(http2, limits);
        let mut detect = auto::Builder::new(TokioExecutor::new());
        http1_limits!(detect.http1(), limits);
        http2_limits!(detect.http2(), limits);
        Builders {
            http1,
            http2,
            detect,
        }
    }
}

/// Which protocol a connection speaks, as far as is known before hyper reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
    /// Not known yet: hyper-util reads the first bytes to tell.
    Detect,
}

/// HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of a plain connection from the bytes it sent first, not yet
/// consumed: anything that cannot be the start of HTTP/2's preface is
/// HTTP/1 (as hyper-util decides); a start of it is left to detection.
fn proto_of_first_bytes(first: &[u8]) -> Proto {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] == H2_PREFACE[..n] {
        Proto::Detect
    } else {
        Proto::Http1
    }
}

/// The protocol TLS negotiated (ALPN); without ALPN, detect it.
fn proto_of_alpn(alpn: Option<&[u8]>) -> Proto {
    match alpn {
        Some(b"h2") => Proto::Http2,
        Some(b"http/1.1") => Proto::Http1,
        _ => Proto::Detect,
    }
}

/// A served connection, whichever builder made it.
trait Served: Future {
    fn shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> Served for http1::UpgradeableConnection<I, S>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Served for http2::Connection<I, S, TokioExecutor>
where
    Self: Future,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    TokioExecutor: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B> Served for auto::UpgradeableConnection<'_, I, S, TokioExecutor>
where
    Self: Future,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    TokioExecutor: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
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

#[cfg(test)]
mod tests {
    use super::{H2_PREFACE, Proto, proto_of_alpn, proto_of_first_bytes};

    #[test]
    fn http1_is_known_from_the_first_byte_and_a_preface_start_is_left_to_detection() {
        assert_eq!(proto_of_first_bytes(b"GET / HTTP/1.1\r\n"), Proto::Http1);
        assert_eq!(proto_of_first_bytes(b"G"), Proto::Http1);
        assert_eq!(
            proto_of_first_bytes(b"POST /x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Proto::Http1
        );
        // `PRI` is a valid HTTP/1 method token: only the whole preface is HTTP/2,
        // and hyper-util's detection reads on until it knows.
        assert_eq!(proto_of_first_bytes(b"P"), Proto::Detect);
        assert_eq!(proto_of_first_bytes(b"PRI * HTTP/2.0"), Proto::Detect);
        assert_eq!(proto_of_first_bytes(H2_PREFACE), Proto::Detect);
        assert_eq!(proto_of_first_bytes(b"PRI / HTTP/1.1\r\n"), Proto::Http1);
        assert_eq!(proto_of_first_bytes(b"PUT / HTTP/1.1\r\n"), Proto::Http1);
    }

    #[test]
    fn alpn_chooses_the_protocol_and_its_absence_means_detection() {
        assert_eq!(proto_of_alpn(Some(b"h2")), Proto::Http2);
        assert_eq!(proto_of_alpn(Some(b"http/1.1")), Proto::Http1);
        assert_eq!(proto_of_alpn(None), Proto::Detect);
        assert_eq!(proto_of_alpn(Some(b"spdy/3")), Proto::Detect);
    }
}
