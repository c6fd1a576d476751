//! The one response body type every layer produces, and small constructors.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors a body can yield while streaming.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed body: upstream streams, static files and the proxy's own answers.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Any body whose error converts, boxed.
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}
