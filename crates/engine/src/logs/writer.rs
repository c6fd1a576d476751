//! The task that owns one replica's log file.
//!
//! Producers send batches over an unbounded channel but must first take one
//! of [`IN_FLIGHT`] permits, released once the batch is on disk: a slow disk
//! slows the pipe readers (and so the service), never the other way round,
//! and memory stays bounded. berth's own lines skip the permit so
//! [`FileSink::write_now`] never waits. File I/O runs on the blocking pool,
//! several queued batches per trip.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::bus::Bus;
use super::file::{RotatingFile, Rotation, WriteFailure};
use super::record::LogRecord;

/// Batches a file may have queued before its readers wait for the disk.
const IN_FLIGHT: usize = 32;

/// Messages handled per trip to the blocking pool.
const PER_TRIP: usize = 64;

/// Write failures across all files of a hub.
#[derive(Debug)]
pub struct WriteStats {
    /// Batches that could not be (fully) written.
    pub failed_writes: AtomicU64,
    /// Lines that never reached a file.
    pub lost_lines: AtomicU64,
    /// `lost_lines` as it grows, for `berth events`.
    pub lost_watch: tokio::sync::watch::Sender<u64>,
}

impl Default for WriteStats {
    fn default() -> Self {
        WriteStats {
            failed_writes: AtomicU64::new(0),
            lost_lines: AtomicU64::new(0),
            lost_watch: tokio::sync::watch::channel(0).0,
        }
    }
}

enum WriterMsg {
    Batch(Arc<[LogRecord]>, Option<OwnedSemaphorePermit>),
    Rotation(Rotation),
    Flush(oneshot::Sender<()>),
}

/// A handle to a file's writer task; the task ends when every handle is gone.
#[derive(Clone, Debug)]
pub struct FileSink {
    tx: mpsc::UnboundedSender<WriterMsg>,
    permits: Arc<Semaphore>,
}

/// Who the file belongs to, for the lines reporting its failures.
#[derive(Debug)]
pub struct Owner {
    pub service: Arc<str>,
    pub replica: u32,
    pub bus: Arc<Bus>,
    pub stats: Arc<WriteStats>,
}

