//! The Clerk emulator, at Clerk's wire formats only (Clerk's session-token rules).
//!
//! - [`ClerkKey`] — the fixture RSA key pairs (`tests/fixtures/clerk`), each
//!   with an instance-id `kid` (`ins_…`) and its JWK.
//! - [`ClerkInstance`] — a fake instance host: its publishable key, issuer,
//!   cookie names, and a [`TokenBuilder`] (the minter, `clerk/minter.rs`) for
//!   v1 and v2 session tokens signed exactly as Clerk signs them.
//! - [`JwksServer`] — a small hyper server on `127.0.0.1:0` serving the JWKS at
//!   the Frontend API path (`/.well-known/jwks.json`) and the Backend API path
//!   (`/v1/jwks`, which wants `Authorization: Bearer <secret key>`). Its key set
//!   can be swapped and its answers broken at runtime, and it counts requests.
#![allow(dead_code)] // shared helpers: not every test uses every one

mod minter;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha1::Digest as _;

use cutover::config::{ClerkConfig, ClerkKeys, Secret};

pub use minter::TokenBuilder;

/// The current Unix time in seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ------------------------------------------------------------------ keys

/// One fixture key pair with the `kid` Clerk would give it (the instance id).
#[derive(Clone, Debug)]
pub struct ClerkKey {
    pub kid: String,
    private_pem: &'static str,
    /// SubjectPublicKeyInfo PEM, as Dashboard → API keys → "PEM Public Key".
    pub public_pem: &'static str,
}

impl ClerkKey {
    pub fn a() -> Self {
        ClerkKey {
            kid: "ins_2cutoverTestKeyAaaaaaaaaaa".into(),
            private_pem: include_str!("../../fixtures/clerk/key_a.pem"),
            public_pem: include_str!("../../fixtures/clerk/key_a.pub.pem"),
        }
    }

    pub fn b() -> Self {
        ClerkKey {
            kid: "ins_2cutoverTestKeyBbbbbbbbbbb".into(),
            private_pem: include_str!("../../fixtures/clerk/key_b.pem"),
            public_pem: include_str!("../../fixtures/clerk/key_b.pub.pem"),
        }
    }

    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.into();
        self
    }

    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).expect("fixture private key")
    }

    /// The JWKS entry, shaped like Clerk's `JwksKeyJSON`.
    pub fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.encoding_key(), Algorithm::RS256).expect("jwk");
        let AlgorithmParameters::RSA(rsa) = jwk.algorithm else {
            unreachable!("an RSA key gives RSA parameters")
        };
        json!({"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256", "n": rsa.n, "e": rsa.e})
    }
}

