//! Phase four: send the request to its upstream and stream the answer back.
//!
//! Keep-alive HTTP/1.1 connections to the upstreams (https upstreams via
//! rustls), kept per serving thread ([`super::pool`]). Bodies stream both
//! ways without buffering; a request body is cut off at
//! `[limits].max_body_bytes`. A connection that
//! cannot be made answers 502, a response head that does not come within the
//! response timeout answers 504. When the send fails because the *client's*
//! body failed (a malformed chunk size, a body over the limit), the fault is
//! the client's: 400 or 413, not 502. `Upgrade` requests (WebSocket) are forwarded
//! with their handshake and, once the upstream answers 101, the two upgraded
//! connections are spliced together.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service as _;

use super::pool::{self, Pool, Return, Returning, Sender};
use crate::config::UpstreamsConfig;
use crate::web::{BoxError, ProxyBody};

/// The seam between the request path and the network: send a prepared
/// request to an upstream. [`Upstreams`] is the real one; tests of the
/// driver use their own, so `drive` runs without sockets.
pub trait Forward: Send + Sync {
    /// Send `req` (headers already prepared) to `to`, keeping its path and
    /// query. The response keeps its extensions (a 101's upgrade).
    fn send(
        &self,
        to: Upstream,
        req: Request<ProxyBody>,
    ) -> BoxFuture<'_, Result<Response<ProxyBody>, ForwardError>>;

    /// The upstream's `host[:port]` as the `Host` header's value (made once:
    /// a clone shares its bytes).
    fn host(&self, to: Upstream) -> Option<HeaderValue>;
}

/// Why forwarding failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("cannot reach the {upstream} upstream: {source}")]
    Connect {
        upstream: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the {upstream} upstream failed: {source}")]
    Upstream {
        upstream: &'static str,
        #[source]
        source: hyper::Error,
    },
    #[error("the {upstream} upstream did not answer within {secs:.1} s")]
    Timeout { upstream: &'static str, secs: f64 },
    #[error("cannot build the upstream request: {0}")]
    BadRequest(String),
}

/// Which upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Legacy,
    Kernia,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Legacy => "legacy",
            Upstream::Kernia => "kernia",
        }
    }

    /// Its list in a [`pool::Idle`].
    fn index(self) -> usize {
        match self {
            Upstream::Legacy => 0,
            Upstream::Kernia => 1,
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The two upstreams and the idle connections to them: one [`Pool`] per
/// thread that sends, so a serving thread's requests use upstream connections
/// driven on that same thread (see [`super::threads`]).
pub struct Upstreams {
    pools: thread_local::ThreadLocal<Pool>,
    /// Trust roots and the TLS configuration, read once.
    https: Connector,
    legacy: Uri,
    kernia: Uri,
    /// The `Host` header of each upstream.
    legacy_host: Option<HeaderValue>,
    kernia_host: Option<HeaderValue>,
    response_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

/// An upstream URI's authority as a `Host` header value.
fn host_value(uri: &Uri) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

impl Upstreams {
    pub fn new(cfg: &UpstreamsConfig) -> Result<Upstreams, std::io::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Upstreams::with_connector(cfg, https))
    }

    /// With TCP and TLS set up by the caller (tests trust their own roots).
    fn with_connector(cfg: &UpstreamsConfig, https: Connector) -> Upstreams {
        Upstreams {
            pools: thread_local::ThreadLocal::new(),
            https,
            legacy: cfg.legacy.clone(),
            kernia: cfg.kernia.clone(),
            legacy_host: host_value(&cfg.legacy),
            kernia_host: host_value(&cfg.kernia),
            response_timeout: cfg.response_timeout,
            idle_timeout: cfg.pool_idle_timeout,
            max_idle: cfg.pool_max_idle_per_host,
        }
    }

    /// This thread's idle connections, made on first use (with the sweep
    /// that closes expired ones).
    fn pool(&self) -> &Pool {
        self.pools.get_or(|| {
            let pool = Pool::default();
            if self.max_idle > 0 {
                tokio::spawn(pool::sweep(Arc::downgrade(&pool), self.idle_timeout));
            }
            pool
        })
    }

    fn base(&self, to: Upstream) -> &Uri {
        match to {
            Upstream::Legacy => &self.legacy,
            Upstream::Kernia => &self.kernia,
        }
    }

    /// A new connection to `to`, driven by a task on this thread.
    async fn connect(&self, to: Upstream) -> Result<Sender, ForwardError> {
        let upstream = to.as_str();
        let failed = |source: BoxError| ForwardError::Connect { upstream, source };
        let mut connector = self.https.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(failed)?;
        let io = connector
            .call(self.base(to).clone())
            .await
            .map_err(failed)?;
        let (tx, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| failed(e.into()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(upstream, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Send `req` to `to`: on this thread's newest idle connection, or a new
    /// one. A request a reused connection never sent (the upstream closed it
    /// meanwhile) is sent again on the next; one sent on a new connection is
    /// not.
    async fn send_on_a_connection(
        &self,
        to: Upstream,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let list = to.index();
        loop {
            let idle = pool::lock(self.pool()).take(list, Instant::now(), self.idle_timeout);
            let (mut tx, reused) = match idle {
                Some(tx) => (tx, true),
                None => (self.connect(to).await?, false),
            };
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    // After a 101 the connection belongs to the upgraded
                    // stream: it does not go back.
                    let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Return {
                        tx,
                        pool: self.pool().clone(),
                        list,
                        max: self.max_idle,
                    });
                    return Ok(resp.map(|body| pool::boxed(Returning::new(body, back))));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(send_failed(to, e.into_error())),
                },
            }
        }
    }

    /// Send `req` to `to`, keeping its path and query (sent in origin form;
    /// the caller set `Host`), within the response timeout.
    async fn send_now(
        &self,
        to: Upstream,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(path);
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(self.response_timeout, self.send_on_a_connection(to, req)).await
        {
            Err(_) => Err(ForwardError::Timeout {
                upstream: to.as_str(),
                secs: self.response_timeout.as_secs_f64(),
            }),
            Ok(answer) => answer,
        }
    }
}

impl Forward for Upstreams {
    fn send(
        &self,
        to: Upstream,
        req: Request<ProxyBody>,
    ) -> BoxFuture<'_, Result<Response<ProxyBody>, ForwardError>> {
        Box::pin(self.send_now(to, req))
    }

    fn host(&self, to: Upstream) -> Option<HeaderValue> {
        match to {
            Upstream::Legacy => self.legacy_host.clone(),
            Upstream::Kernia => self.kernia_host.clone(),
        }
    }
}

/// What a failed send was: the client's body's fault, or the upstream's.
fn send_failed(to: Upstream, source: hyper::Error) -> ForwardError {
    match client_body_fault(&source) {
        Some(ClientBodyError::TooLarge { limit }) => ForwardError::BodyTooLarge { limit: *limit },
        Some(ClientBodyError::Read(e)) => {
            ForwardError::BadRequest(format!("cannot read the request body: {e}"))
        }
        None => ForwardError::Upstream {
            upstream: to.as_str(),
            source,
        },
    }
}

/// The client's request body failed while it was being sent upstream.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Read(BoxError),
}

