//! Idle upstream connections, kept per serving thread.
//!
//! Each serving thread (see [`super::threads`]) keeps its own idle HTTP/1.1
//! connections to each upstream, newest last, behind an uncontended mutex:
//! a request takes the newest one (or connects), and the connection comes
//! back when the upstream's answer has been read to its end. It replaced
//! hyper-util's pooled client, whose per-request pool look-up (a hash map
//! keyed by scheme and authority), wrapper and spawned "wait until idle" task
//! were most of the forward's own cost (`docs/BENCHMARKS.md`).
//!
//! The rules, each where it is enforced:
//! - a connection goes back only after its answer's body ended, and never
//!   after a `101` (it belongs to the upgraded stream then) or an error;
//!   an answer the client stopped reading closes its connection
//!   ([`Returning`]);
//! - at most `[upstreams].pool_max_idle_per_host` idle connections per
//!   upstream per serving thread; one more is closed ([`Idle::put`]);
//! - a connection idle for `pool_idle_timeout_secs` is not used again: it is
//!   skipped when taken and closed by the thread's sweep, which runs every
//!   half timeout ([`sweep`]), so none stays open past 1.5× the timeout;
//! - one that is not ready for a request when taken is dropped, not waited
//!   for: the upstream closed it, or it is still sending an earlier request's
//!   body ([`Idle::take`]); a request the upstream never received on a reused
//!   connection is sent again on another (the caller, `forward.rs`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::web::{BoxError, ProxyBody};

/// The sending half of one upstream connection.
pub(super) type Sender = SendRequest<ProxyBody>;

/// One serving thread's idle connections: one list per upstream, oldest
/// first.
#[derive(Default)]
pub(super) struct Idle {
    lists: [VecDeque<(Sender, Instant)>; 2],
}

/// A serving thread's [`Idle`], shared with the answers that will give
/// connections back to it.
pub(super) type Pool = Arc<Mutex<Idle>>;

/// The pool's lock. Nothing panics while holding it; a poisoned one is used
/// as it is (the lists stay consistent whatever a panic interrupted).
pub(super) fn lock(pool: &Mutex<Idle>) -> MutexGuard<'_, Idle> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Idle {
    /// The newest idle connection to upstream `list` that was idle for less
    /// than `timeout` and is ready for a request. One that is not ready is
    /// dropped, not waited for: the upstream closed it, or it is still busy
    /// sending the last request's body (the upstream answered before reading
    /// all of it, and the client is slow), and the request at hand must not
    /// wait behind someone else's body.
    pub(super) fn take(&mut self, list: usize, now: Instant, timeout: Duration) -> Option<Sender> {
        let idle = &mut self.lists[list];
        while let Some((tx, since)) = idle.pop_back() {
            if now.saturating_duration_since(since) >= timeout {
                // The newest is too old: so is every other one.
                idle.clear();
                return None;
            }
            if tx.is_ready() {
                return Some(tx);
            }
        }
        None
    }

    /// Keep `tx` as idle since `now`, unless `max` are idle already (then
    /// it is dropped, which closes its connection).
    pub(super) fn put(&mut self, list: usize, tx: Sender, now: Instant, max: usize) {
        let idle = &mut self.lists[list];
        if idle.len() < max && !tx.is_closed() {
            idle.push_back((tx, now));
        }
    }

    /// Drop (and so close) every connection idle for `timeout` or longer,
    /// and those the upstream closed.
    fn expire(&mut self, now: Instant, timeout: Duration) {
        for idle in &mut self.lists {
            idle.retain(|(tx, since)| {
                now.saturating_duration_since(*since) < timeout && !tx.is_closed()
            });
        }
    }

    /// How many connections are idle, for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lists.iter().map(VecDeque::len).sum()
    }
}

/// Close this thread's expired connections every half `timeout` until the
/// pool is gone (its `Upstreams` replaced by a reload, or the thread
/// stopping).
pub(super) async fn sweep(pool: Weak<Mutex<Idle>>, timeout: Duration) {
    // `interval` refuses a zero period; the configuration allows no less
    // than a second anyway.
    let mut tick = tokio::time::interval((timeout / 2).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        lock(&pool).expire(Instant::now(), timeout);
    }
}

/// Where a connection goes back to once its answer has been read.
pub(super) struct Return {
    pub tx: Sender,
    pub pool: Pool,
    pub list: usize,
    pub max: usize,
}

impl Return {
    fn give_back(self) {
        lock(&self.pool).put(self.list, self.tx, Instant::now(), self.max);
    }
}

/// An upstream answer's body that gives its connection back to the pool
/// when it has been read to its end. Dropped before that (the client went
/// away, or cutover answered something else), its connection closes: the
/// rest of the body is still on the wire.
pub(super) struct Returning {
    body: Incoming,
    back: Option<Return>,
}

