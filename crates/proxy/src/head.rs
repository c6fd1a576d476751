//! Request heads as they arrive on a client connection: the slowloris
//! deadline, and the repeated `Content-Length` hyper lets through.
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
//! While a head arrives its lines are scanned for `Content-Length` fields:
//! hyper drops a second identical one silently, nginx answers 400 and so
//! does berth (`check_content_length`).
//!
//! HTTP/2 (prior knowledge) is recognised by its preface and left alone:
//! idle HTTP/2 clients are normal and its heads come in frames.
//!
//! Limit: bytes read while a request is still being answered (pipelining)
//! start no head; a pipelined head that stalls is closed by the idle
//! timeout instead, and is not scanned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::header::CONTENT_LENGTH;
use http::request::Parts;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::Failure;

/// The HTTP/2 connection preface (RFC 9113 3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A header line naming `Content-Length`, lowercase.
const CONTENT_LENGTH_LINE: &[u8] = b"content-length:";

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
    /// The pending (or just parsed) head has more than one `Content-Length`.
    repeated_length: AtomicBool,
}

impl HeadClock {
    /// A new connection: its first head is pending from now.
    pub(crate) fn new() -> Self {
        HeadClock {
            epoch: Instant::now(),
            pending_since: AtomicU64::new(1),
            started: Notify::new(),
            repeated_length: AtomicBool::new(false),
        }
    }

    fn pending(&self) -> bool {
        self.pending_since.load(Ordering::Relaxed) != 0
    }

    fn start(&self) {
        let since = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.repeated_length.store(false, Ordering::Relaxed);
        self.pending_since.store(since, Ordering::Relaxed);
        self.started.notify_one();
    }

    /// hyper parsed the head and called the service.
    pub(crate) fn request_started(&self) {
        self.pending_since.store(0, Ordering::Relaxed);
    }

