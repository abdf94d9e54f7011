//! The admin listener: a private address for probes, metrics, the rollout
//! API and the dashboard. Off unless `[admin] listen` is set; never on the
//! public listeners.
//!
//! | path | auth | what |
//! |---|---|---|
//! | `GET /healthz` | none | the process is up |
//! | `GET /readyz` | none | database reachable with cutover's schema current, Clerk keys loaded, Redis reachable when configured; `503` naming what failed |
//! | `GET /metrics` | none | Prometheus text format ([`crate::metrics`]) |
//! | `GET /` | token | the dashboard ([`dashboard`]) |
//! | `GET /api/rollout` | token | the rollout this copy routes by |
//! | `PUT /api/rollout` | token | a partial change, `reason` required ([`api`]) |
//! | `GET /api/rollout/history` | token | the audit trail, newest first |
//! | `GET /api/status` | token | progress, rollout and this copy |
//!
//! The token comes from the environment variable `[admin] token_env`; it is
//! accepted as `Authorization: Bearer <token>` or as the password of HTTP
//! Basic (so a browser can open the dashboard), compared in constant time.
//! Limits: HTTP/1.1 only, a connection cap, a header-read deadline, a whole-
//! request deadline and a body cap.

mod api;
mod dashboard;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};

use crate::config::{AdminConfig, Secret};
use crate::proxy::App;

/// What the admin listener shares.
pub struct Admin {
    pub app: Arc<App>,
    token_digest: [u8; 32],
    cfg: AdminConfig,
    /// Salt for bucket counts when lowering (from the file).
    salt: String,
    /// When the ledger gauge was last refreshed.
    gauge_refreshed: Mutex<Option<Instant>>,
}

/// Answers are small: whole bodies.
type Body = Full<Bytes>;

impl Admin {
    pub fn new(app: Arc<App>, cfg: AdminConfig, token: &Secret, salt: String) -> Arc<Admin> {
        Arc::new(Admin {
            app,
            token_digest: digest(token.expose().as_bytes()),
            cfg,
            salt,
            gauge_refreshed: Mutex::new(None),
        })
    }

    /// Constant-time: both sides are hashed first, so neither the content nor
    /// the length of the token leaks through timing.
    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        use subtle::ConstantTimeEq as _;
        let Some(presented) = presented_token(headers) else {
            return false;
        };
        digest(presented.as_bytes())
            .ct_eq(&self.token_digest)
            .into()
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}

/// The token from `Authorization: Bearer …` or the password of `Basic …`.
fn presented_token(headers: &http::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':').map(|(_, pw)| pw.to_string())
    } else {
        None
    }
}

pub async fn bind(cfg: &AdminConfig) -> anyhow::Result<TcpListener> {
    use anyhow::Context as _;
    TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin.listen)", cfg.listen))
}

/// Serve until `shutdown` resolves. Connections in flight are dropped with
/// the task: admin requests are short and retried by their callers.
pub async fn serve(
    admin: Arc<Admin>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(admin.cfg.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = &mut shutdown => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let timeout = admin.cfg.request_timeout;
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = crate::web::Lingering::new(body, &parts.headers);
                    let req = Request::from_parts(parts, body);
                    let resp = match tokio::time::timeout(timeout, handle(&admin, req)).await {
                        Ok(r) => r,
                        Err(_) => {
                            error(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            // A connection lives at most a few request deadlines.
            if let Ok(Err(e)) = tokio::time::timeout(timeout * 6, conn).await {
                tracing::debug!(%peer, error = %e, "admin connection ended with an error");
            }
        });
    }
}

/// A request body on this listener: read to its end after an early answer.
type AdminBody = crate::web::Lingering<Incoming>;

async fn handle(admin: &Admin, req: Request<AdminBody>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (Method::GET | Method::HEAD, "/readyz") => readyz(admin).await,
        (Method::GET | Method::HEAD, "/metrics") => metrics(admin).await,
        _ if !admin.authorized(req.headers()) => unauthorized(),
        (Method::GET | Method::HEAD, "/") => dashboard::page(admin).await,
        (Method::GET, "/api/rollout") => api::rollout(admin),
        (Method::PUT, "/api/rollout") => {
            if let Some(refusal) = cross_site(req.headers()) {
                return refusal;
            }
            match read_body(req, admin.cfg.max_body_bytes).await {
                Ok(body) => api::change(admin, &body).await,
                Err(resp) => resp,
            }
        }
        (Method::GET, "/api/rollout/history") => api::history(admin, req.uri().query()).await,
        (Method::GET, "/api/status") => api::status(admin, req.uri().query()).await,
        (
            _,
            "/"
            | "/healthz"
            | "/readyz"
            | "/metrics"
            | "/api/rollout"
            | "/api/rollout/history"
            | "/api/status",
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

/// A change must come from a script or from the dashboard itself: JSON only
/// (a cross-site form cannot send it without a CORS preflight, which this
/// listener never grants), and a browser's `Origin`, when sent, must be this
/// listener's own.
fn cross_site(headers: &http::HeaderMap) -> Option<Response<Body>> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the change as JSON (Content-Type: application/json)",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Some(error(
                StatusCode::FORBIDDEN,
                "cross-origin changes are refused",
            ));
        }
    }
    None
}

