//! SIGHUP reload on the real `cutover serve` binary: with requests running
//! continuously over TLS (one long-lived HTTP/2 connection and a fresh
//! connection per request), the certificate and key files are replaced and
//! SIGHUP sent. New connections get the new certificate, the established one
//! keeps working, no request fails, a key that cannot change live is named in
//! the log, and a broken file on a second SIGHUP changes nothing.
//! `live.rs`: the upstreams, `[limits]` and the Clerk key, swapped the same way.

mod live;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::sync::Mutex;

use crate::harness::Engine;
use crate::harness::copies::{ADMIN_TOKEN, ADMIN_TOKEN_ENV, Copy, cli};
use crate::harness::echo::Echo;
use crate::harness::kernia::KerniaServer;

fn der(pem_path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem_path)
        .unwrap()
        .as_ref()
        .to_vec()
}

fn client(roots: &[&Path], http2_only: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_info(true)
        .timeout(Duration::from_secs(10));
    for r in roots {
        let pem = std::fs::read(r).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    if http2_only {
        b = b.http2_prior_knowledge();
    }
    b.build().unwrap()
}

/// The certificate the server presented on this response's connection.
fn peer_cert(resp: &reqwest::Response) -> Vec<u8> {
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info on the response")
        .to_vec()
}

async fn metrics(copy: &Copy) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", copy.admin))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_for_reloads(copy: &Copy, outcome: &str, count: u64) {
    let line = format!("cutover_config_reloads_total{{outcome=\"{outcome}\"}} {count}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if metrics(copy).await.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no `{line}` in the metrics");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hup(copy: &Copy) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &copy.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -HUP failed");
}

#[derive(Default)]
struct Load {
    ok_kept: AtomicU64,
    ok_fresh: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// Certificates fresh connections saw, in order (consecutive duplicates folded).
    seen: Mutex<Vec<Vec<u8>>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_without_failing_a_request_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["old", "new"] {
        let (ok, out, err) = cli(&[
            "dev-cert",
            "--dir",
            d.to_str().unwrap(),
            "--name",
            name,
            "--host",
            "localhost",
        ]);
        assert!(ok, "dev-cert: {out}{err}");
    }
    let (live_crt, live_key) = (d.join("live.crt"), d.join("live.key"));
    std::fs::copy(d.join("old.crt"), &live_crt).unwrap();
    std::fs::copy(d.join("old.key"), &live_key).unwrap();
    let (old_der, new_der) = (der(&d.join("old.crt")), der(&d.join("new.crt")));
    assert_ne!(old_der, new_der);

    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let kernia_app = KerniaServer::start(Engine::Sqlite).await; // Kernia's schema
    let config = format!(
        r#"
[server]
listen = "@PUBLIC@"
tls_cert = "{crt}"
tls_key = "{key}"
shutdown_grace_secs = 1
[upstreams]
legacy = "{legacy}"
kernia = "{kernia}"
[kernia]
secret = "{secret}"
database_url = "{db}"
[log]
level = "info"
[admin]
listen = "@ADMIN@"
token_env = "{ADMIN_TOKEN_ENV}"
"#,
        crt = live_crt.display(),
        key = live_key.display(),
        legacy = legacy.url(),
        kernia = kernia.url(),
        secret = crate::harness::kernia::SECRET,
        db = kernia_app.db.url,
    );
    let copy = Copy::start(d, "sighup", &config);
    let port = copy.url.rsplit(':').next().unwrap().to_string();
    let url = format!("https://localhost:{port}/page");
    let roots = [d.join("old.crt"), d.join("new.crt")];
    let roots: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();

