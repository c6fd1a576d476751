//! Live delivery: one broadcast ring of record batches, never blocking.
//!
//! A producer publishes the records of one read as one batch; a batch
//! carries the sequence number of its first record. A subscriber that falls
//! more than the ring's capacity behind loses the oldest batches (the
//! producer never waits), and the gap in sequence numbers tells it exactly
//! how many records it missed.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use super::record::LogRecord;

/// Batches kept for the slowest subscriber. A batch is the lines of one read
/// (at most ~64 KiB of text), so this bounds a stalled subscriber's memory.
pub const DEFAULT_CAPACITY: usize = 256;

#[derive(Clone, Debug)]
struct Batch {
    first_seq: u64,
    records: Arc<[LogRecord]>,
}

/// The sending side, shared by every producer of a hub.
#[derive(Debug)]
pub struct Bus {
    /// Numbering and sending happen under one lock, so sequence numbers
    /// arrive in order.
    state: Mutex<BusState>,
}

#[derive(Debug)]
struct BusState {
    next_seq: u64,
    tx: broadcast::Sender<Batch>,
}

impl Bus {
    /// A bus keeping `capacity` batches (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Bus {
            state: Mutex::new(BusState { next_seq: 0, tx }),
        }
    }

    /// Hands the batch to every subscriber; returns at once.
    pub fn publish(&self, records: Arc<[LogRecord]>) {
        if records.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let first_seq = state.next_seq;
        state.next_seq += records.len() as u64;
        // An error only means nobody is subscribed.
        let _ = state.tx.send(Batch { first_seq, records });
    }

    /// A subscription to every record published from now on.
    pub fn subscribe(&self) -> Subscription {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        Subscription {
            rx: state.tx.subscribe(),
            next_seq: state.next_seq,
            pending: None,
        }
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The records of one read, in order.
    Records(Arc<[LogRecord]>),
    /// This many records were dropped because this subscriber fell behind;
    /// delivery goes on with newer ones.
    Skipped(u64),
}

/// Why [`Subscription::try_recv`] returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing is waiting right now.
    #[error("no log records waiting")]
    Empty,
    /// The hub and every producer are gone.
    #[error("log hub closed")]
    Closed,
}

/// A live feed of every record, from every replica, from the moment of
/// subscribing. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Batch>,
    next_seq: u64,
    /// A batch received right after a gap, held back while the gap is told.
    pending: Option<Batch>,
}

impl Subscription {
    /// The next delivery; `None` once the hub and all producers are gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        if let Some(batch) = self.pending.take() {
            return Some(self.deliver(batch));
        }
        loop {
            match self.rx.recv().await {
                Ok(batch) => return Some(self.deliver(batch)),
                // The next batch's sequence number tells how many were lost.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next delivery if one is waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is waiting,
    /// [`TryRecvError::Closed`] when nothing ever will be.
    pub fn try_recv(&mut self) -> Result<Delivery, TryRecvError> {
        if let Some(batch) = self.pending.take() {
            return Ok(self.deliver(batch));
        }
        loop {
            match self.rx.try_recv() {
                Ok(batch) => return Ok(self.deliver(batch)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(broadcast::error::TryRecvError::Empty) => return Err(TryRecvError::Empty),
                Err(broadcast::error::TryRecvError::Closed) => return Err(TryRecvError::Closed),
            }
        }
    }

    fn deliver(&mut self, batch: Batch) -> Delivery {
        if batch.first_seq > self.next_seq {
            let skipped = batch.first_seq - self.next_seq;
            self.next_seq = batch.first_seq;
            self.pending = Some(batch);
            return Delivery::Skipped(skipped);
        }
        self.next_seq = batch.first_seq + batch.records.len() as u64;
        Delivery::Records(batch.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::record::Stream;
    use bytes::Bytes;
    use std::time::SystemTime;

    fn batch(lines: &[&str]) -> Arc<[LogRecord]> {
        lines
            .iter()
            .map(|l| LogRecord {
                ts: SystemTime::now(),
                service: Arc::from("api"),
                replica: 1,
                stream: Stream::Stdout,
                partial: false,
                line: Bytes::copy_from_slice(l.as_bytes()),
            })
            .collect()
    }

    fn lines(d: Delivery) -> Vec<String> {
        match d {
            Delivery::Records(r) => r
                .iter()
                .map(|r| String::from_utf8_lossy(&r.line).into_owned())
                .collect(),
            Delivery::Skipped(n) => vec![format!("skipped {n}")],
        }
    }

    #[tokio::test]
    async fn delivers_batches_in_order() {
        let bus = Bus::new(8);
        let mut sub = bus.subscribe();
        bus.publish(batch(&["a", "b"]));
        bus.publish(batch(&["c"]));
        assert_eq!(lines(sub.recv().await.unwrap()), ["a", "b"]);
        assert_eq!(lines(sub.recv().await.unwrap()), ["c"]);
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    }

    #[tokio::test]
    async fn slow_subscriber_learns_how_many_records_it_missed() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe();
        bus.publish(batch(&["1", "2", "3"]));
        bus.publish(batch(&["4"]));
        bus.publish(batch(&["5", "6"]));
        bus.publish(batch(&["7"]));
        assert_eq!(lines(sub.recv().await.unwrap()), ["skipped 4"]);
        assert_eq!(lines(sub.try_recv().unwrap()), ["5", "6"]);
        assert_eq!(lines(sub.recv().await.unwrap()), ["7"]);
    }

    #[tokio::test]
    async fn publishing_without_subscribers_is_fine_and_late_subscribers_start_fresh() {
        let bus = Bus::new(2);
        bus.publish(batch(&["early"]));
        let mut sub = bus.subscribe();
        bus.publish(batch(&["late"]));
        assert_eq!(lines(sub.recv().await.unwrap()), ["late"]);
    }

    #[tokio::test]
    async fn closes_when_the_bus_is_dropped() {
        let bus = Bus::new(2);
        let mut sub = bus.subscribe();
        bus.publish(batch(&["last"]));
        drop(bus);
        assert_eq!(lines(sub.recv().await.unwrap()), ["last"]);
        assert_eq!(sub.recv().await, None);
        assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    }
}
