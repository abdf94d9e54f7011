//! `drive` without sockets: a stand-in for the upstreams that records what
//! it was sent, requests built in memory, observers that keep what they saw.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;

use super::drive;
use crate::config::{Config, ProcessEnv};
use crate::proxy::context::{Ctx, Peer};
use crate::proxy::forward::{Forward, ForwardError, Upstream};
use crate::proxy::observe::{Observation, Observer, Record};
use crate::proxy::{App, ProxyBody};
use crate::web::{self, BoxError};

/// What the stand-in upstream was sent.
#[derive(Debug, Clone)]
struct Sent {
    to: Upstream,
    path_and_query: String,
    body: Bytes,
}

#[derive(Default)]
struct StandIn {
    sent: Mutex<Vec<Sent>>,
    /// Never answer (a slow upstream, to hang up on).
    hang: bool,
}

impl Forward for StandIn {
    fn send(
        &self,
        to: Upstream,
        req: Request<ProxyBody>,
    ) -> BoxFuture<'_, Result<Response<ProxyBody>, ForwardError>> {
        Box::pin(async move {
            let path_and_query = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            self.sent.lock().unwrap().push(Sent {
                to,
                path_and_query,
                body,
            });
            if self.hang {
                std::future::pending::<()>().await;
            }
            let mut resp = Response::new(web::full(r#"{"ok":true}"#));
            *resp.status_mut() = StatusCode::OK;
            Ok(resp)
        })
    }

    fn host(&self, _: Upstream) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("upstream.test"))
    }
}

/// One observed request: status, client-closed, route, intercept, exchange path.
type Seen = (
    u16,
    bool,
    &'static str,
    Option<&'static str>,
    Option<String>,
);

#[derive(Default)]
struct Keep(Mutex<Vec<Seen>>);

impl Observer for Keep {
    fn observe(&self, r: &Record<'_>) {
        self.0.lock().unwrap().push((
            r.status.as_u16(),
            r.client_closed,
            r.ctx.route(),
            r.ctx.intercept,
            r.ctx.auth.as_ref().map(|a| a.path.clone()),
        ));
    }
}

struct Rig {
    app: Arc<App>,
    upstream: Arc<StandIn>,
    seen: Arc<Keep>,
    _dir: tempfile::TempDir,
}

async fn rig(hang: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("k.db").display());
    let text = format!(
        r#"
[server]
plain_listen = "127.0.0.1:0"
[upstreams]
legacy = "http://legacy.test"
kernia = "http://kernia.test"
[kernia]
secret = "driver-test-secret-0123456789abcdef"
database_url = "{db_url}"
[limits]
auth_body_timeout_secs = 1
"#
    );
    let cfg = Config::parse(&text, Path::new("test.toml"), &ProcessEnv).unwrap();
    let db = crate::db::Db::connect(&db_url, 2).await.unwrap();
    db.migrate().await.unwrap();
    let state = crate::state::SharedState::connect(&cfg.state)
        .await
        .unwrap();
    let upstream = Arc::new(StandIn {
        hang,
        ..StandIn::default()
    });
    let app = App::with_upstreams(&cfg, db, state, upstream.clone())
        .await
        .unwrap();
    let seen = Arc::new(Keep::default());
    app.observers.add(seen.clone());
    Rig {
        app,
        upstream,
        seen,
        _dir: dir,
    }
}

fn post(path: &str, body: ProxyBody) -> Request<ProxyBody> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn observation(app: &App, req: &Request<ProxyBody>) -> Observation {
    let peer = Peer {
        ip: [192, 0, 2, 7].into(),
        trusted: false,
        tls: false,
    };
    let ctx = Ctx::new(req.method().clone(), req.uri().path(), peer, peer.ip);
    Observation::start(ctx, app.observers.clone())
}

/// `drive` and observe, as `handle` does.
async fn run(r: &Rig, req: Request<ProxyBody>) -> (StatusCode, serde_json::Value) {
    let mut obs = observation(&r.app, &req);
    let resp = drive(&r.app, obs.ctx(), req).await;
    obs.finish(resp.status());
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_denied_path_is_answered_by_cutover_and_observed() {
    let r = rig(false).await;
    let req = post("/api/auth/admin/create-user", web::full("{}"));
    let (status, body) = run(&r, req).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(r.upstream.sent.lock().unwrap().is_empty());
    assert_eq!(
        r.seen.0.lock().unwrap().as_slice(),
        [(404, false, "deny", None, None)]
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_is_observed_as_499() {
    let r = rig(true).await;
    let req = Request::get("/dashboard").body(web::empty()).unwrap();
    let mut obs = observation(&r.app, &req);
    let app = r.app.clone();
    let driven = async move {
        let resp = drive(&app, obs.ctx(), req).await;
        obs.finish(resp.status());
    };
    // The upstream never answers; the client gives up (the future is dropped).
    let gave_up = tokio::time::timeout(Duration::from_millis(200), driven).await;
    assert!(gave_up.is_err());
    let seen = r.seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (status, closed, route, _, _) = &seen[0];
    assert_eq!((*status, *closed), (499, true));
    assert!(*route == "legacy" || *route == "kernia", "{route}");
}

#[tokio::test]
async fn a_sign_in_body_that_stops_arriving_gets_408() {
    let r = rig(false).await;
    // `Content-Length: 100`, ten bytes sent, then silence.
    let chunks = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, BoxError>(hyper::body::Frame::data(
            Bytes::from_static(b"{\"email\":\""),
        ))]),
        futures_util::stream::pending(),
    );
    let body = web::boxed(http_body_util::StreamBody::new(chunks));
    let mut req = post("/api/auth/sign-in/email", body);
    req.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(100));
    let (status, body) = run(&r, req).await;
    assert_eq!(status, 408);
    assert_eq!(body["code"], "REQUEST_TIMEOUT");
    assert!(r.upstream.sent.lock().unwrap().is_empty());
    assert_eq!(r.seen.0.lock().unwrap()[0].3, Some("body_unread"));
}

