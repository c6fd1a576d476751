//! One replica's log file, rotated by size like Docker's `json-file` driver.
//!
//! `<dir>/<service>-<replica>.log` is written; when the next line would take
//! it past `max-size`, it becomes `.log.1`, `.log.1` becomes `.log.2`, and so
//! on up to `max-file` files in all (the oldest is deleted). A record is
//! never split across files. Blocking I/O: run it off the async workers.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cri::{self, TimestampCache};
use super::record::LogRecord;

/// `max-size` when the Compose file sets none: 10 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// `max-file` when the Compose file sets none.
pub const DEFAULT_MAX_FILES: u32 = 3;

/// How big a log file may grow, and how many files are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes per file; 0 means never rotate.
    pub max_size: u64,
    /// Files kept, the live one included; 0 counts as 1 (the file is
    /// emptied when full, as Docker does).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// The live file's name: `api-1.log`. Characters that cannot appear in a
/// Compose service name are replaced by `_`, so no name escapes the dir.
pub fn file_name(service: &str, replica: u32) -> String {
    let safe: String = service
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    let safe = if safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    format!("{safe}-{replica}.log")
}

/// The `n`th rotated file beside `live`: `api-1.log.2`.
pub fn rotated_path(live: &Path, n: u32) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Some records of a batch could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write {lost} log lines to {}", path.display())]
pub struct WriteFailure {
    /// The live file.
    pub path: PathBuf,
    /// Records of the batch that did not reach the file.
    pub lost: usize,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

/// An append-only, size-rotated CRI log file. Opened lazily; reopened after
/// an error, so a full disk that frees up is written to again.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    /// Bytes known to be in the live file; a failed write is cut back to it
    /// so a torn line never glues onto the next one.
    size: u64,
    buf: Vec<u8>,
    ts: TimestampCache,
}

impl RotatingFile {
    /// A file at `path`, not opened yet.
    pub fn new(path: PathBuf, rotation: Rotation) -> Self {
        RotatingFile {
            path,
            rotation,
            file: None,
            size: 0,
            buf: Vec::new(),
            ts: TimestampCache::default(),
        }
    }

    /// Changes the limits; they apply from the next record on.
    pub fn set_rotation(&mut self, rotation: Rotation) {
        self.rotation = rotation;
    }

