//! The sign-in storm benchmark (`scripts/bench-migration.sh` runs it).
//!
//! Subcommands:
//! - `cost` — the machine's hashing limit: times one bcrypt cost-10 verify and
//!   one Kernia Argon2id hash (m=65536, t=3, p=4) on this machine, single
//!   threaded, and prints `cores / (verify + hash)` migrations per second.
//! - `seed <database-url> <count>` — `count` pending users (`storm<i>@bench.test`,
//!   password `storm-password`, one shared bcrypt cost-10 digest) in a database
//!   where the Kernia app has created its schema.
//! - `run <cutover-url> <count> <signin-concurrency>` — ordinary requests at idle,
//!   then every user signing in once while ordinary requests keep going; prints
//!   migrations per second and the ordinary requests' latency percentiles for both
//!   phases.

use std::time::{Duration, Instant};

use cutover::db::kernia::{self, NewUser};
use cutover::db::ledger::{self, LedgerState, NewLedgerEntry};
use cutover::db::{Db, KerniaSchema, now_secs};

const PASSWORD: &str = "storm-password";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("cost") => cost(),
        Some("seed") => seed(&args[1], args[2].parse().expect("count")).await,
        Some("run") => {
            run(
                &args[1],
                args[2].parse().expect("count"),
                args[3].parse().expect("concurrency"),
            )
            .await
        }
        _ => eprintln!(
            "usage: bench_storm cost | seed <db-url> <count> | run <url> <count> <concurrency>"
        ),
    }
}

fn cost() {
    let digest = bcrypt::hash(PASSWORD, 10).unwrap();
    let legacy = cutover::hash::parse("bcrypt", &digest, &cutover::hash::Caps::default()).unwrap();
    let params = cutover::hash::KerniaArgon2Params::default();
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        assert!(legacy.verify(PASSWORD.as_bytes()));
    }
    let verify = t.elapsed().as_secs_f64() / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        cutover::hash::kernia_argon2id(PASSWORD.as_bytes(), &params).unwrap();
    }
    let hash = t.elapsed().as_secs_f64() / n as f64;
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    println!("bcrypt cost-10 verify      {:8.1} ms", verify * 1000.0);
    println!("Kernia Argon2id hash       {:8.1} ms", hash * 1000.0);
    println!(
        "hashing limit              {:8.2} migrations/s ({cores} cores / (verify + hash))",
        cores as f64 / (verify + hash)
    );
}

async fn seed(url: &str, count: usize) {
    let db = Db::connect(url, 4).await.expect("database");
    db.migrate().await.expect("migrations");
    let schema = KerniaSchema::read(&db).await.expect("Kernia's schema");
    let digest = bcrypt::hash(PASSWORD, 10).unwrap();
    let now = now_secs();
    let mut tx = db.begin().await.unwrap();
    for i in 0..count {
        let id = format!("user_storm{i}");
        let email = format!("storm{i}@bench.test");
        let user = NewUser {
            id: id.clone(),
            email: email.clone(),
            email_verified: true,
            created_at: now,
            updated_at: now,
            ..NewUser::default()
        };
        kernia::insert_user(&mut tx.conn(), &schema, &user)
            .await
            .unwrap();
        let entry = NewLedgerEntry {
            user_id: id,
            email: Some(email),
            hasher: Some("bcrypt".into()),
            digest: Some(digest.clone()),
            state: Some(LedgerState::PendingPassword),
            ..NewLedgerEntry::default()
        };
        ledger::insert_if_absent(&mut tx.conn(), &entry)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    println!("seeded {count} pending users");
}

async fn run(base: &str, count: usize, concurrency: usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // Idle: ordinary requests only.
    let idle = ordinary_for(&http, base, Duration::from_secs(5), None).await;

    // Storm: every user signs in once, while ordinary requests keep going.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let background = {
        let http = http.clone();
        let base = base.to_string();
        tokio::spawn(async move {
            ordinary_for(&http, &base, Duration::from_secs(3600), Some(done_rx)).await
        })
    };
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let http = http.clone();
        let url = format!("{base}/api/auth/sign-in/email");
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut busy, mut other) = (0usize, 0usize, 0usize);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return (ok, busy, other);
                }
                loop {
                    let resp = http
                        .post(&url)
                        .json(&serde_json::json!({"email": format!("storm{i}@bench.test"), "password": PASSWORD}))
                        .send()
                        .await;
                    match resp.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            ok += 1;
                            break;
                        }
                        Ok(503) => {
                            // Saturated: back off as Retry-After asks, then try again.
                            busy += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        _ => {
                            other += 1;
                            break;
                        }
                    }
                }
            }
        }));
    }
    let (mut ok, mut busy, mut other) = (0, 0, 0);
    for w in workers {
        let (a, b, c) = w.await.unwrap();
        ok += a;
        busy += b;
        other += c;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = done_tx.send(true);
    let storm = background.await.unwrap();
    println!(
        "sign-ins: {ok} migrated, {other} failed, {busy} answered 503 (retried) in {elapsed:.1} s"
    );
    println!("migrations per second      {:8.2}", ok as f64 / elapsed);
    println!(
        "ordinary requests          {:>8} {:>8} {:>8} {:>8}",
        "count", "p50 ms", "p99 ms", "max ms"
    );
    print_latencies("idle", &idle);
    print_latencies("during the storm", &storm);
}

/// Ordinary GETs, 4 at a time, until `stop` says so or `limit` has passed.
async fn ordinary_for(
    http: &reqwest::Client,
    base: &str,
    limit: Duration,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> Vec<f64> {
    let until = Instant::now() + limit;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let http = http.clone();
        let url = format!("{base}/");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < until && !stop.as_ref().is_some_and(|s| *s.borrow()) {
                let t = Instant::now();
                let ok = http
                    .get(&url)
                    .header("cookie", "cutover_route=b.00000000000000000000000000000000")
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn print_latencies(label: &str, lat: &[f64]) {
    let mut v = lat.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "  {label:<24} {:>8} {:>8.2} {:>8.2} {:>8.2}",
        v.len(),
        pct(0.50),
        pct(0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}
