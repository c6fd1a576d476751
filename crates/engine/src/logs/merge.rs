//! `berth logs` without a running stack: every replica's files, merged into
//! one stream ordered by timestamp.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::read::{self, ReplicaLog};
use super::record::LogRecord;
use super::since::LogFilter;

/// Reads the log files in `dir` as records: each replica's in file order
/// across its rotated files, all replicas merged by timestamp (ties go to
/// the service and replica that sort first). Blocking: run it on a thread
/// or in `spawn_blocking`.
///
/// A line that does not parse, or a file that cannot be read, is yielded
/// as an `Err` (`InvalidData` naming the file) and reading goes on.
pub fn read_records(dir: &Path, filter: &LogFilter) -> ReadRecords {
    let mut merged = ReadRecords {
        sources: Vec::new(),
        heads: BinaryHeap::new(),
        unfilled: VecDeque::new(),
        errors: VecDeque::new(),
    };
    match read::list(dir, filter) {
        Ok(found) => {
            for files in found {
                match ReplicaLog::new(files, filter) {
                    Ok(source) => merged.sources.push(source),
                    Err(e) => merged.errors.push_back(e),
                }
            }
        }
        Err(e) => merged.errors.push_back(e),
    }
    merged.unfilled = (0..merged.sources.len()).collect();
    merged
}

/// The iterator returned by [`read_records`].
#[derive(Debug)]
pub struct ReadRecords {
    sources: Vec<ReplicaLog>,
    /// The next record of each source that has one, earliest on top.
    heads: BinaryHeap<Reverse<Head>>,
    /// Sources whose next record is not in `heads` yet.
    unfilled: VecDeque<usize>,
    errors: VecDeque<io::Error>,
}

#[derive(Debug)]
struct Head {
    ts: SystemTime,
    source: usize,
    record: LogRecord,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.source) == (other.ts, other.source)
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.source).cmp(&(other.ts, other.source))
    }
}

impl Iterator for ReadRecords {
    type Item = io::Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.errors.pop_front() {
            return Some(Err(e));
        }
        // Every source must show its next record before the earliest is known.
        while let Some(&source) = self.unfilled.front() {
            match self.sources[source].next() {
                Some(Ok(record)) => {
                    let ts = record.ts;
                    self.heads.push(Reverse(Head { ts, source, record }));
                    self.unfilled.pop_front();
                }
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.unfilled.pop_front();
                }
            }
        }
        let Reverse(head) = self.heads.pop()?;
        self.unfilled.push_back(head.source);
        Some(Ok(head.record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::file::{RotatingFile, Rotation};
    use crate::logs::record::Stream;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_341_600 + secs)
    }

    fn rec(service: &str, replica: u32, secs: u64, line: &str) -> LogRecord {
        LogRecord {
            ts: at(secs),
            service: Arc::from(service),
            replica,
            stream: Stream::Stdout,
            partial: false,
            line: Bytes::copy_from_slice(line.as_bytes()),
        }
    }

    /// Writes `lines` (one per second from `first`) to `service-replica.log`,
    /// rotating every 3 lines (of 14 characters: 55 bytes in the file) and
    /// keeping 3 files.
    fn write(dir: &Path, service: &str, replica: u32, first: u64, lines: &[&str]) {
        let path = dir.join(format!("{service}-{replica}.log"));
        let mut file = RotatingFile::new(
            path,
            Rotation {
                max_size: 165,
                max_files: 3,
            },
        );
        for (i, line) in lines.iter().enumerate() {
            file.write_records(&[rec(service, replica, first + i as u64, line)])
                .unwrap();
        }
    }

    fn read(dir: &Path, filter: &LogFilter) -> Vec<String> {
        read_records(dir, filter)
            .map(|r| {
                let r = r.unwrap();
                format!("{} {}", r.name(), String::from_utf8_lossy(&r.line))
            })
            .collect()
    }

    fn lines(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:07}")).collect()
    }

    #[test]
    fn reads_across_rotation_in_order_and_merges_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = lines("a-line-", 8);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        write(dir.path(), "api", 1, 0, &a);
        write(dir.path(), "db", 1, 2, &["db-line-000"]);
        assert!(dir.path().join("api-1.log.2").exists());
        let got = read(dir.path(), &LogFilter::default());
        assert_eq!(
            got[..3],
            [
                "api-1 a-line-0000000",
                "api-1 a-line-0000001",
                "api-1 a-line-0000002"
            ]
        );
        assert_eq!(got[3], "db-1 db-line-000");
        assert_eq!(got.len(), 9);
        assert_eq!(got[8], "api-1 a-line-0000007");
    }

    #[test]
    fn tail_is_per_replica_and_crosses_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = lines("a-line-", 8);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        write(dir.path(), "api", 1, 0, &a);
        write(dir.path(), "api", 2, 100, &["only-one-000"]);
        let tail = |n| LogFilter {
            tail: Some(n),
            ..LogFilter::default()
        };
        // The live file holds 2 lines, so a tail of 4 starts in `.log.1`.
        assert_eq!(
            read(dir.path(), &tail(4)),
            [
                "api-1 a-line-0000004",
                "api-1 a-line-0000005",
                "api-1 a-line-0000006",
                "api-1 a-line-0000007",
                "api-2 only-one-000"
            ]
        );
        assert_eq!(
            read(dir.path(), &tail(1)),
            ["api-1 a-line-0000007", "api-2 only-one-000"]
        );
        assert_eq!(read(dir.path(), &tail(0)), Vec::<String>::new());
        assert_eq!(read(dir.path(), &tail(100)).len(), 9);
    }

    #[test]
    fn since_and_service_filters() {
        let dir = tempfile::tempdir().unwrap();
        let a = lines("a-line-", 8);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        write(dir.path(), "api", 1, 0, &a);
        write(dir.path(), "db", 1, 6, &["db-line-000"]);
        let since = LogFilter {
            since: Some(at(6)),
            ..LogFilter::default()
        };
        assert_eq!(
            read(dir.path(), &since),
            [
                "api-1 a-line-0000006",
                "db-1 db-line-000",
                "api-1 a-line-0000007"
            ]
        );
        let both = LogFilter {
            since: Some(at(6)),
            tail: Some(1),
            services: vec!["api".into()],
        };
        assert_eq!(read(dir.path(), &both), ["api-1 a-line-0000007"]);
    }

    #[test]
    fn bad_lines_are_errors_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "api", 1, 0, &["first-line-"]);
        let path = dir.path().join("api-1.log");
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"torn line\n");
        std::fs::write(&path, &text).unwrap();
        write(dir.path(), "api", 1, 1, &["after-torn-"]);
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let items: Vec<_> = read_records(dir.path(), &LogFilter::default()).collect();
        assert_eq!(items.len(), 3);
        let err = items[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("api-1.log: expected"), "{err}");
        assert_eq!(&items[2].as_ref().unwrap().line[..], b"after-torn-");
    }

    #[test]
    fn missing_directory_has_no_logs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_records(&dir.path().join("nope"), &LogFilter::default()).count(),
            0
        );
    }

    #[test]
    fn file_names() {
        use crate::logs::read::parse_file_name;
        assert_eq!(parse_file_name("api-1.log"), Some(("api", 1, 0)));
        assert_eq!(parse_file_name("my-db-12.log.2"), Some(("my-db", 12, 2)));
        for bad in [
            "api.log",
            "-1.log",
            "api-1.log.0",
            "api-x.log",
            "api-1.txt",
            "api-1.log.+1",
            "api-+1.log",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }
}