/// The client's request body as the upstream gets it: streamed, with a size cap.
pub fn limit_body(body: ProxyBody, limit: u64) -> ProxyBody {
    http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .map_err(move |e| -> BoxError {
            if e.is::<http_body_util::LengthLimitError>() {
                Box::new(ClientBodyError::TooLarge { limit })
            } else {
                Box::new(ClientBodyError::Read(e))
            }
        })
        .boxed_unsync()
}

/// The client-body failure behind an upstream error, if that is what it was.
fn client_body_fault<'e>(
    err: &'e (dyn std::error::Error + 'static),
) -> Option<&'e ClientBodyError> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(fault) = e.downcast_ref::<ClientBodyError>() {
            return Some(fault);
        }
        cause = e.source();
    }
    None
}

/// After a 101 from the upstream: wait for both sides to upgrade, then copy
/// bytes both ways until either closes.
pub fn splice_upgrade(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection closed with an error");
        }
    });
}

/// Whether an upstream answer switched protocols.
pub fn is_switching<B>(resp: &Response<B>) -> bool {
    resp.status() == StatusCode::SWITCHING_PROTOCOLS
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{Empty, Full};
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

    use super::*;

    /// An https upstream on a certificate only the returned roots trust,
    /// answering `tls <path>` on keep-alive connections it counts.
    async fn tls_upstream() -> (
        std::net::SocketAddr,
        rustls::RootCertStore,
        Arc<AtomicUsize>,
    ) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.into())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let answer = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            let body = Full::new(Bytes::from(format!("tls {}", req.uri())));
                            Ok::<_, std::convert::Infallible>(Response::new(body))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), answer)
                        .await;
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        (addr, roots, accepted)
    }

    #[tokio::test]
    async fn an_https_upstream_is_reached_over_tls_on_one_kept_connection() {
        let (addr, roots, accepted) = tls_upstream().await;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let base: Uri = format!("https://localhost:{}", addr.port())
            .parse()
            .unwrap();
        let cfg = UpstreamsConfig {
            legacy: base.clone(),
            kernia: base,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 8,
        };
        let upstreams = Upstreams::with_connector(&cfg, https);
        for i in 0..3 {
            let req = Request::builder()
                .uri(format!("http://app.example/page?i={i}"))
                .header(
                    http::header::HOST,
                    upstreams.host(Upstream::Legacy).unwrap(),
                )
                .body(Empty::new().map_err(|e| match e {}).boxed_unsync())
                .unwrap();
            let resp = upstreams.send(Upstream::Legacy, req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, format!("tls /page?i={i}"), "sent in origin form");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one TLS connection, kept"
        );
    }
}
