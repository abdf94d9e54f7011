//! Hostile input at the edge: header spellings that WSGI servers fold into
//! identity headers, forged forwarding chains, sockets that say nothing,
//! ambiguous session cookies, a database that hangs, malformed bodies and
//! protocols cutover must not pretend to speak.
//!
//! Nothing here asserts a duration: a client timeout of several seconds is
//! the failure condition where "answered" is what matters.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Engine;
use crate::harness::clerk::ClerkInstance;
use crate::harness::databases::TestDatabase;
use crate::harness::echo::{self, Echo};
use crate::harness::kernia::{KerniaServer, client, session_user, sign_up};
use crate::harness::repo_root;
use crate::harness::server::{Cutover, tls_section, toml, with_tls};

/// Send raw bytes, read the whole answer (the request asks to close).
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("cutover answered and closed")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn body_of(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").expect("a head and a body").1;
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

/// Defect 1: `x_cutover_user_id` and friends are read as identity headers by
/// WSGI/CGI/Rack apps. None may reach the upstream, in any spelling.
#[tokio::test]
async fn underscore_spellings_of_identity_and_forwarding_headers_never_reach_the_app() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(&legacy.url(), &legacy.url(), &db.url, "")).await;
    let answer = raw(
        c.http,
        "GET /whoami HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\
         x_cutover_user_id: user_victim\r\n\
         X_Cutover_Provider: clerk\r\n\
         x-cutover_session_id: sess_victim\r\n\
         x_cutover_assertion: forged\r\n\
         X_Forwarded_For: 6.6.6.6\r\n\
         x_forwarded_proto: https\r\n\
         x_forwarded_host: evil.test\r\n\
         x_real_ip: 6.6.6.6\r\n\
         X-Forwarded-Port: 443\r\n\
         X-Forwarded-Prefix: /admin\r\n\
         True-Client-IP: 6.6.6.6\r\n\
         cf_connecting_ip: 6.6.6.6\r\n\
         CF-Connecting-IP: 6.6.6.6\r\n\
         X-Client-IP: 6.6.6.6\r\n\
         x_custom_header: kept\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let e = body_of(&answer);
    let seen = e["headers"].as_object().unwrap();
    let mut leaked = Vec::new();
    for (name, values) in seen {
        let folded = name.replace('_', "-");
        let reserved = folded.starts_with("x-cutover-")
            || folded.starts_with("x-forwarded-")
            || [
                "x-real-ip",
                "forwarded",
                "true-client-ip",
                "cf-connecting-ip",
                "x-client-ip",
            ]
            .contains(&folded.as_str());
        if !reserved {
            continue;
        }
        // Only cutover's own spellings, with cutover's values.
        let expected: Option<&[&str]> = match name.as_str() {
            "x-cutover-provider" => Some(&["anonymous"]),
            "x-forwarded-for" | "x-real-ip" => Some(&["127.0.0.1"]),
            "x-forwarded-proto" => Some(&["http"]),
            "x-forwarded-host" => Some(&["app.test"]),
            _ => None,
        };
        if expected.is_none_or(|v| values != &serde_json::json!(v)) {
            leaked.push(format!("{name}: {values} (a WSGI app reads {folded})"));
        }
    }
    assert!(leaked.is_empty(), "reached the app: {leaked:#?}");
    assert_eq!(echo::header(&e, "x_custom_header"), Some("kept"));
}

fn trusted_toml(legacy: &Echo, db: &TestDatabase, nets: &str) -> String {
    toml(&legacy.url(), &legacy.url(), &db.url, "").replace(
        "shutdown_grace_secs = 5",
        &format!("shutdown_grace_secs = 5\ntrusted_proxies = [{nets}]"),
    )
}

