//! Bodies and cutover's own responses: the low layer of the request path.
//!
//! Every phase uses it and it uses none of them: it knows HTTP, and nothing
//! of identities, routes or migrations. What lives here:
//!
//! - [`ProxyBody`], the one body type cutover hands to hyper (streamed from a
//!   peer, or its own bytes), and the helpers that make one;
//! - [`read_whole`], reading a request body whole under a size limit *and* a
//!   deadline (a client that announces 100 bytes and sends 10 must not hold a
//!   connection forever);
//! - [`json`] and friends: cutover's own answers, in Kernia's error shape
//!   `{"code", "message"}`, never cached.
//!
//! Which answer a refusal or an error gets is decided in one place,
//! `proxy::respond`; this module only builds them.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full};

/// Errors of request and response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body cutover hands to hyper: streamed from the peer, or its own bytes.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// cutover's own bytes as a body.
pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// No body at all.
pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Any body (a peer's stream) as a [`ProxyBody`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A JSON answer `{"code": code, "message": message}`, not cacheable.
pub fn json(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Add `Retry-After` in whole seconds (at least 1).
pub fn with_retry_after(mut resp: Response<ProxyBody>, after: Duration) -> Response<ProxyBody> {
    let secs = after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// `303 See Other` to `location`, not cacheable.
pub fn see_other(location: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// How long a request body cutover answered without reading whole is still
/// read and thrown away, counted from when it was let go.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// How many more bytes of such a body are read and thrown away at most.
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// An HTTP/1 request body that, let go before its end, is read to the end in
/// the background and thrown away: within [`LINGER_TIME`] and
/// [`LINGER_BYTES`], then the connection is closed as before.
///
/// cutover answers some requests before their body is in (413 on a declared
/// length over the limit, 401, a refusal, an upstream that did not read it).
/// Closing the connection then, with the client still sending, makes the
/// kernel reset it: the client gets a broken pipe instead of the answer, and
/// Svix, say, retries a delivery that will never fit. nginx's lingering close
/// does the same thing for the same reason. Reading the rest also lets the
/// connection be kept alive. A client that sent `Expect: 100-continue` and was
/// never asked for its body is not waiting to send it; that body is not read.
pub struct Lingering<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
{
    inner: Option<B>,
    /// `Expect: 100-continue` was sent and the body has not been polled.
    waiting_for_continue: bool,
}

impl<B> Lingering<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
{
    /// `body` of a request with `headers`.
    pub fn new(body: B, headers: &http::HeaderMap) -> Self {
        // Most requests have no body: no header look-up for them.
        let waiting_for_continue = !body.is_end_stream()
            && headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        Lingering {
            inner: Some(body),
            waiting_for_continue,
        }
    }
}

impl<B> hyper::body::Body for Lingering<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        this.waiting_for_continue = false;
        match this.inner.as_mut() {
            Some(inner) => std::pin::Pin::new(inner).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl<B> Drop for Lingering<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() || self.waiting_for_continue {
            return;
        }
        // Outside a runtime (never, on the request path) the body just goes.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(body));
        }
    }
}

/// Read `body` to its end and throw it away, within the lingering bounds.
async fn linger<B>(mut body: B)
where
    B: hyper::body::Body + Unpin + Send + 'static,
{
    use bytes::Buf as _;
    let _ = tokio::time::timeout(LINGER_TIME, async move {
        let mut left = LINGER_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                left = left.saturating_sub(data.remaining());
                if left == 0 {
                    return;
                }
            }
        }
    })
    .await;
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {:.1} s", after.as_secs_f64())]
    TimedOut { after: Duration },
    /// The client closed the connection (or reset the stream) mid-body.
    #[error("the client went away while sending the body")]
    ClientGone,
    #[error("the request body is malformed: {0}")]
    Malformed(String),
}

/// Read `body` whole: at most `limit` bytes, all of them within `deadline`.
pub async fn read_whole(
    mut body: ProxyBody,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, ReadError> {
    let read = async move {
        let mut buf = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(classify)?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ReadError::TooLarge { limit });
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => Err(ReadError::TimedOut { after: deadline }),
        Ok(result) => result,
    }
}

