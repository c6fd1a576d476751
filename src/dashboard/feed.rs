//! The dashboard's one event stream: the stack's state (`ps`, each second
//! and on every change), its state and health transitions (`event`), log
//! lines (`logs`, batched every 50 ms), the edge's per-route rates and
//! latencies (`edge`, each second) and deploys (`deploy`), each frame with
//! a sequence number.
//!
//! Frames are encoded once, as server-sent events, and kept in a ring (the
//! last minutes, bounded in frames and bytes), so every open page shares
//! them and a page that reconnects with `Last-Event-ID` gets exactly what
//! it missed; one whose place has left the ring is told how many frames it
//! lost (`gap`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use berth_engine::logs::{Delivery, JsonRecord};
use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::server::State;

/// How long frames stay for resuming pages and for a new page's history.
const KEEP: Duration = Duration::from_secs(180);
/// At most this many frames, and this many bytes, are kept.
const MAX_FRAMES: usize = 8192;
const MAX_BYTES: usize = 32 << 20;
/// A new page gets at most this many of the latest log lines.
const NEW_PAGE_LOG_LINES: usize = 500;
/// Log lines are sent at most this often (lower latency costs more frames).
const LOG_BATCH: Duration = Duration::from_millis(50);

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ps,
    Event,
    Logs,
    Edge,
    Deploy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ps => "ps",
            Kind::Event => "event",
            Kind::Logs => "logs",
            Kind::Edge => "edge",
            Kind::Deploy => "deploy",
        }
    }
}

#[derive(Debug, Clone)]
struct Frame {
    id: u64,
    kind: Kind,
    at: Instant,
    /// Log lines in it (0 for other kinds).
    lines: usize,
    /// The whole server-sent event, `id:`, `event:` and `data:` lines.
    text: Bytes,
}

#[derive(Debug, Default)]
struct Ring {
    frames: VecDeque<Frame>,
    bytes: usize,
    next: u64,
}

/// The shared stream; cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Tells this run's ids from an earlier run's: a page that resumes
    /// across a restart of berth starts afresh.
    epoch: u64,
    ring: Arc<Mutex<Ring>>,
    /// The id of the newest frame, for pages waiting on the next.
    newest: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            epoch: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            ring: Arc::new(Mutex::new(Ring {
                next: 1,
                ..Ring::default()
            })),
            newest: watch::channel(0).0,
        }
    }
}

/// What a page gets when it (re)connects: the frames to send first, and
/// the id to follow on from.
#[derive(Debug)]
pub struct Catchup {
    pub frames: Vec<Bytes>,
    pub last: u64,
}

impl Feed {
    /// Appends a frame of `kind` whose data is `json` (one line).
    pub fn push(&self, kind: Kind, json: &[u8], lines: usize) -> u64 {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let id = ring.next;
        ring.next += 1;
        let mut text = Vec::with_capacity(json.len() + 32);
        text.extend_from_slice(
            format!("id: {}-{id}\nevent: {}\ndata: ", self.epoch, kind.name()).as_bytes(),
        );
        text.extend_from_slice(json);
        text.extend_from_slice(b"\n\n");
        ring.bytes += text.len();
        ring.frames.push_back(Frame {
            id,
            kind,
            at: Instant::now(),
            lines,
            text: Bytes::from(text),
        });
        let now = Instant::now();
        while let Some(front) = ring.frames.front() {
            let old = now.duration_since(front.at) > KEEP;
            if !(old || ring.frames.len() > MAX_FRAMES || ring.bytes > MAX_BYTES) {
                break;
            }
            let len = front.text.len();
            ring.frames.pop_front();
            ring.bytes -= len;
        }
        drop(ring);
        self.newest.send_replace(id);
        id
    }

