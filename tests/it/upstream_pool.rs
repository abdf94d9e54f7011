//! cutover's idle upstream connections (`src/proxy/pool.rs`), seen from a raw
//! upstream that counts the connections it is given and can behave badly:
//! close each connection after one answer without saying so, never finish
//! an answer, or be left idle past the pool's timeout.
//!
//! Nothing here asserts a duration: a deadline of several seconds is the
//! failure condition where "it happened" is what matters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Engine;
use crate::harness::databases::TestDatabase;
use crate::harness::echo::Echo;
use crate::harness::kernia::client;
use crate::harness::server::{Cutover, toml};

/// How the raw upstream treats a connection after an answer.
#[derive(Clone, Copy)]
enum After {
    /// Keep it open for the next request.
    KeepOpen,
    /// Close it without a `Connection: close` (as a server whose keep-alive
    /// timer just fired does).
    Close,
    /// Send the head and the first chunk of a chunked body, then nothing.
    StallMidBody,
}

struct RawUpstream {
    addr: SocketAddr,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    /// Connections cutover closed (the upstream read end of stream).
    closed_by_cutover: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(after: After) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_cutover = Arc::new(AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed_by_cutover.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, after, c.clone()));
            }
        });
        RawUpstream {
            addr,
            accepted,
            closed_by_cutover,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed_by_cutover(&self) -> usize {
        self.closed_by_cutover.load(Ordering::SeqCst)
    }
}

/// Answer each request head (these tests send no bodies) with "pooled".
async fn serve(mut s: TcpStream, after: After, closed: Arc<AtomicUsize>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => {
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.drain(..end + 4);
            match after {
                After::StallMidBody => {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                        )
                        .await;
                }
                _ => {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\npooled")
                        .await;
                }
            }
            if let After::Close = after {
                return;
            }
        }
    }
}

/// cutover with one serving thread (so one pool) in front of `legacy`, with
/// `upstreams` added to its `[upstreams]` section.
async fn cutover(legacy: &str, upstreams: &str) -> (Cutover, TestDatabase, Echo) {
    let kernia = Echo::start("kernia").await;
    let db = TestDatabase::create(Engine::Sqlite).await;
    let text = toml(
        legacy,
        &kernia.url(),
        &db.url,
        "[rollout]\npercentage = 0\n",
    )
    .replace("[server]\n", "[server]\nthreads = 1\n")
    .replace(
        "response_timeout_ms = 5000\n",
        &format!("response_timeout_ms = 5000\n{upstreams}\n"),
    );
    (Cutover::start(&text).await, db, kernia)
}

async fn get_ok(c: &Cutover, client: &reqwest::Client) {
    let resp = client.get(c.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "pooled");
}

/// Read from `s` until `marker` has arrived.
async fn read_until(s: &mut TcpStream, marker: &[u8], what: &str) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !got.windows(marker.len()).any(|w| w == marker) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "cutover closed before {what}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} came through"));
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

#[tokio::test]
async fn one_upstream_connection_carries_request_after_request() {
    let up = RawUpstream::start(After::KeepOpen).await;
    let (c, _db, _k) = cutover(&up.url(), "").await;
    // A new client connection each time: the upstream connection outlives
    // the client's.
    for _ in 0..20 {
        get_ok(&c, &client()).await;
    }
    assert_eq!(up.accepted(), 1);
    assert_eq!(up.closed_by_cutover(), 0);
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_unannounced_costs_no_request() {
    let up = RawUpstream::start(After::Close).await;
    let (c, _db, _k) = cutover(&up.url(), "").await;
    let client = client();
    for _ in 0..20 {
        get_ok(&c, &client).await;
    }
    assert_eq!(up.accepted(), 20, "a closed connection is never reused");
}

#[tokio::test]
async fn connections_idle_past_the_timeout_are_closed() {
    let up = RawUpstream::start(After::KeepOpen).await;
    let (c, _db, _k) = cutover(&up.url(), "pool_idle_timeout_secs = 1").await;
    get_ok(&c, &client()).await;
    eventually("cutover closes the idle upstream connection", || {
        up.closed_by_cutover() == 1
    })
    .await;
    get_ok(&c, &client()).await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn with_no_idle_connections_allowed_each_request_has_its_own() {
    let up = RawUpstream::start(After::KeepOpen).await;
    let (c, _db, _k) = cutover(&up.url(), "pool_max_idle_per_host = 0").await;
    let client = client();
    for _ in 0..5 {
        get_ok(&c, &client).await;
    }
    assert_eq!(up.accepted(), 5);
    eventually(
        "every upstream connection is closed after its answer",
        || up.closed_by_cutover() == 5,
    )
    .await;
}

#[tokio::test]
async fn an_answer_the_client_walked_away_from_closes_its_upstream_connection() {
    let up = RawUpstream::start(After::StallMidBody).await;
    let (c, _db, _k) = cutover(&up.url(), "").await;
    for round in 1..=2 {
        let mut s = TcpStream::connect(c.http).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n")
            .await
            .unwrap();
        // Read until the first chunk arrived, then hang up.
        read_until(&mut s, b"first", "the first chunk").await;
        drop(s);
        eventually("the half-read upstream connection is closed", || {
            up.closed_by_cutover() == round
        })
        .await;
        // Never reused: each round is a new upstream connection.
        assert_eq!(up.accepted(), round);
    }
}

#[tokio::test]
async fn a_connection_still_sending_a_slow_body_is_not_handed_to_the_next_request() {
    // The upstream answers at the request head, before the body: a
    // connection can be given back while its request body still streams.
    let up = RawUpstream::start(After::KeepOpen).await;
    let (c, _db, _k) = cutover(&up.url(), "").await;
    let mut slow = TcpStream::connect(c.http).await.unwrap();
    slow.write_all(b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 100\r\n\r\nfirst")
        .await
        .unwrap();
    read_until(&mut slow, b"pooled", "the slow client's early answer").await;
    // The body has 95 bytes to go and never sends them. The next request
    // must not wait behind it (that would be a 504 after the 5 s response
    // timeout): it gets its own connection.
    get_ok(&c, &client()).await;
    assert_eq!(up.accepted(), 2);
    drop(slow);
}
