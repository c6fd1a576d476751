//! Idle detection for client connections and upgraded tunnels.
//!
//! [`Tracked`] marks its [`Activity`] whenever bytes move; [`idle`] resolves
//! once nothing moved (and nothing was in flight) for the whole idle time,
//! checked in quarters so the close comes between 1x and 1.25x the limit
//! without a timer per read. On client connections it also shows the bytes
//! read to the request-head clock (see `head`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::head::{HeadClock, HeadWatch};

/// What a connection has been doing.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    touched: AtomicBool,
    /// Requests on this connection not yet fully answered.
    in_flight: AtomicUsize,
    /// Client connections only: when a request head is due.
    head: Option<HeadClock>,
}

impl Activity {
    /// For a client connection: with a request-head clock.
    pub(crate) fn client() -> Self {
        Activity {
            head: Some(HeadClock::new()),
            ..Activity::default()
        }
    }

    /// The request-head clock of a client connection.
    pub(crate) fn head(&self) -> Option<&HeadClock> {
        self.head.as_ref()
    }

    /// A request's head was parsed; it is answered until [`Activity::request_done`].
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(head) = &self.head {
            head.request_started();
        }
    }

    pub(crate) fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn touch(&self) {
        // A plain store is cheaper than a read-modify-write on every packet.
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }

    fn busy(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed) || self.in_flight.load(Ordering::Relaxed) > 0
    }
}

/// Resolves after `limit` without traffic and with nothing in flight.
pub(crate) async fn idle(activity: &Activity, limit: Duration) {
    let quarter = (limit / 4).max(Duration::from_millis(1));
    let mut quiet = 0;
    loop {
        tokio::time::sleep(quarter).await;
        if activity.busy() {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet >= 4 {
                return;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// An IO object that records traffic in an [`Activity`].
    #[derive(Debug)]
    pub(crate) struct Tracked<I> {
        #[pin]
        io: I,
        activity: std::sync::Arc<Activity>,
        // Client connections: shows what is read to the head clock.
        head: Option<HeadWatch>,
    }
}

impl<I> Tracked<I> {
    pub(crate) fn new(io: I, activity: std::sync::Arc<Activity>) -> Self {
        Tracked {
            io,
            activity,
            head: None,
        }
    }

    /// A client connection, whose request heads (at most `max_head` bytes)
    /// are watched.
    pub(crate) fn client(io: I, activity: std::sync::Arc<Activity>, max_head: usize) -> Self {
        Tracked {
            io,
            activity,
            head: Some(HeadWatch::new(max_head)),
        }
    }
}

impl<I: AsyncRead> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            let activity = &**this.activity;
            activity.touch();
            if let (Some(watch), Some(clock)) = (this.head.as_mut(), activity.head.as_ref()) {
                let answering = activity.in_flight.load(Ordering::Relaxed) > 0;
                watch.read(&buf.filled()[before..], answering, clock);
            }
        }
        result
    }
}

impl<I: AsyncWrite> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_quiet_and_nothing_in_flight() {
        let activity = Arc::new(Activity::default());
        let (a, mut b) = tokio::io::duplex(64);
        let mut a = Tracked::new(a, activity.clone());
        let start = tokio::time::Instant::now();
        let watch = idle(&activity, Duration::from_secs(4));
        tokio::pin!(watch);
        // Traffic at 3 s pushes the deadline out.
        tokio::select! {
            _ = &mut watch => panic!("closed while active"),
            _ = async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                a.write_all(b"x").await.unwrap();
                let mut byte = [0];
                b.read_exact(&mut byte).await.unwrap();
            } => {}
        }
        watch.await;
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited <= Duration::from_secs(9),
            "{waited:?}"
        );
    }
}