    /// Waits for frames after `last`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// For a page that saw up to `last` (`Last-Event-ID`): every frame
    /// after it, preceded by a `gap` frame when some have left the ring.
    /// For a new page (`None`): the recent history, with only the latest
    /// log lines.
    pub fn catch_up(&self, last: Option<u64>) -> Catchup {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = ring.next - 1;
        let mut frames = Vec::new();
        match last {
            Some(last) => {
                let first = ring.frames.front().map_or(ring.next, |f| f.id);
                if last + 1 < first {
                    let missed = first - last - 1;
                    frames.push(Bytes::from(format!(
                        "event: gap\ndata: {{\"missed\":{missed}}}\n\n"
                    )));
                }
                frames.extend(
                    ring.frames
                        .iter()
                        .filter(|f| f.id > last)
                        .map(|f| f.text.clone()),
                );
            }
            None => {
                // The newest frames holding NEW_PAGE_LOG_LINES lines.
                let mut lines = 0;
                let mut oldest_logs = u64::MAX;
                for f in ring.frames.iter().rev().filter(|f| f.kind == Kind::Logs) {
                    if lines >= NEW_PAGE_LOG_LINES {
                        break;
                    }
                    lines += f.lines;
                    oldest_logs = f.id;
                }
                frames.extend(
                    ring.frames
                        .iter()
                        .filter(|f| f.kind != Kind::Logs || f.id >= oldest_logs)
                        .map(|f| f.text.clone()),
                );
            }
        }
        Catchup {
            frames,
            last: newest,
        }
    }

    /// For a page that sends `Last-Event-ID: last`: what it missed; a
    /// page from another run (or with none) starts afresh, told to clear
    /// what it shows (`reset`).
    pub fn resume(&self, last: Option<&str>) -> Catchup {
        let parsed = last.and_then(|l| {
            let (epoch, n) = l.split_once('-')?;
            (epoch.parse::<u64>().ok()? == self.epoch).then_some(n.parse::<u64>().ok()?)
        });
        match (last, parsed) {
            (_, Some(n)) => self.catch_up(Some(n)),
            (None, None) => self.catch_up(None),
            (Some(_), None) => {
                let mut c = self.catch_up(None);
                c.frames
                    .insert(0, Bytes::from_static(b"event: reset\ndata: {}\n\n"));
                c
            }
        }
    }

    /// The frames after `last`, and the newest id.
    pub fn after(&self, last: u64) -> Catchup {
        self.catch_up(Some(last))
    }
}

/// Fills the feed from the running stack until `cancel`.
pub fn spawn(feed: &Feed, state: &Arc<State>, cancel: &CancellationToken) {
    tokio::spawn(logs(feed.clone(), state.clone(), cancel.clone()));
    tokio::spawn(events(feed.clone(), state.clone(), cancel.clone()));
    tokio::spawn(samples(feed.clone(), state.clone(), cancel.clone()));
}

/// Log lines, batched.
async fn logs(feed: Feed, state: Arc<State>, cancel: CancellationToken) {
    let mut sub = state.stack.logs().subscribe();
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            () = cancel.cancelled() => return,
            d = sub.recv() => match d {
                Some(d) => d,
                None => return,
            },
        };
        let started = Instant::now();
        out.clear();
        out.push(b'[');
        let mut lines = 0;
        let mut add = |d: Delivery, out: &mut Vec<u8>| match d {
            Delivery::Records(batch) => {
                for r in batch.iter() {
                    if lines > 0 {
                        out.push(b',');
                    }
                    let ts = humantime::format_rfc3339_millis(r.ts).to_string();
                    JsonRecord::new(r, &ts).write_line(out);
                    // write_line ends the object with a newline.
                    if out.last() == Some(&b'\n') {
                        out.pop();
                    }
                    lines += 1;
                }
            }
            Delivery::Skipped(n) => {
                if lines > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("{{\"skipped\":{n}}}").as_bytes());
                lines += 1;
            }
        };
        add(first, &mut out);
        // Whatever else arrives within the batch window goes with it.
        loop {
            match sub.try_recv() {
                Ok(d) => add(d, &mut out),
                Err(_) => {
                    let left = LOG_BATCH.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(left) => {}
                    }
                    while let Ok(d) = sub.try_recv() {
                        add(d, &mut out);
                    }
                    break;
                }
            }
        }
        out.push(b']');
        feed.push(Kind::Logs, &out, lines);
    }
}

