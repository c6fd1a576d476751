//! The access log off the request path, like nginx's `access_log …
//! buffer=64k flush=…`: each worker thread formats its lines into one
//! buffer and hands them to the [`StackView`] as one [`AccessLogBatch`] when
//! the buffer passes [`FLUSH_AT`], every [`FLUSH_EVERY`] (a task on the
//! worker's runtime, [`flush_every`]), and when the worker ends (dropping
//! the [`Installed`] guard), so a clean stop loses no line. A line recorded
//! on a thread without a buffer, or for another proxy's view, is handed
//! over at once as a batch of one.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::access_log::AccessLogBatch;
use crate::view::StackView;

/// A buffer holding this many bytes is handed over at once.
pub(crate) const FLUSH_AT: usize = 64 * 1024;

/// How long a line waits in a buffer at most (plus one timer tick).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Lines gathered, not yet handed over.
#[derive(Debug, Default)]
struct Pending {
    text: Vec<u8>,
    ends: Vec<(SystemTime, usize)>,
}

impl Pending {
    fn push(&mut self, ts: SystemTime, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.text);
        self.ends.push((ts, self.text.len()));
    }

    fn is_full(&self) -> bool {
        self.text.len() >= FLUSH_AT
    }

    /// What was gathered, leaving the buffer empty (`None`: nothing).
    fn take(&mut self) -> Option<AccessLogBatch> {
        if self.ends.is_empty() {
            return None;
        }
        let lines = self.ends.len();
        Some(AccessLogBatch::new(
            Bytes::from(std::mem::take(&mut self.text)),
            std::mem::replace(&mut self.ends, Vec::with_capacity(lines)),
        ))
    }
}

/// A worker thread's buffer and where its batches go.
struct WorkerLog {
    view: Arc<dyn StackView>,
    pending: Pending,
}

thread_local! {
    static WORKER: RefCell<Option<WorkerLog>> = const { RefCell::new(None) };
}

/// This thread's buffer, from [`install`] until dropped; dropping it hands
/// over the lines still buffered. Drop it after the worker's runtime, so
/// the lines of connections the runtime cuts short are in too.
#[derive(Debug)]
pub(crate) struct Installed {
    /// The buffer belongs to the thread that installed it.
    _thread: PhantomData<*const ()>,
}

/// Gives this thread a buffer whose batches go to `view`.
pub(crate) fn install(view: Arc<dyn StackView>) -> Installed {
    // An earlier buffer of this thread (none in practice) is handed over first.
    let earlier = WORKER.with(|w| {
        w.borrow_mut().replace(WorkerLog {
            view,
            pending: Pending::default(),
        })
    });
    if let Some(mut earlier) = earlier
        && let Some(batch) = earlier.pending.take()
    {
        earlier.view.access_log(batch);
    }
    Installed {
        _thread: PhantomData,
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let log = WORKER.try_with(|w| w.borrow_mut().take()).ok().flatten();
        if let Some(mut log) = log
            && let Some(batch) = log.pending.take()
        {
            log.view.access_log(batch);
        }
    }
}

/// Records one line that `write` appends, recorded at `ts`, for `view`:
/// into this thread's buffer when it has one for `view` (handing the buffer
/// over once full), else at once as a batch of one.
pub(crate) fn record(view: &Arc<dyn StackView>, ts: SystemTime, write: impl FnOnce(&mut Vec<u8>)) {
    let mut write = Some(write);
    // `Some(batch)`: the buffer is full; `None` inside: buffered.
    let buffered = WORKER.try_with(|w| {
        let mut w = w.try_borrow_mut().ok()?;
        let log = w.as_mut().filter(|log| Arc::ptr_eq(&log.view, view))?;
        if log.pending.text.capacity() == 0 {
            // Room for a full buffer and the line that passes the mark.
            log.pending.text.reserve(FLUSH_AT + 4096);
        }
        log.pending.push(ts, write.take()?);
        Some(log.pending.is_full().then(|| log.pending.take()).flatten())
    });
    match (buffered, write) {
        (Ok(Some(Some(batch))), _) => view.access_log(batch),
        (_, Some(write)) => {
            let mut alone = Pending::default();
            alone.push(ts, write);
            if let Some(batch) = alone.take() {
                view.access_log(batch);
            }
        }
        _ => {}
    }
}

/// Hands over this thread's buffered lines, if any.
pub(crate) fn flush() {
    let taken = WORKER
        .try_with(|w| {
            let mut w = w.try_borrow_mut().ok()?;
            let log = w.as_mut()?;
            Some((log.view.clone(), log.pending.take()?))
        })
        .ok()
        .flatten();
    if let Some((view, batch)) = taken {
        view.access_log(batch);
    }
}

