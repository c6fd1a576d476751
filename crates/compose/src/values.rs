//! Typed values of service fields that Compose writes as strings: restart
//! policies, signals, `expose` entries, published port ranges, protocols,
//! health-check tests and log rotation.
//!
//! Each parses once, at load time, with a message and a hint that the loader
//! reports at the value's line ([`Invalid`]); everything after the loader
//! works with the typed value and cannot meet a bad one. Each prints back as
//! `docker compose config` prints it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value does not parse: what is wrong, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub message: String,
    pub help: &'static str,
}

impl Invalid {
    fn new(message: String, help: &'static str) -> Invalid {
        Invalid { message, help }
    }
}

/// Deserializes through `FromStr` from a string (or a number, as YAML may
/// write a port or a signal number).
fn from_text<'de, D: Deserializer<'de>, T: FromStr<Err = Invalid>>(d: D) -> Result<T, D::Error> {
    let text = d.deserialize_any(TextVisitor)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A string, or a number as its decimal text.
struct TextVisitor;

impl serde::de::Visitor<'_> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

macro_rules! text_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                from_text(d)
            }
        }
    };
}

/// When to restart a replica that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Always restart; `max_retries` only from `deploy.restart_policy`.
    Always {
        max_retries: Option<u32>,
    },
    OnFailure {
        max_retries: Option<u32>,
    },
    UnlessStopped,
}

impl FromStr for RestartPolicy {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<RestartPolicy, Invalid> {
        let policy = match s {
            "no" | "" => Some(RestartPolicy::No),
            "always" => Some(RestartPolicy::Always { max_retries: None }),
            "unless-stopped" => Some(RestartPolicy::UnlessStopped),
            "on-failure" => Some(RestartPolicy::OnFailure { max_retries: None }),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse().ok())
                .map(|n| RestartPolicy::OnFailure {
                    max_retries: Some(n),
                }),
        };
        policy.ok_or_else(|| {
            Invalid::new(
                format!("{s:?} is not a restart policy"),
                "use \"no\", always, on-failure, on-failure:N or unless-stopped",
            )
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always { .. } => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
        }
    }
}

text_serde!(RestartPolicy);

/// The signals a `stop_signal` may name (without `SIG`), as Docker accepts
/// them on Linux.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

/// A signal, by name (with or without `SIG`, any case) or number (1–31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    written: String,
    which: SignalId,
}

/// Which signal: its name without `SIG`, upper case, or its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalId {
    Named(&'static str),
    Number(u8),
}

impl Signal {
    /// The signal itself.
    pub fn id(&self) -> SignalId {
        self.which
    }
}

impl FromStr for Signal {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Signal, Invalid> {
        let which = match s.parse::<u8>() {
            Ok(n) if (1..=31).contains(&n) => Some(SignalId::Number(n)),
            Ok(_) => None,
            Err(_) => {
                let upper = s.to_ascii_uppercase();
                let name = upper.strip_prefix("SIG").unwrap_or(&upper);
                SIGNALS
                    .iter()
                    .find(|known| **known == name)
                    .map(|known| SignalId::Named(known))
            }
        };
        match which {
            Some(which) => Ok(Signal {
                written: s.to_string(),
                which,
            }),
            None => Err(Invalid::new(
                format!("{s:?} is not a signal"),
                "write a signal name such as SIGTERM, SIGINT or SIGQUIT, or its number",
            )),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

text_serde!(Signal);

/// A transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl FromStr for Protocol {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Protocol, Invalid> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            _ => Err(Invalid::new(
                format!("{s:?} is not a protocol"),
                "write tcp, udp or sctp",
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

text_serde!(Protocol);

/// A port or an inclusive range of ports, `START <= END`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// How many ports the range holds.
    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never: a range holds at least one port.
    pub fn is_empty(self) -> bool {
        false
    }

    pub fn ports(self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }
}

fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl FromStr for PortRange {
    type Err = Invalid;

    /// `PORT` or `START-END`; `0` alone (any free port) but never in a range.
    fn from_str(s: &str) -> Result<PortRange, Invalid> {
        let range = match s.split_once('-') {
            None => port_number(s).map(|p| (p, p)),
            Some((a, b)) => match (port_number(a), port_number(b)) {
                (Some(a), Some(b)) if a <= b && a != 0 => Some((a, b)),
                _ => None,
            },
        };
        range
            .map(|(start, end)| PortRange { start, end })
            .ok_or_else(|| {
                Invalid::new(
                    format!("{s:?} is not a port or a range of ports"),
                    "write PORT or START-END with START <= END",
                )
            })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

text_serde!(PortRange);

/// One `expose` entry: a port or range, and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expose {
    pub ports: PortRange,
    pub protocol: Protocol,
    written: String,
}

impl FromStr for Expose {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Expose, Invalid> {
        let bad = || {
            Invalid::new(
                format!("{s:?} is not a port"),
                "write PORT, PORT/PROTOCOL or a range START-END",
            )
        };
        let (ports, protocol) = match s.split_once('/') {
            Some((p, proto)) => (p, proto.parse().map_err(|_| bad())?),
            None => (s, Protocol::Tcp),
        };
        let ports: PortRange = ports.parse().map_err(|_| bad())?;
        if ports.start == 0 {
            return Err(bad());
        }
        Ok(Expose {
            ports,
            protocol,
            written: s.to_string(),
        })
    }
}

impl fmt::Display for Expose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

text_serde!(Expose);

/// What a health check runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HealthTest {
    /// No `test`: an image's own check would apply (none natively).
    #[default]
    Inherit,
    /// `["NONE"]` or `disable: true`: no check.
    Disabled,
    /// `["CMD", argv...]`: run the program.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", script]` or a plain string: run it with `sh -c`.
    Shell(String),
}

impl HealthTest {
    /// Whether this probes anything.
    pub fn is_probe(&self) -> bool {
        matches!(self, HealthTest::Cmd(_) | HealthTest::Shell(_))
    }