/// State and health transitions, and deploys.
async fn events(feed: Feed, state: Arc<State>, cancel: CancellationToken) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = state.stack.events();
    let mut deploys = state.deploys.subscribe();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            e = events.recv() => match e {
                Ok(e) => {
                    feed.push(Kind::Event, &serde_json::to_vec(&e).unwrap_or_default(), 0);
                    // The table follows at once, not at the next second.
                    push_ps(&feed, &state);
                }
                Err(RecvError::Lagged(_)) => push_ps(&feed, &state),
                Err(RecvError::Closed) => return,
            },
            d = deploys.recv() => match d {
                Ok(d) => {
                    feed.push(Kind::Deploy, &serde_json::to_vec(&d).unwrap_or_default(), 0);
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
    }
}

fn push_ps(feed: &Feed, state: &State) {
    let ps = crate::api::server::ps(state);
    feed.push(Kind::Ps, &serde_json::to_vec(&ps).unwrap_or_default(), 0);
}

/// `ps` (CPU and memory move) and the edge's rates, each second.
async fn samples(feed: Feed, state: Arc<State>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut edge = super::edge::Window::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let s = state.clone();
        // Reading every replica's usage touches the file system.
        let Ok(ps) = tokio::task::spawn_blocking(move || crate::api::server::ps(&s)).await else {
            continue;
        };
        feed.push(Kind::Ps, &serde_json::to_vec(&ps).unwrap_or_default(), 0);
        if let Some(routes) = &state.routes {
            let targets = super::edge::route_targets(&state.model());
            let view = edge.sample(SystemTime::now(), routes.stats(), &targets);
            feed.push(
                Kind::Edge,
                &serde_json::to_vec(&view).unwrap_or_default(),
                0,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(frames: &[Bytes]) -> Vec<String> {
        frames
            .iter()
            .map(|f| {
                let first = String::from_utf8_lossy(f)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                match first.split_once('-') {
                    Some((_, n)) => format!("id: {n}"),
                    None => first,
                }
            })
            .collect()
    }

    #[test]
    fn a_page_resuming_gets_exactly_what_it_missed() {
        let feed = Feed::default();
        for i in 0..5 {
            feed.push(Kind::Event, format!("{{\"n\":{i}}}").as_bytes(), 0);
        }
        let c = feed.catch_up(Some(3));
        assert_eq!(ids(&c.frames), ["id: 4", "id: 5"]);
        assert_eq!(c.last, 5);
        let text = String::from_utf8_lossy(&c.frames[0]).into_owned();
        assert_eq!(
            text,
            format!("id: {}-4\nevent: event\ndata: {{\"n\":3}}\n\n", feed.epoch)
        );
        let resumed = feed.resume(Some(&format!("{}-4", feed.epoch)));
        assert_eq!(ids(&resumed.frames), ["id: 5"]);
        let other_run = feed.resume(Some("12-4"));
        assert!(String::from_utf8_lossy(&other_run.frames[0]).starts_with("event: reset"));
        assert_eq!(other_run.frames.len(), 6);
        assert!(feed.catch_up(Some(5)).frames.is_empty());
    }

    #[test]
    fn a_page_whose_place_left_the_ring_is_told_how_much_it_lost() {
        let feed = Feed::default();
        for _ in 0..MAX_FRAMES + 10 {
            feed.push(Kind::Ps, b"{}", 0);
        }
        let c = feed.catch_up(Some(2));
        let first = String::from_utf8_lossy(&c.frames[0]).into_owned();
        assert_eq!(first, "event: gap\ndata: {\"missed\":8}\n\n");
        assert_eq!(c.frames.len(), MAX_FRAMES + 1);
    }

    #[test]
    fn a_new_page_gets_the_history_with_only_the_latest_log_lines() {
        let feed = Feed::default();
        feed.push(Kind::Logs, b"[]", 400);
        feed.push(Kind::Ps, b"{}", 0);
        feed.push(Kind::Logs, b"[]", 300);
        feed.push(Kind::Logs, b"[]", 300);
        feed.push(Kind::Event, b"{}", 0);
        let c = feed.catch_up(None);
        assert_eq!(ids(&c.frames), ["id: 2", "id: 3", "id: 4", "id: 5"]);
    }
}
