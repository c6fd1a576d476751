//! Service volume mounts: the short syntax and the long-form types.
//!
//! A short volume spec is `[SOURCE:]TARGET[:MODES]`. [`parse_volume_spec`]
//! follows compose-go `format.ParseVolume`:
//!
//! - sections are separated by `:`, except the `:` of a Windows drive
//!   (`C:\data`, `d:`: one letter then `:`) and any `:` inside `${...}`
//!   (the spec is parsed before interpolation; `${` nests);
//! - a spec of one or two bytes is an anonymous volume with that target and
//!   no `volume` options object (compose-go's shortcut for `.` and `/a`);
//! - with a single section it is an anonymous volume (`volume: {}`);
//! - a source starting with `.`, `/`, `~`, `\\` (a Windows named pipe) or a
//!   drive letter is a bind mount with `create_host_path` set; any other
//!   source names a volume (`volume: {}`);
//! - modes are a comma-separated list: `ro`, `rw`, `nocopy`, the bind
//!   propagations `rprivate`, `private`, `rshared`, `shared`, `rslave`,
//!   `slave`, and the SELinux labels `z`, `Z`; unknown modes are ignored.
//!
//! The long-form types serialize like compose-go renders them in
//! `docker compose config` (see [`BindOptions`] for `bind: {}`).
//! compose-go's loader additionally cleans the target path (`path.Clean`)
//! after parsing a short spec; [`parse_volume_spec`] leaves it as written.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::units::ByteSize;

/// The kind of a service mount (`type` in the long syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// A host path (`bind`).
    Bind,
    /// A named or anonymous volume (`volume`).
    Volume,
    /// A tmpfs mount (`tmpfs`).
    Tmpfs,
    /// A Windows named pipe (`npipe`).
    Npipe,
    /// A cluster (CSI) volume (`cluster`).
    Cluster,
    /// The content of an image (`image`).
    Image,
}

impl VolumeKind {
    /// The name used in Compose files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Volume => "volume",
            Self::Tmpfs => "tmpfs",
            Self::Npipe => "npipe",
            Self::Cluster => "cluster",
            Self::Image => "image",
        }
    }
}

impl fmt::Display for VolumeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mount of a service, in long form.
///
/// Field order is the serialization order (compose-go's). `x-*` extension
/// keys are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceVolumeConfig {
    /// The mount type.
    #[serde(rename = "type")]
    pub kind: VolumeKind,
    /// Host path, volume name or image; `None` for anonymous volumes and tmpfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The path in the container.
    pub target: String,
    /// Mount read-only.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "lenient_bool"
    )]
    pub read_only: bool,
    /// Platform-specific consistency (`cached`, `delegated`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind mount options; see [`BindOptions`] for what `bind: {}` means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options; `Some` with all defaults renders as `volume: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// Tmpfs options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Image mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageOptions>,
}

/// Options of a bind mount (`bind:` in the long syntax).
///
/// `create_host_path` is a plain `bool` that defaults to `true` and is
/// omitted from the output when `true`, exactly as compose-go's `OptOut`
/// type: `bind: {}` reads as `create_host_path: true` and is how a bind with
/// `create_host_path: true` and no other option is rendered, while `false`
/// is always written out (`create_host_path: false`). A mount without a
/// `bind:` key has `bind: None`; the short syntax sets
/// `Some(BindOptions { create_host_path: true, .. })` for bind mounts.
/// [`Default`] gives `create_host_path: true`, the value of a present but
/// empty `bind:` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindOptions {
    /// SELinux relabeling: `z` (shared) or `Z` (private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Mount propagation: `rprivate`, `private`, `rshared`, `shared`, `rslave`, `slave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path when missing; `true` unless set to `false`.
    #[serde(
        default = "default_true",
        skip_serializing_if = "is_true",
        deserialize_with = "lenient_bool"
    )]
    pub create_host_path: bool,
    /// Recursive mount behavior: `enabled`, `disabled`, `writable`, `readonly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
}

impl Default for BindOptions {
    fn default() -> Self {
        Self {
            selinux: None,
            propagation: None,
            create_host_path: true,
            recursive: None,
        }
    }
}

/// Options of a volume mount (`volume:` in the long syntax).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VolumeOptions {
    /// Labels to set on the volume (a mapping or a list of `KEY=VALUE`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "labels"
    )]
    pub labels: BTreeMap<String, String>,
    /// Do not copy the image's content at the target into a new volume.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        deserialize_with = "lenient_bool"
    )]
    pub nocopy: bool,
    /// Mount this path inside the volume instead of its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// Options of a tmpfs mount (`tmpfs:` in the long syntax).
