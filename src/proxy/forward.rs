//! Phase four: send the request to its upstream and stream the answer back.
//!
//! One pooled client (keep-alive, HTTP/1.1 to the upstream; https upstreams via
//! rustls) serves both upstreams. Bodies stream both ways without buffering; a
//! request body is cut off at `[limits].max_body_bytes`. A connection that
//! cannot be made answers 502, a response head that does not come within the
//! response timeout answers 504. When the send fails because the *client's*
//! body failed (a malformed chunk size, a body over the limit), the fault is
//! the client's: 400 or 413, not 502. `Upgrade` requests (WebSocket) are forwarded
//! with their handshake and, once the upstream answers 101, the two upgraded
//! connections are spliced together.

use std::time::Duration;

use futures_util::future::BoxFuture;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::config::UpstreamsConfig;
use crate::web::{self, BoxError, ProxyBody};

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
        source: hyper_util::client::legacy::Error,
    },
    #[error("the {upstream} upstream failed: {source}")]
    Upstream {
        upstream: &'static str,
        #[source]
        source: hyper_util::client::legacy::Error,
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
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The two upstreams and the pooled clients that reach them: one client (and
/// so one connection pool) per thread that sends, so a serving thread's
/// requests use upstream connections driven on that same thread (see
/// [`super::threads`]).
pub struct Upstreams {
    clients: thread_local::ThreadLocal<Client<Connector, ProxyBody>>,
    cfg: UpstreamsConfig,
    /// Trust roots and the TLS configuration, read once.
    https: Connector,
    legacy: Uri,
    kernia: Uri,
    /// The `Host` header of each upstream.
    legacy_host: Option<HeaderValue>,
    kernia_host: Option<HeaderValue>,
    response_timeout: Duration,
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
        Ok(Upstreams {
            clients: thread_local::ThreadLocal::new(),
            cfg: cfg.clone(),
            https,
            legacy: cfg.legacy.clone(),
            kernia: cfg.kernia.clone(),
            legacy_host: host_value(&cfg.legacy),
            kernia_host: host_value(&cfg.kernia),
            response_timeout: cfg.response_timeout,
        })
    }

    /// This thread's client, made on first use.
    fn client(&self) -> &Client<Connector, ProxyBody> {
        self.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(self.cfg.pool_idle_timeout)
                .pool_max_idle_per_host(self.cfg.pool_max_idle_per_host)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(self.https.clone())
        })
    }

    fn base(&self, to: Upstream) -> &Uri {
        match to {
            Upstream::Legacy => &self.legacy,
            Upstream::Kernia => &self.kernia,
        }
    }

    /// Send `req` to `to`. The URI is rewritten to the upstream's scheme and
    /// authority, keeping path and query.
    async fn send_now(
        &self,
        to: Upstream,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let base = self.base(to);
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = base.scheme().cloned();
        parts.authority = base.authority().cloned();
        parts.path_and_query = Some(path);
        *req.uri_mut() =
            Uri::from_parts(parts).map_err(|e| ForwardError::BadRequest(e.to_string()))?;
        *req.version_mut() = Version::HTTP_11;
        let upstream = to.as_str();
        match tokio::time::timeout(self.response_timeout, self.client().request(req)).await {
            Err(_) => Err(ForwardError::Timeout {
                upstream,
                secs: self.response_timeout.as_secs_f64(),
            }),
            Ok(Err(source)) if source.is_connect() => {
                Err(ForwardError::Connect { upstream, source })
            }
            Ok(Err(source)) => Err(match client_body_fault(&source) {
                Some(ClientBodyError::TooLarge { limit }) => {
                    ForwardError::BodyTooLarge { limit: *limit }
                }
                Some(ClientBodyError::Read(e)) => {
                    ForwardError::BadRequest(format!("cannot read the request body: {e}"))
                }
                None => ForwardError::Upstream { upstream, source },
            }),
            Ok(Ok(resp)) => Ok(resp.map(web::boxed)),
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
