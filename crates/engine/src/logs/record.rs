//! One line of output, as every part of the pipeline sees it.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// Which pipe a line came from, or `System` for berth's own messages about a
/// replica ("exited with code 1, restarting in 200ms") and the proxy's access
/// log (service `proxy`, replica 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The replica's standard output.
    Stdout,
    /// The replica's standard error.
    Stderr,
    /// A line written by berth itself.
    System,
}

impl Stream {
    /// The name used in log files, JSON output and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }

    /// The inverse of [`Stream::as_str`].
    pub fn from_name(name: &[u8]) -> Option<Stream> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            b"system" => Some(Stream::System),
            _ => None,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a replica's output.
///
/// The line is bytes, not text: invalid UTF-8 and `\r` are kept exactly as
/// the process wrote them. Only the terminal and JSON views decode it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// When berth read the line (all lines of one read share it).
    pub ts: SystemTime,
    /// The Compose service name; shared so a record costs no allocation.
    pub service: Arc<str>,
    /// The replica number, as in `api-1`.
    pub replica: u32,
    /// The pipe the line came from.
    pub stream: Stream,
    /// The line is a piece of a longer one (over 64 KiB), or the last bytes
    /// before end of file without a newline. The next record of the same
    /// stream continues it.
    pub partial: bool,
    /// The bytes of the line, without the trailing `\n`.
    pub line: Bytes,
}

/// A record as one JSON object, the form of `berth logs --json` and of the
/// control API: `{"ts","service","replica","stream","line"}` plus
/// `"partial": true` when it is. The line is decoded as UTF-8 (lossily).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct JsonRecord<'a> {
    /// RFC 3339.
    #[serde(borrow)]
    pub ts: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub service: std::borrow::Cow<'a, str>,
    pub replica: u32,
    pub stream: Stream,
    #[serde(borrow)]
    pub line: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl<'a> JsonRecord<'a> {
    /// The JSON form of `record`, with its time already formatted.
    pub fn new(record: &'a LogRecord, ts: &'a str) -> JsonRecord<'a> {
        JsonRecord {
            ts: ts.into(),
            service: (*record.service).into(),
            replica: record.replica,
            stream: record.stream,
            line: String::from_utf8_lossy(&record.line),
            partial: record.partial,
        }
    }

    /// Appends the object and a newline to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // Serializing to a Vec cannot fail: there is no I/O and no map key.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }

    /// The record it stands for; `None` when its time does not parse.
    pub fn into_record(self) -> Option<LogRecord> {
        Some(LogRecord {
            ts: humantime::parse_rfc3339(&self.ts).ok()?,
            service: Arc::from(&*self.service),
            replica: self.replica,
            stream: self.stream,
            partial: self.partial,
            line: Bytes::from(self.line.into_owned()),
        })
    }
}

impl LogRecord {
    /// A line of berth's own about a replica (`exited with code 1`).
    pub fn system(ts: SystemTime, service: &Arc<str>, replica: u32, line: Bytes) -> LogRecord {
        LogRecord {
            ts,
            service: Arc::clone(service),
            replica,
            stream: Stream::System,
            partial: false,
            line,
        }
    }

    /// The name shown in front of the line: `api-1`.
    pub fn name(&self) -> String {
        Self::display_name(&self.service, self.replica)
    }

    /// `api-1`; replica 0 (a service's build step, berth itself, the
    /// proxy) is just the service name.
    pub fn display_name(service: &str, replica: u32) -> String {
        if replica == 0 {
            service.to_string()
        } else {
            format!("{service}-{replica}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_round_trip() {
        for s in [Stream::Stdout, Stream::Stderr, Stream::System] {
            assert_eq!(Stream::from_name(s.as_str().as_bytes()), Some(s));
        }
        assert_eq!(Stream::from_name(b"STDOUT"), None);
    }

    #[test]
    fn name_joins_service_and_replica() {
        let r = LogRecord {
            ts: SystemTime::UNIX_EPOCH,
            service: Arc::from("api"),
            replica: 2,
            stream: Stream::Stdout,
            partial: false,
            line: Bytes::new(),
        };
        assert_eq!(r.name(), "api-2");
    }
}
