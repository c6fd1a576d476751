//! Reading one replica's log files back, oldest rotated file first.
//!
//! `--tail N` is found by scanning the newest files backwards for newlines,
//! so a short tail of a large log reads only its end.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::cri;
use super::record::LogRecord;
use super::since::LogFilter;

/// The files of one replica, oldest first, as found in `dir`.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplicaFiles {
    pub service: String,
    pub replica: u32,
    pub files: Vec<PathBuf>,
}

/// Splits `api-1.log` / `api-1.log.2` into (`api`, 1, 2); the live file is 0.
pub fn parse_file_name(name: &str) -> Option<(&str, u32, u32)> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (stem, generation) = match name.strip_suffix(".log") {
        Some(stem) => (stem, 0),
        None => {
            let (base, n) = name.rsplit_once('.')?;
            let generation: u32 = n.parse().ok().filter(|&g| g > 0 && digits(n))?;
            (base.strip_suffix(".log")?, generation)
        }
    };
    let (service, replica) = stem.rsplit_once('-')?;
    if service.is_empty() || !digits(replica) {
        return None;
    }
    Some((service, replica.parse().ok()?, generation))
}

/// Every replica's files in `dir`, sorted by service then replica. A
/// missing directory has none.
///
/// # Errors
///
/// The directory cannot be listed.
pub fn list(dir: &Path, filter: &LogFilter) -> io::Result<Vec<ReplicaFiles>> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut found: BTreeMap<(String, u32), Vec<(u32, PathBuf)>> = BTreeMap::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((service, replica, generation)) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        if filter.wants_service(service) {
            let files = found.entry((service.to_owned(), replica)).or_default();
            files.push((generation, entry.path()));
        }
    }
    Ok(found
        .into_iter()
        .map(|((service, replica), mut files)| {
            files.sort_by_key(|&(generation, _)| std::cmp::Reverse(generation));
            let files = files.into_iter().map(|(_, path)| path).collect();
            ReplicaFiles {
                service,
                replica,
                files,
            }
        })
        .collect())
}

/// Where the last `n` lines of `files` (oldest first) start: the index of
/// the first file to read and the offset in it.
///
/// # Errors
///
/// A file cannot be read.
pub fn tail_start(files: &[PathBuf], n: usize) -> io::Result<(usize, u64)> {
    if n == 0 {
        return Ok((files.len(), 0));
    }
    let mut need = n;
    let mut block = vec![0; 64 * 1024];
    for (index, path) in files.iter().enumerate().rev() {
        let file = match File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            other => other?,
        };
        let len = file.metadata()?.len();
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(block.len() as u64);
            let chunk = &mut block[..(end - start) as usize];
            file.read_exact_at(chunk, start)?;
            for at in memchr::memrchr_iter(b'\n', chunk) {
                let newline = start + at as u64;
                // The final newline ends the last line; every other starts one.
                if newline + 1 < len {
                    need -= 1;
                    if need == 0 {
                        return Ok((index, newline + 1));
                    }
                }
            }
            end = start;
        }
        if len > 0 {
            need -= 1;
            if need == 0 {
                return Ok((index, 0));
            }
        }
    }
    Ok((0, 0))
}

/// The records of one replica, in file order.
#[derive(Debug)]
pub struct ReplicaLog {
    service: Arc<str>,
    replica: u32,
    files: VecDeque<PathBuf>,
    /// Where to start in the first file (for `--tail`).
    offset: u64,
    open: Option<(BufReader<File>, PathBuf)>,
    since: Option<SystemTime>,
    line: Vec<u8>,
}

impl ReplicaLog {
    /// Reads `found`'s files, honouring the filter's `since` and `tail`.
    ///
    /// # Errors
    ///
    /// Finding where the tail starts failed.
    pub fn new(found: ReplicaFiles, filter: &LogFilter) -> io::Result<ReplicaLog> {
        let (skip, offset) = match filter.tail {
            Some(n) => tail_start(&found.files, n)?,
            None => (0, 0),
        };
        Ok(ReplicaLog {
            service: Arc::from(found.service),
            replica: found.replica,
            files: found.files.into_iter().skip(skip).collect(),
            offset,
            open: None,
            since: filter.since,
            line: Vec::new(),
        })
    }

    fn open_next(&mut self) -> io::Result<bool> {
        while let Some(path) = self.files.pop_front() {
            let mut file = match File::open(&path) {
                // Rotated away since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => other?,
            };
            file.seek(SeekFrom::Start(std::mem::take(&mut self.offset)))?;
            self.open = Some((BufReader::with_capacity(64 * 1024, file), path));
            return Ok(true);
        }
        Ok(false)
    }

    fn read_one(&mut self) -> Option<io::Result<LogRecord>> {
        loop {
            let Some((reader, path)) = &mut self.open else {
                match self.open_next() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => self.open = None,
                Ok(_) => return Some(parse(&self.line, path, &self.service, self.replica)),
                Err(e) => {
                    self.open = None;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// One file line as a record of `service` replica `replica`.
fn parse(line: &[u8], path: &Path, service: &Arc<str>, replica: u32) -> io::Result<LogRecord> {
    let parsed = cri::parse_line(line).map_err(|e| {
        let text = String::from_utf8_lossy(line);
        let what = format!("{}: {e}: {:?}", path.display(), text.trim_end());
        io::Error::new(io::ErrorKind::InvalidData, what)
    })?;
    Ok(LogRecord {
        ts: parsed.ts,
        service: Arc::clone(service),
        replica,
        stream: parsed.stream,
        partial: parsed.partial,
        line: Bytes::copy_from_slice(parsed.text),
    })
}

impl Iterator for ReplicaLog {
    type Item = io::Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let item = self.read_one()?;
            match (&item, self.since) {
                (Ok(record), Some(since)) if record.ts < since => continue,
                _ => return Some(item),
            }
        }
    }
}
