//! End-to-end tests: real processes, real pipes, real files.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::bytes::Regex;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::*;

/// Generous: these catch hangs, not slowness (timing goals live in bench/).
const LIMIT: Duration = Duration::from_secs(120);

fn spawn(script: &str) -> Child {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn attach(hub: &LogHub, source: Source, child: &mut Child) -> JoinHandle<()> {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    hub.attach(source, stdout, stderr)
}

fn drain(sub: &mut Subscription) -> (u64, Vec<LogRecord>) {
    let (mut skipped, mut records) = (0, Vec::new());
    while let Ok(delivery) = sub.try_recv() {
        match delivery {
            Delivery::Records(batch) => records.extend(batch.iter().cloned()),
            Delivery::Skipped(n) => skipped += n,
        }
    }
    (skipped, records)
}

fn lines_of(records: &[LogRecord], stream: Stream) -> Vec<(Vec<u8>, bool)> {
    records
        .iter()
        .filter(|r| r.stream == stream)
        .map(|r| (r.line.to_vec(), r.partial))
        .collect()
}

#[tokio::test]
async fn child_output_reaches_file_and_subscriber_byte_exact_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().join("logs")).unwrap();
    let mut sub = hub.subscribe();
    let mut child = spawn(
        r"printf 'out 1\nout 2\r\nbad \377\376\nbar 10%%\r50%%\r100%%\n\n'; printf 'err 1\nerr 2\n' >&2; printf 'no newline'",
    );
    let task = attach(&hub, Source::new("api", 1), &mut child);
    assert!(child.wait().await.unwrap().success());
    timeout(LIMIT, task).await.unwrap().unwrap();

    let full = |s: &[u8]| (s.to_vec(), false);
    let want_out = vec![
        full(b"out 1"),
        full(b"out 2\r"),
        full(b"bad \xff\xfe"),
        full(b"bar 10%\r50%\r100%"),
        full(b""),
        (b"no newline".to_vec(), true),
    ];
    let want_err = vec![full(b"err 1"), full(b"err 2")];

    let (skipped, live) = drain(&mut sub);
    assert_eq!(skipped, 0);
    assert_eq!(lines_of(&live, Stream::Stdout), want_out);
    assert_eq!(lines_of(&live, Stream::Stderr), want_err);
    assert!(live.iter().all(|r| &*r.service == "api" && r.replica == 1));

    let stored: Vec<LogRecord> = read_records(hub.dir(), &LogFilter::default())
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines_of(&stored, Stream::Stdout), want_out);
    assert_eq!(lines_of(&stored, Stream::Stderr), want_err);
    let raw = std::fs::read(hub.dir().join("api-1.log")).unwrap();
    assert!(raw.windows(17).any(|w| w == b" stdout F bad \xff\xfe\n"));
    // stdout and stderr are read concurrently: the partial line is in the
    // file, not necessarily last.
    let partial = b" stdout P no newline\n";
    assert!(raw.windows(partial.len()).any(|w| w == partial));
}

#[tokio::test]
async fn stalled_subscriber_does_not_slow_a_200_mb_producer_and_files_keep_every_line() {
    const LINES: u64 = 2_000_000; // 101 bytes each: 202 MB
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
    let mut stalled = hub.subscribe();
    let mut child = spawn(&format!("seq -f '%0100.0f' 1 {LINES}"));
    let source = Source {
        max_size: 0,
        ..Source::new("flood", 1)
    };
    let task = attach(&hub, source, &mut child);
    timeout(LIMIT, child.wait()).await.unwrap().unwrap();
    timeout(LIMIT, task).await.unwrap().unwrap();

    // The subscriber learns what it missed, then gets the newest batches.
    let (skipped, received) = drain(&mut stalled);
    assert!(skipped > 0);
    assert_eq!(skipped + received.len() as u64, LINES);
    let last = received.last().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&last.line).trim_start_matches('0'),
        LINES.to_string()
    );

    let mut expected = 1u64;
    for record in read_records(hub.dir(), &LogFilter::default()) {
        let record = record.unwrap();
        assert!(!record.partial);
        let n: u64 = std::str::from_utf8(&record.line).unwrap().parse().unwrap();
        assert_eq!(n, expected);
        expected += 1;
    }
    assert_eq!(expected, LINES + 1);
    assert_eq!(hub.stats(), LogStats::default());
}