    // Requests run continuously: one HTTP/2 connection kept open the whole
    // time, and a new TLS connection per request.
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let kept = client(&roots, true);
    let first = kept.get(&url).send().await.unwrap();
    assert_eq!(first.version(), reqwest::Version::HTTP_2);
    assert_eq!(peer_cert(&first), old_der);
    let mut tasks = Vec::new();
    {
        let (load, stop, url) = (load.clone(), stop.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                match kept.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        load.ok_kept.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(r) => load
                        .failures
                        .lock()
                        .await
                        .push(format!("kept: {}", r.status())),
                    Err(e) => load.failures.lock().await.push(format!("kept: {e:?}")),
                }
            }
        }));
    }
    {
        let (load, stop, url) = (load.clone(), stop.clone(), url.clone());
        let roots: Vec<std::path::PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
        tasks.push(tokio::spawn(async move {
            let roots: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();
            while !stop.load(Ordering::Acquire) {
                match client(&roots, false).get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let cert = peer_cert(&r);
                        let mut seen = load.seen.lock().await;
                        if seen.last() != Some(&cert) {
                            seen.push(cert);
                        }
                        load.ok_fresh.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(r) => load
                        .failures
                        .lock()
                        .await
                        .push(format!("fresh: {}", r.status())),
                    Err(e) => load.failures.lock().await.push(format!("fresh: {e:?}")),
                }
            }
        }));
    }
    let wait_for = |what: &'static str, f: Box<dyn Fn(&Load) -> bool + Send + Sync>| {
        let load = load.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !f(&load) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(
        "requests before the swap",
        Box::new(|l| {
            l.ok_kept.load(Ordering::Acquire) >= 20 && l.ok_fresh.load(Ordering::Acquire) >= 5
        }),
    )
    .await;

    // Swap: a new pair in the same files, a setting that needs a restart and
    // a new log filter; SIGHUP.
    std::fs::copy(d.join("new.crt"), &live_crt).unwrap();
    std::fs::copy(d.join("new.key"), &live_key).unwrap();
    let text = std::fs::read_to_string(&copy.config).unwrap();
    let changed = text
        .replace("shutdown_grace_secs = 1", "shutdown_grace_secs = 3")
        .replace("level = \"info\"", "level = \"info,hyper=warn\"");
    std::fs::write(&copy.config, &changed).unwrap();
    let (kept_before, fresh_before) = (
        load.ok_kept.load(Ordering::Acquire),
        load.ok_fresh.load(Ordering::Acquire),
    );
    hup(&copy);
    wait_for_reloads(&copy, "ok", 1).await;
    // New connections see the new certificate; both streams of requests go on.
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.seen.lock().await.last() != Some(&new_der) {
            assert!(
                Instant::now() < deadline,
                "no fresh connection saw the new certificate"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let fresh_after_swap = load.ok_fresh.load(Ordering::Acquire);
    wait_for(
        "requests after the swap",
        Box::new(move |l| {
            l.ok_kept.load(Ordering::Acquire) >= kept_before + 20
                && l.ok_fresh.load(Ordering::Acquire) >= fresh_after_swap + 5
        }),
    )
    .await;
    assert!(load.ok_fresh.load(Ordering::Acquire) > fresh_before);
    let direct = client(&roots, false).get(&url).send().await.unwrap();
    assert_eq!(
        peer_cert(&direct),
        new_der,
        "a new connection gets the new certificate"
    );

    // Second SIGHUP with a broken file (and the old pair back in the
    // certificate files): nothing changes.
    std::fs::copy(d.join("old.crt"), &live_crt).unwrap();
    std::fs::copy(d.join("old.key"), &live_key).unwrap();
    std::fs::write(&copy.config, format!("{changed}\n[server\nbroken = ")).unwrap();
    hup(&copy);
    wait_for_reloads(&copy, "error", 1).await;
    let fresh_after_error = load.ok_fresh.load(Ordering::Acquire);
    wait_for(
        "requests after the refused reload",
        Box::new(move |l| l.ok_fresh.load(Ordering::Acquire) >= fresh_after_error + 5),
    )
    .await;
    let direct = client(&roots, false).get(&url).send().await.unwrap();
    assert_eq!(
        peer_cert(&direct),
        new_der,
        "a refused reload keeps the certificate in force"
    );

    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = load.failures.lock().await;
    assert!(
        failures.is_empty(),
        "requests failed during the reloads: {failures:?}"
    );
    let seen = load.seen.lock().await;
    assert_eq!(
        *seen,
        vec![old_der.clone(), new_der.clone()],
        "fresh connections: the old certificate, then only the new one"
    );
    println!(
        "sighup: {} requests on the kept HTTP/2 connection, {} on fresh TLS connections, none failed",
        load.ok_kept.load(Ordering::Acquire),
        load.ok_fresh.load(Ordering::Acquire)
    );

    let metrics = metrics(&copy).await;
    assert!(
        metrics.contains("cutover_config_reloads_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cutover_config_reloads_total{outcome=\"error\"} 1"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(d.join("sighup.log")).unwrap();
    let warn = log
        .lines()
        .find(|l| l.contains("cannot change while running"))
        .unwrap_or_else(|| panic!("no line names the keys left as they were:\n{log}"));
    assert!(warn.contains("server.shutdown_grace_secs"), "{warn}");
    assert!(!warn.contains("server.tls_cert"), "{warn}");
    assert!(!warn.contains("log.level"), "{warn}");
    assert!(
        log.lines()
            .any(|l| l.contains("configuration reloaded") && l.contains("info,hyper=warn")),
        "{log}"
    );
    let refused = log
        .lines()
        .find(|l| l.contains("configuration reload refused"))
        .unwrap_or_else(|| panic!("the refused reload is not logged:\n{log}"));
    assert!(refused.contains("TOML"), "the log says why: {refused}");
}
