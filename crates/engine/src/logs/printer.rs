//! The terminal printer of `berth up` and `berth logs -f`.
//!
//! It runs on its own thread with a small single-threaded runtime, so a
//! stdout that blocks (a paused terminal, a full pipe) holds only that
//! thread; producers never wait for it, and when it falls behind it prints
//! how many lines it skipped. A write error such as `EPIPE` (`berth up |
//! head`) ends printing silently; the services keep running.

use std::io::{self, Write};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::bus::{Delivery, Subscription};
use super::format::Formatter;

/// Output gathered into one write when deliveries are waiting.
const WRITE_SIZE: usize = 64 * 1024;

/// After stop, at most this many waiting deliveries are still printed.
const DRAIN_LIMIT: usize = 10_000;

/// A running printer thread.
#[derive(Debug)]
pub struct Printer {
    done: oneshot::Receiver<()>,
}

impl Printer {
    /// Starts printing every record of `subscription` to `out` (usually
    /// `std::io::stdout()`). When `stop` is cancelled it prints what is
    /// already waiting and ends; it also ends when the hub closes or `out`
    /// fails.
    ///
    /// # Errors
    ///
    /// The thread or its runtime could not be created.
    pub fn spawn<W>(
        subscription: Subscription,
        formatter: Formatter,
        out: W,
        stop: CancellationToken,
    ) -> io::Result<Printer>
    where
        W: Write + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let (done_tx, done) = oneshot::channel();
        let mut lines = Lines {
            subscription,
            formatter,
            out,
            buf: Vec::with_capacity(WRITE_SIZE * 2),
        };
        std::thread::Builder::new()
            .name("berth-log-printer".into())
            .spawn(move || {
                if let Err(e) = runtime.block_on(lines.run(stop)) {
                    tracing::debug!(error = %e, "log printer stopped");
                }
                let _ = done_tx.send(());
            })?;
        Ok(Printer { done })
    }

    /// Waits until the printer has ended.
    pub async fn finished(self) {
        let _ = self.done.await;
    }
}

struct Lines<W> {
    subscription: Subscription,
    formatter: Formatter,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Lines<W> {
    async fn run(&mut self, stop: CancellationToken) -> io::Result<()> {
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                delivery = self.subscription.recv() => match delivery {
                    Some(delivery) => self.print(delivery)?,
                    None => return Ok(()),
                },
            }
        }
        for _ in 0..DRAIN_LIMIT {
            match self.subscription.try_recv() {
                Ok(delivery) => self.print(delivery)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Prints `first` and whatever else is already waiting, in one write.
    fn print(&mut self, first: Delivery) -> io::Result<()> {
        self.buf.clear();
        self.add(&first);
        while self.buf.len() < WRITE_SIZE {
            match self.subscription.try_recv() {
                Ok(delivery) => self.add(&delivery),
                Err(_) => break,
            }
        }
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }

    fn add(&mut self, delivery: &Delivery) {
        match delivery {
            Delivery::Records(records) => {
                for record in records.iter() {
                    self.formatter.format(record, &mut self.buf);
                }
            }
            Delivery::Skipped(n) => self.formatter.format_skipped(*n, &mut self.buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::bus::Bus;
    use crate::logs::format::PrintOptions;
    use crate::logs::record::{LogRecord, Stream};
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Waits for the printer to end; a printer that never does fails the
    /// test instead of hanging it.
    async fn ended(printer: Printer) {
        tokio::time::timeout(std::time::Duration::from_secs(5), printer.finished())
            .await
            .expect("the printer did not end within 5 s");
    }

    fn batch(line: &str) -> Arc<[LogRecord]> {
        Arc::from([LogRecord {
            ts: SystemTime::now(),
            service: Arc::from("web"),
            replica: 1,
            stream: Stream::Stdout,
            partial: false,
            line: Bytes::copy_from_slice(line.as_bytes()),
        }])
    }

    #[tokio::test]
    async fn prints_until_stopped_then_drains() {
        let bus = Bus::new(16);
        let out = Shared::default();
        let stop = CancellationToken::new();
        let f = Formatter::new(PrintOptions::default());
        let printer = Printer::spawn(bus.subscribe(), f, out.clone(), stop.clone()).unwrap();
        bus.publish(batch("one"));
        bus.publish(batch("two"));
        stop.cancel();
        bus.publish(batch("three"));
        ended(printer).await;
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        // "three" may or may not make it: it was published after the stop.
        assert!(text.starts_with("web-1  | one\nweb-1  | two\n"), "{text}");
    }

    #[tokio::test]
    async fn broken_pipe_ends_printing_quietly() {
        let bus = Bus::new(16);
        let f = Formatter::new(PrintOptions::default());
        let printer = Printer::spawn(bus.subscribe(), f, Closed, CancellationToken::new()).unwrap();
        bus.publish(batch("into the void"));
        ended(printer).await;
        // Publishing goes on without anyone listening.
        bus.publish(batch("still fine"));
    }

    #[tokio::test]
    async fn ends_when_the_hub_closes() {
        let bus = Bus::new(16);
        let f = Formatter::new(PrintOptions::default());
        let printer =
            Printer::spawn(bus.subscribe(), f, io::sink(), CancellationToken::new()).unwrap();
        drop(bus);
        ended(printer).await;
    }
}
