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
