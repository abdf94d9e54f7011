//! `cutover serve` end to end: a running cutover between a test client and
//! echo upstreams (and the real Kernia server where sessions are involved).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::Engine;
use crate::harness::databases::TestDatabase;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::client;
use crate::harness::server::{Cutover, tls_section, toml, with_tls};

struct Stack {
    legacy: Echo,
    kernia: Echo,
    _db: TestDatabase,
    cutover: Cutover,
}

async fn stack(extra: &str) -> Stack {
    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let cutover = Cutover::start(&toml(&legacy.url(), &kernia.url(), &db.url, extra)).await;
    Stack {
        legacy,
        kernia,
        _db: db,
        cutover,
    }
}

fn set_cookie<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn anonymous_browsers_follow_the_rollout_and_are_pinned() {
    let s = stack("[rollout]\npercentage = 0\n").await;
    let resp = client()
        .get(s.cutover.url("/hello?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pin = set_cookie(&resp, "cutover_route")
        .expect("a new browser is pinned")
        .to_string();
    assert!(
        pin.contains("HttpOnly") && pin.contains("SameSite=Lax") && pin.contains("Path=/"),
        "{pin}"
    );
    assert!(
        !pin.contains("Secure"),
        "no Secure flag on plain HTTP: {pin}"
    );
    let body = echo::read(resp).await;
    assert_eq!(body["served_by"], "legacy");
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["query"], "x=1");

    // The same browser, pinned, gets no new cookie.
    let again = client()
        .get(s.cutover.url("/hello"))
        .header("cookie", cookie_pair(&pin))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&again, "cutover_route").is_none());

    let all_in = stack("[rollout]\npercentage = 100\n").await;
    let body = echo::read(client().get(all_in.cutover.url("/")).send().await.unwrap()).await;
    assert_eq!(body["served_by"], "kernia");
    assert_eq!(s.kernia.served(), 0);
}

