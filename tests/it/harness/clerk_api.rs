//! A local Clerk Backend API: Clerk-shaped JSON, pagination and 429s, for the
//! tests of `cutover import --from-clerk-api` (Clerk itself is unreachable).
//!
//! Serves, under `/v1`, as Clerk's Backend API shapes describe:
//! - `GET /users` — a bare array; `limit` (1–500, default 10), `offset`,
//!   `order_by` (`+created_at` or `-created_at`, the default) and the
//!   `starting_after=<user id>` cursor;
//! - `GET /organizations`, `/organization_memberships`,
//!   `/organization_invitations` (`status` filter) — `{data, total_count}` with
//!   `limit`/`offset`;
//! - `POST /users/{id}/verify_password` `{password}` — 200 `{verified: true}`,
//!   422 wrong password, 400 no password, 404 unknown user (§3.3), with an
//!   optional delay and a forced status (429 with `Retry-After`, 5xx).
//!
//! It checks `Authorization: Bearer <key>` (401 otherwise), can answer every
//! n-th request with `429` and `Retry-After`, enforces a request budget per
//! time window like Clerk's (counting the requests that broke it), can start
//! failing with `500` after a number of requests (an outage), and logs every
//! request it saw.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const KEY: &str = "sk_test_emulated0123456789";

/// The emulator's data and behaviour; change it between requests as needed.
#[derive(Debug, Default)]
pub struct ClerkData {
    /// Users, organizations, memberships and invitations as BAPI JSON objects.
    pub users: Vec<Value>,
    pub organizations: Vec<Value>,
    pub memberships: Vec<Value>,
    pub invitations: Vec<Value>,
    /// Answer every n-th request with 429 (`Retry-After: retry_after_secs`).
    pub throttle_every: Option<u64>,
    pub retry_after_secs: u64,
    /// Clerk's limit: at most this many requests per window, else 429.
    pub budget: Option<(usize, Duration)>,
    /// After this many requests, answer 500 to everything.
    pub fail_after: Option<u64>,
    /// Every request seen: (when, path and query, status answered).
    pub log: Vec<(Instant, String, u16)>,
    /// Requests that went over `budget`.
    pub over_budget: u64,
    /// What `verify_password` checks: user id → the password, or `None` for a
    /// user without one (400). Users not listed are unknown (404).
    pub passwords: HashMap<String, Option<String>>,
    /// Make `verify_password` answer this status instead (429, 500, 503).
    pub verify_status: Option<u16>,
    /// How long `verify_password` takes to answer.
    pub verify_delay: Duration,
}

pub struct ClerkApi {
    pub addr: SocketAddr,
    pub data: Arc<Mutex<ClerkData>>,
    _task: tokio::task::JoinHandle<()>,
}

impl ClerkApi {
    pub async fn start(data: ClerkData) -> ClerkApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = Arc::new(Mutex::new(data));
        let shared = data.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ClerkApi {
            addr,
            data,
            _task: task,
        }
    }

    /// The base URL, `http://127.0.0.1:<port>/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn data(&self) -> std::sync::MutexGuard<'_, ClerkData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn respond(status: StatusCode, body: Value, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(s) = retry_after {
        b = b.header("retry-after", s.to_string());
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let meta = retry_after
        .map(|s| json!({"retryAfter": s}))
        .unwrap_or(json!({}));
    respond(
        status,
        json!({"errors": [{"code": code, "message": message, "long_message": message, "meta": meta}], "clerk_trace_id": "trace"}),
        retry_after,
    )
}

async fn answer(shared: &Mutex<ClerkData>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.uri.path().ends_with("/verify_password") {
        let delay = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .verify_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let mut d = shared.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let n = d.log.len() as u64 + 1;
    let resp = decide(&mut d, &parts, &body, n, now);
    d.log.push((now, target, resp.status().as_u16()));
    resp
}

fn decide(
    d: &mut ClerkData,
    req: &http::request::Parts,
    body: &[u8],
    n: u64,
    now: Instant,
) -> Response<Full<Bytes>> {
    if let Some((max, window)) = d.budget {
        let recent = d
            .log
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) < window)
            .count();
        if recent >= max {
            d.over_budget += 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
                Some(d.retry_after_secs),
            );
        }
    }
    if d.fail_after.is_some_and(|f| n > f) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_clerk_error",
            "Oops",
            None,
        );
    }
    if d.throttle_every.is_some_and(|k| n.is_multiple_of(k)) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests",
            Some(d.retry_after_secs),
        );
    }
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {KEY}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_invalid",
            "Invalid secret key",
            None,
        );
    }
    if let Some(user_id) = req
        .uri
        .path()
        .strip_prefix("/v1/users/")
        .and_then(|rest| rest.strip_suffix("/verify_password"))
    {
        return verify_password(d, req, body, user_id);
    }
    let query: Vec<(String, String)> = req.uri.query().map(url_pairs).unwrap_or_default();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(10);
    if !(1..=500).contains(&limit) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_value_invalid",
            "limit must be 1 to 500",
            None,
        );
    }
    let offset = param("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let page = |items: Vec<&Value>| -> Vec<Value> {
        items
            .into_iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect()
    };
    let created = |v: &&Value| v["created_at"].as_i64().unwrap_or(0);
    match req.uri.path() {
        "/v1/users" => {
            let mut users: Vec<&Value> = d.users.iter().collect();
            users.sort_by_key(created);
            if param("order_by").as_deref() != Some("+created_at") {
                users.reverse();
            }
            if let Some(after) = param("starting_after") {
                if offset > 0 {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "form_param_value_invalid",
                        "starting_after and offset exclude each other",
                        None,
                    );
                }
                match users.iter().position(|u| u["id"] == after.as_str()) {
                    Some(i) => users.drain(..=i).for_each(drop),
                    None => {
                        return error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "form_param_value_invalid",
                            "unknown starting_after",
                            None,
                        );
                    }
                }
            }
            respond(StatusCode::OK, Value::Array(page(users)), None)
        }
        path @ ("/v1/organizations"
        | "/v1/organization_memberships"
        | "/v1/organization_invitations") => {
            let all: Vec<&Value> = match path {
                "/v1/organizations" => d.organizations.iter().collect(),
                "/v1/organization_memberships" => d.memberships.iter().collect(),
                _ => match param("status") {
                    Some(s) => d
                        .invitations
                        .iter()
                        .filter(|i| i["status"] == s.as_str())
                        .collect(),
                    None => d.invitations.iter().collect(),
                },
            };
            let total = all.len();
            respond(
                StatusCode::OK,
                json!({"data": page(all), "total_count": total}),
                None,
            )
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "not found",
            None,
        ),
    }
}

fn verify_password(
    d: &ClerkData,
    req: &http::request::Parts,
    body: &[u8],
    user_id: &str,
) -> Response<Full<Bytes>> {
    if req.method != http::Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "POST",
            None,
        );
    }
    match d.verify_status {
        Some(429) => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
                Some(d.retry_after_secs),
            );
        }
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return error(status, "internal_clerk_error", "Oops", None);
        }
        None => {}
    }
    let given = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["password"].as_str().map(str::to_string));
    let Some(given) = given else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_missing",
            "password is missing",
            None,
        );
    };
    match d.passwords.get(user_id) {
        None => error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            "not found",
            None,
        ),
        Some(None) => error(
            StatusCode::BAD_REQUEST,
            "no_password_set",
            "The user has no password",
            None,
        ),
        Some(Some(p)) if *p == given => respond(StatusCode::OK, json!({"verified": true}), None),
        Some(Some(_)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "incorrect_password",
            "Password is incorrect",
            None,
        ),
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
