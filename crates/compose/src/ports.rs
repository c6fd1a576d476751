//! Service port mappings: the short syntax and the long form it expands to.
//!
//! A short port spec is `[[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`,
//! where either port may be a range `START-END`:
//!
//! - `80` publishes nothing and exposes container port 80;
//! - `8080:80`, `127.0.0.1:8080:80`, `[::1]:8080:80` publish port 80 on 8080;
//! - `127.0.0.1::80` binds a runtime-chosen host port on 127.0.0.1;
//! - `80-82:8080-8082` pairs ranges of equal length one to one, giving one
//!   [`PortConfig`] per container port;
//! - `8000-8010:80` keeps the host range as `published: "8000-8010"` (the
//!   runtime picks one port in it);
//! - `/udp`, `/sctp`, `/tcp` (any case) choose the protocol, `tcp` by default.
//!
//! [`parse_port_spec`] follows compose-go (`types.ParsePortConfig` with
//! go-connections `nat` v0.4.0), including its ordering: the resulting entries
//! are sorted by the container port's decimal text, so `9998-10000` yields
//! 10000, 9998, 9999 as `docker compose config` prints them. Stricter than
//! go-connections: ports must be plain decimal digits, a range has exactly
//! one `-`, and text after a second `/` makes the protocol invalid. A host IP
//! is an IPv4 address, or an IPv6 (or IPv4) address in brackets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use crate::values::{PortRange, Protocol};

/// One port mapping in long form, as `docker compose config` prints it.
///
/// Field order is the serialization order. Deserializing the long syntax
/// fills `mode` (`ingress`) and `protocol` (`tcp`) when absent, and accepts
/// `target` and `published` as numbers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortConfig {
    /// A human-readable name for the mapping (long syntax only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ingress` (the default) or `host`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The host address to bind (written without brackets for IPv6).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_host_ip"
    )]
    pub host_ip: Option<IpAddr>,
    /// The container port.
    #[serde(deserialize_with = "deserialize_target")]
    pub target: u16,
    /// A port or a range such as "80-90"; None when the host side is chosen by the runtime.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_published"
    )]
    pub published: Option<PortRange>,
    /// `tcp` (the default), `udp` or `sctp`.
    #[serde(default)]
    pub protocol: Protocol,
    /// The application protocol (`http`, `grpc`, ...), long syntax only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

fn default_mode() -> String {
    "ingress".to_owned()
}

/// A short port spec that cannot be parsed. Each variant names the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The container port is missing (`""`, `8080:`, `/udp`).
    #[error("no port specified in {spec:?}")]
    NoPort {
        /// The whole spec.
        spec: String,
    },
    /// The container port or range is not a valid port number or range.
    #[error("invalid container port {port} in {spec:?}")]
    InvalidContainerPort {
        /// The container port text.
        port: String,
        /// The whole spec.
        spec: String,
    },
    /// The host port or range is not a valid port number or range.
    #[error("invalid host port {port} in {spec:?}")]
    InvalidHostPort {
        /// The host port text.
        port: String,
        /// The whole spec.
        spec: String,
    },
    /// The host IP is not an IP address.
    #[error("invalid host ip {ip:?} in {spec:?}")]
    InvalidHostIp {
        /// The host IP text, brackets included.
        ip: String,
        /// The whole spec.
        spec: String,
    },
    /// A container port range whose length differs from the host range.
    #[error(
        "invalid ranges specified for container and host ports: {container} and {host} in {spec:?}"
    )]
    RangeMismatch {
        /// The container range text.
        container: String,
        /// The host range text.
        host: String,
        /// The whole spec.
        spec: String,
    },
    /// The protocol is not `tcp`, `udp` or `sctp`.
    #[error("invalid protocol {protocol:?} in {spec:?}")]
    InvalidProtocol {
        /// The protocol text as written.
        protocol: String,
        /// The whole spec.
        spec: String,
    },
}