impl Returning {
    pub(super) fn new(body: Incoming, back: Option<Return>) -> Returning {
        Returning { body, back }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                if let Some(back) = this.back.take() {
                    back.give_back();
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.back = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // A body of known length read to its last byte (or one with none:
        // HEAD, 204, 304) may be dropped without being polled to its end.
        if self.body.is_end_stream()
            && let Some(back) = self.back.take()
        {
            back.give_back();
        }
    }
}

/// The answer's body as the proxy streams it.
pub(super) fn boxed(body: Returning) -> ProxyBody {
    http_body_util::BodyExt::boxed_unsync(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A sender on a live in-memory connection whose other end answers
    /// `answers` (one per request, as raw bytes) and then closes.
    async fn connection(answers: Vec<&'static str>) -> Sender {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            for answer in answers {
                // One request head per read is enough for these tests.
                if matches!(theirs.read(&mut buf).await, Ok(0) | Err(_)) {
                    return;
                }
                if theirs.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(conn);
        // As a connection is after an answer: waiting for its next request.
        tokio::time::timeout(Duration::from_secs(5), tx.ready())
            .await
            .expect("a new connection gets ready")
            .unwrap();
        tx
    }

    fn get() -> http::Request<ProxyBody> {
        http::Request::builder()
            .uri("/")
            .header("host", "upstream")
            .body(Empty::new().map_err(|e| match e {}).boxed_unsync())
            .unwrap()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn the_newest_open_connection_is_taken_and_old_ones_are_not() {
        let t = Duration::from_secs(10);
        let now = Instant::now();
        let mut idle = Idle::default();
        let a = connection(vec![OK]).await;
        let b = connection(vec![OK]).await;
        idle.put(0, a, now, 8);
        idle.put(0, b, now + Duration::from_secs(1), 8);
        assert_eq!(idle.len(), 2);
        assert!(
            idle.take(1, now, t).is_none(),
            "the other upstream has none"
        );
        assert!(idle.take(0, now + Duration::from_secs(2), t).is_some());
        // The one left was idle since `now`: too old at `now + t`.
        assert!(idle.take(0, now + t, t).is_none());
        assert_eq!(idle.len(), 0);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_stay_idle_and_closed_ones_are_skipped() {
        let now = Instant::now();
        let mut idle = Idle::default();
        for _ in 0..3 {
            idle.put(0, connection(vec![OK]).await, now, 2);
        }
        assert_eq!(idle.len(), 2);
        idle.put(1, connection(vec![OK]).await, now, 0);
        assert_eq!(idle.len(), 2, "a limit of 0 keeps none");

        // An upstream that closes its end: the connection's sender sees it.
        let (ours, theirs) = tokio::io::duplex(1024);
        drop(theirs);
        let (closed, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::time::timeout(Duration::from_secs(5), async {
            while !closed.is_closed() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("hyper notices the closed connection");
        let mut idle = Idle::default();
        let open = connection(vec![OK]).await;
        idle.put(0, open, now, 8);
        idle.lists[0].push_back((closed, now));
        let got = idle
            .take(0, now, Duration::from_secs(10))
            .expect("the open one");
        assert!(!got.is_closed());
        idle.put(0, got, now, 8);
        idle.expire(now + Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(idle.len(), 0);
    }

    #[tokio::test]
    async fn a_connection_comes_back_only_when_its_answer_was_read_to_the_end() {
        let pool = Pool::default();
        let read_whole = |mut tx: Sender, pool: Pool| async move {
            let resp = tx.send_request(get()).await.unwrap();
            let back = Return {
                tx,
                pool,
                list: 0,
                max: 8,
            };
            Returning::new(resp.into_body(), Some(back))
        };

        // Read to the end: back in the pool.
        let body = read_whole(connection(vec![OK, OK]).await, pool.clone()).await;
        let bytes = boxed(body).collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"ok");
        assert_eq!(lock(&pool).len(), 1);

        // Dropped unread: not back.
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n";
        let body = read_whole(connection(vec![chunked]).await, pool.clone()).await;
        drop(body);
        assert_eq!(lock(&pool).len(), 1);

        // No body at all (204), dropped without a poll: back.
        let empty = "HTTP/1.1 204 No Content\r\n\r\n";
        let body = read_whole(connection(vec![empty, OK]).await, pool.clone()).await;
        drop(body);
        assert_eq!(lock(&pool).len(), 2);

        // The one given back is ready at once and carries the next request.
        let mut tx = lock(&pool)
            .take(0, Instant::now(), Duration::from_secs(10))
            .expect("ready as soon as its answer was read");
        let resp = tx.send_request(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn a_connection_still_busy_is_dropped_not_waited_for() {
        let now = Instant::now();
        let mut idle = Idle::default();
        // Its upstream reads the request and never answers: busy.
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let (mut busy, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(conn);
        let pending = tokio::spawn(busy.send_request(get()));
        let mut buf = [0u8; 1024];
        assert!(
            theirs.read(&mut buf).await.unwrap() > 0,
            "the request went out"
        );
        assert!(!busy.is_ready());
        idle.put(0, connection(vec![OK]).await, now, 8);
        idle.put(0, busy, now, 8);
        let got = idle
            .take(0, now, Duration::from_secs(10))
            .expect("the older, ready one");
        assert!(got.is_ready());
        assert_eq!(idle.len(), 0, "the busy one was dropped");
        pending.abort();
    }

    #[tokio::test]
    async fn the_sweep_closes_expired_connections_and_stops_with_its_pool() {
        let pool = Pool::default();
        let tx = connection(vec![OK]).await;
        lock(&pool).put(0, tx, Instant::now(), 8);
        let task = tokio::spawn(sweep(Arc::downgrade(&pool), Duration::from_millis(300)));
        // Deadlines here are failure conditions, not measurements.
        tokio::time::timeout(Duration::from_secs(10), async {
            while lock(&pool).len() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the sweep closed the expired connection");
        drop(pool);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the sweep ends with its pool")
            .unwrap();
    }
}
