//! The CRI log line format used by the log files.
//!
//! `2026-11-22T10:00:00.123456789Z stdout F text\n`: an RFC 3339 UTC
//! timestamp with nanoseconds, the stream, `F` for a full line or `P` for a
//! partial one, one space, then the line's raw bytes. It is what Kubernetes
//! keeps on nodes, so existing tools read it; berth adds the `system` stream.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{LogRecord, Stream};

/// The latest instant RFC 3339 can write (9999-12-31T23:59:59Z).
const MAX_SECS: u64 = 253_402_300_799;

/// A CRI line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CriError {
    /// Fewer than the three space-separated fields before the text.
    #[error("expected `TIMESTAMP STREAM F|P TEXT`")]
    Shape,
    /// The first field is not an RFC 3339 timestamp.
    #[error("invalid timestamp {0:?}")]
    Timestamp(String),
    /// The second field is not `stdout`, `stderr` or `system`.
    #[error("unknown stream {0:?}")]
    Stream(String),
    /// The third field is not `F` or `P`.
    #[error("unknown tag {0:?}, expected F or P")]
    Tag(String),
}

/// One parsed line of a log file, borrowing its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// When the line was read.
    pub ts: SystemTime,
    /// Which stream it came from.
    pub stream: Stream,
    /// Tagged `P`.
    pub partial: bool,
    /// The raw text, without the trailing newline.
    pub text: &'a [u8],
}

/// Appends `ts` as `2026-11-22T10:00:00.123456789Z` (clamped to what RFC
/// 3339 can express, so a broken clock cannot make it fail).
pub fn write_timestamp(ts: SystemTime, out: &mut Vec<u8>) {
    let max = UNIX_EPOCH + Duration::from_secs(MAX_SECS);
    let ts = ts.clamp(UNIX_EPOCH, max);
    if write!(out, "{}", humantime::format_rfc3339_nanos(ts)).is_err() {
        out.extend_from_slice(b"1970-01-01T00:00:00.000000000Z");
    }
}

/// Appends one record as a CRI line, given its already formatted timestamp.
pub fn write_line(record: &LogRecord, ts_text: &[u8], out: &mut Vec<u8>) {
    out.reserve(ts_text.len() + record.line.len() + 12);
    out.extend_from_slice(ts_text);
    out.push(b' ');
    out.extend_from_slice(record.stream.as_str().as_bytes());
    out.extend_from_slice(if record.partial { b" P " } else { b" F " });
    out.extend_from_slice(&record.line);
    out.push(b'\n');
}

/// Formats timestamps once per distinct instant: all records of one read
/// share theirs, so a batch costs one formatting.
#[derive(Debug, Default)]
pub struct TimestampCache {
    last: Option<SystemTime>,
    text: Vec<u8>,
}

impl TimestampCache {
    /// The formatted form of `ts`.
    pub fn get(&mut self, ts: SystemTime) -> &[u8] {
        if self.last != Some(ts) {
            self.text.clear();
            write_timestamp(ts, &mut self.text);
            self.last = Some(ts);
        }
        &self.text
    }
}

/// Parses one line of a log file (with or without its trailing `\n`).
///
/// # Errors
///
/// [`CriError`] naming the field that is wrong.
pub fn parse_line(line: &[u8]) -> Result<CriLine<'_>, CriError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.splitn(4, |&b| b == b' ');
    let (Some(ts), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(CriError::Shape);
    };
    let text = fields.next().unwrap_or_default();
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let ts = std::str::from_utf8(ts)
        .ok()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .ok_or_else(|| CriError::Timestamp(lossy(ts)))?;
    let stream = Stream::from_name(stream).ok_or_else(|| CriError::Stream(lossy(stream)))?;
    let partial = match tag {
        b"F" => false,
        b"P" => true,
        _ => return Err(CriError::Tag(lossy(tag))),
    };
    Ok(CriLine {
        ts,
        stream,
        partial,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    /// Length of a written timestamp: `2026-11-22T10:00:00.123456789Z`.
    const TS_LEN: usize = 30;

    fn record(stream: Stream, partial: bool, line: &[u8]) -> LogRecord {
        LogRecord {
            ts: UNIX_EPOCH + Duration::new(1_795_341_600, 123_456_789),
            service: Arc::from("api"),
            replica: 1,
            stream,
            partial,
            line: Bytes::copy_from_slice(line),
        }
    }

    fn to_cri(r: &LogRecord) -> Vec<u8> {
        let mut ts = TimestampCache::default();
        let mut out = Vec::new();
        write_line(r, ts.get(r.ts), &mut out);
        out
    }

    #[test]
    fn formats_like_cri() {
        let out = to_cri(&record(Stream::Stdout, false, b"hello world"));
        assert_eq!(
            out,
            b"2026-11-22T10:00:00.123456789Z stdout F hello world\n"
        );
        let out = to_cri(&record(Stream::Stderr, true, b""));
        assert_eq!(out, b"2026-11-22T10:00:00.123456789Z stderr P \n");
    }

    #[test]
    fn round_trips_raw_bytes() {
        for (stream, partial, text) in [
            (Stream::Stdout, false, &b"a\rb\xff\xfe c  d"[..]),
            (Stream::Stderr, true, b""),
            (Stream::System, false, b"exited with code 1"),
        ] {
            let r = record(stream, partial, text);
            let out = to_cri(&r);
            assert_eq!(out.len(), TS_LEN + stream.as_str().len() + 5 + text.len());
            let parsed = parse_line(&out).unwrap();
            assert_eq!(parsed.ts, r.ts);
            assert_eq!(parsed.stream, stream);
            assert_eq!(parsed.partial, partial);
            assert_eq!(parsed.text, text);
        }
    }

    #[test]
    fn empty_text_without_trailing_space_parses() {
        let p = parse_line(b"2026-11-22T10:00:00Z stdout F").unwrap();
        assert_eq!(p.text, b"");
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(parse_line(b"garbage"), Err(CriError::Shape));
        assert!(matches!(
            parse_line(b"yesterday stdout F x"),
            Err(CriError::Timestamp(_))
        ));
        assert!(matches!(
            parse_line(b"2026-11-22T10:00:00Z stdin F x"),
            Err(CriError::Stream(_))
        ));
        assert!(matches!(
            parse_line(b"2026-11-22T10:00:00Z stdout X x"),
            Err(CriError::Tag(_))
        ));
    }

    #[test]
    fn clock_before_epoch_does_not_panic() {
        let mut out = Vec::new();
        write_timestamp(UNIX_EPOCH - Duration::from_secs(5), &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000000000Z");
    }
}
