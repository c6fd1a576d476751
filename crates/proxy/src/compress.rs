//! Response compression (gzip, br, zstd) negotiated from `Accept-Encoding`
//! by tower-http, for compressible types above [`MIN_SIZE`].
//!
//! Never compressed: responses already encoded or partial (tower-http checks
//! `Content-Encoding` and `Content-Range`), server-sent events, protocol
//! switches, `no-transform`, and media that does not shrink. A streamed
//! response stays streamed: the encoder flushes whenever the upstream
//! pauses, so each chunk reaches the client as it comes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use tower::ServiceExt;
use tower_http::CompressionLevel;
use tower_http::compression::{Compression, Predicate};

use crate::body::{Body, boxed};

/// Smaller bodies are sent as they are.
pub(crate) const MIN_SIZE: u64 = 1024;

/// Which responses are worth compressing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B: HttpBody>(&self, response: &Response<B>) -> bool {
        let status = response.status();
        if status == StatusCode::SWITCHING_PROTOCOLS
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return false;
        }
        let headers = response.headers();
        let size = response.body().size_hint().exact().or_else(|| {
            headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        });
        // Unknown length (a stream) is compressed.
        if size.is_some_and(|n| n < MIN_SIZE) {
            return false;
        }
        if headers
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-transform"))
        {
            return false;
        }
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(compressible_type)
    }
}

/// Text and structured types; never event streams or already-packed media.
fn compressible_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "text/event-stream" {
        return false;
    }
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/xml"
                | "application/wasm"
                | "application/manifest+json"
                | "application/x-ndjson"
                | "application/graphql-response+json"
                | "image/svg+xml"
                | "image/x-icon"
                | "font/ttf"
                | "font/otf"
        )
}

/// Whether `response` should be compressed for a client that accepts some
/// encoding: not already encoded, not partial, and [`Compressible`].
///
/// Checked before [`encode`] so that responses that stay as they are (most
/// of them) never carry tower-http's encoder state, which is several KiB.
pub(crate) fn worth_it(response: &Response<Body>) -> bool {
    !response.headers().contains_key(CONTENT_ENCODING)
        && !response.headers().contains_key(CONTENT_RANGE)
        && Compressible.should_compress(response)
}

/// Compresses `response` with the encoding tower-http negotiates from
/// `accept_encoding` (q-values; identity if nothing better is accepted).
pub(crate) fn encode(
    accept_encoding: HeaderValue,
    response: Response<Body>,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(ACCEPT_ENCODING, accept_encoding);
    let mut response = Some(response);
    let inner = tower::service_fn(move |_: Request<()>| {
        let response = response
            .take()
            .unwrap_or_else(|| Response::new(crate::body::empty()));
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let compression = Compression::new(inner)
        .quality(CompressionLevel::Precise(4))
        .compress_when(Compressible);
    Box::pin(async move {
        match compression.oneshot(request).await {
            Ok(response) => response.map(boxed),
            Err(never) => match never {},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;

    fn response(content_type: &str, len: usize) -> Response<crate::body::Body> {
        let mut r = Response::new(full(vec![b'a'; len]));
        r.headers_mut()
            .insert(CONTENT_TYPE, content_type.parse().unwrap());
        r
    }

    #[test]
    fn only_big_enough_text_is_compressed() {
        assert!(Compressible.should_compress(&response("application/json", 2000)));
        assert!(Compressible.should_compress(&response("text/html; charset=utf-8", 2000)));
        assert!(!Compressible.should_compress(&response("application/json", 100)));
        assert!(!Compressible.should_compress(&response("text/event-stream", 5000)));
        assert!(!Compressible.should_compress(&response("image/png", 5000)));
        assert!(!Compressible.should_compress(&response("application/octet-stream", 5000)));
    }
}