/// A JWKS body holding `keys`.
pub fn jwks_body(keys: &[&ClerkKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

// ------------------------------------------------------------------ instance

/// A fake Clerk instance: its Frontend API host and signing key.
#[derive(Clone, Debug)]
pub struct ClerkInstance {
    /// e.g. `clerk.example.test` (production style) or `<slug>.clerk.accounts.dev`.
    pub host: String,
    /// The key tokens are signed with unless a builder says otherwise.
    pub key: ClerkKey,
    /// The app origin put in `azp`.
    pub app_origin: String,
}

impl ClerkInstance {
    /// A production-style instance, `clerk.example.test`, signing with key A.
    pub fn new() -> Self {
        Self::with_host("clerk.example.test")
    }

    /// A development-style instance (`pk_test_`).
    pub fn dev() -> Self {
        Self::with_host("fake-cutover-42.clerk.accounts.dev")
    }

    pub fn with_host(host: &str) -> Self {
        ClerkInstance {
            host: host.into(),
            key: ClerkKey::a(),
            app_origin: "https://app.example.test".into(),
        }
    }

    /// `pk_live_`/`pk_test_` + base64 of `<host>$` (§1.6).
    pub fn publishable_key(&self) -> String {
        let prefix = if self.host.ends_with(".clerk.accounts.dev") {
            "pk_test_"
        } else {
            "pk_live_"
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}$", self.host));
        format!("{prefix}{encoded}")
    }

    /// `https://<host>`: the `iss` of its tokens.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.host)
    }

    /// Clerk's `getCookieSuffix`, computed here independently of cutover.
    pub fn cookie_suffix(&self) -> String {
        let digest = sha1::Sha1::digest(self.publishable_key().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        b64[..8].replace('+', "-").replace('/', "_")
    }

    /// `__session_<suffix>`.
    pub fn session_cookie(&self) -> String {
        format!("__session_{}", self.cookie_suffix())
    }

    /// `__client_uat_<suffix>`.
    pub fn client_uat_cookie(&self) -> String {
        format!("__client_uat_{}", self.cookie_suffix())
    }

    /// A v2 session token for `user_id` issued now, valid 60 s (see [`TokenBuilder`]).
    pub fn token(&self, user_id: &str) -> TokenBuilder {
        TokenBuilder::new(self, user_id, now())
    }

    /// cutover's configuration for this instance with the given keys.
    pub fn config(&self, keys: ClerkKeys) -> ClerkConfig {
        ClerkConfig {
            publishable_key: Some(self.publishable_key()),
            keys,
            issuers: vec![self.issuer()],
            authorized_parties: vec![self.app_origin.clone()],
            clock_skew: Duration::from_secs(5),
        }
    }

    /// The networkless key configuration (the PEM of [`Self::key`]).
    pub fn pem_keys(&self) -> ClerkKeys {
        ClerkKeys::Pem(self.key.public_pem.into())
    }
}

impl Default for ClerkInstance {
    fn default() -> Self {
        Self::new()
    }
}

/// JWKS key configuration for `url` with the given timings and no secret key.
pub fn jwks_keys(url: String, refresh: Duration, min_refetch: Duration) -> ClerkKeys {
    ClerkKeys::Jwks {
        url,
        secret_key: None,
        refresh,
        min_refetch,
    }
}

/// The same with a secret key sent as `Authorization: Bearer`.
pub fn bapi_jwks_keys(url: String, secret_key: &str) -> ClerkKeys {
    ClerkKeys::Jwks {
        url,
        secret_key: Some(Secret::new(secret_key)),
        refresh: Duration::from_secs(300),
        min_refetch: Duration::from_secs(30),
    }
}

// ------------------------------------------------------------------ JWKS server

/// How the JWKS endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// 200 with the current key set.
    Serve,
    /// This status and a short error body.
    Status(u16),
    /// 200 with this body (garbage, oversized…).
    Body(String),
}

struct JwksState {
    keys: Mutex<Vec<ClerkKey>>,
    mode: Mutex<JwksMode>,
    delay: Mutex<Duration>,
    /// Required bearer on `/v1/jwks`.
    secret_key: Option<String>,
    requests: AtomicUsize,
    authorizations: Mutex<Vec<Option<String>>>,
}

/// The emulator's JWKS endpoint; stops when dropped.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<JwksState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    /// Serves `keys`; `/v1/jwks` accepts `secret_key` as its bearer.
    pub async fn start(keys: &[&ClerkKey], secret_key: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys.iter().map(|k| (*k).clone()).collect()),
            mode: Mutex::new(JwksMode::Serve),
            delay: Mutex::new(Duration::ZERO),
            secret_key: secret_key.map(str::to_string),
            requests: AtomicUsize::new(0),
            authorizations: Mutex::new(Vec::new()),
        });
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| answer(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer { addr, state, task }
    }

    /// The Frontend API JWKS URL (public).
    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// The Backend API JWKS URL (bearer secret key).
    pub fn bapi_url(&self) -> String {
        format!("http://{}/v1/jwks", self.addr)
    }

    /// Replaces the published key set (key rotation).
    pub fn set_keys(&self, keys: &[&ClerkKey]) {
        *self.state.keys.lock().unwrap() = keys.iter().map(|k| (*k).clone()).collect();
    }

    pub fn set_mode(&self, mode: JwksMode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Delays every answer (to make concurrent fetches overlap, or time out).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// JWKS requests answered so far, on either path.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of every request, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.authorizations.lock().unwrap().clone()
    }
}

async fn answer(
    state: Arc<JwksState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    if path != "/.well-known/jwks.json" && path != "/v1/jwks" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"resource_not_found"}]}"#.into(),
        ));
    }
    state.requests.fetch_add(1, Ordering::SeqCst);
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    state
        .authorizations
        .lock()
        .unwrap()
        .push(authorization.clone());
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if path == "/v1/jwks" {
        let expected = state.secret_key.as_ref().map(|s| format!("Bearer {s}"));
        if expected.is_none() || authorization != expected {
            let body = r#"{"errors":[{"message":"Invalid authentication","code":"authentication_invalid"}]}"#;
            return Ok(reply(StatusCode::UNAUTHORIZED, body.into()));
        }
    }
    let mode = state.mode.lock().unwrap().clone();
    Ok(match mode {
        JwksMode::Serve => {
            let keys = state.keys.lock().unwrap().clone();
            reply(StatusCode::OK, jwks_body(&keys.iter().collect::<Vec<_>>()))
        }
        JwksMode::Status(code) => reply(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r#"{"errors":[{"code":"internal_clerk_error"}]}"#.into(),
        ),
        JwksMode::Body(body) => reply(StatusCode::OK, body),
    })
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
