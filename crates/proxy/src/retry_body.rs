//! A request body that can be sent again while nothing of it was read.
//!
//! When a connect fails, the client drops the request without polling its
//! body; [`RetryBody`] then puts the body back in its [`Home`] so the next
//! attempt on another replica sends it whole. Once polled, the body is
//! spent: a later failure can only be retried if the request had no body.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};

/// Where an unsent body waits between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Home(Arc<Mutex<Option<Body>>>);

impl Home {
    pub(crate) fn new(body: Body) -> Self {
        Home(Arc::new(Mutex::new(Some(body))))
    }

    /// The body for the next attempt, if it was never polled.
    pub(crate) fn take(&self) -> Option<RetryBody> {
        let body = self.0.lock().ok()?.take()?;
        Some(RetryBody {
            inner: Some(body),
            polled: false,
            home: Some(self.clone()),
        })
    }
}

/// The body handed to the upstream client for one attempt.
pub(crate) struct RetryBody {
    inner: Option<Body>,
    polled: bool,
    home: Option<Home>,
}

impl RetryBody {
    /// No body at all (most `GET`s): every attempt can use a new one.
    pub(crate) fn empty() -> Self {
        RetryBody {
            inner: None,
            polled: false,
            home: None,
        }
    }
}

impl std::fmt::Debug for RetryBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBody")
            .field("polled", &self.polled)
            .finish_non_exhaustive()
    }
}

impl HttpBody for RetryBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.polled = true;
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for RetryBody {
    fn drop(&mut self) {
        if !self.polled
            && let Some(body) = self.inner.take()
            && let Some(home) = &self.home
            && let Ok(mut slot) = home.0.lock()
        {
            *slot = Some(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn an_unpolled_body_comes_home_and_a_polled_one_does_not() {
        let home = Home::new(full("hello"));
        let first = home.take().unwrap();
        assert!(home.take().is_none());
        drop(first);
        let second = home.take().unwrap();
        let bytes = second.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
        assert!(home.take().is_none());
    }
}
