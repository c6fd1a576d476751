//! One JSON line per request for berth's log stream, written straight into
//! the worker's buffer (`log_batch`): no map, no intermediate strings; and
//! the [`AccessLogBatch`] those buffers are handed over as.

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// What one line says.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) time: SystemTime,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) duration_ms: f64,
    pub(crate) upstream: Option<&'a str>,
    pub(crate) request_id: &'a str,
    pub(crate) route: Option<&'a str>,
    pub(crate) client: IpAddr,
}

impl Entry<'_> {
    /// Appends the JSON object, without a trailing newline, to `out`:
    /// `{"time","method","path","status","bytes","duration_ms","upstream",
    /// "request_id","route","client"}` in that order.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail: the results are ignored.
        let ms = (self.duration_ms * 1000.0).round() / 1000.0;
        out.extend_from_slice(b"{\"time\":\"");
        rfc3339_millis(out, self.time);
        out.extend_from_slice(b"\",\"method\":");
        string(out, self.method);
        out.extend_from_slice(b",\"path\":");
        string(out, self.path);
        out.extend_from_slice(b",\"status\":");
        let _ = serde_json::to_writer(&mut *out, &self.status);
        out.extend_from_slice(b",\"bytes\":");
        let _ = serde_json::to_writer(&mut *out, &self.bytes);
        out.extend_from_slice(b",\"duration_ms\":");
        let _ = serde_json::to_writer(&mut *out, &ms);
        out.extend_from_slice(b",\"upstream\":");
        optional(out, self.upstream);
        out.extend_from_slice(b",\"request_id\":");
        string(out, self.request_id);
        out.extend_from_slice(b",\"route\":");
        optional(out, self.route);
        let _ = write!(out, ",\"client\":\"{}\"}}", self.client);
    }
}

thread_local! {
    /// The last second formatted on this thread, `2026-01-02T03:04:05`:
    /// a worker writes many lines per second.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `2026-01-02T03:04:05.678Z` (the epoch for a clock before it).
fn rfc3339_millis(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
        let text = whole.to_string();
        if let Some(head) = text.as_bytes().get(..19) {
            prefix.copy_from_slice(head);
            SECOND.set((secs, prefix));
        }
    }
    let millis = since.subsec_millis();
    out.extend_from_slice(&prefix);
    out.extend_from_slice(&[
        b'.',
        b'0' + (millis / 100) as u8,
        b'0' + (millis / 10 % 10) as u8,
        b'0' + (millis % 10) as u8,
        b'Z',
    ]);
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON string, or `null`.
fn optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Access-log lines handed over together, in the order they were recorded;
/// each keeps the time it was recorded. The text is one allocation that
/// every line is a slice of.
#[derive(Debug, Clone, Default)]
pub struct AccessLogBatch {
    text: Bytes,
    /// When each line was recorded, and where it ends in `text`.
    ends: Vec<(SystemTime, usize)>,
}

impl AccessLogBatch {
    /// Lines that end at `ends` in `text`, one after the other.
    pub(crate) fn new(text: Bytes, ends: Vec<(SystemTime, usize)>) -> Self {
        AccessLogBatch { text, ends }
    }

    /// How many lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No line at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each line (JSON, no trailing newline) with the time it was recorded.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = (SystemTime, Bytes)> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(ts, end)| {
            let line = self.text.slice(start..end);
            start = end;
            (ts, line)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn entry() -> Entry<'static> {
        Entry {
            time: UNIX_EPOCH,
            method: "GET",
            path: "/api/x?q=\"1\"",
            status: 200,
            bytes: 12,
            duration_ms: 1.23456,
            upstream: Some("api-1"),
            request_id: "abc",
            route: Some("/api"),
            client: "127.0.0.1".parse().unwrap(),
        }
    }

    fn line(e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        e.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dates_format_as_rfc3339() {
        let mut e = entry();
        let time = |e: &Entry<'_>| serde_json::from_str::<Value>(&line(e)).unwrap()["time"].clone();
        assert_eq!(time(&e), "1970-01-01T00:00:00.000Z");
        e.time = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(time(&e), "2024-02-29T23:59:59.123Z");
        // The same second again (cached), then the next one.
        e.time = UNIX_EPOCH + Duration::from_millis(1_709_251_199_007);
        assert_eq!(time(&e), "2024-02-29T23:59:59.007Z");
        e.time = UNIX_EPOCH + Duration::from_millis(1_709_251_200_990);
        assert_eq!(time(&e), "2024-03-01T00:00:00.990Z");
        e.time = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            time(&e),
            "1970-01-01T00:00:00.000Z",
            "a clock before the epoch"
        );
    }

    #[test]
    fn a_line_is_one_json_object() {
        let v: Value = serde_json::from_str(&line(&entry())).unwrap();
        assert_eq!(v["path"], "/api/x?q=\"1\"");
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(v["upstream"], "api-1");
    }

    /// The fields, their order and their values, as the line had them when
    /// it was built through a `serde_json::Map` (kept for readers of the log).
    #[test]
    fn the_fields_and_their_order_are_kept() {
        let mut e = entry();
        assert_eq!(
            line(&e),
            r#"{"time":"1970-01-01T00:00:00.000Z","method":"GET","path":"/api/x?q=\"1\"","status":200,"bytes":12,"duration_ms":1.235,"upstream":"api-1","request_id":"abc","route":"/api","client":"127.0.0.1"}"#
        );
        e.upstream = None;
        e.route = None;
        e.duration_ms = 2.0;
        e.client = "::1".parse().unwrap();
        e.path = "/\u{1}\n\\é";
        let v: Value = serde_json::from_str(&line(&e)).unwrap();
        assert_eq!(v["upstream"], Value::Null);
        assert_eq!(v["route"], Value::Null);
        assert_eq!(v["duration_ms"], 2.0);
        assert_eq!(v["client"], "::1");
        assert_eq!(v["path"], "/\u{1}\n\\é");
        assert!(!line(&e).contains('\n'), "one line");
    }
}
