//! The log hub: where every replica's output, and berth's lines about it, go.
//!
//! For each attached replica, one task reads stdout and stderr in 64 KiB
//! chunks; the lines of each read become one batch that is checked against
//! readiness waiters, published to live subscribers (never waiting) and
//! queued for the replica's file (waiting only on the disk).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use regex::bytes::Regex;
use tokio::io::AsyncRead;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::bus::{Bus, DEFAULT_CAPACITY, Subscription};
use super::file::{self, DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, Rotation};
use super::pump::Pump;
use super::record::LogRecord;
use super::wait::{WaitError, Waiters};
use super::writer::{FileSink, Owner, WriteStats};

/// A replica whose pipes are attached, and its file's limits
/// (`logging.options` `max-size`/`max-file`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The Compose service name.
    pub service: Arc<str>,
    /// The replica number, as in `api-1`.
    pub replica: u32,
    /// `max-size` in bytes; 0 means never rotate.
    pub max_size: u64,
    /// `max-file`: files kept, the live one included.
    pub max_files: u32,
}

impl Source {
    /// A source with Docker's defaults for berth (10 MiB x 3 files).
    pub fn new(service: impl Into<Arc<str>>, replica: u32) -> Source {
        Source {
            service: service.into(),
            replica,
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }

    fn rotation(&self) -> Rotation {
        Rotation {
            max_size: self.max_size,
            max_files: self.max_files,
        }
    }
}

/// Lines that could not be written to files, since the hub was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches whose write failed (each failure streak is also reported
    /// once as a `System` line).
    pub failed_writes: u64,
    /// Lines that never reached a file.
    pub lost_lines: u64,
}

/// A cheap, clonable handle to the log pipeline of one running stack.
#[derive(Clone, Debug)]
pub struct LogHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    bus: Arc<Bus>,
    waiters: Arc<Waiters>,
    stats: Arc<WriteStats>,
    /// One writer per file, kept across restarts of the replica.
    sinks: Mutex<HashMap<Arc<str>, HashMap<u32, FileSink>>>,
}

impl LogHub {
    /// A hub writing files into `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// `dir` cannot be created.
    pub fn new(dir: PathBuf) -> io::Result<LogHub> {
        LogHub::with_capacity(dir, DEFAULT_CAPACITY)
    }

    /// Like [`LogHub::new`], keeping `batches` batches for slow subscribers.
    ///
    /// # Errors
    ///
    /// `dir` cannot be created.
    pub fn with_capacity(dir: PathBuf, batches: usize) -> io::Result<LogHub> {
        crate::private::dir(&dir)?;
        Ok(LogHub {
            inner: Arc::new(Inner {
                dir,
                bus: Arc::new(Bus::new(batches)),
                waiters: Arc::default(),
                stats: Arc::default(),
                sinks: Mutex::default(),
            }),
        })
    }

    /// The directory of the log files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Starts draining a replica's pipes. The returned task ends once both
    /// pipes reached end of file and every line is in the file: await it
    /// after the process exits, before reporting the exit. Read errors end
    /// that pipe with a `System` line; the task itself never fails.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, like [`tokio::spawn`].
    pub fn attach<O, E>(&self, source: Source, stdout: O, stderr: E) -> JoinHandle<()>
    where
        O: AsyncRead + Unpin + Send + 'static,
        E: AsyncRead + Unpin + Send + 'static,
    {
        let runtime = Handle::current();
        let sink = self.sink(
            &source.service,
            source.replica,
            Some(source.rotation()),
            &runtime,
        );
        let pump = Pump {
            service: source.service,
            replica: source.replica,
            bus: Arc::clone(&self.inner.bus),
            waiters: Arc::clone(&self.inner.waiters),
            sink,
        };
        runtime.spawn(pump.drain(stdout, stderr))
    }

    /// Records one of berth's own lines about a replica (several if `text`
    /// has newlines), for subscribers and the replica's file. Never waits.
    /// Outside a tokio runtime, a replica never attached gets no file line.
    pub fn system(&self, service: &str, replica: u32, text: impl Into<String>) {
        let text = text.into();
        let service: Arc<str> = Arc::from(service);
        let ts = SystemTime::now();
        let records: Arc<[LogRecord]> = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .split('\n')
            .map(|line| {
                LogRecord::system(
                    ts,
                    &service,
                    replica,
                    Bytes::copy_from_slice(line.as_bytes()),
                )
            })
            .collect();
        if !self.publish_system(&service, replica, records) {
            tracing::warn!(%service, replica, "no runtime to write a log file: {text}");
        }
    }

    /// Records many of berth's own lines (each without a newline) with
    /// their own times as one batch: one publish to subscribers, one write
    /// to the file. For the proxy's access log, a worker's buffer at a
    /// time. Never waits; outside a tokio runtime, as [`LogHub::system`].
    pub fn system_lines<I>(&self, service: &str, replica: u32, lines: I)
    where
        I: IntoIterator<Item = (SystemTime, Bytes)>,
    {
        let service: Arc<str> = Arc::from(service);
        let records: Arc<[LogRecord]> = lines
            .into_iter()
            .map(|(ts, line)| LogRecord::system(ts, &service, replica, line))
            .collect();
        let count = records.len();
        if count > 0 && !self.publish_system(&service, replica, records) {
            tracing::warn!(%service, replica, "no runtime to write {count} log lines to a file");
        }
    }

    /// Publishes berth's own records and queues them for the file; false
    /// when there is no file writer and no runtime to start one.
    fn publish_system(&self, service: &Arc<str>, replica: u32, records: Arc<[LogRecord]>) -> bool {
        self.inner.bus.publish(Arc::clone(&records));
        let sink = self.existing_sink(service, replica).or_else(|| {
            let runtime = Handle::try_current().ok()?;
            Some(self.sink(service, replica, None, &runtime))
        });
        match sink {
            Some(sink) => {
                sink.write_now(records);
                true
            }
            None => false,
        }
    }