/// Defect 4: behind a balancer that appends, the leftmost entry is the
/// client's own writing. The client is the rightmost untrusted address.
#[tokio::test]
async fn the_client_is_the_rightmost_forwarded_address_that_is_not_a_trusted_proxy() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&trusted_toml(
        &legacy,
        &db,
        r#""127.0.0.0/8", "10.0.0.0/8""#,
    ))
    .await;
    let seen = |xff: Vec<&'static str>| {
        let url = c.url("/ip");
        async move {
            let mut req = client().get(url);
            for v in xff {
                req = req.header("x-forwarded-for", v);
            }
            let e = echo::read(req.send().await.unwrap()).await;
            (
                echo::header(&e, "x-real-ip").unwrap().to_string(),
                echo::header(&e, "x-forwarded-for").unwrap().to_string(),
            )
        }
    };
    // The spoofed leftmost entry of an appending balancer.
    assert_eq!(
        seen(vec!["6.6.6.6, 198.51.100.7"]).await,
        ("198.51.100.7".into(), "198.51.100.7, 127.0.0.1".into())
    );
    // Two trusted hops, split over two headers.
    assert_eq!(
        seen(vec!["6.6.6.6, 198.51.100.7, 10.0.0.3", "10.0.0.2"]).await,
        (
            "198.51.100.7".into(),
            "198.51.100.7, 10.0.0.3, 10.0.0.2, 127.0.0.1".into()
        )
    );
    // Garbage left of the client is not forwarded; garbage where a hop's
    // address should be stops the walk at the last trusted hop.
    assert_eq!(
        seen(vec!["<script>, unknown, 198.51.100.7:51234"]).await,
        ("198.51.100.7".into(), "198.51.100.7, 127.0.0.1".into())
    );
    assert_eq!(
        seen(vec!["6.6.6.6, not-an-address, 10.0.0.2"]).await,
        ("10.0.0.2".into(), "10.0.0.2, 127.0.0.1".into())
    );
    // An untrusted peer's list counts for nothing.
    let plain_db = TestDatabase::create(Engine::Sqlite).await;
    let untrusted = Cutover::start(&toml(&legacy.url(), &legacy.url(), &plain_db.url, "")).await;
    let e = echo::read(
        client()
            .get(untrusted.url("/ip"))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo::header(&e, "x-forwarded-for"), Some("127.0.0.1"));
}

/// A rustls client that trusts the test certificate.
fn tls_connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Waits (up to a generous limit) for the peer to close; fails otherwise.
async fn closed_by_cutover<S: tokio::io::AsyncRead + Unpin>(what: &str, s: &mut S) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: cutover never closed it");
}

/// Defect 2: sockets that send nothing (plain, after TLS, half an HTTP/2
/// preface) each hold a connection permit; they must be closed so that a
/// cutover at `max_connections` answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_the_next_request_is_answered() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let (tls, _dir, cert_pem) = tls_section();
    let text = with_tls(
        &toml(
            &legacy.url(),
            &legacy.url(),
            &db.url,
            "[limits]\nmax_connections = 4\nheader_read_timeout_ms = 300\nidle_timeout_secs = 30\n",
        ),
        &tls,
    );
    let c = Cutover::start(&text).await;
    let https = c.https.unwrap();

    // Four silent sockets take every permit.
    let mut silent_plain = TcpStream::connect(c.http).await.unwrap();
    let mut half_preface = TcpStream::connect(c.http).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut half_head = TcpStream::connect(c.http).await.unwrap();
    half_head
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    let tcp = TcpStream::connect(https).await.unwrap();
    let mut silent_tls = tls_connector(&cert_pem)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake completes");

    // A fifth client is answered once the silent ones are gone.
    let answered = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
        .get(c.url("/after"))
        .send()
        .await
        .expect("a request after four silent sockets is answered");
    assert_eq!(echo::read(answered).await["path"], "/after");

    closed_by_cutover("a silent TCP socket", &mut silent_plain).await;
    closed_by_cutover("half an HTTP/2 preface", &mut half_preface).await;
    closed_by_cutover("half a request head", &mut half_head).await;
    closed_by_cutover("a silent TLS connection", &mut silent_tls).await;
}

/// A keep-alive connection whose next request head stops halfway is closed
/// once it has had no request in flight for `idle_timeout` (cutover's own
/// deadline; hyper's per-head timer is off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_request_head_that_stops_halfway_is_closed_after_the_idle_timeout() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(
        &legacy.url(),
        &legacy.url(),
        &db.url,
        "[limits]\nidle_timeout_secs = 2\n",
    ))
    .await;
    let mut s = TcpStream::connect(c.http).await.unwrap();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&first).contains("\"/first\"") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the first request is answered")
            .unwrap();
        assert!(n > 0, "closed before answering the first request");
        first.extend_from_slice(&buf[..n]);
    }
    assert!(first.starts_with(b"HTTP/1.1 200"));
    s.write_all(b"GET /second HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    closed_by_cutover("half a second request head", &mut s).await;
}

