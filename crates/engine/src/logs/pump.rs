//! Draining one replica's pipes into the pipeline.
//!
//! Each read's lines become one batch: checked against readiness waiters,
//! published to subscribers (never waits), then queued for the file (waits
//! only while the disk is behind). stdout and stderr are drained
//! concurrently by one task.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncRead;

use super::bus::Bus;
use super::lines::{Line, LineReader};
use super::record::{LogRecord, Stream};
use super::wait::Waiters;
use super::writer::FileSink;

/// Moves one replica's lines from its pipes into the pipeline.
pub struct Pump {
    pub service: Arc<str>,
    pub replica: u32,
    pub bus: Arc<Bus>,
    pub waiters: Arc<Waiters>,
    pub sink: FileSink,
}

impl Pump {
    /// Reads both pipes to end of file, then waits until every line is in
    /// the file.
    pub async fn drain<O, E>(self, stdout: O, stderr: E)
    where
        O: AsyncRead + Unpin,
        E: AsyncRead + Unpin,
    {
        tokio::join!(
            self.run(stdout, Stream::Stdout),
            self.run(stderr, Stream::Stderr)
        );
        self.sink.flush().await;
    }

    async fn run<R: AsyncRead + Unpin>(&self, reader: R, stream: Stream) {
        let mut reader = LineReader::new(reader);
        let mut lines = Vec::new();
        loop {
            let more = match reader.read_lines(&mut lines).await {
                Ok(more) => more,
                Err(e) => {
                    self.report(format!("reading {stream} failed: {e}"));
                    false
                }
            };
            if !lines.is_empty() {
                self.send(stream, &mut lines).await;
            }
            if !more {
                return;
            }
        }
    }

    async fn send(&self, stream: Stream, lines: &mut Vec<Line>) {
        let ts = SystemTime::now();
        let batch: Arc<[LogRecord]> = lines
            .drain(..)
            .map(|line| LogRecord {
                ts,
                service: Arc::clone(&self.service),
                replica: self.replica,
                stream,
                partial: line.partial,
                line: line.bytes,
            })
            .collect();
        self.waiters.check(&batch);
        self.bus.publish(Arc::clone(&batch));
        self.sink.write(batch).await;
    }

    fn report(&self, text: String) {
        tracing::warn!(service = %self.service, replica = self.replica, "{text}");
        let record = LogRecord::system(
            SystemTime::now(),
            &self.service,
            self.replica,
            Bytes::from(text),
        );
        let batch: Arc<[LogRecord]> = Arc::from([record]);
        self.bus.publish(Arc::clone(&batch));
        self.sink.write_now(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::bus::Delivery;
    use crate::logs::file::Rotation;
    use crate::logs::writer::Owner;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    struct Broken;

    impl AsyncRead for Broken {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::other("boom")))
        }
    }

    #[tokio::test]
    async fn a_read_error_ends_that_pipe_with_a_system_line() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Arc::new(Bus::new(16));
        let mut sub = bus.subscribe();
        let owner = Owner {
            service: Arc::from("api"),
            replica: 1,
            bus: Arc::clone(&bus),
            stats: Arc::default(),
        };
        let path = dir.path().join("api-1.log");
        let sink = FileSink::spawn(
            &tokio::runtime::Handle::current(),
            path.clone(),
            Rotation::default(),
            owner,
        );
        let pump = Pump {
            service: Arc::from("api"),
            replica: 1,
            bus: Arc::clone(&bus),
            waiters: Arc::default(),
            sink,
        };
        pump.drain(Broken, &b"still read\n"[..]).await;
        let mut seen = Vec::new();
        while let Ok(Delivery::Records(batch)) = sub.try_recv() {
            for r in batch.iter() {
                seen.push(format!("{} {}", r.stream, String::from_utf8_lossy(&r.line)));
            }
        }
        seen.sort();
        assert_eq!(
            seen,
            ["stderr still read", "system reading stdout failed: boom"]
        );
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(
            file.contains(" system F reading stdout failed: boom\n"),
            "{file}"
        );
        assert!(file.contains(" stderr F still read\n"), "{file}");
    }
}