///
/// Like compose-go, a zero `size` or `mode` is treated as unset and not
/// written out, and `mode` is written as a decimal integer (compose-go's
/// `uint32`): `mode: 0o1777` in a file reads as 1023 and prints `1023`. A
/// string `mode` is read as octal (`"1777"` -> 1023).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TmpfsOptions {
    /// The size of the tmpfs.
    #[serde(default, skip_serializing_if = "size_unset")]
    pub size: Option<ByteSize>,
    /// The file mode of the tmpfs root.
    #[serde(
        default,
        skip_serializing_if = "mode_unset",
        deserialize_with = "tmpfs_mode"
    )]
    pub mode: Option<u32>,
}

/// Options of an image mount (`image:` in the long syntax).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageOptions {
    /// Mount this path inside the image instead of its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A short volume spec that cannot be parsed. Messages are compose-go's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// The spec is the empty string.
    #[error("invalid empty volume spec")]
    Empty,
    /// Two separators in a row, or a separator at either end (`:foo`, `/foo::ro`).
    #[error("invalid spec: {spec}: empty section between colons")]
    EmptySection {
        /// The whole spec.
        spec: String,
    },
    /// More than three sections (`/foo:/foo:ro:foo`).
    #[error("invalid spec: {spec}: too many colons")]
    TooManyColons {
        /// The whole spec.
        spec: String,
    },
}

/// Parses a short-syntax service volume (`SOURCE:TARGET:MODES`).
///
/// See the module documentation for the rules. A `${...}` that is still
/// open at the end of the spec ends the last section (compose-go drops that
/// section instead).
///
/// # Errors
///
/// [`VolumeError::Empty`] for `""`, [`VolumeError::EmptySection`] when a
/// section is empty, [`VolumeError::TooManyColons`] after three sections.
pub fn parse_volume_spec(spec: &str) -> Result<ServiceVolumeConfig, VolumeError> {
    match spec.len() {
        0 => return Err(VolumeError::Empty),
        1 | 2 => {
            return Ok(ServiceVolumeConfig {
                kind: VolumeKind::Volume,
                source: None,
                target: spec.to_owned(),
                read_only: false,
                consistency: None,
                bind: None,
                volume: None,
                tmpfs: None,
                image: None,
            });
        }
        _ => {}
    }

    let mut sections = Sections::default();
    let mut buffer = String::new();
    let mut depth = 0usize;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'{') {
            depth += 1;
        } else if c == '}' && depth > 0 {
            depth -= 1;
        } else if c == ':' && !is_drive_letter(&buffer) && depth == 0 {
            sections.push(std::mem::take(&mut buffer), false, spec)?;
            continue;
        }
        buffer.push(c);
    }
    sections.push(buffer, true, spec)?;
    Ok(sections.finish())
}

/// The sections of a short spec gathered so far.
#[derive(Default)]
struct Sections {
    source: Option<String>,
    target: Option<String>,
    read_only: bool,
    bind: Option<BindOptions>,
    volume: Option<VolumeOptions>,
}

impl Sections {
    /// Stores one section; `last` is true for the section ending the spec.
    fn push(&mut self, section: String, last: bool, spec: &str) -> Result<(), VolumeError> {
        if section.is_empty() {
            return Err(VolumeError::EmptySection {
                spec: spec.to_owned(),
            });
        }
        if self.source.is_none() {
            if last {
                self.target = Some(section);
            } else {
                self.source = Some(section);
            }
        } else if self.target.is_none() {
            self.target = Some(section);
        } else if !last {
            return Err(VolumeError::TooManyColons {
                spec: spec.to_owned(),
            });
        } else {
            for option in section.split(',') {
                self.apply_option(option);
            }
        }
        Ok(())
    }

