//! The log pipeline: every replica's stdout and stderr, and berth's own lines
//! about it, to rotated files, live subscribers and the terminal.
//!
//! ```text
//! replica pipes ──► LineReader (64 KiB reads, split on \n) ──► batch of LogRecords
//!                                                               │
//!        readiness waiters ◄── checked inline ──────────────────┤
//!        subscribers (printer, logs -f) ◄── broadcast, never waits ┤
//!        <dir>/<service>-<replica>.log ◄── writer task, waits only on disk
//! ```
//!
//! The contract (DESIGN.md, "Logs"): a slow terminal never blocks a
//! service, and files lose nothing. So live delivery goes through a bounded
//! broadcast ring that drops the oldest batches for a lagging subscriber
//! (which is told how many records it missed), while files get their own
//! queue whose back-pressure reaches the pipe reader, and through it the
//! process, only when the disk itself is slow. A failing disk is reported
//! once as a `System` line and counted in [`LogStats`]; the pipes keep
//! being drained.
//!
//! Lines are bytes: invalid UTF-8 and `\r` reach the files untouched, in the
//! CRI format (`2026-11-22T10:00:00.123456789Z stdout F text`); only the
//! terminal and JSON views decode them lossily.
//!
//! # Use
//!
//! - Supervisor: [`LogHub::attach`] the child's pipes right after spawning
//!   it; after the process exits, await the returned task before reporting
//!   the exit with [`LogHub::system`].
//! - Readiness `{log: REGEX}`: call [`LogHub::wait_for`] before spawning.
//! - `berth up`: [`Printer::spawn`] with [`LogHub::subscribe`].
//! - `berth logs` with the stack down: [`read_records`] and a [`Formatter`].
//!
//! # Layout
//!
//! - `record.rs`: [`LogRecord`] and [`Stream`].
//! - `lines.rs`: [`LineReader`], splitting a pipe into lines.
//! - `hub.rs`: [`LogHub`] and [`Source`]: attach, system lines, subscribe.
//! - `pump.rs`: draining one replica's pipes into batches.
//! - `bus.rs`: the broadcast ring; [`Subscription`] and [`Delivery`].
//! - `wait.rs`: waiting for a line matching a pattern.
//! - `writer.rs`: the task that owns one replica's file.
//! - `file.rs`: a size-rotated file (`max-size`, `max-file`).
//! - `cri.rs`: the CRI line format, written and parsed.
//! - `read.rs`: one replica's files read back, `--tail`.
//! - `merge.rs`: [`read_records`], all replicas merged by time.
//! - `since.rs`: [`LogFilter`] and [`parse_since`].
//! - `format.rs`: [`Formatter`], the `docker compose` look and `--json`.
//! - `printer.rs`: [`Printer`], the terminal thread.
//! - `pipeline_tests.rs`: end-to-end tests with real processes.

mod bus;
mod cri;
mod file;
mod format;
mod hub;
mod lines;
mod merge;
mod printer;
mod pump;
mod read;
mod record;
mod since;
mod wait;
mod writer;

#[cfg(test)]
mod pipeline_tests;

pub use bus::{DEFAULT_CAPACITY, Delivery, Subscription, TryRecvError};
pub use file::{DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE};
pub use format::{Formatter, PrintOptions};
pub use hub::{LogHub, LogStats, Source};
pub use lines::{Line, LineReader, MAX_LINE};
pub use merge::{ReadRecords, read_records};
pub use printer::Printer;
pub use record::{JsonRecord, LogRecord, Stream};
pub use since::{LogFilter, SinceError, parse_since};
pub use wait::{LogWait, WaitError};