/// Defect 2: HTTP/2 keep-alive pings (answered by any real client) must not
/// keep an idle connection open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_though_it_answers_pings() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(
        &legacy.url(),
        &legacy.url(),
        &db.url,
        "[limits]\nidle_timeout_secs = 1\n",
    ))
    .await;
    let tcp = TcpStream::connect(c.http).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c with prior knowledge");
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/h2", c.http))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    drop(resp);
    // The connection task answers cutover's pings; it ends only when cutover
    // closes the connection.
    let ended = tokio::time::timeout(Duration::from_secs(20), conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
}

/// Defect 11: extended CONNECT (RFC 8441) was advertised and then forwarded
/// as a plain `CONNECT host:port`. It is no longer offered.
#[tokio::test]
async fn extended_connect_is_not_offered_over_http2() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(&legacy.url(), &legacy.url(), &db.url, "")).await;
    let tcp = TcpStream::connect(c.http).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // A first request, so the server's SETTINGS have been read.
    let first = http::Request::get(format!("http://{}/", c.http))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(send.send_request(first).await.unwrap().status(), 200);
    let served = legacy.served();
    let mut req = http::Request::connect(format!("http://{}/ws", c.http))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    req.extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    // The h2 client refuses to send it when the server did not enable it; if
    // it were sent, it must not be forwarded.
    if let Ok(resp) = send.send_request(req).await {
        assert_ne!(resp.status(), 200, "extended CONNECT was accepted");
    }
    assert_eq!(legacy.served(), served, "the CONNECT reached the upstream");
}

/// Defect 11: a malformed chunk size is the client's fault: 400, not 502.
#[tokio::test]
async fn a_malformed_chunk_size_answers_400() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(&legacy.url(), &legacy.url(), &db.url, "")).await;
    let answer = raw(
        c.http,
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(body_of(&answer)["code"], "BAD_REQUEST");
}