#[tokio::test]
async fn wait_for_sees_a_matching_line_from_a_real_process() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
    let ready = hub.wait_for("db", 1, Regex::new(r"ready to accept \w+").unwrap());
    let mut child =
        spawn("echo booting; echo 'LOG: ready to accept connections' >&2; exec sleep 30");
    let _task = attach(&hub, Source::new("db", 1), &mut child);
    let line = timeout(LIMIT, ready).await.unwrap().unwrap();
    assert_eq!(&line.line[..], b"LOG: ready to accept connections");
    assert_eq!(line.stream, Stream::Stderr);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn system_lines_and_restarts_share_the_replica_file() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
    for run in 1..=2 {
        let mut child = spawn(&format!("echo run {run}; exit 1"));
        let task = attach(&hub, Source::new("api", 1), &mut child);
        let status = child.wait().await.unwrap();
        task.await.unwrap();
        hub.system(
            "api",
            1,
            format!("exited with code {}", status.code().unwrap()),
        );
    }
    hub.system("proxy", 0, "GET /api/users 200 3ms");
    hub.flush().await;
    let lines: Vec<String> = read_records(hub.dir(), &LogFilter::default())
        .map(|r| {
            let r = r.unwrap();
            format!(
                "{} {} {}",
                r.name(),
                r.stream,
                String::from_utf8_lossy(&r.line)
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "api-1 stdout run 1",
            "api-1 system exited with code 1",
            "api-1 stdout run 2",
            "api-1 system exited with code 1",
            "proxy system GET /api/users 200 3ms",
        ]
    );
}

#[tokio::test]
async fn full_disk_is_reported_once_and_the_pipe_is_still_drained() {
    let dir = tempfile::tempdir().unwrap();
    // Room for every batch, so the one report cannot be lagged away.
    let hub = LogHub::with_capacity(dir.path().to_path_buf(), 100_000).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("api-1.log")).unwrap();
    let mut sub = hub.subscribe();
    // 10 MB through a 64 KiB pipe: it finishes only if someone keeps reading.
    let mut child = spawn("seq -f '%099.0f' 1 100000");
    let task = attach(&hub, Source::new("api", 1), &mut child);
    assert!(
        timeout(LIMIT, child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    timeout(LIMIT, task).await.unwrap().unwrap();

    let stats = hub.stats();
    assert_eq!(stats.lost_lines, 100_000);
    assert!(stats.failed_writes > 0);
    let (_, records) = drain(&mut sub);
    let reports: Vec<_> = records
        .iter()
        .filter(|r| r.stream == Stream::System)
        .collect();
    assert_eq!(reports.len(), 1);
    let text = String::from_utf8_lossy(&reports[0].line);
    assert!(
        text.contains("api-1.log") && text.contains("dropping log lines"),
        "{text}"
    );
}

#[tokio::test]
async fn printer_shows_a_child_like_docker_compose() {
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
    let out = Shared::default();
    let stop = CancellationToken::new();
    let mut formatter = Formatter::new(PrintOptions::default());
    formatter.register("web", 1);
    formatter.register("api", 1);
    let printer = Printer::spawn(hub.subscribe(), formatter, out.clone(), stop.clone()).unwrap();
    let mut child = spawn("echo listening on 8000");
    let task = attach(&hub, Source::new("web", 1), &mut child);
    child.wait().await.unwrap();
    task.await.unwrap();
    hub.system("web", 1, "exited with code 0");
    stop.cancel();
    printer.finished().await;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text,
        "web-1  | listening on 8000\nweb-1 exited with code 0\n"
    );
}

#[tokio::test]
async fn a_stuck_terminal_does_not_block_the_service_and_then_reports_skipped_lines() {
    /// A terminal paused with Ctrl-S: every write blocks until the gate opens.
    struct Paused {
        gate: std::sync::mpsc::Receiver<()>,
        out: Arc<Mutex<Vec<u8>>>,
    }
    impl std::io::Write for Paused {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.gate.recv(); // returns once the sender is dropped
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::new(dir.path().to_path_buf()).unwrap();
    let (open_gate, gate) = std::sync::mpsc::channel();
    let out = Arc::new(Mutex::new(Vec::new()));
    let terminal = Paused {
        gate,
        out: Arc::clone(&out),
    };
    let stop = CancellationToken::new();
    let formatter = Formatter::new(PrintOptions::default());
    let printer = Printer::spawn(hub.subscribe(), formatter, terminal, stop.clone()).unwrap();

    let mut child = spawn("seq -f '%099.0f' 1 300000"); // 30 MB
    let task = attach(&hub, Source::new("api", 1), &mut child);
    assert!(
        timeout(LIMIT, child.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    timeout(LIMIT, task).await.unwrap().unwrap();

    drop(open_gate);
    stop.cancel();
    printer.finished().await;
    let printed = String::from_utf8(out.lock().unwrap().clone()).unwrap();
    assert!(printed.contains(" lines skipped (terminal too slow)\n"));
    assert!(printed.ends_with(&format!("api-1  | {:099}\n", 300_000)));
    // The file is not subject to the terminal's lag.
    let tail = LogFilter {
        tail: Some(1),
        ..LogFilter::default()
    };
    let last: Vec<_> = read_records(hub.dir(), &tail).map(Result::unwrap).collect();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].line, format!("{:099}", 300_000).as_bytes());
}