    fn apply_option(&mut self, option: &str) {
        match option {
            "ro" => self.read_only = true,
            "rw" => self.read_only = false,
            "nocopy" => {
                self.volume = Some(VolumeOptions {
                    nocopy: true,
                    ..VolumeOptions::default()
                });
            }
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                self.bind_options().propagation = Some(option.to_owned());
            }
            "z" | "Z" => self.bind_options().selinux = Some(option.to_owned()),
            _ => {}
        }
    }

    /// The bind options, created on first use. A bind option seen on a named
    /// volume leaves `create_host_path` false, as compose-go does (it only
    /// turns it on for bind mounts, in [`Self::finish`]).
    fn bind_options(&mut self) -> &mut BindOptions {
        self.bind.get_or_insert(BindOptions {
            create_host_path: false,
            ..BindOptions::default()
        })
    }

    fn finish(self) -> ServiceVolumeConfig {
        let Self {
            source,
            target,
            read_only,
            mut bind,
            mut volume,
        } = self;
        let kind = if source.as_deref().is_some_and(is_file_path) {
            bind.get_or_insert_with(BindOptions::default)
                .create_host_path = true;
            VolumeKind::Bind
        } else {
            volume.get_or_insert_with(VolumeOptions::default);
            VolumeKind::Volume
        };
        ServiceVolumeConfig {
            kind,
            source,
            target: target.unwrap_or_default(),
            read_only,
            consistency: None,
            bind,
            volume,
            tmpfs: None,
            image: None,
        }
    }
}

/// Whether `buffer` is a single letter, so a following `:` belongs to a drive.
fn is_drive_letter(buffer: &str) -> bool {
    let mut chars = buffer.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
}

/// Whether a source names a host path rather than a volume.
fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) || source.starts_with("\\\\") {
        return true;
    }
    let mut chars = source.chars();
    matches!((chars.next(), chars.next()), (Some(c), Some(':')) if c.is_alphabetic())
}

impl fmt::Display for ServiceVolumeConfig {
    /// The short form `SOURCE:TARGET:MODES`, as compose-go's `String()`:
    /// the access mode (`rw`/`ro`) comes first, then the SELinux label, the
    /// propagation and `nocopy`. An absent source is written as empty
    /// (`:/data:rw`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut options = vec![if self.read_only { "ro" } else { "rw" }];
        if let Some(bind) = &self.bind {
            options.extend(bind.selinux.as_deref().filter(|s| !s.is_empty()));
            options.extend(bind.propagation.as_deref().filter(|s| !s.is_empty()));
        }
        if self.volume.as_ref().is_some_and(|v| v.nocopy) {
            options.push("nocopy");
        }
        write!(
            f,
            "{}:{}:{}",
            self.source.as_deref().unwrap_or(""),
            self.target,
            options.join(",")
        )
    }
}

// ---------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn size_unset(size: &Option<ByteSize>) -> bool {
    size.is_none_or(|s| s.0 == 0)
}

fn mode_unset(mode: &Option<u32>) -> bool {
    mode.is_none_or(|m| m == 0)
}

/// A boolean, also as a string: `true`/`false`, and with a warning-free
/// acceptance of the YAML 1.1 words `y`, `yes`, `on`, `n`, `no`, `off`
/// (case-insensitive), as compose-go's `toBoolean` cast.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "y" | "yes" | "on" => Ok(true),
            "false" | "n" | "no" | "off" => Ok(false),
            _ => Err(D::Error::custom(format!("invalid boolean: {s}"))),
        },
        other => Err(D::Error::custom(format!("invalid boolean: {other}"))),
    }
}

/// Labels as a mapping (scalar values turned into strings, null into `""`)
/// or as a list of `KEY=VALUE` / `KEY` strings.
fn labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error;
    use serde_json::Value;
    let scalar = |value: Value| match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok(String::new()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(D::Error::custom(format!("invalid label value: {other}"))),
    };
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(map) => map.into_iter().map(|(k, v)| Ok((k, scalar(v)?))).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let text = scalar(item)?;
                Ok(match text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (text, String::new()),
                })
            })
            .collect(),
        other => Err(D::Error::custom(format!("invalid labels: {other}"))),
    }
}

/// A tmpfs mode: an integer as is, or a string of octal digits.
fn tmpfs_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    use serde_json::Value;
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid tmpfs mode: {n}"))),
        Value::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(&s);
            u32::from_str_radix(digits, 8)
                .ok()
                .filter(|_| !digits.starts_with('+'))
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("invalid tmpfs mode: {s:?}")))
        }
        other => Err(D::Error::custom(format!("invalid tmpfs mode: {other}"))),
    }
}

/// The environment variable that carries a mount's host path to a
/// service (natively, and in the Kubernetes export alike):
/// `/var/lib/data` -> `BERTH_VOLUME_VAR_LIB_DATA`.
pub fn volume_var(target: &str) -> String {
    format!("BERTH_VOLUME_{}", target_word(target))
}

