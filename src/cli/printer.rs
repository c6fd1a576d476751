//! Prints the log stream on the terminal like `docker compose up`:
//! `api-1  | text`, a stable colour per service, on its own thread so a slow
//! terminal never holds up the services.

use std::io::Write;
use std::sync::Arc;

use berth_engine::logs::{LogRecord, Stream};
use tokio::sync::broadcast;

const COLORS: [&str; 12] = [
    "36", "33", "32", "35", "34", "96", "93", "92", "95", "94", "91", "31",
];

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub color: bool,
    pub timestamps: bool,
    pub json: bool,
}

/// The printing thread.
#[derive(Debug)]
pub struct Printing {
    handle: std::thread::JoinHandle<()>,
}

impl Printing {
    /// Waits until everything sent before the hub closed is printed.
    pub fn finish(self) -> std::thread::Result<()> {
        self.handle.join()
    }
}

impl Printer {
    pub fn spawn(self, mut rx: broadcast::Receiver<Arc<[LogRecord]>>) -> Printing {
        let handle = std::thread::spawn(move || {
            let stdout = std::io::stdout();
            let mut names: Vec<String> = Vec::new();
            let mut width = 0usize;
            loop {
                let batch = match rx.blocking_recv() {
                    Ok(b) => b,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let mut out = stdout.lock();
                        let _ = writeln!(out, "... {n} log batches skipped (terminal too slow)");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let mut out = stdout.lock();
                for r in batch.iter() {
                    let name = if r.replica == 0 {
                        r.service.to_string()
                    } else {
                        format!("{}-{}", r.service, r.replica)
                    };
                    let idx = match names.iter().position(|n| *n == *r.service) {
                        Some(i) => i,
                        None => {
                            names.push(r.service.to_string());
                            names.len() - 1
                        }
                    };
                    width = width.max(name.len());
                    let text = String::from_utf8_lossy(&r.line);
                    let text = text.trim_end_matches('\r');
                    let line = if self.json {
                        serde_json::json!({
                            "ts": humantime::format_rfc3339_millis(r.ts).to_string(),
                            "service": &*r.service,
                            "replica": r.replica,
                            "stream": match r.stream { Stream::Stdout => "stdout", Stream::Stderr => "stderr", Stream::System => "berth" },
                            "line": text,
                        })
                        .to_string()
                    } else {
                        let ts = if self.timestamps {
                            format!("{} ", humantime::format_rfc3339_millis(r.ts))
                        } else {
                            String::new()
                        };
                        let marker = if r.stream == Stream::System && &*r.service != "berth" {
                            "| berth: "
                        } else {
                            "| "
                        };
                        if self.color {
                            let c = COLORS[idx % COLORS.len()];
                            format!("\x1b[{c}m{name:<width$}  {marker}\x1b[0m{ts}{text}")
                        } else {
                            format!("{name:<width$}  {marker}{ts}{text}")
                        }
                    };
                    if writeln!(out, "{line}").is_err() {
                        // stdout is gone: keep draining so nothing blocks, print nothing.
                        drop(out);
                        while !matches!(
                            rx.blocking_recv(),
                            Err(broadcast::error::RecvError::Closed)
                        ) {}
                        return;
                    }
                }
                let _ = out.flush();
            }
        });
        Printing { handle }
    }
}
