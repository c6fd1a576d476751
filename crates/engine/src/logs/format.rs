//! How records look on a terminal, like `docker compose up`, or as JSON.
//!
//! `api-1  | text`: the name padded to the longest seen so far plus one,
//! then ` | `, the prefix in the service's colour, picked in order of first
//! appearance from docker compose's palette. berth's own lines read
//! `api-1 exited with code 1` in that colour, as compose prints exits. Text
//! is decoded lossily (U+FFFD) only here; files keep the bytes.

use std::collections::HashMap;
use std::sync::Arc;

use super::cri::TimestampCache;
use super::record::{JsonRecord, LogRecord, Stream};

/// Docker compose's rainbow: cyan, yellow, green, magenta, blue, then the
/// same in bold ("intense").
const PALETTE: [&str; 10] = [
    "36", "33", "32", "35", "34", "36;1", "33;1", "32;1", "35;1", "34;1",
];

const RESET: &str = "\x1b[0m";

/// `berth up` / `berth logs` output flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// ANSI colours (off for `--no-color`, `NO_COLOR` or a non-terminal).
    pub color: bool,
    /// `-t`: an RFC 3339 timestamp after the prefix.
    pub timestamps: bool,
    /// `--json`: one object per line instead of text.
    pub json: bool,
}

/// A service's colour and its replicas' names.
#[derive(Debug)]
struct Presenter {
    color: &'static str,
    names: HashMap<u32, String>,
}

/// Turns records into output bytes; keeps the padding width and colours.
#[derive(Debug)]
pub struct Formatter {
    options: PrintOptions,
    /// Longest name seen plus one, as compose computes it.
    width: usize,
    services: HashMap<Arc<str>, Presenter>,
    ts: TimestampCache,
    lead: String,
}

impl Formatter {
    /// A formatter with nothing registered yet.
    pub fn new(options: PrintOptions) -> Formatter {
        Formatter {
            options,
            width: 0,
            services: HashMap::new(),
            ts: TimestampCache::default(),
            lead: String::new(),
        }
    }

    /// Registers a replica ahead of its first line, so colours follow the
    /// Compose file's order and the padding is right from the start.
    pub fn register(&mut self, service: &str, replica: u32) {
        self.name_into(service, replica, &mut String::new());
    }

    /// Appends the replica's name to `lead`; returns its length and colour.
    fn name_into(
        &mut self,
        service: &str,
        replica: u32,
        lead: &mut String,
    ) -> (usize, &'static str) {
        let next = PALETTE[self.services.len() % PALETTE.len()];
        if !self.services.contains_key(service) {
            let presenter = Presenter {
                color: next,
                names: HashMap::new(),
            };
            self.services.insert(Arc::from(service), presenter);
        }
        let Some(presenter) = self.services.get_mut(service) else {
            return (0, next);
        };
        let name = presenter
            .names
            .entry(replica)
            .or_insert_with(|| LogRecord::display_name(service, replica));
        self.width = self.width.max(name.len() + 1);
        lead.push_str(name);
        (name.len(), presenter.color)
    }

