//! Progress on a terminal: bytes archived and the rate, on one line of
//! stderr redrawn at most five times a second.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Progress {
    shown: bool,
    verb: &'static str,
    bytes: Cell<u64>,
    start: Instant,
    last: Cell<Instant>,
}

impl Progress {
    /// Shown when `show` (stderr is a terminal and no `--json`).
    pub fn new(verb: &'static str, show: bool) -> Progress {
        let now = Instant::now();
        Progress {
            shown: show,
            verb,
            bytes: Cell::new(0),
            start: now,
            last: Cell::new(now),
        }
    }

    pub fn add(&self, n: u64) {
        self.bytes.set(self.bytes.get() + n);
        if self.shown && self.last.get().elapsed() >= Duration::from_millis(200) {
            self.last.set(Instant::now());
            self.draw();
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn draw(&self) {
        let rate = rate(self.bytes.get(), self.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{} {}  {rate}",
            self.verb,
            size(self.bytes.get())
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

/// `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `310.2 MiB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", size((bytes as f64 / secs) as u64))
}