/// Flushes this thread's buffer every [`FLUSH_EVERY`]; spawn it on the
/// worker's runtime, where it runs until the runtime stops.
pub(crate) async fn flush_every() {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use tokio::sync::watch;

    use crate::view::Upstreams;

    /// Keeps every batch it is handed, as lines, and the lines' times.
    #[derive(Default)]
    struct Batches {
        lines: Mutex<Vec<Vec<String>>>,
        times: Mutex<Vec<SystemTime>>,
    }

    impl Batches {
        fn taken(&self) -> Vec<Vec<String>> {
            std::mem::take(&mut *self.lines.lock().unwrap())
        }
    }

    impl StackView for Batches {
        fn upstreams(&self, _: &str, _: Option<u16>) -> Option<watch::Receiver<Upstreams>> {
            None
        }
        fn health(&self) -> (bool, serde_json::Value) {
            (true, serde_json::Value::Null)
        }
        fn encode_metrics(&self, _: &mut String) {}
        fn access_log(&self, batch: AccessLogBatch) {
            let lines = batch
                .lines()
                .map(|(_, l)| String::from_utf8(l.to_vec()).unwrap());
            self.lines.lock().unwrap().push(lines.collect());
            self.times
                .lock()
                .unwrap()
                .extend(batch.lines().map(|(ts, _)| ts));
        }
    }

    fn views() -> (Arc<Batches>, Arc<dyn StackView>) {
        let batches = Arc::new(Batches::default());
        (batches.clone(), batches)
    }

    /// Records line `n`, 100 bytes long.
    fn line(view: &Arc<dyn StackView>, n: usize) {
        record(view, SystemTime::UNIX_EPOCH, |out| {
            out.extend_from_slice(format!("{n:<100}").as_bytes());
        });
    }

    fn numbers(batches: &[Vec<String>]) -> Vec<usize> {
        batches
            .iter()
            .flatten()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }

    #[test]
    fn a_full_buffer_is_handed_over_at_once_and_the_rest_on_drop() {
        let (batches, view) = views();
        let installed = install(view.clone());
        let per_batch = FLUSH_AT.div_ceil(100);
        for n in 0..per_batch - 1 {
            line(&view, n);
        }
        assert!(batches.taken().is_empty(), "buffered");
        line(&view, per_batch - 1);
        let first = batches.taken();
        assert_eq!(first.len(), 1, "one batch");
        assert_eq!(numbers(&first), (0..per_batch).collect::<Vec<_>>());
        for n in per_batch..per_batch + 10 {
            line(&view, n);
        }
        assert!(batches.taken().is_empty(), "buffered again");
        drop(installed);
        assert_eq!(
            numbers(&batches.taken()),
            (per_batch..per_batch + 10).collect::<Vec<_>>()
        );
        line(&view, 7);
        assert_eq!(
            batches.taken(),
            [[format!("{:<100}", 7)]],
            "uninstalled: at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_hands_over_what_is_buffered() {
        let (batches, view) = views();
        let _installed = install(view.clone());
        tokio::spawn(flush_every());
        // The interval's first tick is immediate: let it pass.
        tokio::task::yield_now().await;
        line(&view, 1);
        line(&view, 2);
        tokio::time::sleep(FLUSH_EVERY / 2).await;
        assert!(batches.taken().is_empty(), "not yet");
        tokio::time::sleep(FLUSH_EVERY / 2).await;
        tokio::task::yield_now().await;
        assert_eq!(numbers(&batches.taken()), [1, 2]);
        tokio::time::sleep(FLUSH_EVERY * 4).await;
        assert!(
            batches.taken().is_empty(),
            "nothing buffered, nothing handed over"
        );
    }

    #[test]
    fn lines_for_another_view_are_handed_over_at_once() {
        let (mine, view) = views();
        let (theirs, other) = views();
        let _installed = install(view.clone());
        line(&other, 1);
        assert_eq!(numbers(&theirs.taken()), [1]);
        line(&view, 2);
        assert!(mine.taken().is_empty());
    }

    #[test]
    fn lines_on_another_thread_are_handed_over_at_once() {
        let (batches, view) = views();
        let _installed = install(view.clone());
        std::thread::scope(|s| s.spawn(|| line(&view, 3)).join().unwrap());
        assert_eq!(numbers(&batches.taken()), [3]);
    }

    #[test]
    fn each_line_keeps_its_time() {
        let (batches, view) = views();
        let installed = install(view.clone());
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        record(&view, t(5), |out| out.extend_from_slice(b"5"));
        record(&view, t(3), |out| out.extend_from_slice(b"3"));
        drop(installed);
        assert_eq!(batches.times.lock().unwrap()[..], [t(5), t(3)]);
        assert_eq!(numbers(&batches.taken()), [5, 3]);
    }
}