/// Parses one short-syntax port spec into its long-form mappings.
///
/// A bare YAML integer is passed as its decimal string (`8600` -> `"8600"`).
/// Ranges of equal length expand to one entry per port; a host range with a
/// single container port stays a range in `published`. Entries come sorted
/// by the container port's decimal text, as compose-go orders them.
///
/// # Errors
///
/// A [`PortError`] when the container port is missing or invalid, the host
/// port or IP is invalid, the ranges have different lengths, or the protocol
/// is unknown.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortConfig>, PortError> {
    // [ip:]host:container, where the ip part may itself contain colons.
    let mut parts = spec.rsplitn(3, ':');
    let container_part = parts.next().unwrap_or("");
    let host_part = parts.next().unwrap_or("");
    let ip_part = parts.next().unwrap_or("");

    let host_ip = if ip_part.is_empty() {
        None
    } else {
        Some(
            parse_host_ip(ip_part).ok_or_else(|| PortError::InvalidHostIp {
                ip: ip_part.to_owned(),
                spec: spec.to_owned(),
            })?,
        )
    };

    let (container, protocol) = match container_part.split_once('/') {
        Some((port, "")) => (port, "tcp"),
        Some((port, protocol)) => (port, protocol),
        None => (container_part, "tcp"),
    };
    if container.is_empty() {
        return Err(PortError::NoPort {
            spec: spec.to_owned(),
        });
    }
    let (start, end) = parse_range(container).ok_or_else(|| PortError::InvalidContainerPort {
        port: container.to_owned(),
        spec: spec.to_owned(),
    })?;
    let host_range = if host_part.is_empty() {
        None
    } else {
        let range = parse_range(host_part).ok_or_else(|| PortError::InvalidHostPort {
            port: host_part.to_owned(),
            spec: spec.to_owned(),
        })?;
        if range.1 - range.0 != end - start && start != end {
            return Err(PortError::RangeMismatch {
                container: container.to_owned(),
                host: host_part.to_owned(),
                spec: spec.to_owned(),
            });
        }
        Some(range)
    };
    let protocol: Protocol = protocol.parse().map_err(|_| PortError::InvalidProtocol {
        protocol: protocol.to_owned(),
        spec: spec.to_owned(),
    })?;

    let mut configs: Vec<PortConfig> = (start..=end)
        .map(|target| {
            let published = host_range.map(|(host_start, host_end)| {
                if start == end && host_start != host_end {
                    PortRange {
                        start: host_start,
                        end: host_end,
                    }
                } else {
                    // Equal lengths: the offset stays inside the host range.
                    let port = host_start + (target - start);
                    PortRange {
                        start: port,
                        end: port,
                    }
                }
            });
            PortConfig {
                name: None,
                mode: default_mode(),
                host_ip,
                target,
                published,
                protocol,
                app_protocol: None,
            }
        })
        .collect();
    // compose-go sorts its "port/proto" keys as strings.
    configs.sort_by_cached_key(|config| config.target.to_string());
    Ok(configs)
}

/// The host IP, IPv6 in brackets, or `None` when it is not an address.
fn parse_host_ip(text: &str) -> Option<IpAddr> {
    match text.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?.parse::<IpAddr>().ok(),
        None => text.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// A long-syntax `host_ip`: an address, IPv6 with or without brackets.
fn deserialize_host_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{text:?} is not an IP address")))
}

/// A port number made of decimal digits only (leading zeros allowed).
fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `PORT` or `START-END` with `START <= END`.
fn parse_range(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        None => parse_port(text).map(|port| (port, port)),
        Some((start, end)) => {
            let (start, end) = (parse_port(start)?, parse_port(end)?);
            (start <= end).then_some((start, end))
        }
    }
}

fn deserialize_target<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    deserializer.deserialize_any(TargetVisitor)
}

struct TargetVisitor;

