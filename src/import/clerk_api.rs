//! Pulling Clerk's Backend API into files (`--from-clerk-api`), so the import
//! then reads them like any saved export.
//!
//! - Users: `GET /users?limit=500&order_by=+created_at&starting_after=<last id>`
//!   (cursor pagination, bare arrays). Organizations, all memberships
//!   (`/organization_memberships`) and pending invitations
//!   (`/organization_invitations?status=pending`): `limit`/`offset` pages of
//!   `{data, total_count}`.
//! - Paced under Clerk's limit (production: 1000 requests per 10 s) by a
//!   sliding window, and a `429` waits as long as its `Retry-After` says.
//!   Server errors and broken connections are retried with a growing pause.
//! - Resumable: every page is saved as its own file (written whole, then
//!   renamed into place), then `pull-state.json` records the cursor. An
//!   interrupted pull started again asks for the next page, never twice for
//!   a saved one.
//!
//! The secret key travels only in the `Authorization` header; no message names it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::Secret;

/// A failure talking to the Backend API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the Backend API refused the secret key ({status} on {path}): check [import] clerk_secret_key_env"
    )]
    Unauthorized { status: u16, path: String },
    #[error("the Backend API answered {status} on {path}: {body}")]
    Status {
        status: u16,
        path: String,
        body: String,
    },
    #[error("cannot reach the Backend API ({path}) after {tries} tries: {message}")]
    Unreachable {
        path: String,
        tries: u32,
        message: String,
    },
    #[error("the Backend API answered 429 to {path} {tries} times in a row; try again later")]
    Throttled { path: String, tries: u32 },
    #[error("unexpected answer from {path}: {message}")]
    Shape { path: String, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// e.g. `https://api.clerk.com/v1`
    pub base_url: String,
    pub secret_key: Secret,
    pub dir: PathBuf,
    /// At most this many requests per `window`.
    pub max_requests: u32,
    pub window: Duration,
    pub page_size: u32,
    /// Consecutive 429s tolerated on one request.
    pub max_throttled: u32,
    /// Tries for a request that fails with a server error or a broken connection.
    pub max_tries: u32,
    /// First pause after such a failure; doubles each time.
    pub backoff: Duration,
    pub timeout: Duration,
}

impl PullOptions {
    pub fn new(base_url: &str, secret_key: String, dir: &Path, per_10s: u32) -> PullOptions {
        PullOptions {
            base_url: base_url.trim_end_matches('/').to_string(),
            secret_key: Secret::new(secret_key),
            dir: dir.to_path_buf(),
            max_requests: per_10s.max(1),
            window: Duration::from_secs(10),
            page_size: 500,
            max_throttled: 30,
            max_tries: 5,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
        }
    }
}

/// The files a pull saved, by entity, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledFiles {
    pub users: Vec<PathBuf>,
    pub organizations: Vec<PathBuf>,
    pub memberships: Vec<PathBuf>,
    pub invitations: Vec<PathBuf>,
}

/// What a pull did.
#[derive(Debug, Clone, Default)]
pub struct Pulled {
    pub files: PulledFiles,
    pub state: PullState,
    /// Requests made by this process (not by an earlier, interrupted one).
    pub requests: u64,
    /// Of those, answered 429.
    pub throttled: u64,
}

impl Pulled {
    pub fn summary(&self) -> String {
        let s = &self.state;
        format!(
            "{} users, {} organizations, {} memberships, {} pending invitations",
            s.users.count, s.organizations.count, s.memberships.count, s.invitations.count
        )
    }
}

/// Where a pull stands, per entity; saved after every page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PullState {
    pub users: Cursor,
    pub organizations: Cursor,
    pub memberships: Cursor,
    pub invitations: Cursor,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cursor {
    pub pages: u32,
    pub count: u64,
    /// Users: the last id saved (`starting_after`).
    pub last_id: Option<String>,
    pub done: bool,
}