    pub fn is_inherit(&self) -> bool {
        *self == HealthTest::Inherit
    }

    /// The argv a probe runs.
    pub fn argv(&self) -> Vec<String> {
        match self {
            HealthTest::Cmd(argv) => argv.clone(),
            HealthTest::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
            HealthTest::Inherit | HealthTest::Disabled => Vec::new(),
        }
    }

    fn from_words(words: Vec<String>) -> Result<HealthTest, Invalid> {
        let Some((first, rest)) = words.split_first() else {
            return Ok(HealthTest::Inherit);
        };
        match first.as_str() {
            "NONE" => Ok(HealthTest::Disabled),
            "CMD" if !rest.is_empty() => Ok(HealthTest::Cmd(rest.to_vec())),
            "CMD-SHELL" if !rest.is_empty() => Ok(HealthTest::Shell(rest.join(" "))),
            "CMD" | "CMD-SHELL" => Err(Invalid::new(
                format!("{first} has nothing to run"),
                "write [CMD, program, args...] or [CMD-SHELL, \"script\"]",
            )),
            other => Err(Invalid::new(
                format!("a test list starts with NONE, CMD or CMD-SHELL, not {other:?}"),
                "write [CMD, program, args...], [CMD-SHELL, \"script\"] or a plain string",
            )),
        }
    }
}

impl Serialize for HealthTest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let words: Vec<&str> = match self {
            HealthTest::Inherit => Vec::new(),
            HealthTest::Disabled => vec!["NONE"],
            HealthTest::Cmd(argv) => std::iter::once("CMD")
                .chain(argv.iter().map(String::as_str))
                .collect(),
            HealthTest::Shell(script) => vec!["CMD-SHELL", script],
        };
        words.serialize(s)
    }
}

impl<'de> Deserialize<'de> for HealthTest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HealthTest::from_words(Vec::<String>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How berth rotates a service's log files: `logging.options` `max-size`
/// and `max-file`, whatever the driver (10m and 3 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// Bytes per file.
    pub max_size: u64,
    /// Files kept.
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> LogRotation {
        LogRotation {
            max_size: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

impl LogRotation {
    /// Parses `max-size`.
    ///
    /// # Errors
    /// Not a positive size.
    pub fn parse_size(text: &str) -> Result<u64, Invalid> {
        match crate::units::ByteSize::parse(text) {
            Ok(b) if b.0 > 0 => Ok(b.0),
            _ => Err(Invalid::new(
                format!("{text:?} is not a size"),
                "write a size such as 10m or 512k",
            )),
        }
    }

    /// Parses `max-file`.
    ///
    /// # Errors
    /// Not a positive count.
    pub fn parse_files(text: &str) -> Result<u32, Invalid> {
        match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Invalid::new(
                format!("{text:?} is not a positive count"),
                "write how many files to keep, such as \"3\"",
            )),
        }
    }

    /// From `logging.options`.
    ///
    /// # Errors
    /// The first option that does not parse, with its key.
    pub fn from_options(
        options: &indexmap::IndexMap<String, String>,
    ) -> Result<LogRotation, (&'static str, Invalid)> {
        let mut rotation = LogRotation::default();
        if let Some(size) = options.get("max-size") {
            rotation.max_size = LogRotation::parse_size(size).map_err(|e| ("max-size", e))?;
        }
        if let Some(files) = options.get("max-file") {
            rotation.max_files = LogRotation::parse_files(files).map_err(|e| ("max-file", e))?;
        }
        Ok(rotation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_written_and_parse_to_their_meaning() {
        let sig: Signal = "sigquit".parse().unwrap();
        assert_eq!(sig.id(), SignalId::Named("QUIT"));
        assert_eq!(sig.to_string(), "sigquit");
        assert_eq!("9".parse::<Signal>().unwrap().id(), SignalId::Number(9));
        assert!("SIGFOO".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());

        let e: Expose = "3000-3002/udp".parse().unwrap();
        assert_eq!(
            (e.ports.start, e.ports.end, e.protocol),
            (3000, 3002, Protocol::Udp)
        );
        assert_eq!(e.to_string(), "3000-3002/udp");
        for bad in ["3002-3000", "0", "x", "80/http", "1-2-3", ""] {
            assert!(bad.parse::<Expose>().is_err(), "{bad}");
        }

        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            }
        );
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap().to_string(),
            "on-failure:3"
        );
        assert!("sometimes".parse::<RestartPolicy>().is_err());

        assert_eq!("0".parse::<PortRange>().unwrap().start, 0);
        assert!("0-5".parse::<PortRange>().is_err());
        assert_eq!("8000-8010".parse::<PortRange>().unwrap().len(), 11);
    }

    #[test]
    fn health_tests_read_every_form_and_reject_the_rest() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            HealthTest::from_words(words(&["CMD-SHELL", "curl -f x"]))
                .unwrap()
                .argv(),
            words(&["/bin/sh", "-c", "curl -f x"])
        );
        assert_eq!(
            HealthTest::from_words(words(&["CMD", "true"])).unwrap(),
            HealthTest::Cmd(words(&["true"]))
        );
        assert!(!HealthTest::from_words(words(&["NONE"])).unwrap().is_probe());
        assert!(HealthTest::from_words(words(&["curl", "x"])).is_err());
        assert!(HealthTest::from_words(words(&["CMD"])).is_err());
    }
}