/// Defect 11: Kernia 0.1.0 answers `/admin/has-permission` without a session
/// for any `userId` or `role`, telling an anonymous caller who is an admin.
#[tokio::test]
async fn admin_has_permission_is_denied_by_default() {
    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(&legacy.url(), &kernia.url(), &db.url, "")).await;
    for path in [
        "/api/auth/admin/has-permission",
        "/api/auth/admin/has-permission/",
        "/api/auth/admin/has%2Dpermission",
        "//api/auth/./admin/has-permission",
    ] {
        let resp = client()
            .post(c.url(path))
            .json(&serde_json::json!({"userId": "user_1", "permissions": {"user": ["create"]}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert_eq!(kernia.served() + legacy.served(), 0);
}

/// Defect 6: two `better-auth.session_token` values. cutover must name the
/// user Kernia serves (Kernia reads the last value, quotes kept), and a
/// sign-out must forget the session Kernia signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_kernia_session_cookies_are_read_as_kernia_reads_them() {
    let kernia = KerniaServer::start(Engine::Sqlite).await;
    let legacy = Echo::start("legacy").await;
    let text = toml(
        &legacy.url(),
        &kernia.base_url,
        &kernia.db.url,
        "[rollout]\npercentage = 100\n",
    )
    .replace("session_cache_ms = 200", "session_cache_ms = 60000");
    let c = Cutover::start(&text).await;
    let base = c.url("");
    // Sessions made at Kernia directly (password hashing is slow on a busy machine).
    let (alice, a) = sign_up(
        &kernia.base_url,
        "alice@example.com",
        "a-long-password-1",
        "Alice",
    )
    .await;
    let (bob, b) = sign_up(
        &kernia.base_url,
        "bob@example.com",
        "a-long-password-2",
        "Bob",
    )
    .await;
    let value = |cookie: &str| cookie.split_once('=').unwrap().1.to_string();
    let (a_value, b_value) = (value(&a), value(&b));

    // Who the app is told it is, and who Kernia says it is.
    let identity = |cookies: Vec<String>| {
        let url = c.url("/whoami");
        async move {
            let mut req = client().get(url);
            for cookie in cookies {
                req = req.header("cookie", cookie);
            }
            let me: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            me["identity_headers"]["x-cutover-user-id"]
                .as_str()
                .map(str::to_string)
        }
    };
    let joined =
        format!("better-auth.session_token={a_value}; better-auth.session_token={b_value}");
    let kernia_says = session_user(&base, &joined).await;
    assert_eq!(
        kernia_says.as_deref(),
        Some(bob.as_str()),
        "Kernia reads the last value"
    );
    assert_eq!(identity(vec![joined.clone()]).await, kernia_says);
    // Split over two Cookie headers (as HTTP/2 sends them): the same answer.
    assert_eq!(
        identity(vec![a.clone(), b.clone()]).await,
        Some(bob.clone())
    );
    // Quotes are part of the value for Kernia: a quoted cookie is no session.
    let quoted = format!("better-auth.session_token=\"{a_value}\"");
    assert_eq!(session_user(&base, &quoted).await, None);
    assert_eq!(identity(vec![quoted]).await, None);
    assert_eq!(identity(vec![a.clone()]).await, Some(alice.clone()));

    // Bob's session is cached as signed in; the sign-out with both cookies
    // signs Bob out at Kernia, so cutover must forget Bob's session.
    assert_eq!(identity(vec![b.clone()]).await, Some(bob.clone()));
    let out = client()
        .post(c.url("/api/auth/sign-out"))
        .header("cookie", &joined)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200, "{}", kernia.stderr());
    assert_eq!(session_user(&base, &b).await, None, "Kernia signed Bob out");
    assert_eq!(
        identity(vec![b.clone()]).await,
        None,
        "cutover still names a signed-out session"
    );
    assert_eq!(identity(vec![a]).await, Some(alice));
}

/// A TCP relay in front of PostgreSQL that can be told to hang: from then
/// on it forwards nothing either way and answers no new connection, while
/// every socket stays open — a database that hangs, not one that refuses.
struct HangingRelay {
    addr: std::net::SocketAddr,
    hang: tokio::sync::watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl HangingRelay {
    async fn start(target: std::net::SocketAddr) -> HangingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (hang, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let rx = rx.clone();
                tokio::spawn(async move {
                    if *rx.borrow() {
                        // Accepted, never answered.
                        let _held = client;
                        std::future::pending::<()>().await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, rx.clone()), pipe(sr, cw, rx));
                });
            }
        });
        HangingRelay {
            addr,
            hang,
            _task: task,
        }
    }

    fn hang(&self) {
        self.hang.send_replace(true);
    }
}

/// Copy until `hang`, then hold both ends forever.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut hang: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = hang.wait_for(|h| *h) => break,
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        if *hang.borrow() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _held = (from, to);
    std::future::pending::<()>().await;
}

/// Defect 9: with the database hung (not refusing), pages keep flowing:
/// anonymous requests, Clerk sessions (their ledger read) and Kernia
/// cookies (their session read) are all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_hung_pages_keep_flowing() {
    let db = TestDatabase::create(Engine::Postgres).await;
    let pg: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    assert!(
        db.url.contains("@127.0.0.1:5432/"),
        "this test relays to PostgreSQL at 127.0.0.1:5432: {}",
        db.url
    );
    let relay = HangingRelay::start(pg).await;
    let relayed = db
        .url
        .replace("@127.0.0.1:5432/", &format!("@{}/", relay.addr));
    let legacy = Echo::start("legacy").await;
    let kernia = Echo::start("kernia").await;
    let clerk = ClerkInstance::new();
    let extra = format!(
        "[clerk]\npublishable_key = \"{}\"\njwt_key_file = \"{}\"\n",
        clerk.publishable_key(),
        repo_root()
            .join("tests/fixtures/clerk/key_a.pub.pem")
            .display()
    );
    let c = Cutover::start(&toml(&legacy.url(), &kernia.url(), &relayed, &extra)).await;
    let kernia_cookie = format!(
        "better-auth.session_token={}",
        cutover::identify::kernia::sign(
            crate::harness::kernia::SECRET.as_bytes(),
            "g7x5Z8GuJAHVRkLtbb08rmoXwj66BGN1Yq1Sfj51JRU"
        )
    );
    relay.hang();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // Several rounds, several users: every miss is a look-up the hung
    // database would have to answer.
    for round in 0..3 {
        let anonymous = http.get(c.url("/home")).send().await;
        let anonymous = anonymous.expect("an anonymous page is answered");
        assert_eq!(anonymous.status(), 200);

        let token = clerk.token(&format!("user_2hung{round}")).build();
        let e = echo::read(
            http.get(c.url("/home"))
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("a Clerk session's page is answered"),
        )
        .await;
        assert_eq!(e["served_by"], "legacy");
        assert_eq!(
            echo::header(&e, "x-cutover-user-id"),
            Some(format!("user_2hung{round}").as_str())
        );

        let resp = http
            .get(c.url("/home"))
            .header("cookie", &kernia_cookie)
            .send()
            .await
            .expect("a page with a Kernia cookie is answered");
        assert_eq!(resp.status(), 200);
        assert_eq!(echo::read(resp).await["served_by"], "kernia");
    }
    // Many at once, all answered.
    let clerk = &clerk;
    let answers = futures_util::future::join_all((0..20).map(|i| {
        let http = http.clone();
        let url = c.url("/burst");
        async move {
            let token = clerk.token(&format!("user_2burst{}", i % 4)).build();
            http.get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .map(|r| r.status())
        }
    }))
    .await;
    for a in answers {
        assert_eq!(a.expect("answered with the database hung"), 200);
    }
}