/// A sliding window of request times: at most `max` in any `window`.
#[derive(Debug)]
pub struct Pacer {
    max: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl Pacer {
    pub fn new(max: u32, window: Duration) -> Pacer {
        Pacer {
            max: max.max(1) as usize,
            window,
            sent: VecDeque::new(),
        }
    }

    /// How long to wait before a request may go at `now`; zero means go, and
    /// the request is counted.
    pub fn delay(&mut self, now: Instant) -> Duration {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.max {
            self.sent.push_back(now);
            return Duration::ZERO;
        }
        self.sent
            .front()
            .map(|t| (*t + self.window).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(1))
    }

    async fn acquire(&mut self) {
        loop {
            let wait = self.delay(Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` in seconds (Clerk sends seconds); an HTTP date or garbage
/// counts as 10 s. Capped at 5 minutes.
pub fn retry_after(value: Option<&str>) -> Duration {
    let secs = value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(10);
    Duration::from_secs(secs.min(300))
}

struct Client {
    http: reqwest::Client,
    opts: PullOptions,
    pacer: Pacer,
    requests: u64,
    throttled: u64,
}

impl Client {
    /// GET `path_and_query` (relative to the base URL), paced and retried.
    async fn get(&mut self, path_and_query: &str) -> Result<bytes::Bytes, ApiError> {
        let url = format!("{}{path_and_query}", self.opts.base_url);
        let path = path_and_query
            .split('?')
            .next()
            .unwrap_or(path_and_query)
            .to_string();
        let (mut throttled, mut tries) = (0u32, 0u32);
        loop {
            self.pacer.acquire().await;
            self.requests += 1;
            let sent = self
                .http
                .get(&url)
                .bearer_auth(self.opts.secret_key.expose())
                .header("accept", "application/json")
                .send()
                .await;
            let failure = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        match resp.bytes().await {
                            Ok(body) => return Ok(body),
                            Err(e) => e.to_string(),
                        }
                    } else if status.as_u16() == 429 {
                        self.throttled += 1;
                        throttled += 1;
                        if throttled > self.opts.max_throttled {
                            return Err(ApiError::Throttled {
                                path,
                                tries: throttled,
                            });
                        }
                        let wait = retry_after(
                            resp.headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()),
                        );
                        tracing::info!(path = %path, wait_secs = wait.as_secs(), "Backend API answered 429; waiting");
                        tokio::time::sleep(wait).await;
                        continue;
                    } else if status.as_u16() == 401 || status.as_u16() == 403 {
                        return Err(ApiError::Unauthorized {
                            status: status.as_u16(),
                            path,
                        });
                    } else if status.is_client_error() {
                        let body = resp.text().await.unwrap_or_default();
                        let body: String = body.chars().take(300).collect();
                        return Err(ApiError::Status {
                            status: status.as_u16(),
                            path,
                            body,
                        });
                    } else {
                        format!("HTTP {status}")
                    }
                }
                Err(e) => e.to_string(),
            };
            tries += 1;
            if tries >= self.opts.max_tries {
                return Err(ApiError::Unreachable {
                    path,
                    tries,
                    message: failure,
                });
            }
            let pause = self.opts.backoff * 2u32.saturating_pow(tries - 1);
            tracing::warn!(path = %path, tries, error = %failure, "Backend API request failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<String>,
}

#[derive(Deserialize)]
struct DataPage {
    data: Vec<serde::de::IgnoredAny>,
    total_count: Option<u64>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |source| ApiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` whole: a temporary name, then a rename.
fn save(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn page_file(dir: &Path, stem: &str, page: u32) -> PathBuf {
    dir.join(format!("{stem}-{page:06}.json"))
}

/// Pull everything into `opts.dir`, resuming from its `pull-state.json`.
pub async fn pull(opts: &PullOptions) -> Result<Pulled, ApiError> {
    std::fs::create_dir_all(&opts.dir).map_err(io_err(&opts.dir))?;
    let state_path = opts.dir.join("pull-state.json");
    let mut state: PullState = match std::fs::read(&state_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ApiError::Shape {
            path: state_path.display().to_string(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PullState::default(),
        Err(e) => return Err(io_err(&state_path)(e)),
    };
    let http = reqwest::Client::builder()
        .timeout(opts.timeout)
        .user_agent(concat!("cutover/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ApiError::Unreachable {
            path: String::new(),
            tries: 0,
            message: e.to_string(),
        })?;
    let mut client = Client {
        http,
        opts: opts.clone(),
        pacer: Pacer::new(opts.max_requests, opts.window),
        requests: 0,
        throttled: 0,
    };
    let limit = opts.page_size;
    let save_state = |state: &PullState| -> Result<(), ApiError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| ApiError::Shape {
            path: "pull-state.json".into(),
            message: e.to_string(),
        })?;
        save(&state_path, &bytes)
    };

    while !state.users.done {
        let mut q = format!("/users?limit={limit}&order_by=%2Bcreated_at");
        if let Some(last) = &state.users.last_id {
            q.push_str("&starting_after=");
            q.push_str(&url_escape(last));
        }
        let body = client.get(&q).await?;
        let page: Vec<IdOnly> = serde_json::from_slice(&body).map_err(|e| ApiError::Shape {
            path: "/users".into(),
            message: e.to_string(),
        })?;
        if !page.is_empty() {
            state.users.pages += 1;
            save(&page_file(&opts.dir, "users", state.users.pages), &body)?;
            state.users.count += page.len() as u64;
            state.users.last_id = page.last().and_then(|u| u.id.clone());
        }
        state.users.done = page.len() < limit as usize || state.users.last_id.is_none();
        save_state(&state)?;
    }
    for (stem, endpoint) in [
        ("organizations", "/organizations?order_by=%2Bcreated_at&"),
        ("memberships", "/organization_memberships?"),
        ("invitations", "/organization_invitations?status=pending&"),
    ] {
        loop {
            let cursor = match stem {
                "organizations" => &mut state.organizations,
                "memberships" => &mut state.memberships,
                _ => &mut state.invitations,
            };
            if cursor.done {
                break;
            }
            let q = format!("{endpoint}limit={limit}&offset={}", cursor.count);
            let body = client.get(&q).await?;
            let page: DataPage = serde_json::from_slice(&body).map_err(|e| ApiError::Shape {
                path: endpoint.split('?').next().unwrap_or(endpoint).into(),
                message: e.to_string(),
            })?;
            let n = page.data.len() as u64;
            if n > 0 {
                cursor.pages += 1;
                save(&page_file(&opts.dir, stem, cursor.pages), &body)?;
                cursor.count += n;
            }
            cursor.done =
                n < u64::from(limit) || page.total_count.is_some_and(|t| cursor.count >= t);
            save_state(&state)?;
        }
    }
    let files = PulledFiles {
        users: (1..=state.users.pages)
            .map(|p| page_file(&opts.dir, "users", p))
            .collect(),
        organizations: (1..=state.organizations.pages)
            .map(|p| page_file(&opts.dir, "organizations", p))
            .collect(),
        memberships: (1..=state.memberships.pages)
            .map(|p| page_file(&opts.dir, "memberships", p))
            .collect(),
        invitations: (1..=state.invitations.pages)
            .map(|p| page_file(&opts.dir, "invitations", p))
            .collect(),
    };
    Ok(Pulled {
        files,
        state,
        requests: client.requests,
        throttled: client.throttled,
    })
}

/// A catch-up run: when `dir` holds a pull that finished, set it aside
/// (`pull-state.previous.json`) so the next [`pull`] asks Clerk for
/// everything again. An interrupted pull is left to resume. Returns whether a
/// finished pull was set aside.
pub fn restart_if_finished(dir: &Path) -> Result<bool, ApiError> {
    let state_path = dir.join("pull-state.json");
    let state: PullState = match std::fs::read(&state_path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(_) => return Ok(false),
        },
        Err(_) => return Ok(false),
    };
    let finished = [
        &state.users,
        &state.organizations,
        &state.memberships,
        &state.invitations,
    ]
    .iter()
    .all(|c| c.done);
    if finished {
        let previous = dir.join("pull-state.previous.json");
        std::fs::rename(&state_path, &previous).map_err(io_err(&state_path))?;
    }
    Ok(finished)
}

/// Every `id` in saved pages: bare arrays (users) or `{data: [...]}` pages.
pub fn listed_ids(files: &[PathBuf]) -> Result<std::collections::HashSet<String>, ApiError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Page {
        Bare(Vec<IdOnly>),
        Data { data: Vec<IdOnly> },
    }
    let mut ids = std::collections::HashSet::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(io_err(f))?;
        let page: Page = serde_json::from_slice(&bytes).map_err(|e| ApiError::Shape {
            path: f.display().to_string(),
            message: e.to_string(),
        })?;
        let items = match page {
            Page::Bare(v) | Page::Data { data: v } => v,
        };
        ids.extend(items.into_iter().filter_map(|i| i.id));
    }
    Ok(ids)
}

/// Percent-encode a cursor value for a query string.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_never_lets_more_than_max_through_a_window() {
        let mut p = Pacer::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(p.delay(t0), Duration::ZERO);
        }
        assert_eq!(p.delay(t0), Duration::from_secs(10));
        assert_eq!(p.delay(t0 + Duration::from_secs(4)), Duration::from_secs(6));
        assert_eq!(p.delay(t0 + Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_and_caps_them() {
        assert_eq!(retry_after(Some("3")), Duration::from_secs(3));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_secs(10)
        );
        assert_eq!(retry_after(None), Duration::from_secs(10));
        assert_eq!(retry_after(Some("86400")), Duration::from_secs(300));
    }

    #[test]
    fn cursors_are_escaped() {
        assert_eq!(url_escape("user_2abc"), "user_2abc");
        assert_eq!(url_escape("a b&c"), "a%20b%26c");
    }
}