impl FileSink {
    /// Starts the writer task for the file at `path` on `runtime`.
    pub fn spawn(runtime: &Handle, path: PathBuf, rotation: Rotation, owner: Owner) -> FileSink {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = FileWriter {
            file: RotatingFile::new(path, rotation),
            owner,
            failing: false,
            lost: 0,
        };
        runtime.spawn(run(rx, writer));
        FileSink {
            tx,
            permits: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Queues a batch, waiting while the file is [`IN_FLIGHT`] batches behind.
    pub async fn write(&self, records: Arc<[LogRecord]>) {
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok();
        // Fails only if the task is gone, which it is not while we hold `tx`.
        let _ = self.tx.send(WriterMsg::Batch(records, permit));
    }

    /// Queues a batch without waiting (for berth's own, rare lines).
    pub fn write_now(&self, records: Arc<[LogRecord]>) {
        let _ = self.tx.send(WriterMsg::Batch(records, None));
    }

    /// Changes the file's limits from the next record on.
    pub fn set_rotation(&self, rotation: Rotation) {
        let _ = self.tx.send(WriterMsg::Rotation(rotation));
    }

    /// Waits until everything queued so far has been written (or failed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(WriterMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<WriterMsg>, writer: FileWriter) {
    let writer = Arc::new(Mutex::new(writer));
    let mut msgs = Vec::with_capacity(PER_TRIP);
    while rx.recv_many(&mut msgs, PER_TRIP).await > 0 {
        let writer = Arc::clone(&writer);
        let mut trip = std::mem::take(&mut msgs);
        let done = tokio::task::spawn_blocking(move || {
            let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
            writer.process(&mut trip);
            trip
        });
        match done.await {
            Ok(emptied) => msgs = emptied,
            Err(e) => tracing::error!(error = %e, "log writer failed"),
        }
    }
}

#[derive(Debug)]
struct FileWriter {
    file: RotatingFile,
    owner: Owner,
    /// The last write failed; the next failure is not reported again.
    failing: bool,
    /// Lines lost since the failure began.
    lost: u64,
}

impl FileWriter {
    fn process(&mut self, msgs: &mut Vec<WriterMsg>) {
        for msg in msgs.drain(..) {
            match msg {
                WriterMsg::Batch(records, permit) => {
                    let result = self.file.write_records(&records);
                    drop(permit);
                    self.account(result);
                }
                WriterMsg::Rotation(rotation) => self.file.set_rotation(rotation),
                WriterMsg::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn account(&mut self, result: Result<(), WriteFailure>) {
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                let lost = std::mem::take(&mut self.lost);
                self.report(format!("log file writable again; {lost} lines were lost"));
            }
            Ok(()) => {}
            Err(failure) => {
                let stats = &self.owner.stats;
                stats.failed_writes.fetch_add(1, Ordering::Relaxed);
                let total = stats
                    .lost_lines
                    .fetch_add(failure.lost as u64, Ordering::Relaxed)
                    + failure.lost as u64;
                stats.lost_watch.send_replace(total);
                self.lost += failure.lost as u64;
                if !self.failing {
                    self.failing = true;
                    let text = format!(
                        "{failure}: {}; dropping log lines until it is writable again",
                        failure.source
                    );
                    self.report(text);
                }
            }
        }
    }

    /// Tells live subscribers (not the failing file) and the tracing log.
    fn report(&self, text: String) {
        let owner = &self.owner;
        tracing::warn!(service = %owner.service, replica = owner.replica, "{text}");
        let record = LogRecord::system(
            SystemTime::now(),
            &owner.service,
            owner.replica,
            Bytes::from(text),
        );
        owner.bus.publish(Arc::from([record]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::bus::Delivery;
    use crate::logs::record::Stream;

    fn rec(line: &'static str) -> LogRecord {
        LogRecord {
            ts: SystemTime::now(),
            service: Arc::from("api"),
            replica: 1,
            stream: Stream::Stdout,
            partial: false,
            line: Bytes::from_static(line.as_bytes()),
        }
    }

    fn owner(bus: &Arc<Bus>, stats: &Arc<WriteStats>) -> Owner {
        Owner {
            service: Arc::from("api"),
            replica: 1,
            bus: Arc::clone(bus),
            stats: Arc::clone(stats),
        }
    }

    #[tokio::test]
    async fn flush_waits_for_queued_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (bus, stats) = (Arc::new(Bus::new(4)), Arc::default());
        let path = dir.path().join("api-1.log");
        let sink = FileSink::spawn(
            &Handle::current(),
            path.clone(),
            Rotation::default(),
            owner(&bus, &stats),
        );
        for _ in 0..100 {
            sink.write(Arc::from([rec("a"), rec("b")])).await;
        }
        sink.write_now(Arc::from([rec("c")]));
        sink.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 201);
        assert!(text.ends_with(" stdout F c\n"));
    }

    #[tokio::test]
    async fn failure_is_reported_once_and_recovery_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-1.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let (bus, stats) = (Arc::new(Bus::new(16)), Arc::new(WriteStats::default()));
        let mut sub = bus.subscribe();
        let sink = FileSink::spawn(
            &Handle::current(),
            path.clone(),
            Rotation::default(),
            owner(&bus, &stats),
        );
        for _ in 0..3 {
            sink.write(Arc::from([rec("x"), rec("y")])).await;
        }
        sink.flush().await;
        assert_eq!(stats.failed_writes.load(Ordering::Relaxed), 3);
        assert_eq!(stats.lost_lines.load(Ordering::Relaxed), 6);
        let Ok(Delivery::Records(r)) = sub.try_recv() else {
            panic!("no report")
        };
        let text = String::from_utf8_lossy(&r[0].line).into_owned();
        assert_eq!(r[0].stream, Stream::System);
        assert!(
            text.starts_with("could not write 2 log lines to "),
            "{text}"
        );
        assert!(text.contains("dropping log lines"), "{text}");
        assert!(sub.try_recv().is_err(), "reported more than once");

        std::fs::remove_file(&path).unwrap();
        sink.write(Arc::from([rec("z")])).await;
        sink.flush().await;
        let Ok(Delivery::Records(r)) = sub.try_recv() else {
            panic!("no recovery")
        };
        assert_eq!(
            &r[0].line[..],
            b"log file writable again; 6 lines were lost"
        );
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with(" stdout F z\n")
        );
    }
}