#[tokio::test]
async fn a_sign_in_body_cutover_cannot_read_is_refused_before_kernia() {
    let r = rig(false).await;
    for raw in [
        r#"{"email":"bob@example.com","password":"p","rememberMe":NaN}"#,
        r#"{"email":"bob@example.com","password":"p","n":1e400}"#,
        r#"{"email":{"$gt":""},"password":"p"}"#,
    ] {
        let (status, body) = run(&r, post("/api/auth/sign-in/email", web::full(raw))).await;
        assert_eq!(status, 400, "{raw}");
        assert_eq!(body["code"], "INVALID_REQUEST");
    }
    assert!(r.upstream.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn request_password_reset_reaches_kernia_as_forget_password() {
    let r = rig(false).await;
    let req = post(
        "/api/auth/request-password-reset?x=1",
        web::full(r#"{"email":"Bob@Example.COM","redirectTo":"/reset"}"#),
    );
    let (status, _) = run(&r, req).await;
    assert_eq!(status, 200);
    let sent = r.upstream.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Upstream::Kernia);
    assert_eq!(sent[0].path_and_query, "/api/auth/forget-password?x=1");
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["email"], "bob@example.com");
    assert_eq!(body["redirectTo"], "/reset");
    let seen = r.seen.0.lock().unwrap().clone();
    assert_eq!(seen[0].4.as_deref(), Some("/forget-password"));
}

#[tokio::test]
async fn a_reset_with_the_better_auth_clients_body_reaches_kernia_with_password() {
    let r = rig(false).await;
    let req = post(
        "/api/auth/reset-password",
        web::full(r#"{"newPassword":"a-new-password-1","token":"tok"}"#),
    );
    run(&r, req).await;
    let sent = r.upstream.sent.lock().unwrap().clone();
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["password"], "a-new-password-1");
    assert_eq!(body["token"], "tok");
    assert!(body.get("newPassword").is_none());
}

#[test]
fn the_pin_cookie_is_the_pin_with_its_attributes() {
    let id = "0123456789abcdef0123456789abcdef";
    for (value, secure, expected) in [
        (
            format!("u.{id}"),
            false,
            format!("cutover_route=u.{id}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"),
        ),
        (
            format!("m.{id}"),
            true,
            format!(
                "cutover_route=m.{id}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure"
            ),
        ),
    ] {
        let pin = crate::route::rollout::Pin::parse(&value).unwrap();
        let mut resp = Response::new(web::empty());
        resp.headers_mut()
            .append(http::header::SET_COOKIE, HeaderValue::from_static("app=1"));
        super::set_pin_cookie(&mut resp, &pin, secure);
        let cookies: Vec<_> = resp
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(cookies, ["app=1".to_string(), expected]);
    }
}

/// hyper keeps each connection's service future in a box for the
/// connection's whole life and moves every request's future into it, so the
/// request future's size is memory per idle connection and a copy per request.
/// Rare, large paths (a database lookup on a cache miss, Kernia's auth routes)
/// go on the heap; this keeps them there.
#[test]
fn the_request_future_stays_small() {
    fn size<F, A, B, C, Fut>(_: &F) -> usize
    where
        F: Fn(A, B, C) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }
    // 14 KiB before the lookups were boxed (debug build); about 3 KiB after.
    let handle = size(&super::handle);
    assert!(handle <= 4096, "the request future is {handle} bytes");
    let kernia = size(&crate::identify::kernia::KerniaSessions::identify);
    assert!(kernia <= 512, "Kernia's identify future is {kernia} bytes");
    let facts = {
        fn size2<F, A, B, Fut>(_: &F) -> usize
        where
            F: Fn(A, B) -> Fut,
        {
            std::mem::size_of::<Fut>()
        }
        size2(&crate::proxy::facts::FactsCache::get)
    };
    assert!(facts <= 512, "the facts lookup future is {facts} bytes");
}