    /// Whether the head just parsed repeated `Content-Length`; asks once.
    pub(crate) fn take_repeated_length(&self) -> bool {
        self.repeated_length.swap(false, Ordering::Relaxed)
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
    scan: Scan,
    /// Most bytes one head is scanned for (hyper refuses larger heads).
    max_head: usize,
}

impl HeadWatch {
    pub(crate) fn new(max_head: usize) -> Self {
        HeadWatch {
            protocol: Protocol::Undecided(0),
            scan: Scan::new(),
            max_head,
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
            self.scan = Scan::new();
        }
        if self.scan.active && self.scan.feed(bytes, self.max_head) {
            clock.repeated_length.store(true, Ordering::Relaxed);
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

/// Where the scan of one HTTP/1 head is. Lines are found with `memchr`
/// and only their first bytes are compared: a head costs a few
/// instructions per line, not per byte.
#[derive(Debug)]
struct Scan {
    active: bool,
    scanned: usize,
    /// Complete lines seen (the request line is the first).
    lines: usize,
    /// The current line has a byte other than `\r`.
    line_started: bool,
    /// How much of [`CONTENT_LENGTH_LINE`] the current line matches so
    /// far; `None` once it cannot.
    matched: Option<usize>,
    lengths: usize,
}

impl Scan {
    fn new() -> Self {
        Scan {
            active: true,
            scanned: 0,
            lines: 0,
            line_started: false,
            matched: Some(0),
            lengths: 0,
        }
    }

    /// Scans `bytes` up to the blank line ending the head; true when the
    /// second `Content-Length` line is seen.
    fn feed(&mut self, bytes: &[u8], max_head: usize) -> bool {
        let room = max_head.saturating_sub(self.scanned);
        let (bytes, over) = match bytes.get(..room) {
            Some(within) if within.len() < bytes.len() => (within, true),
            _ => (bytes, false),
        };
        self.scanned += bytes.len();
        let mut rest = bytes;
        loop {
            let end = memchr::memchr(b'\n', rest);
            let (line, next) = match end {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            if self.line(line) {
                return true;
            }
            if end.is_none() {
                break;
            }
            // The end of a line.
            if !self.line_started && self.lines > 0 {
                self.active = false;
                return false;
            }
            // Empty lines before the request line are skipped.
            if self.line_started {
                self.lines += 1;
            }
            self.line_started = false;
            self.matched = Some(0);
            rest = next;
        }
        if over {
            self.active = false;
        }
        false
    }

    /// A piece of the current line (no `\n`); true on the second
    /// `Content-Length` line.
    fn line(&mut self, piece: &[u8]) -> bool {
        let mut content = piece.iter().copied().filter(|&b| b != b'\r');
        if !self.line_started {
            let Some(first) = content.next() else {
                return false;
            };
            self.line_started = true;
            if !self.matches(first) {
                return false;
            }
        }
        while self.matched.is_some() {
            let Some(b) = content.next() else {
                return false;
            };
            if !self.matches(b) {
                return false;
            }
            if self.matched.is_none() {
                return self.lengths == 2;
            }
        }
        false
    }

    /// Matches the next byte of a line against [`CONTENT_LENGTH_LINE`];
    /// false once the line cannot be one. A full match counts the line.
    fn matches(&mut self, b: u8) -> bool {
        let Some(m) = self.matched.filter(|_| self.lines > 0) else {
            self.matched = None;
            return false;
        };
        if CONTENT_LENGTH_LINE.get(m) != Some(&b.to_ascii_lowercase()) {
            self.matched = None;
            return false;
        }
        if m + 1 == CONTENT_LENGTH_LINE.len() {
            self.matched = None;
            self.lengths += 1;
        } else {
            self.matched = Some(m + 1);
        }
        true
    }
}

/// Refuses a request whose length is ambiguous: `Content-Length` repeated
/// on the wire (`repeated`, from the scan), or, as the header map shows it,
/// more than once or not a single decimal number (`5, 5`).
pub(crate) fn check_content_length(parts: &Parts, repeated: bool) -> Result<(), Failure> {
    let mut values = parts.headers.get_all(CONTENT_LENGTH).iter();
    let first = values.next();
    let single = first.is_none_or(|v| !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit));
    if repeated || values.next().is_some() || !single {
        return Err(Failure::BadRequest("invalid or repeated Content-Length"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &[u8]) -> bool {
        Scan::new().feed(head, 1024)
    }

    #[test]
    fn a_second_content_length_line_is_found_in_any_case_and_split() {
        assert!(scan(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-LENGTH: 5\r\n\r\n"
        ));
        assert!(!scan(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nX-Content-Length: 5\r\n\r\n"
        ));
        // Only the head counts: the body and what follows are not scanned.
        assert!(!scan(
            b"POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\nContent-Length: 5\r\n"
        ));
        assert!(!scan(
            b"\r\nPOST / HTTP/1.1\nContent-Length: 5\n\ncontent-length: 1\n"
        ));
        let mut split = Scan::new();
        let head = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        let found = head.chunks(3).any(|c| split.feed(c, 1024));
        assert!(found);
    }

    #[test]
    fn every_split_finds_the_same_and_the_scan_stops_at_the_limit() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nCONTENT-length: 5\r\n\r\n";
        for size in 1..head.len() {
            let mut split = Scan::new();
            assert!(head.chunks(size).any(|c| split.feed(c, 1024)), "{size}");
        }
        // The second line lies past the limit: not scanned.
        let limit = head.len() - 12;
        assert!(!Scan::new().feed(head, limit));
        let mut cut = Scan::new();
        assert!(!cut.feed(head, 30));
        assert!(!cut.active);
    }

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
        let mut watch = HeadWatch::new(1024);
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
        let mut watch = HeadWatch::new(1024);
        watch.read(PREFACE, false, &clock);
        watch.read(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", false, &clock);
        let cut = tokio::time::timeout(
            Duration::from_secs(60),
            deadline(&clock, Duration::from_secs(1)),
        );
        assert!(cut.await.is_err());
    }

    #[test]
    fn ambiguous_lengths_are_refused() {
        let parts = |values: &[&str]| {
            let mut b = http::Request::builder();
            for v in values {
                b = b.header(CONTENT_LENGTH, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(check_content_length(&parts(&[]), false), Ok(()));
        assert_eq!(check_content_length(&parts(&["5"]), false), Ok(()));
        assert!(check_content_length(&parts(&["5"]), true).is_err());
        assert!(check_content_length(&parts(&["5, 5"]), false).is_err());
        assert!(check_content_length(&parts(&["5", "5"]), false).is_err());
        assert!(check_content_length(&parts(&["+5"]), false).is_err());
    }
}
