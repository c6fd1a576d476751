//! Waiting for a line that matches a pattern (`x-berth.ready: {log: REGEX}`).
//!
//! Waiters are checked by the pipe readers themselves, on every batch,
//! before the batch is published: unlike a broadcast subscriber, a waiter
//! can never lag past the line it waits for. With no waiter registered a
//! batch costs one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use regex::bytes::Regex;
use tokio::sync::oneshot;

use super::record::{LogRecord, Stream};

/// [`LogHub::wait_for`](super::LogHub::wait_for) boxed, for keeping in a struct.
pub type LogWait = Pin<Box<dyn Future<Output = Result<LogRecord, WaitError>> + Send + Sync>>;

/// Why a wait for a log line ended without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The log hub was dropped.
    #[error("log hub closed before a matching line was seen")]
    Closed,
}

#[derive(Debug)]
struct Waiter {
    service: Arc<str>,
    replica: u32,
    pattern: Regex,
    tx: Option<oneshot::Sender<LogRecord>>,
}

/// The registered waiters of one hub.
#[derive(Debug, Default)]
pub struct Waiters {
    /// How many are registered, read without the lock on every batch.
    active: AtomicUsize,
    list: Mutex<Vec<Waiter>>,
}

impl Waiters {
    /// Registers a wait for the first stdout or stderr line of `service`
    /// replica `replica` that `pattern` matches, from now on.
    pub fn register(
        &self,
        service: &str,
        replica: u32,
        pattern: Regex,
    ) -> oneshot::Receiver<LogRecord> {
        let (tx, rx) = oneshot::channel();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|w| w.tx.as_ref().is_some_and(|tx| !tx.is_closed()));
        list.push(Waiter {
            service: Arc::from(service),
            replica,
            pattern,
            tx: Some(tx),
        });
        self.active.store(list.len(), Ordering::Release);
        rx
    }

    /// Resolves the waiters that `records` (all from one replica) satisfy.
    pub fn check(&self, records: &[LogRecord]) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let Some(first) = records.first() else { return };
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        for waiter in list.iter_mut() {
            if *waiter.service != *first.service || waiter.replica != first.replica {
                continue;
            }
            let found = records.iter().find(|r| {
                matches!(r.stream, Stream::Stdout | Stream::Stderr)
                    && waiter.pattern.is_match(&r.line)
            });
            if let Some(record) = found
                && let Some(tx) = waiter.tx.take()
            {
                // The receiver may be gone; then nobody waits any more.
                let _ = tx.send(record.clone());
            }
        }
        list.retain(|w| w.tx.as_ref().is_some_and(|tx| !tx.is_closed()));
        self.active.store(list.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::SystemTime;

    fn rec(service: &str, replica: u32, stream: Stream, line: &[u8]) -> LogRecord {
        LogRecord {
            ts: SystemTime::now(),
            service: Arc::from(service),
            replica,
            stream,
            partial: false,
            line: Bytes::copy_from_slice(line),
        }
    }

    #[test]
    fn resolves_on_the_first_matching_line_of_that_replica() {
        let waiters = Waiters::default();
        let mut rx = waiters.register("db", 1, Regex::new("ready to accept").unwrap());
        waiters.check(&[rec("db", 2, Stream::Stdout, b"ready to accept connections")]);
        waiters.check(&[rec(
            "api",
            1,
            Stream::Stdout,
            b"ready to accept connections",
        )]);
        waiters.check(&[rec(
            "db",
            1,
            Stream::System,
            b"ready to accept (not the app)",
        )]);
        assert!(rx.try_recv().is_err());
        waiters.check(&[
            rec("db", 1, Stream::Stdout, b"starting \xff"),
            rec("db", 1, Stream::Stderr, b"LOG: ready to accept connections"),
            rec("db", 1, Stream::Stderr, b"ready to accept again"),
        ]);
        assert_eq!(
            &rx.try_recv().unwrap().line[..],
            b"LOG: ready to accept connections"
        );
        assert_eq!(waiters.active.load(Ordering::Acquire), 0);
    }

    #[test]
    fn dropped_waits_are_forgotten() {
        let waiters = Waiters::default();
        drop(waiters.register("db", 1, Regex::new("x").unwrap()));
        let _kept = waiters.register("db", 2, Regex::new("x").unwrap());
        assert_eq!(waiters.active.load(Ordering::Acquire), 1);
    }
}
