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