/// A mount target as one upper-case word: `/var/lib/data` -> `VAR_LIB_DATA`.
pub fn target_word(target: &str) -> String {
    let mut out = String::new();
    for c in target.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_uppercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn volume_variables_are_named_after_the_target() {
        assert_eq!(
            super::volume_var("/var/lib/postgresql/data"),
            "BERTH_VOLUME_VAR_LIB_POSTGRESQL_DATA"
        );
        assert_eq!(super::volume_var("/data"), "BERTH_VOLUME_DATA");
        assert_eq!(
            super::volume_var("/app/node-modules/"),
            "BERTH_VOLUME_APP_NODE_MODULES"
        );
    }

    use super::*;
    use crate::testsupport::{Rng, chars, conformance_json};
    use serde_json::{Map, Value, json};

    /// The vector shape: `source` omitted when empty, `read_only` always,
    /// `bind` with `create_host_path` only when true, `volume` with `nocopy`
    /// only when true.
    fn as_vector(volume: &ServiceVolumeConfig) -> Value {
        let mut map = Map::new();
        map.insert("type".into(), json!(volume.kind.as_str()));
        if let Some(source) = volume.source.as_deref().filter(|s| !s.is_empty()) {
            map.insert("source".into(), json!(source));
        }
        map.insert("target".into(), json!(volume.target));
        map.insert("read_only".into(), json!(volume.read_only));
        if let Some(bind) = &volume.bind {
            let mut b = Map::new();
            if bind.create_host_path {
                b.insert("create_host_path".into(), json!(true));
            }
            if let Some(p) = &bind.propagation {
                b.insert("propagation".into(), json!(p));
            }
            if let Some(s) = &bind.selinux {
                b.insert("selinux".into(), json!(s));
            }
            map.insert("bind".into(), Value::Object(b));
        }
        if let Some(v) = &volume.volume {
            let mut o = Map::new();
            if v.nocopy {
                o.insert("nocopy".into(), json!(true));
            }
            map.insert("volume".into(), Value::Object(o));
        }
        Value::Object(map)
    }

    #[test]
    fn parse_vectors() {
        let data = conformance_json("volumes.json");
        let cases = data["parse_cases"].as_array().expect("parse_cases");
        let mut failures = Vec::new();
        for case in cases {
            let name = case["name"].as_str().expect("name");
            let input = case["input"].as_str().expect("input");
            let result = parse_volume_spec(input);
            if case["error"].as_bool().expect("error flag") {
                match result {
                    Ok(got) => {
                        failures.push(format!("{name} {input:?}: expected an error, got {got:?}"))
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let want = case["error_contains"].as_str().unwrap_or("");
                        let exact = case["error_exact"].as_bool().unwrap_or(false);
                        let ok = if exact {
                            message == want
                        } else {
                            message.contains(want)
                        };
                        if !ok {
                            failures.push(format!(
                                "{name} {input:?}: error {message:?}, want {want:?}"
                            ));
                        }
                    }
                }
                continue;
            }
            match (result, &case["expected"]) {
                (Err(e), _) => failures.push(format!("{name} {input:?}: unexpected error: {e}")),
                (Ok(_), Value::Null) => {}
                (Ok(got), expected) => {
                    let got = as_vector(&got);
                    if &got != expected {
                        failures.push(format!(
                            "{name} {input:?}:\n  got  {got}\n  want {expected}"
                        ));
                    }
                }
            }
        }
        eprintln!(
            "volumes.json parse_cases: {} cases run, {} passed",
            cases.len(),
            cases.len() - failures.len()
        );
        assert_eq!(cases.len(), 50, "case count changed");
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    #[test]
    fn source_presence_vectors() {
        let data = conformance_json("volumes.json");
        let cases = data["source_presence_cases"].as_array().expect("cases");
        let mut failures = Vec::new();
        for case in cases {
            let input = case["input"].as_str().expect("input");
            let want = case["has_source"].as_bool().expect("has_source");
            let result = parse_volume_spec(input);
            let has = result
                .as_ref()
                .is_ok_and(|v| v.source.as_deref().is_some_and(|s| !s.is_empty()));
            if has != want {
                failures.push(format!(
                    "{input:?}: has_source {has}, want {want} ({result:?})"
                ));
            }
        }
        eprintln!(
            "volumes.json source_presence_cases: {} cases run, {} passed",
            cases.len(),
            cases.len() - failures.len()
        );
        assert_eq!(cases.len(), 29, "case count changed");
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    #[test]
    fn to_string_vectors() {
        let data = conformance_json("volumes.json");
        let cases = data["to_string_cases"].as_array().expect("cases");
        let mut failures = Vec::new();
        for case in cases {
            let volume: ServiceVolumeConfig =
                serde_json::from_value(case["input"].clone()).expect("long syntax");
            let want = case["expected"].as_str().expect("expected");
            let got = volume.to_string();
            if got != want {
                failures.push(format!("{}: got {got:?}, want {want:?}", case["input"]));
            }
            // The short form reads back to the same mount.
            let back = parse_volume_spec(&got).expect("reparse");
            if back != volume {
                failures.push(format!("{got:?} reads back as {back:?}"));
            }
        }
        eprintln!(
            "volumes.json to_string_cases: {} cases run, {} passed",
            cases.len(),
            cases.len() - failures.len()
        );
        assert_eq!(cases.len(), 1, "case count changed");
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    }

    fn parse(spec: &str) -> ServiceVolumeConfig {
        parse_volume_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn short_syntax_details() {
        // nocopy on a bind keeps both option objects, as compose-go.
        let both = parse("/src:/dst:nocopy");
        assert_eq!(both.kind, VolumeKind::Bind);
        assert!(both.volume.as_ref().is_some_and(|v| v.nocopy));
        assert!(both.bind.as_ref().is_some_and(|b| b.create_host_path));
        // A bind option on a named volume: create_host_path stays false.
        let named = parse("data:/dst:z");
        assert_eq!(named.kind, VolumeKind::Volume);
        assert_eq!(
            named.bind,
            Some(BindOptions {
                selinux: Some("z".into()),
                create_host_path: false,
                ..BindOptions::default()
            })
        );
        assert_eq!(named.volume, Some(VolumeOptions::default()));
        // rw after ro wins; unknown and empty options are ignored.
        assert!(!parse("/a:/b:ro,rw").read_only);
        assert!(parse("/a:/b:,ro,,bogus").read_only);
        // Named pipes and drives.
        assert_eq!(parse("\\\\.\\pipe\\x:/p").kind, VolumeKind::Bind);
        assert_eq!(parse("c:/data:/data").kind, VolumeKind::Bind);
        // Nested ${...} and an escaped $$ are opaque.
        let nested = parse("/a:/b/${X:-${Y:-1:2}}:ro");
        assert_eq!(nested.target, "/b/${X:-${Y:-1:2}}");
        assert!(nested.read_only);
        assert_eq!(parse("$${A:b}:/c").source.as_deref(), Some("$${A:b}"));
        // An unterminated ${ runs to the end of the spec.
        let open = parse("/tmp:/x/${A:b");
        assert_eq!(open.source.as_deref(), Some("/tmp"));
        assert_eq!(open.target, "/x/${A:b");
        // Two-byte specs, including one multi-byte character.
        assert_eq!(parse("\u{e9}").target, "\u{e9}");
        assert_eq!(parse("\u{e9}").volume, None);
        assert_eq!(parse("a:").target, "a:");
        assert_eq!(parse("abc").volume, Some(VolumeOptions::default()));
    }

    #[test]
    fn error_messages() {
        let err = |s: &str| parse_volume_spec(s).expect_err(s).to_string();
        assert_eq!(err(""), "invalid empty volume spec");
        assert_eq!(
            err(":foo"),
            "invalid spec: :foo: empty section between colons"
        );
        assert_eq!(
            err("/a:/b:"),
            "invalid spec: /a:/b:: empty section between colons"
        );
        assert_eq!(
            err("/a:/b:ro:x"),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
    }

    #[test]
    fn display() {
        assert_eq!(parse("./foo:/target:ro").to_string(), "./foo:/target:ro");
        assert_eq!(parse("vol:/data:nocopy").to_string(), "vol:/data:rw,nocopy");
        assert_eq!(parse("/data").to_string(), ":/data:rw");
    }

    #[test]
    fn long_form_serde_matches_compose_go() {
        let render = |v: &ServiceVolumeConfig| serde_json::to_value(v).expect("ser");
        assert_eq!(
            render(&parse("/opt/data:/var/lib/data")),
            json!({"type": "bind", "source": "/opt/data", "target": "/var/lib/data", "bind": {}})
        );
        assert_eq!(
            render(&parse("/var/lib/anonymous")),
            json!({"type": "volume", "target": "/var/lib/anonymous", "volume": {}})
        );
        assert_eq!(
            render(&parse("~/configs:/etc/configs:ro")),
            json!({"type": "bind", "source": "~/configs", "target": "/etc/configs",
                   "read_only": true, "bind": {}})
        );

        // bind: {} reads as create_host_path true; false is written out.
        let empty_bind: ServiceVolumeConfig = serde_json::from_value(
            json!({"type": "bind", "source": "./a", "target": "/a", "bind": {}}),
        )
        .expect("bind {}");
        assert_eq!(empty_bind.bind, Some(BindOptions::default()));
        assert!(empty_bind.bind.as_ref().is_some_and(|b| b.create_host_path));
        let no_create: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "bind", "source": "./a", "target": "/a",
            "bind": {"create_host_path": "false", "propagation": "rslave"}
        }))
        .expect("create_host_path false");
        assert_eq!(
            render(&no_create)["bind"],
            json!({"propagation": "rslave", "create_host_path": false})
        );
        let no_bind: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "bind", "source": "./opt", "target": "/opt/cached", "consistency": "cached"
        }))
        .expect("no bind key");
        assert_eq!(no_bind.bind, None);
        assert_eq!(
            render(&no_bind),
            json!({"type": "bind", "source": "./opt", "target": "/opt/cached", "consistency": "cached"})
        );

        // tmpfs size as compose-go renders it; zero values are omitted.
        let tmpfs: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "tmpfs", "target": "/opt/tmpfs", "tmpfs": {"size": 10000, "mode": "1777"}
        }))
        .expect("tmpfs");
        assert_eq!(
            render(&tmpfs),
            json!({"type": "tmpfs", "target": "/opt/tmpfs", "tmpfs": {"size": "10000", "mode": 1023}})
        );
        let zero: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "tmpfs", "target": "/t", "tmpfs": {"size": "0", "mode": 0}
        }))
        .expect("zero tmpfs");
        assert_eq!(
            render(&zero),
            json!({"type": "tmpfs", "target": "/t", "tmpfs": {}})
        );
        let kb: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "tmpfs", "target": "/t", "tmpfs": {"size": "1kb"}
        }))
        .expect("1kb");
        assert_eq!(kb.tmpfs.and_then(|t| t.size), Some(ByteSize(1024)));

        // Volume options: labels as a list or a mapping, lenient nocopy.
        let labelled: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "volume", "source": "v", "target": "/v", "read_only": "yes",
            "volume": {"labels": ["a=1", "b"], "nocopy": "true", "subpath": "sub"}
        }))
        .expect("labels");
        assert!(labelled.read_only);
        assert_eq!(
            render(&labelled)["volume"],
            json!({"labels": {"a": "1", "b": ""}, "nocopy": true, "subpath": "sub"})
        );
        let mapped: VolumeOptions =
            serde_json::from_value(json!({"labels": {"n": 1, "t": true}})).expect("map labels");
        assert_eq!(mapped.labels.get("n").map(String::as_str), Some("1"));
        assert_eq!(mapped.labels.get("t").map(String::as_str), Some("true"));

        let image: ServiceVolumeConfig = serde_json::from_value(json!({
            "type": "image", "source": "alpine", "target": "/i", "image": {"subpath": "etc"}
        }))
        .expect("image");
        assert_eq!(image.kind, VolumeKind::Image);
        assert_eq!(render(&image)["image"], json!({"subpath": "etc"}));

        for bad in [
            json!({"type": "bogus", "target": "/x"}),
            json!({"type": "bind", "source": "/x"}),
            json!({"type": "bind", "target": "/x", "read_only": "maybe"}),
            json!({"type": "tmpfs", "target": "/x", "tmpfs": {"mode": "9"}}),
            json!({"type": "tmpfs", "target": "/x", "tmpfs": {"size": "-1"}}),
        ] {
            assert!(
                serde_json::from_value::<ServiceVolumeConfig>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn parser_never_panics() {
        let alphabet = chars("0123456789:/-.[]${}\\abcdzZroCw,~ \u{e9}\u{b5}\u{1F600}");
        let mut rng = Rng::new(0xd1b5_4a32_d192_ed03);
        for _ in 0..5000 {
            let spec = rng.text(&alphabet, 25);
            if let Ok(volume) = parse_volume_spec(&spec) {
                assert!(!volume.target.is_empty(), "{spec:?}");
                let _ = volume.to_string();
            }
        }
    }
}