fn classify(e: BoxError) -> ReadError {
    // The boxed error may be hyper's own, or wrap it one level down.
    let hyper_error = e
        .downcast_ref::<hyper::Error>()
        .or_else(|| e.source().and_then(|s| s.downcast_ref::<hyper::Error>()));
    match hyper_error {
        Some(h) if h.is_incomplete_message() || h.is_canceled() || h.is_closed() => {
            ReadError::ClientGone
        }
        // A bad chunk size and the like: the client's fault.
        Some(h) if h.is_parse() => ReadError::Malformed(h.to_string()),
        _ => ReadError::Malformed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use http_body_util::StreamBody;

    #[tokio::test]
    async fn a_whole_body_is_read() {
        let b = read_whole(full("hello"), 16, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(&b[..], b"hello");
    }

    #[tokio::test]
    async fn too_large_bodies_are_refused() {
        let e = read_whole(full("hello world"), 4, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 4 }), "{e:?}");
    }

    /// A body fed through a channel of one frame: a send completes only
    /// once the previous frame was read.
    fn channel_body() -> (
        tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, BoxError>>,
        impl hyper::body::Body<Data = Bytes, Error = BoxError> + Unpin + Send + 'static,
    ) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        (tx, body)
    }

    fn frame(len: usize) -> Result<hyper::body::Frame<Bytes>, BoxError> {
        Ok(hyper::body::Frame::data(Bytes::from(vec![b'x'; len])))
    }

    #[tokio::test]
    async fn a_body_let_go_early_is_read_to_its_end() {
        let (tx, body) = channel_body();
        let mut body = Lingering::new(body, &http::HeaderMap::new());
        tx.send(frame(10)).await.unwrap();
        assert!(body.frame().await.is_some());
        drop(body);
        // Without the lingering read, the channel's reader is gone and the
        // first send fails; with it, a hundred more frames are taken.
        for i in 0..100 {
            tokio::time::timeout(Duration::from_secs(10), tx.send(frame(1024)))
                .await
                .expect("the rest of the body is read")
                .unwrap_or_else(|_| panic!("frame {i} was not read"));
        }
    }

    #[tokio::test]
    async fn lingering_stops_after_its_byte_bound() {
        let (tx, body) = channel_body();
        drop(Lingering::new(body, &http::HeaderMap::new()));
        const MIB: usize = 1024 * 1024;
        let mut taken = 0;
        while tokio::time::timeout(Duration::from_secs(10), tx.send(frame(MIB)))
            .await
            .expect("a frame is taken or refused")
            .is_ok()
        {
            taken += MIB;
            assert!(taken <= LINGER_BYTES + 2 * MIB, "{taken} bytes read");
        }
        assert!(taken >= LINGER_BYTES, "{taken} bytes read");
    }

    /// (Real time: tokio's paused clock needs its `test-util` feature, which
    /// would reach the benchmark builds through the dev-dependencies.)
    #[tokio::test]
    async fn lingering_stops_after_its_time_bound() {
        let (tx, body) = channel_body();
        let started = std::time::Instant::now();
        drop(Lingering::new(body, &http::HeaderMap::new()));
        // A client that sends nothing more: the read gives up.
        tokio::time::timeout(LINGER_TIME + Duration::from_secs(25), tx.closed())
            .await
            .expect("the lingering read ends");
        assert!(started.elapsed() >= LINGER_TIME, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_client_waiting_for_100_continue_is_not_read_from() {
        let (tx, body) = channel_body();
        let mut headers = http::HeaderMap::new();
        headers.insert(header::EXPECT, HeaderValue::from_static("100-Continue"));
        drop(Lingering::new(body, &headers));
        assert!(tx.send(frame(1)).await.is_err(), "the body was read");

        // Once its body was asked for, the client is sending it: read the rest.
        let (tx, body) = channel_body();
        let mut body = Lingering::new(body, &headers);
        tx.send(frame(1)).await.unwrap();
        assert!(body.frame().await.is_some());
        drop(body);
        tokio::time::timeout(Duration::from_secs(10), tx.send(frame(1)))
            .await
            .unwrap()
            .expect("the rest was read");
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_times_out() {
        // Ten bytes, then nothing, ever.
        let chunks = futures_util::stream::iter([Ok::<_, BoxError>(hyper::body::Frame::data(
            Bytes::from_static(b"0123456789"),
        ))])
        .chain(futures_util::stream::pending());
        let body = boxed(StreamBody::new(chunks));
        let e = read_whole(body, 1024, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(e, ReadError::TimedOut { .. }), "{e:?}");
    }
}