impl Visitor<'_> for TargetVisitor {
    type Value = u16;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u16, E> {
        u16::try_from(v).map_err(|_| E::custom(format!("invalid port {v}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u16, E> {
        u16::try_from(v).map_err(|_| E::custom(format!("invalid port {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u16, E> {
        parse_port(v).ok_or_else(|| E::custom(format!("invalid port {v:?}")))
    }
}

fn deserialize_published<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<PortRange>, D::Error> {
    match deserializer.deserialize_any(PublishedVisitor)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|e| {
            de::Error::custom(format!(
                "published port {text:?} is not a port or range ({e})"
            ))
        }),
    }
}

struct PublishedVisitor;

impl<'de> Visitor<'de> for PublishedVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port, a port range or null")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsupport::{Rng, chars, conformance_json};
    use serde_json::{Map, Value, json};

    /// The vector shape of one entry: `published` and `host_ip` are null when unset.
    fn as_vector(config: &PortConfig) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("target".into(), json!(config.target));
        map.insert("published".into(), json!(config.published));
        map.insert("host_ip".into(), json!(config.host_ip));
        map.insert("protocol".into(), json!(config.protocol));
        map.insert("mode".into(), json!(config.mode));
        map
    }

    /// Keeps only the keys of `expected` when the case is partial.
    fn project(got: &Map<String, Value>, expected: &Value, partial: bool) -> Value {
        if !partial {
            return Value::Object(got.clone());
        }
        let keys = expected.as_object().expect("expected entry is an object");
        Value::Object(
            got.iter()
                .filter(|(k, _)| keys.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// A text for sorting entries that does not depend on key order.
    fn canonical(value: &Value) -> String {
        let sorted: std::collections::BTreeMap<&String, String> = value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        format!("{sorted:?}")
    }

    #[test]
    fn port_vectors() {
        let data = conformance_json("ports.json");
        let cases = data["cases"].as_array().expect("cases");
        let mut failures = Vec::new();
        for case in cases {
            let name = case["name"].as_str().expect("name");
            let input = match &case["input"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{name}: unexpected input {other}"),
            };
            let result = parse_port_spec(&input);
            if case["error"].as_bool().expect("error flag") {
                match result {
                    Err(e) => eprintln!("{name}: {input:?} -> error as expected: {e}"),
                    Ok(got) => {
                        failures.push(format!("{name} {input:?}: expected an error, got {got:?}"))
                    }
                }
                continue;
            }
            let got = match result {
                Ok(got) => got,
                Err(e) => {
                    failures.push(format!("{name} {input:?}: unexpected error: {e}"));
                    continue;
                }
            };
            let partial = case["partial"].as_bool().expect("partial");
            let ordered = case["ordered"].as_bool().expect("ordered");
            let expected = case["expected"].as_array().expect("expected");
            if got.len() != expected.len() {
                failures.push(format!(
                    "{name} {input:?}: {} entries, want {}",
                    got.len(),
                    expected.len()
                ));
                continue;
            }
            let mut got_values: Vec<Value> = got
                .iter()
                .zip(expected)
                .map(|(g, e)| project(&as_vector(g), e, partial))
                .collect();
            let mut want_values: Vec<Value> = expected.clone();
            if !ordered {
                got_values.sort_by_key(canonical);
                want_values.sort_by_key(canonical);
            }
            if got_values != want_values {
                failures.push(format!(
                    "{name} {input:?}:\n  got  {got_values:?}\n  want {want_values:?}"
                ));
            }
        }
        eprintln!(
            "ports.json: {} cases run, {} passed",
            cases.len(),
            cases.len() - failures.len()
        );
        assert_eq!(cases.len(), 33, "case count changed");
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    fn one(spec: &str) -> PortConfig {
        let mut configs = parse_port_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(configs.len(), 1, "{spec}");
        configs.remove(0)
    }

    #[test]
    fn host_ips() {
        let v6 = one("[::1]:80:8080");
        assert_eq!(v6.host_ip.map(|i| i.to_string()).as_deref(), Some("::1"));
        assert_eq!(v6.published.map(|p| p.to_string()).as_deref(), Some("80"));
        assert_eq!(v6.target, 8080);
        let v6_full = one("[2001:db8::1]:53:53/udp");
        assert_eq!(
            v6_full.host_ip.map(|i| i.to_string()).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(v6_full.protocol.as_str(), "udp");
        let any_port = one("127.0.0.1::80");
        assert_eq!(
            any_port.host_ip.map(|i| i.to_string()).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(any_port.published, None);
        let v6_any = one("[::]::80");
        assert_eq!(v6_any.host_ip.map(|i| i.to_string()).as_deref(), Some("::"));
        assert_eq!(v6_any.published, None);

        let err = parse_port_spec("127.0.1:8080:80").expect_err("bad ip");
        assert_eq!(
            err.to_string(),
            r#"invalid host ip "127.0.1" in "127.0.1:8080:80""#
        );
        for bad in [
            "::1:80:80",
            "[::1:80:80",
            "[::1]x:80:80",
            "[]:80:80",
            "localhost:80:80",
        ] {
            assert!(
                matches!(parse_port_spec(bad), Err(PortError::InvalidHostIp { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn ranges_and_protocols() {
        assert_eq!(
            one("8000-8010:80")
                .published
                .map(|p| p.to_string())
                .as_deref(),
            Some("8000-8010")
        );
        assert_eq!(one("80/UDP").protocol.as_str(), "udp");
        assert_eq!(one("80/").protocol.as_str(), "tcp");
        assert_eq!(one("80/sctp").protocol.as_str(), "sctp");
        assert_eq!(
            one("0080:080").published.map(|p| p.to_string()).as_deref(),
            Some("80")
        );
        let sorted: Vec<u16> = parse_port_spec("9998-10000")
            .expect("range")
            .iter()
            .map(|c| c.target)
            .collect();
        assert_eq!(sorted, [10000, 9998, 9999]);
        let all = parse_port_spec("0-65535").expect("full range");
        assert_eq!(all.len(), 65536);
        let high = parse_port_spec("65534-65535:65534-65535").expect("top range");
        assert_eq!(
            high[1].published.map(|p| p.to_string()).as_deref(),
            Some("65535")
        );
    }

    #[test]
    fn error_messages() {
        let err = |s: &str| parse_port_spec(s).expect_err(s).to_string();
        assert_eq!(
            err("9999999"),
            r#"invalid container port 9999999 in "9999999""#
        );
        assert_eq!(err("80/xyz"), r#"invalid protocol "xyz" in "80/xyz""#);
        assert_eq!(err("80/udp/x"), r#"invalid protocol "udp/x" in "80/udp/x""#);
        assert_eq!(err("tcp"), r#"invalid container port tcp in "tcp""#);
        assert_eq!(err(""), r#"no port specified in """#);
        assert_eq!(err("8080:"), r#"no port specified in "8080:""#);
        assert_eq!(err("/udp"), r#"no port specified in "/udp""#);
        assert_eq!(err("x:80"), r#"invalid host port x in "x:80""#);
        assert_eq!(err("90-80"), r#"invalid container port 90-80 in "90-80""#);
        assert_eq!(err("+80"), r#"invalid container port +80 in "+80""#);
        assert_eq!(
            err("80-90-100"),
            r#"invalid container port 80-90-100 in "80-90-100""#
        );
        assert_eq!(
            err("80-81:8080-8082"),
            r#"invalid ranges specified for container and host ports: 8080-8082 and 80-81 in "80-81:8080-8082""#
        );
    }

    #[test]
    fn long_syntax_serde() {
        let config: PortConfig =
            serde_json::from_value(json!({"target": "80", "published": 8080})).expect("long");
        assert_eq!(config.mode, "ingress");
        assert_eq!(config.protocol.as_str(), "tcp");
        assert_eq!(config.target, 80);
        assert_eq!(
            config.published.map(|p| p.to_string()).as_deref(),
            Some("8080")
        );
        let null_published: PortConfig =
            serde_json::from_value(json!({"target": 80, "published": null})).expect("null");
        assert_eq!(null_published.published, None);
        assert!(serde_json::from_value::<PortConfig>(json!({"target": 70000})).is_err());
        assert!(serde_json::from_value::<PortConfig>(json!({"published": "80"})).is_err());

        let rendered = serde_json::to_string(&one("127.0.0.1:8001:8001/udp")).expect("ser");
        assert_eq!(
            rendered,
            r#"{"mode":"ingress","host_ip":"127.0.0.1","target":8001,"published":"8001","protocol":"udp"}"#
        );
        assert_eq!(
            serde_json::to_string(&one("3000")).expect("ser"),
            r#"{"mode":"ingress","target":3000,"protocol":"tcp"}"#
        );
    }

    #[test]
    fn parser_never_panics() {
        let alphabet = chars("0123456789:/-.[]${}\\abcdpstuxyzTCPUD \u{e9}\u{b5}");
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let spec = rng.text(&alphabet, 25);
            if let Ok(configs) = parse_port_spec(&spec) {
                assert!(!configs.is_empty(), "{spec:?}");
            }
        }
    }
}
