//! The cost of a live password verification (`verify_password`) and what a
//! sign-in storm does against Clerk's Backend API rate limit.
//!
//! Runs an in-process stand-in for Clerk's `POST /v1/users/{id}/verify_password`
//! (fixed added latency, Clerk's per-instance budget of requests per 10 s,
//! 429 + `Retry-After` beyond it) and drives cutover's own `LiveVerifier`
//! (bounded concurrency, deadline, circuit breaker) with it. Prints numbers;
//! asserts nothing.
//!
//! Usage: `cargo run --example bench_live_verify -- [sign-ins] [storm concurrency] [clerk latency ms]`

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover::clerk_sync::live::{ClerkAnswer, LiveVerifier};
use cutover::config::{LiveVerifyConfig, Secret};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Clerk's stand-in: a sliding window of admitted requests.
struct Budget {
    max: usize,
    window: Duration,
    seen: std::collections::VecDeque<Instant>,
    throttled: u64,
}

async fn start_clerk(latency: Duration, per_10s: usize) -> (String, Arc<Mutex<Budget>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let budget = Arc::new(Mutex::new(Budget {
        max: per_10s,
        window: Duration::from_secs(10),
        seen: Default::default(),
        throttled: 0,
    }));
    let shared = budget.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let admitted = {
                            let mut b = shared.lock().unwrap();
                            let now = Instant::now();
                            while b.seen.front().is_some_and(|t| now - *t >= b.window) {
                                b.seen.pop_front();
                            }
                            if b.seen.len() < b.max {
                                b.seen.push_back(now);
                                true
                            } else {
                                b.throttled += 1;
                                false
                            }
                        };
                        if !admitted {
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(StatusCode::TOO_MANY_REQUESTS)
                                    .header("retry-after", "10")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            );
                        }
                        tokio::time::sleep(latency).await;
                        let ok = body.is_ok_and(|b| b.windows(8).any(|w| w == b"right-pw"));
                        let (status, text): (u16, &'static [u8]) = if ok {
                            (200, br#"{"verified":true}"#)
                        } else {
                            (422, br#"{"errors":[{"code":"incorrect_password"}]}"#)
                        };
                        Ok(Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from_static(text)))
                            .unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/v1"), budget)
}

fn verifier(api_url: &str, concurrency: usize) -> Arc<LiveVerifier> {
    Arc::new(
        LiveVerifier::new(&LiveVerifyConfig {
            api_url: api_url.into(),
            secret_key: Secret::new("sk_test_bench"),
            concurrency,
            queue_wait: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
        })
        .unwrap(),
    )
}

/// `n` sign-ins, `at_once` in flight; returns each one's latency and answer.
async fn storm(
    v: Arc<LiveVerifier>,
    n: usize,
    at_once: usize,
) -> (Vec<Duration>, Vec<ClerkAnswer>, Duration) {
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for i in 0..n {
        let v = v.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let a = v.verify(&format!("user_bench{i}"), "right-pw").await;
            drop(permit);
            (t.elapsed(), a)
        }));
    }
    let mut lat = Vec::new();
    let mut answers = Vec::new();
    for t in tasks {
        let (d, a) = t.await.unwrap();
        lat.push(d);
        answers.push(a);
    }
    (lat, answers, started.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, (mut lat, answers, wall): (Vec<Duration>, Vec<ClerkAnswer>, Duration)) {
    lat.sort();
    let count = |f: fn(&ClerkAnswer) -> bool| answers.iter().filter(|a| f(a)).count();
    println!(
        "{name:<44} n={:<5} wall={:>7.1} ms  {:>7.1}/s  p50={:>6.2} ms p90={:>6.2} ms p99={:>6.2} ms  verified={} throttled(503)={} circuit_open(503)={} saturated(503)={} failed={}",
        answers.len(),
        wall.as_secs_f64() * 1000.0,
        answers.len() as f64 / wall.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        count(|a| matches!(a, ClerkAnswer::Verified)),
        count(|a| matches!(a, ClerkAnswer::Throttled { .. })),
        count(|a| matches!(a, ClerkAnswer::CircuitOpen { .. })),
        count(|a| matches!(a, ClerkAnswer::Saturated)),
        count(|a| matches!(a, ClerkAnswer::Failed)),
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let at_once: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let latency_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let latency = Duration::from_millis(latency_ms);
    println!(
        "clerk stand-in latency {latency_ms} ms; live_concurrency 16, live_queue_ms 500, live_timeout_ms 2000"
    );

    // The cost of one live verify, one at a time, no rate limit.
    let (url, _) = start_clerk(latency, usize::MAX).await;
    let v = verifier(&url, 16);
    let _ = storm(v.clone(), 20, 1).await; // warm the connection pool
    report(
        "sequential (cost of one live verify)",
        storm(v, n.min(200), 1).await,
    );

    // A storm, no rate limit: bounded by live_concurrency.
    let (url, _) = start_clerk(latency, usize::MAX).await;
    report(
        "storm, unlimited Clerk",
        storm(verifier(&url, 16), n, at_once).await,
    );

    // A storm against Clerk's budgets (development 100 / 10 s, production 1000 / 10 s).
    for (name, budget) in [
        ("storm, Clerk dev budget 100/10s", 100usize),
        ("storm, Clerk prod budget 1000/10s", 1000),
    ] {
        let (url, b) = start_clerk(latency, budget).await;
        let result = storm(verifier(&url, 16), n, at_once).await;
        report(name, result);
        println!(
            "{:<44} requests refused by Clerk (429): {}",
            "",
            b.lock().unwrap().throttled
        );
    }
}
