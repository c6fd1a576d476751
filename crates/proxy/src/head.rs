//! Request heads as they arrive on a client connection: the slowloris
//! deadline.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive HTTP/1
//! connection waits for its next request, so it closes idle connections at
//! `header_read` instead of `idle`. berth keeps the two apart, as nginx does
//! (`client_header_timeout`, `keepalive_timeout`): a head is *pending* from
//! the accept, and on a kept-alive connection from the first byte of the
//! next request, until hyper hands the parsed request to the service
//! ([`HeadClock::request_started`]); [`deadline`] resolves when one stays
//! pending for `header_read`. The wait between requests belongs to the idle
//! timeout.
//!
//! HTTP/2 (prior knowledge) is recognised by its preface and left alone:
//! idle HTTP/2 clients are normal and its heads come in frames.
//!
//! Limit: bytes read while a request is still being answered (pipelining)
//! start no head; a pipelined head that stalls is closed by the idle
//! timeout instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The HTTP/2 connection preface (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connection's head state, shared by its reader ([`HeadWatch`]), its
/// requests and its [`deadline`].
#[derive(Debug)]
pub(crate) struct HeadClock {
    epoch: Instant,
    /// When the pending head started, in milliseconds after `epoch`, plus
    /// one; 0 when no head is pending.
    pending_since: AtomicU64,
    /// Wakes the deadline when a head starts.
    started: Notify,
}

impl HeadClock {
    /// A new connection: its first head is pending from now.
    pub(crate) fn new() -> Self {
        HeadClock {
            epoch: Instant::now(),
            pending_since: AtomicU64::new(1),
            started: Notify::new(),
        }
    }

    fn pending(&self) -> bool {
        self.pending_since.load(Ordering::Relaxed) != 0
    }

    fn start(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.pending_since.store(since, Ordering::Relaxed);
        self.started.notify_one();
    }

    /// hyper parsed the head and called the service.
    pub(crate) fn request_started(&self) {
        self.pending_since.store(0, Ordering::Relaxed);
    }

    /// The connection speaks HTTP/2: no head is ever pending again.
    fn stop(&self) {
        self.pending_since.store(0, Ordering::Relaxed);
    }
}

/// Resolves when a head has been pending for `limit`.
pub(crate) async fn deadline(clock: &HeadClock, limit: Duration) {
    loop {
        let since = clock.pending_since.load(Ordering::Relaxed);
        if since == 0 {
            // A permit is kept if a head started since the load.
            clock.started.notified().await;
            continue;
        }
        let at = clock.epoch + Duration::from_millis(since - 1) + limit;
        tokio::time::sleep_until(at).await;
        if clock.pending_since.load(Ordering::Relaxed) == since {
            return;
        }
    }
}

/// What the bytes read so far say about the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes matched the HTTP/2 preface.
    Undecided(usize),
    Http1,
    Http2,
}

/// The reading side: sees every byte the client sends, in order.
#[derive(Debug)]
pub(crate) struct HeadWatch {
    protocol: Protocol,
}

impl HeadWatch {
    pub(crate) fn new() -> Self {
        HeadWatch {
            protocol: Protocol::Undecided(0),
        }
    }

    /// Notes bytes just read; `answering` when a request is in flight.
    pub(crate) fn read(&mut self, bytes: &[u8], answering: bool, clock: &HeadClock) {
        if let Protocol::Undecided(matched) = self.protocol {
            self.protocol = detect(matched, bytes);
            if self.protocol == Protocol::Http2 {
                clock.stop();
            }
        }
        if self.protocol == Protocol::Http2 {
            return;
        }
        if !answering && !clock.pending() {
            clock.start();
        }
    }
}

/// Matches `bytes` against the rest of the HTTP/2 preface.
fn detect(matched: usize, bytes: &[u8]) -> Protocol {
    let rest = PREFACE.get(matched..).unwrap_or_default();
    let n = rest.len().min(bytes.len());
    if rest[..n] != bytes[..n] {
        Protocol::Http1
    } else if matched + n == PREFACE.len() {
        Protocol::Http2
    } else {
        Protocol::Undecided(matched + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http2_preface_is_recognised_bytewise() {
        assert_eq!(detect(0, b"GET / HTTP/1.1"), Protocol::Http1);
        assert_eq!(detect(0, b"PRI * HT"), Protocol::Undecided(8));
        assert_eq!(detect(8, b"TP/2.0\r\n\r\nSM\r\n\r\nmore"), Protocol::Http2);
        assert_eq!(detect(0, b"PRIX"), Protocol::Http1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_first_byte_of_a_head_not_from_idle() {
        let clock = HeadClock::new();
        let mut watch = HeadWatch::new();
        let started = Instant::now();
        watch.read(b"GET / HTTP/1.1\r\n\r\n", false, &clock);
        clock.request_started();
        // The answer is done; the connection idles for 10 s, then a head
        // starts and stalls.
        let limit = Duration::from_secs(1);
        let cut = deadline(&clock, limit);
        tokio::pin!(cut);
        tokio::select! {
            () = &mut cut => panic!("cut while idle"),
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
        watch.read(b"GET", false, &clock);
        cut.await;
        assert_eq!(started.elapsed(), Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_have_no_head_deadline() {
        let clock = HeadClock::new();
        let mut watch = HeadWatch::new();
        watch.read(PREFACE, false, &clock);
        watch.read(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", false, &clock);
        let cut = tokio::time::timeout(
            Duration::from_secs(60),
            deadline(&clock, Duration::from_secs(1)),
        );
        assert!(cut.await.is_err());
    }
}