    /// A live feed of every record from now on. It never slows producers:
    /// a subscriber that falls behind is told how many records it skipped.
    pub fn subscribe(&self) -> Subscription {
        self.inner.bus.subscribe()
    }

    /// Waits for the first stdout/stderr line of the replica that `pattern`
    /// matches, counting from this call (so call it before starting the
    /// process), and returns that line. The check runs inside the pipe
    /// reader, so unlike a subscriber it cannot miss the line by lagging.
    /// Drop the future to stop waiting (e.g. when the process exits).
    ///
    /// # Errors
    ///
    /// [`WaitError::Closed`] if the hub goes away first.
    pub fn wait_for(
        &self,
        service: &str,
        replica: u32,
        pattern: Regex,
    ) -> impl Future<Output = Result<LogRecord, WaitError>> + Send + Sync + 'static {
        let rx = self.inner.waiters.register(service, replica, pattern);
        async move { rx.await.map_err(|_| WaitError::Closed) }
    }

    /// Waits until every line handed to the hub so far is in its file.
    pub async fn flush(&self) {
        let sinks: Vec<FileSink> = {
            let sinks = self
                .inner
                .sinks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            sinks.values().flat_map(|m| m.values().cloned()).collect()
        };
        for sink in sinks {
            sink.flush().await;
        }
    }

    /// Write failures so far.
    /// Follows the count of log lines lost so far (it only grows).
    pub fn lost_lines(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.stats.lost_watch.subscribe()
    }

    pub fn stats(&self) -> LogStats {
        let stats = &self.inner.stats;
        LogStats {
            failed_writes: stats.failed_writes.load(Ordering::Relaxed),
            lost_lines: stats.lost_lines.load(Ordering::Relaxed),
        }
    }

    fn existing_sink(&self, service: &str, replica: u32) -> Option<FileSink> {
        let sinks = self
            .inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sinks.get(service)?.get(&replica).cloned()
    }

    /// The file writer of a replica, started on first use.
    fn sink(
        &self,
        service: &Arc<str>,
        replica: u32,
        rotation: Option<Rotation>,
        runtime: &Handle,
    ) -> FileSink {
        let mut sinks = self
            .inner
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let per_service = sinks.entry(Arc::clone(service)).or_default();
        if let Some(sink) = per_service.get(&replica) {
            if let Some(rotation) = rotation {
                sink.set_rotation(rotation);
            }
            return sink.clone();
        }
        let owner = Owner {
            service: Arc::clone(service),
            replica,
            bus: Arc::clone(&self.inner.bus),
            stats: Arc::clone(&self.inner.stats),
        };
        let path = self.inner.dir.join(file::file_name(service, replica));
        let sink = FileSink::spawn(runtime, path, rotation.unwrap_or_default(), owner);
        per_service.insert(replica, sink.clone());
        sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::bus::Delivery;
    use crate::logs::record::Stream;

    fn texts(d: Delivery) -> Vec<String> {
        let Delivery::Records(records) = d else {
            panic!("skipped")
        };
        records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.name(),
                    r.stream,
                    String::from_utf8_lossy(&r.line)
                )
            })
            .collect()
    }

    #[test]
    fn source_defaults_are_10m_by_3() {
        let s = Source::new("api", 2);
        assert_eq!((s.max_size, s.max_files), (10 * 1024 * 1024, 3));
    }

    #[test]
    fn system_lines_split_on_newlines_and_need_no_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().join("logs")).unwrap();
        let mut sub = hub.subscribe();
        hub.system("api", 1, "exited with code 1\nrestarting in 200ms\n");
        assert_eq!(
            texts(sub.try_recv().unwrap()),
            [
                "api-1 system exited with code 1",
                "api-1 system restarting in 200ms"
            ]
        );
        // No runtime: subscribers got it, the file did not (and nothing panicked).
        assert!(!hub.dir().join("api-1.log").exists());
    }

    #[tokio::test]
    async fn system_lines_of_unattached_sources_get_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
        hub.system("proxy", 0, "GET / 200");
        hub.flush().await;
        let text = std::fs::read_to_string(dir.path().join("proxy-0.log")).unwrap();
        assert!(text.ends_with("Z system F GET / 200\n"), "{text}");
    }

    #[tokio::test]
    async fn system_lines_are_one_batch_each_line_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
        let mut sub = hub.subscribe();
        let t = |ms| SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let text = Bytes::from_static(b"{\"a\":1}{\"b\":2}");
        hub.system_lines(
            "proxy",
            0,
            [(t(1_000), text.slice(..7)), (t(2_500), text.slice(7..))],
        );
        hub.system_lines("proxy", 0, []);
        let Delivery::Records(records) = sub.try_recv().unwrap() else {
            panic!("skipped")
        };
        let got: Vec<_> = records
            .iter()
            .map(|r| (r.ts, r.stream, r.line.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (t(1_000), Stream::System, Bytes::from_static(b"{\"a\":1}")),
                (t(2_500), Stream::System, Bytes::from_static(b"{\"b\":2}")),
            ]
        );
        assert!(sub.try_recv().is_err(), "an empty batch is not published");
        hub.flush().await;
        let text = std::fs::read_to_string(dir.path().join("proxy-0.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("1970-01-01T00:00:01"), "{text}");
        assert!(lines[1].ends_with(" system F {\"b\":2}"), "{text}");
    }

    #[test]
    fn new_fails_when_the_dir_cannot_be_made() {
        let err = LogHub::new(PathBuf::from("/dev/null/logs")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }
}