    /// Appends the records as CRI lines, rotating between records.
    ///
    /// # Errors
    ///
    /// [`WriteFailure`] with how many records were lost: the file could not
    /// be opened, written or rotated.
    pub fn write_records(&mut self, records: &[LogRecord]) -> Result<(), WriteFailure> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut flushed = 0;
        let result = self.write_into(records, &mut buf, &mut flushed);
        // Keep the buffer for the next batch unless one huge batch grew it.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result.map_err(|source| WriteFailure {
            path: self.path.clone(),
            lost: records.len() - flushed,
            source,
        })
    }

    fn write_into(
        &mut self,
        records: &[LogRecord],
        buf: &mut Vec<u8>,
        flushed: &mut usize,
    ) -> io::Result<()> {
        // Opening first tells the size of a file left by an earlier run.
        self.open()?;
        for (i, record) in records.iter().enumerate() {
            let start = buf.len();
            cri::write_line(record, self.ts.get(record.ts), buf);
            let before = self.size + start as u64;
            let max = self.rotation.max_size;
            if max > 0 && before > 0 && before + (buf.len() - start) as u64 > max {
                self.append(&buf[..start])?;
                buf.drain(..start);
                *flushed = i;
                self.rotate()?;
            }
        }
        self.append(buf)?;
        *flushed = records.len();
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let size = self.size;
        let file = self.open()?;
        match file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: cut back to the last whole line and reopen next time.
                let _ = file.set_len(size);
                self.file = None;
                Err(e)
            }
        }
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = Some(open_append(&self.path, &mut self.size)?);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Shifts `.log` -> `.log.1` -> … and starts an empty live file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let keep = self.rotation.max_files.max(1);
        if keep == 1 {
            crate::private::create(&self.path)?;
        } else {
            remove_if_exists(&rotated_path(&self.path, keep - 1))?;
            for n in (1..keep - 1).rev() {
                rename_if_exists(
                    &rotated_path(&self.path, n),
                    &rotated_path(&self.path, n + 1),
                )?;
            }
            rename_if_exists(&self.path, &rotated_path(&self.path, 1))?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path, size: &mut u64) -> io::Result<File> {
    let file = match crate::private::append(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::private::dir(dir)?;
            }
            crate::private::append(path)?
        }
        other => other?,
    };
    *size = file.metadata()?.len();
    Ok(file)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::record::Stream;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    /// A record whose CRI line is exactly 50 bytes (30 ts + " stdout F " + 9 + "\n").
    fn record(n: u32) -> LogRecord {
        LogRecord {
            ts: UNIX_EPOCH + Duration::from_secs(1_795_341_600),
            service: Arc::from("api"),
            replica: 1,
            stream: Stream::Stdout,
            partial: false,
            line: Bytes::from(format!("line {n:04}")),
        }
    }

    fn records(range: std::ops::Range<u32>) -> Vec<LogRecord> {
        range.map(record).collect()
    }

    fn sizes(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn names_files_after_service_and_replica() {
        assert_eq!(file_name("api", 1), "api-1.log");
        assert_eq!(file_name("my-db.x", 12), "my-db.x-12.log");
        assert_eq!(file_name("../etc/x", 0), "_.._etc_x-0.log");
        assert_eq!(
            rotated_path(Path::new("/d/api-1.log"), 2),
            Path::new("/d/api-1.log.2")
        );
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("api-1.log");
        let rotation = Rotation {
            max_size: 120,
            max_files: 3,
        };
        let mut f = RotatingFile::new(live.clone(), rotation);
        // Two 50-byte lines fit in 120 bytes, a third does not.
        f.write_records(&records(0..7)).unwrap();
        assert_eq!(
            sizes(dir.path()),
            vec![
                ("api-1.log".into(), 50),
                ("api-1.log.1".into(), 100),
                ("api-1.log.2".into(), 100),
            ]
        );
        let text = fs::read_to_string(rotated_path(&live, 2)).unwrap();
        assert!(
            text.contains("line 0002") && text.contains("line 0003"),
            "{text}"
        );
        assert!(fs::read_to_string(&live).unwrap().contains("line 0006"));
    }

    #[test]
    fn single_file_is_emptied_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(
            dir.path().join("a-0.log"),
            Rotation {
                max_size: 100,
                max_files: 1,
            },
        );
        f.write_records(&records(0..3)).unwrap();
        assert_eq!(sizes(dir.path()), vec![("a-0.log".into(), 50)]);
    }

    #[test]
    fn zero_max_size_never_rotates_and_reopen_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-0.log");
        let unlimited = Rotation {
            max_size: 0,
            max_files: 3,
        };
        RotatingFile::new(path.clone(), unlimited)
            .write_records(&records(0..3))
            .unwrap();
        let mut again = RotatingFile::new(
            path.clone(),
            Rotation {
                max_size: 180,
                max_files: 2,
            },
        );
        again.write_records(&records(3..4)).unwrap();
        // 150 bytes were already there: the fourth line rotates first.
        assert_eq!(
            sizes(dir.path()),
            vec![("a-0.log".into(), 50), ("a-0.log.1".into(), 150)]
        );
    }

    #[test]
    fn oversized_record_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::new(
            dir.path().join("a-0.log"),
            Rotation {
                max_size: 10,
                max_files: 5,
            },
        );
        f.write_records(&records(0..2)).unwrap();
        assert_eq!(
            sizes(dir.path()),
            vec![("a-0.log".into(), 50), ("a-0.log.1".into(), 50)]
        );
    }

    #[test]
    fn full_disk_reports_lost_records_without_panicking() {
        let mut f = RotatingFile::new(PathBuf::from("/dev/full"), Rotation::default());
        let err = f.write_records(&records(0..4)).unwrap_err();
        assert_eq!(err.lost, 4);
        assert_eq!(err.source.kind(), io::ErrorKind::StorageFull);
        assert!(err.to_string().starts_with("could not write 4 log lines"));
        // It keeps trying (and failing) rather than giving up for good.
        assert_eq!(f.write_records(&records(4..5)).unwrap_err().lost, 1);
    }
}