async fn read_body(req: Request<AdminBody>, max: usize) -> Result<Bytes, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), max);
    match limited.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {max} bytes or was cut off"),
        )),
    }
}

/// The checks a load balancer or Kubernetes waits on before sending traffic.
async fn readyz(admin: &Admin) -> Response<Body> {
    const BUDGET: Duration = Duration::from_secs(2);
    let app = &admin.app;
    let mut checks = serde_json::Map::new();
    let mut failed = Vec::new();
    let database = match tokio::time::timeout(BUDGET, app.db.missing_migrations()).await {
        Ok(Ok(missing)) if missing.is_empty() => Ok(()),
        Ok(Ok(missing)) => Err(format!("cutover's schema lacks migrations {missing:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the database did not answer within 2 s".into()),
    };
    let clerk = match app.clerk() {
        None => Ok(()),
        Some(c) if c.stats().keys > 0 => Ok(()),
        Some(_) => Err("no Clerk signing keys loaded (JWKS not fetched yet?)".into()),
    };
    let redis = match &app.state {
        crate::state::SharedState::Memory(_) => Ok(()),
        state => {
            match tokio::time::timeout(BUDGET, state.hit("probe:readyz", Duration::from_secs(1)))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("Redis did not answer within 2 s".into()),
            }
        }
    };
    for (name, result) in [
        ("database", database),
        ("clerk_keys", clerk),
        ("redis", redis),
    ] {
        match result {
            Ok(()) => {
                checks.insert(name.into(), "ok".into());
            }
            Err(e) => {
                checks.insert(name.into(), format!("failed: {e}").into());
                failed.push(name);
            }
        }
    }
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({ "ready": failed.is_empty(), "failed": failed, "checks": checks }),
    )
}

/// Refresh the ledger gauge at most every 10 s (one `GROUP BY`), then render.
async fn metrics(admin: &Admin) -> Response<Body> {
    {
        let mut last = admin.gauge_refreshed.lock().await;
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            let counts = async {
                let mut conn = admin.app.db.acquire().await?;
                crate::db::ledger::counts_by_state(&mut conn.conn()).await
            };
            if let Ok(Ok(counts)) = tokio::time::timeout(Duration::from_secs(2), counts).await {
                for (state, n) in counts {
                    crate::metrics::set_ledger_users(state.as_str(), n);
                }
                *last = Some(Instant::now());
            }
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(crate::metrics::render())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp
}

fn unauthorized() -> Response<Body> {
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "a bearer token is required (the value of [admin] token_env)",
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"cutover admin\", charset=\"UTF-8\""),
    );
    resp
}

fn with_security_headers(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    with_security_headers(resp)
}

pub(crate) fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_security_headers(resp)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// The address the listener is bound to (tests bind port 0).
pub fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_token_is_read_from_bearer_or_basic_and_nothing_else() {
        let t = |v: &str| presented_token(&headers(&[("authorization", v)]));
        assert_eq!(t("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("bearer  abc ").as_deref(), Some("abc"));
        // base64("ops:s3cret:with:colons")
        assert_eq!(
            t("Basic b3BzOnMzY3JldDp3aXRoOmNvbG9ucw==").as_deref(),
            Some("s3cret:with:colons")
        );
        assert_eq!(t("Basic !!!"), None);
        assert_eq!(t("Token abc"), None);
        assert_eq!(t("abc"), None);
        assert_eq!(presented_token(&http::HeaderMap::new()), None);
    }

    #[test]
    fn changes_must_be_json_from_the_same_origin() {
        let json = ("content-type", "application/json");
        let host = ("host", "127.0.0.1:9901");
        assert!(cross_site(&headers(&[json, host])).is_none(), "a script");
        assert!(
            cross_site(&headers(&[json, host, ("origin", "http://127.0.0.1:9901")])).is_none(),
            "the dashboard itself"
        );
        let refused = |h: &[(&'static str, &str)]| cross_site(&headers(h)).map(|r| r.status());
        assert_eq!(
            refused(&[json, host, ("origin", "https://evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            refused(&[json, host, ("origin", "http://127.0.0.1:9901.evil.example")]),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            refused(&[("content-type", "text/plain"), host]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(refused(&[host]), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
}