#[tokio::test]
async fn forwarding_headers_are_set_and_spoofed_ones_replaced() {
    let s = stack("").await;
    let resp = client()
        .get(s.cutover.url("/whoami"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=6.6.6.6")
        .header("x-cutover-user-id", "user_admin")
        .header("x-cutover-provider", "kernia")
        .header("x-cutover-assertion", "forged")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .unwrap();
    let e = echo::read(resp).await;
    assert_eq!(echo::header(&e, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(echo::header(&e, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(echo::header(&e, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        echo::header(&e, "x-forwarded-host"),
        Some(s.cutover.http.to_string().as_str())
    );
    assert_eq!(
        echo::header(&e, "host"),
        Some(s.legacy.addr.to_string().as_str())
    );
    assert_eq!(echo::header(&e, "x-cutover-provider"), Some("anonymous"));
    for gone in [
        "x-cutover-user-id",
        "x-cutover-assertion",
        "forwarded",
        "x-hop",
        "connection",
    ] {
        assert_eq!(echo::header(&e, gone), None, "{gone} reached the upstream");
    }

    // Behind a trusted load balancer, its list is kept and extended.
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let text = toml(&legacy.url(), &legacy.url(), &db.url, "").replace(
        "shutdown_grace_secs = 5",
        "shutdown_grace_secs = 5\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let c = Cutover::start(&text).await;
    let e = echo::read(
        client()
            .get(c.url("/"))
            .header("x-forwarded-for", "198.51.100.7")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        echo::header(&e, "x-forwarded-for"),
        Some("198.51.100.7, 127.0.0.1")
    );
    assert_eq!(echo::header(&e, "x-real-ip"), Some("198.51.100.7"));
    assert_eq!(echo::header(&e, "x-forwarded-proto"), Some("https"));
}

/// Sends `n` first visits and returns (pin cookie, served_by) for each.
async fn first_visits(c: &Cutover, n: usize) -> Vec<(String, String)> {
    let http = client();
    futures_util::stream::iter(0..n)
        .map(|_| {
            let http = http.clone();
            let url = c.url("/");
            async move {
                let resp = http.get(url).send().await.unwrap();
                let pin = cookie_pair(set_cookie(&resp, "cutover_route").unwrap());
                let side = resp.headers()["x-served-by"].to_str().unwrap().to_string();
                (pin, side)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test]
async fn ten_thousand_browsers_split_by_percentage_and_raising_it_moves_none_back() {
    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let at = |pct: &str| {
        toml(
            &legacy.url(),
            &kernia.url(),
            &db.url,
            &format!("[rollout]\npercentage = {pct}\n"),
        )
    };
    let quarter = Cutover::start(&at("25")).await;
    let visits = first_visits(&quarter, 10_000).await;
    let on_kernia = visits.iter().filter(|(_, side)| side == "kernia").count();
    let share = on_kernia as f64 / visits.len() as f64;
    assert!(
        (share - 0.25).abs() <= 0.02,
        "kernia share at 25% was {share:.4}"
    );

    // Raise to 50% live, as an operator would: the database holds the rollout
    // (a second copy started with `percentage = 50` in its file would still
    // route by the database's 25).
    use cutover::control::{rollout::Rollout, store};
    let who = store::Provenance {
        reason: "raise",
        interface: store::Interface::Cli,
        actor: None,
    };
    store::change(
        &quarter.app.db,
        |r| {
            Ok(Rollout {
                percentage: 50.0,
                ..r.clone()
            })
        },
        &who,
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while quarter.app.routing.applied().rollout.percentage != 50.0 {
        assert!(std::time::Instant::now() < deadline, "50% never applied");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let half = &quarter;
    let http = client();
    let moved_back: usize =
        futures_util::stream::iter(visits.iter().filter(|(_, s)| s == "kernia"))
            .map(|(pin, _)| {
                let http = http.clone();
                let url = half.url("/");
                async move {
                    let resp = http
                        .get(url)
                        .header("cookie", pin.clone())
                        .send()
                        .await
                        .unwrap();
                    usize::from(resp.headers()["x-served-by"] != "kernia")
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .sum();
    assert_eq!(
        moved_back, 0,
        "browsers on kernia at 25% went back to legacy at 50%"
    );
}

#[tokio::test]
async fn kill_switch_sends_pinned_and_new_browsers_to_legacy() {
    let s = stack("[rollout]\npercentage = 100\nkill_switch = true\n").await;
    let migrated_pin = format!("cutover_route=m.{}", "a".repeat(32));
    for cookie in [None, Some(migrated_pin)] {
        let mut req = client().get(s.cutover.url("/"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let e = echo::read(req.send().await.unwrap()).await;
        assert_eq!(e["served_by"], "legacy");
    }
    assert_eq!(s.kernia.served(), 0);
}

#[tokio::test]
async fn denied_paths_answer_404_and_never_reach_kernia() {
    let s = stack("[routes]\ndeny = [\"/internal/metrics\"]\n").await;
    for path in [
        "/api/auth/admin/create-user",
        "/api/auth/admin/create-user/",
        "//api/auth/admin/create-user",
        "/api/auth/./admin/create-user",
        "/api/auth/admin/create%2Duser",
        "/api/auth/x/../admin/create-user",
        "/api/auth/two-factor/view-backup-codes",
        "/internal/metrics",
    ] {
        let resp = client()
            .post(s.cutover.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "NOT_FOUND");
    }
    assert_eq!(s.kernia.served() + s.legacy.served(), 0);
    // Kernia's other routes pass, whatever the rollout says (a sign-in body
    // cutover can read: an unreadable one is refused before Kernia).
    let e = echo::read(
        client()
            .post(s.cutover.url("/api/auth/sign-in/email"))
            .json(&serde_json::json!({"email": "nobody@example.com", "password": "a-long-password-9"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(e["served_by"], "kernia");
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let s = stack("").await;
    let url = format!("ws://{}/ws", s.cutover.http);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket handshake through cutover");
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through the proxy"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::text(text));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::binary(vec![0u8, 1, 2, 255]));
}

#[tokio::test]
async fn http2_over_tls_negotiated_by_alpn() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let (tls, _dir, cert_pem) = tls_section();
    let text = with_tls(&toml(&legacy.url(), &legacy.url(), &db.url, ""), &tls);
    let c = Cutover::start(&text).await;
    let port = c.https.unwrap().port();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = https
        .get(format!("https://localhost:{port}/over-tls"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let pin = set_cookie(&resp, "cutover_route").unwrap().to_string();
    assert!(pin.contains("Secure"), "the pin is Secure on TLS: {pin}");
    let e = echo::read(resp).await;
    assert_eq!(e["path"], "/over-tls");
    assert_eq!(echo::header(&e, "x-forwarded-proto"), Some("https"));
    assert_eq!(e["version"], "HTTP/1.1", "upstream leg stays HTTP/1.1");

    let h1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let resp = h1
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

#[tokio::test]
async fn graceful_drain_finishes_in_flight_requests_and_refuses_new_ones() {
    let mut s = stack("").await;
    let url = s.cutover.url("/slow?ms=1500");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.cutover.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = client().get(s.cutover.url("/")).send().await;
    assert!(
        late.is_err(),
        "a new connection after shutdown began was served"
    );
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(echo::read(resp).await["path"], "/slow");
}

/// Draining closes a connection that has not sent a request yet at once, not
/// at the end of the grace period (5 s here) or its header-read deadline (10 s).
#[tokio::test]
async fn draining_closes_a_connection_that_has_sent_nothing() {
    use tokio::io::AsyncReadExt as _;
    let mut s = stack("").await;
    let mut silent = tokio::net::TcpStream::connect(s.cutover.http)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // accepted and waiting
    s.cutover.begin_shutdown();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf))
        .await
        .expect("closed when draining began, before the grace period ended");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn upstream_trouble_answers_502_and_504_with_json() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    // A port with nobody listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = toml(&format!("http://{dead}"), &legacy.url(), &db.url, "")
        .replace("response_timeout_ms = 5000", "response_timeout_ms = 300");
    let c = Cutover::start(&text).await;
    let resp = client().get(c.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "UPSTREAM_UNAVAILABLE"
    );

    let text = toml(&legacy.url(), &legacy.url(), &db.url, "")
        .replace("response_timeout_ms = 5000", "response_timeout_ms = 300");
    let c = Cutover::start(&text).await;
    let resp = client().get(c.url("/slow?ms=2000")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["code"],
        "UPSTREAM_TIMEOUT"
    );
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_refused() {
    let s = stack("[limits]\nmax_body_bytes = 1024\n").await;
    let ok = client()
        .post(s.cutover.url("/upload"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(echo::read(ok).await["body_len"], 1000);
    let big = client()
        .post(s.cutover.url("/upload"))
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    // Streamed without a length: cut off on the way.
    let stream =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'b'; 512])));
    let resp = client()
        .post(s.cutover.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    // Either the connection is cut (an error) or the upstream saw a truncated body.
    if let Ok(r) = resp {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            !text.contains("\"body_len\":4096"),
            "the whole oversized body went through ({status})"
        );
    }
}