    /// Appends `record` as one output line.
    pub fn format(&mut self, record: &LogRecord, out: &mut Vec<u8>) {
        if self.options.json {
            self.json(record, out);
            return;
        }
        let (color, timestamps) = (self.options.color, self.options.timestamps);
        let mut lead = std::mem::take(&mut self.lead);
        lead.clear();
        let (len, code) = self.name_into(&record.service, record.replica, &mut lead);
        if color {
            lead.insert(0, 'm');
            lead.insert_str(0, code);
            lead.insert_str(0, "\x1b[");
        }
        let system = record.stream == Stream::System;
        if !system {
            let pad = self.width.saturating_sub(len);
            lead.extend(std::iter::repeat_n(' ', pad));
            lead.push_str(" | ");
            if color {
                lead.push_str(RESET);
            }
        } else {
            lead.push(' ');
        }
        if timestamps {
            lead.push_str(std::str::from_utf8(self.ts.get(record.ts)).unwrap_or_default());
            lead.push(' ');
        }
        out.extend_from_slice(lead.as_bytes());
        let text = String::from_utf8_lossy(&record.line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        // A progress bar's `\r` returns to the line start: redraw the prefix.
        for (i, piece) in text.split('\r').enumerate() {
            if i > 0 {
                out.push(b'\r');
                out.extend_from_slice(lead.as_bytes());
            }
            out.extend_from_slice(piece.as_bytes());
        }
        if system && color {
            out.extend_from_slice(RESET.as_bytes());
        }
        out.push(b'\n');
        self.lead = lead;
    }

    /// Appends the notice that `n` records were dropped for a slow reader.
    pub fn format_skipped(&mut self, n: u64, out: &mut Vec<u8>) {
        let text = if self.options.json {
            format!("{{\"skipped\":{n}}}\n")
        } else {
            format!("... {n} lines skipped (terminal too slow)\n")
        };
        out.extend_from_slice(text.as_bytes());
    }

    fn json(&mut self, record: &LogRecord, out: &mut Vec<u8>) {
        let ts = std::str::from_utf8(self.ts.get(record.ts)).unwrap_or_default();
        JsonRecord::new(record, ts).write_line(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::{Duration, UNIX_EPOCH};

    fn rec(service: &str, replica: u32, stream: Stream, line: &[u8]) -> LogRecord {
        LogRecord {
            ts: UNIX_EPOCH + Duration::new(1_795_341_600, 5),
            service: Arc::from(service),
            replica,
            stream,
            partial: false,
            line: Bytes::copy_from_slice(line),
        }
    }

    fn show(f: &mut Formatter, r: &LogRecord) -> String {
        let mut out = Vec::new();
        f.format(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pads_names_to_the_longest_seen_so_far() {
        let mut f = Formatter::new(PrintOptions::default());
        assert_eq!(
            show(&mut f, &rec("db", 1, Stream::Stdout, b"a")),
            "db-1  | a\n"
        );
        assert_eq!(
            show(&mut f, &rec("api", 1, Stream::Stderr, b"b")),
            "api-1  | b\n"
        );
        assert_eq!(
            show(&mut f, &rec("db", 1, Stream::Stdout, b"c")),
            "db-1   | c\n"
        );
        f.register("frontend", 10);
        assert_eq!(
            show(&mut f, &rec("db", 1, Stream::Stdout, b"")),
            "db-1         | \n"
        );
    }

    #[test]
    fn colours_cycle_per_service_like_compose() {
        let mut f = Formatter::new(PrintOptions {
            color: true,
            ..PrintOptions::default()
        });
        for s in ["a", "b", "c", "d", "e", "f"] {
            f.register(s, 1);
        }
        assert_eq!(
            show(&mut f, &rec("a", 1, Stream::Stdout, b"x")),
            "\x1b[36ma-1  | \x1b[0mx\n"
        );
        assert_eq!(
            show(&mut f, &rec("a", 2, Stream::Stdout, b"x")),
            "\x1b[36ma-2  | \x1b[0mx\n"
        );
        assert_eq!(
            show(&mut f, &rec("b", 1, Stream::Stdout, b"x")),
            "\x1b[33mb-1  | \x1b[0mx\n"
        );
        assert_eq!(
            show(&mut f, &rec("f", 1, Stream::Stdout, b"x")),
            "\x1b[36;1mf-1  | \x1b[0mx\n"
        );
        assert_eq!(
            show(&mut f, &rec("b", 1, Stream::System, b"exited with code 1")),
            "\x1b[33mb-1 exited with code 1\x1b[0m\n"
        );
    }

    #[test]
    fn timestamps_follow_the_prefix() {
        let mut f = Formatter::new(PrintOptions {
            timestamps: true,
            ..PrintOptions::default()
        });
        assert_eq!(
            show(&mut f, &rec("api", 1, Stream::Stdout, b"up")),
            "api-1  | 2026-11-22T10:00:00.000000005Z up\n"
        );
    }

    #[test]
    fn invalid_utf8_crlf_and_progress_bars_render_sanely() {
        let mut f = Formatter::new(PrintOptions::default());
        assert_eq!(
            show(&mut f, &rec("a", 1, Stream::Stdout, b"ok\xff\xfe\r")),
            "a-1  | ok\u{fffd}\u{fffd}\n"
        );
        assert_eq!(
            show(&mut f, &rec("a", 1, Stream::Stdout, b"10%\r50%\r100%")),
            "a-1  | 10%\ra-1  | 50%\ra-1  | 100%\n"
        );
    }

    #[test]
    fn json_has_one_object_per_line() {
        let mut f = Formatter::new(PrintOptions {
            json: true,
            color: true,
            ..PrintOptions::default()
        });
        let out = show(&mut f, &rec("api", 2, Stream::Stderr, b"say \"hi\"\xff"));
        assert_eq!(
            out,
            "{\"ts\":\"2026-11-22T10:00:00.000000005Z\",\"service\":\"api\",\"replica\":2,\
             \"stream\":\"stderr\",\"line\":\"say \\\"hi\\\"\u{fffd}\"}\n"
        );
        let mut partial = rec("api", 2, Stream::Stdout, b"x");
        partial.partial = true;
        assert!(show(&mut f, &partial).ends_with(",\"partial\":true}\n"));
    }

    #[test]
    fn skipped_notice() {
        let mut out = Vec::new();
        Formatter::new(PrintOptions::default()).format_skipped(1234, &mut out);
        assert_eq!(out, b"... 1234 lines skipped (terminal too slow)\n");
        out.clear();
        Formatter::new(PrintOptions {
            json: true,
            ..PrintOptions::default()
        })
        .format_skipped(7, &mut out);
        assert_eq!(out, b"{\"skipped\":7}\n");
    }
}
