//! Response body: either a complete buffer or a timed server-sent-events stream.
//!
//! A plain enum instead of a boxed body keeps the hot endpoints free of extra
//! allocations.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body of every response demo-api sends.
#[derive(Debug)]
pub enum Body {
    /// A complete body (sent with a Content-Length); `None` once sent.
    Full(Option<Bytes>),
    /// Chunked `text/event-stream`.
    Sse(SseStream),
}

impl Body {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Sse(stream) => stream.poll_event(cx).map(|e| e.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Sse(stream) => stream.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Sse(_) => SizeHint::default(),
        }
    }
}

/// Sends `remaining` events, the first at once and the others `interval` apart.
/// Each event is its own chunk, so a buffering proxy is easy to spot.
pub struct SseStream {
    remaining: u32,
    seq: u32,
    interval: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    replica: std::sync::Arc<str>,
}

impl fmt::Debug for SseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseStream")
            .field("remaining", &self.remaining)
            .field("seq", &self.seq)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl SseStream {
    pub fn new(count: u32, interval: Duration, replica: std::sync::Arc<str>) -> Self {
        Self {
            remaining: count,
            seq: 0,
            interval,
            sleep: None,
            replica,
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
        }
        self.remaining -= 1;
        self.seq += 1;
        let event = format!(
            "id: {seq}\nevent: tick\ndata: {{\"seq\":{seq},\"remaining\":{remaining},\"replica\":{replica}}}\n\n",
            seq = self.seq,
            remaining = self.remaining,
            replica = serde_json::Value::from(&*self.replica),
        );
        if self.remaining > 0 {
            let deadline = Instant::now() + self.interval;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        Poll::Ready(Some(Bytes::from(event)))
    }
}