/// A configuration file for the `cutover` binary, in a directory of its own.
fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Defect 11: `cutover status | head -1` — the reader goes away before the
/// report is written. The command ends quietly instead of panicking.
#[tokio::test]
async fn status_into_a_closed_pipe_does_not_panic() {
    let db = TestDatabase::create(Engine::Sqlite).await;
    db.add_kernia_schema().await;
    let (_dir, path) = config_file(&toml(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        &db.url,
        "",
    ));
    for json in [false, true] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.args(["status", "-c"]).arg(&path);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.status.success(), "{:?}: {stderr}", out.status);
    }
}

/// Runs `cutover status --json`; `None` when it is still running after a
/// minute (then it is killed).
fn status_within_a_minute(
    path: &std::path::Path,
) -> Option<(std::process::ExitStatus, String, String)> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["status", "--json", "-c"])
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some((status, stdout.join().unwrap(), stderr.join().unwrap()));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Defect 11: `cutover status` hung now and then (more often with several at
/// once): it closed the pool while still holding a connection, and closing
/// waits for every connection. Many concurrent runs must all finish; a run
/// still going after a minute counts as hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_runs_many_times_at_once_and_always_finishes() {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let db = TestDatabase::create(engine).await;
        db.add_kernia_schema().await;
        let (_dir, path) = config_file(&toml(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9",
            &db.url,
            "",
        ));
        // PostgreSQL's connection limit is shared with every other test.
        let n = if engine == Engine::Postgres { 16 } else { 40 };
        let runs: Vec<_> = (0..n)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || status_within_a_minute(&path))
            })
            .collect();
        let mut hung = 0;
        for run in runs {
            match run.join().unwrap() {
                Some((status, out, err)) => {
                    assert!(status.success(), "{engine:?}: {status:?}: {err}");
                    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
                    assert_eq!(report["total"], 0);
                }
                None => hung += 1,
            }
        }
        assert_eq!(
            hung, 0,
            "{engine:?}: {hung} of {n} `cutover status` runs hung"
        );
    }
}

