//! One JSON line per request for berth's log stream.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

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
    /// The JSON line, without a trailing newline.
    pub(crate) fn line(&self) -> String {
        let mut o = Map::new();
        o.insert("time".into(), rfc3339(self.time).into());
        o.insert("method".into(), self.method.into());
        o.insert("path".into(), self.path.into());
        o.insert("status".into(), self.status.into());
        o.insert("bytes".into(), self.bytes.into());
        let ms = (self.duration_ms * 1000.0).round() / 1000.0;
        o.insert("duration_ms".into(), ms.into());
        o.insert(
            "upstream".into(),
            self.upstream.map_or(Value::Null, Value::from),
        );
        o.insert("request_id".into(), self.request_id.into());
        o.insert("route".into(), self.route.map_or(Value::Null, Value::from));
        o.insert("client".into(), self.client.to_string().into());
        Value::Object(o).to_string()
    }
}

/// `2026-01-02T03:04:05.678Z` (the epoch for a clock before it).
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time.max(UNIX_EPOCH)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123); // 2024-02-29T23:59:59.123Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
    }

    #[test]
    fn a_line_is_one_json_object() {
        let e = Entry {
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
        };
        let v: Value = serde_json::from_str(&e.line()).unwrap();
        assert_eq!(v["path"], "/api/x?q=\"1\"");
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(v["upstream"], "api-1");
    }
}
