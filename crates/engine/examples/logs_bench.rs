//! Throughput of the log pipeline, end to end.
//!
//! A child (`yes LINE | head -c BYTES`) writes 100-byte lines to its stdout;
//! the hub splits them, publishes them to a live subscriber (a `Printer`
//! formatting every line it receives into a byte-counting sink, as `berth up`
//! does to a terminal) and writes rotated files (10 MiB x 3). Prints MB/s
//! from spawn to the moment the last line is in the file.
//!
//! usage: logs_bench [BYTES] [--no-printer] [--timestamps]   (default 1 GiB)

use std::error::Error;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use berth_engine::logs::{Formatter, LogHub, PrintOptions, Printer, Source};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Counts what the printer writes, and how many "lines skipped" notices.
#[derive(Clone, Default)]
struct Counter {
    bytes: Arc<AtomicU64>,
    lines: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let lines = memchr::memchr_iter(b'\n', buf).count() as u64;
        self.lines.fetch_add(lines, Ordering::Relaxed);
        // "... 1234 lines skipped (terminal too slow)"
        for at in memchr::memmem::find_iter(buf, b" lines skipped (") {
            let digits = buf[..at]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let n = std::str::from_utf8(&buf[at - digits..at])
                .ok()
                .and_then(|s| s.parse().ok());
            self.skipped.fetch_add(n.unwrap_or(0), Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bytes: u64 = match args.iter().find(|a| !a.starts_with("--")) {
        Some(n) => n.parse()?,
        None => 1 << 30,
    };
    let printer_on = !args.iter().any(|a| a == "--no-printer");
    let timestamps = args.iter().any(|a| a == "--timestamps");

    let dir = std::env::temp_dir().join(format!("berth-logs-bench-{}", std::process::id()));
    let hub = LogHub::new(dir.clone())?;
    let stop = CancellationToken::new();
    let counter = Counter::default();
    let printer = if printer_on {
        let mut formatter = Formatter::new(PrintOptions {
            color: true,
            timestamps,
            json: false,
        });
        formatter.register("bench", 1);
        Some(Printer::spawn(
            hub.subscribe(),
            formatter,
            counter.clone(),
            stop.clone(),
        )?)
    } else {
        None
    };

    // 99 characters and a newline.
    let line = format!(
        "{:-<99}",
        "2026-11-22 10:00:00 INFO request handled method=GET path=/api/users status=200 "
    );
    let start = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("yes '{line}' | head -c {bytes}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let task = hub.attach(Source::new("bench", 1), stdout, stderr);
    let status = child.wait().await?;
    task.await?;
    let elapsed = start.elapsed();
    stop.cancel();
    if let Some(printer) = printer {
        printer.finished().await;
    }

    let on_disk: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    std::fs::remove_dir_all(&dir)?;
    let secs = elapsed.as_secs_f64();
    println!("child exit: {status}");
    println!(
        "{} MB in {secs:.2} s: {:.0} MB/s ({:.2} M lines/s)",
        bytes / 1_000_000,
        bytes as f64 / 1e6 / secs,
        bytes as f64 / 100.0 / 1e6 / secs
    );
    println!(
        "files: {} MB kept after rotation (10 MiB x 3)",
        on_disk / 1_000_000
    );
    if printer_on {
        println!(
            "printer: {} lines, {} MB formatted, {} lines skipped (lagged)",
            counter.lines.load(Ordering::Relaxed),
            counter.bytes.load(Ordering::Relaxed) / 1_000_000,
            counter.skipped.load(Ordering::Relaxed)
        );
    }
    println!("write failures: {:?}", hub.stats());
    Ok(())
}