/// Defect 11: text logs written to a pipe or a file carry no ANSI colours.
/// `cutover serve` on a fresh database logs its migrations at `info` (then
/// stops: there is no Kernia schema), which is all this needs.
#[tokio::test]
async fn text_logs_into_a_pipe_carry_no_colour_codes() {
    let db = TestDatabase::create(Engine::Sqlite).await;
    db.add_kernia_schema().await;
    // A listen address that is taken: serve logs its start-up (migrations)
    // and then stops, instead of serving for ever.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = toml("http://127.0.0.1:9", "http://127.0.0.1:9", &db.url, "")
        .replace("level = \"warn\"", "level = \"info\"\nformat = \"text\"")
        .replace(
            "plain_listen = \"127.0.0.1:0\"",
            &format!("plain_listen = \"{}\"", taken.local_addr().unwrap()),
        );
    let (_dir, path) = config_file(&text);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["serve", "-c"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cutover serve stops when its listen address is taken")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("applied cutover migration"),
        "no log line to look at: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "ANSI escapes in {stderr:?}");
}

/// At most 100 header lines (hyper's default), and at most `max_header_bytes`:
/// beyond either, 431 before cutover's request path runs.
#[tokio::test]
async fn a_head_of_more_than_100_header_lines_is_refused_with_431() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(&legacy.url(), &legacy.url(), &db.url, "")).await;
    let head = |lines: usize| {
        // Host and Connection are two of the lines.
        let mut h = String::from("GET /many HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
        for i in 0..lines - 2 {
            h.push_str(&format!("x-extra-{i}: {i}\r\n"));
        }
        h.push_str("\r\n");
        h
    };
    // (The echo upstream is hyper too, with the same limit, and cutover adds
    // forwarding and identity headers: 90 lines leave room for them.)
    let answer = raw(c.http, &head(90)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw(c.http, &head(101)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Answered by cutover's HTTP layer, not by the request path or the upstream.
    assert!(
        !answer.to_ascii_lowercase().contains("set-cookie"),
        "{answer}"
    );
    // So is a head over `[limits] max_header_bytes` (32 KiB by default).
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: a\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(40_000)
    );
    let answer = raw(c.http, &big).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("set-cookie"),
        "{answer}"
    );
}

/// Every way cutover picks the protocol serves the request: HTTP/2 with prior
/// knowledge on plain TCP (the preface goes to detection), HTTP/1.1 on TLS
/// without ALPN (detection), and plain HTTP/1 whose method starts like the
/// preface's `PRI` (hyper's HTTP/1 builder once the bytes differ).
#[tokio::test]
async fn requests_are_served_whichever_way_the_protocol_is_chosen() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let (tls, _dir, cert_pem) = tls_section();
    let text = with_tls(&toml(&legacy.url(), &legacy.url(), &db.url, ""), &tls);
    let c = Cutover::start(&text).await;

    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = h2c.get(c.url("/h2c")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(echo::read(resp).await["path"], "/h2c");

    let tcp = TcpStream::connect(c.https.unwrap()).await.unwrap();
    let mut no_alpn = tls_connector(&cert_pem)
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .expect("the TLS handshake completes");
    no_alpn
        .write_all(b"GET /no-alpn HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), no_alpn.read_to_end(&mut out))
        .await
        .expect("answered and closed");
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("/no-alpn"), "{answer}");

    let answer = raw(
        c.http,
        "PUT /put HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(body_of(&answer)["path"], "/put");
}

/// Read one HTTP/1.1 answer with a `Content-Length` body from `s`.
async fn one_answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + length {
                    return Ok(());
                }
            }
            match s.read(&mut buf).await {
                Ok(0) => return Err("closed before a whole answer".to_string()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("an answer within 10 s");
    read.unwrap_or_else(|e| panic!("{e}; read so far: {}", String::from_utf8_lossy(&got)));
    String::from_utf8_lossy(&got).into_owned()
}

/// A body cutover refuses before reading it (its declared length is over
/// `max_body_bytes`: 413 from the head alone) is still read and thrown away.
/// Before, cutover closed the connection mid-body and the kernel reset it: a
/// client still sending (a real one writes its whole body before it reads)
/// got a broken pipe instead of the 413 — the Svix sender in `clerk_sync`'s
/// test did, now and then. The slow writer here makes that certain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_refused_from_its_declared_length_is_read_so_the_client_gets_the_413() {
    let legacy = Echo::start("legacy").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let c = Cutover::start(&toml(
        &legacy.url(),
        &legacy.url(),
        &db.url,
        "[limits]\nmax_body_bytes = 1024\n",
    ))
    .await;
    let mut s = TcpStream::connect(c.http).await.unwrap();
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 48;
    s.write_all(
        format!(
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            CHUNK * CHUNKS
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let chunk = vec![b'x'; CHUNK];
    for i in 0..CHUNKS {
        s.write_all(&chunk)
            .await
            .unwrap_or_else(|e| panic!("chunk {i} of the body: {e}"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = one_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(body_of(&answer)["code"], "PAYLOAD_TOO_LARGE");

    // The whole body was read, so the connection serves the next request.
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let answer = one_answer(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(body_of(&answer)["path"], "/after");
    assert_eq!(
        legacy.served(),
        1,
        "the refused upload never reached the app"
    );
}
