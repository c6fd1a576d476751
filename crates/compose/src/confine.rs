//! How a service's processes are confined, as far as the native runtime
//! applies it today: `ulimits`, `security_opt: [no-new-privileges]` and
//! `oom_score_adj`. Read from the file as written (the keys stay in the
//! service's `other` map for `config` to print), checked at their lines.

use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::yaml::{Node, Value};

/// The resource limits `ulimits` may name, as Docker accepts them.
pub const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Linux capabilities by number, without `CAP_`.
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Every capability's bit.
pub const ALL_CAPABILITIES: u64 = (1 << CAPABILITIES.len()) - 1;

/// A capability's number: `NET_ADMIN`, `CAP_NET_ADMIN`, any case.
pub fn capability(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .and_then(|i| u32::try_from(i).ok())
}

/// One `ulimits` entry; `None` is unlimited (`-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// One of [`ULIMITS`].
    pub name: &'static str,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// What the native runtime applies to every process of a service (its
/// replicas and its health checks) before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Confinement {
    pub ulimits: Vec<Ulimit>,
    /// `security_opt: [no-new-privileges]` (or `:true`).
    pub no_new_privileges: bool,
    /// -1000 to 1000.
    pub oom_score_adj: Option<i32>,
    /// `read_only: true`: nothing but the service's volumes (and `/dev`)
    /// is writable.
    pub read_only: bool,
    /// The capabilities the processes keep (`cap_drop`, then `cap_add`,
    /// from berth's own), as a bit set; `None`: neither is set.
    pub capabilities: Option<u64>,
}

/// Reads the confinement of service `name` from its node, reporting every
/// bad value at its line.
pub(crate) fn read(ctx: &mut Ctx<'_>, name: &str, node: &Node) -> Confinement {
    let mut out = Confinement::default();
    let mut bad = |at: &Node, path: String, message: String, help: &str| {
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::InvalidValue,
                at.span,
                format!("services.{name}.{path}: {message}"),
            )
            .with_help(help.to_string()),
        );
    };
    if let Some(map) = node.get("ulimits").and_then(Node::as_map) {
        for (key, entry) in map {
            let Some(known) = ULIMITS.iter().find(|u| **u == key.as_str()) else {
                bad(
                    &entry.value,
                    format!("ulimits.{key}"),
                    format!("{key:?} is not a resource limit"),
                    "use core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending or stack",
                );
                continue;
            };
            match ulimit(&entry.value) {
                Ok((soft, hard)) => out.ulimits.push(Ulimit {
                    name: known,
                    soft,
                    hard,
                }),
                Err(message) => bad(
                    &entry.value,
                    format!("ulimits.{key}"),
                    message,
                    "write a number (-1: unlimited) or {soft: N, hard: M} with soft <= hard",
                ),
            }
        }
    }
    if let Some(opts) = node.get("security_opt").and_then(Node::as_seq) {
        for opt in opts {
            match opt.scalar_string().as_deref() {
                Some("no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true") => {
                    out.no_new_privileges = true;
                }
                Some("no-new-privileges:false" | "no-new-privileges=false") => {
                    out.no_new_privileges = false;
                }
                _ => {}
            }
        }
    }
    out.capabilities = capabilities(node, &mut bad);
    out.read_only = node
        .get("read_only")
        .is_some_and(|n| matches!(n.value, Value::Bool(true)));
    if let Some(adj) = node.get("oom_score_adj") {
        match adj
            .scalar_string()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            Some(n) if (-1000..=1000).contains(&n) => out.oom_score_adj = Some(n),
            _ => bad(
                adj,
                "oom_score_adj".to_string(),
                "is not a number from -1000 to 1000".to_string(),
                "write a number from -1000 (never killed) to 1000 (killed first)",
            ),
        }
    }
    out
}

/// `cap_drop` then `cap_add` as the set of capabilities kept.
fn capabilities(node: &Node, bad: &mut impl FnMut(&Node, String, String, &str)) -> Option<u64> {
    let mut set = |key: &str| -> Option<u64> {
        let items = node.get(key)?.as_seq()?;
        let mut bits = 0u64;
        for (i, item) in items.iter().enumerate() {
            let name = item.scalar_string().unwrap_or_default();
            if name.eq_ignore_ascii_case("ALL") {
                bits = ALL_CAPABILITIES;
            } else if let Some(n) = capability(&name) {
                bits |= 1 << n;
            } else {
                bad(
                    item,
                    format!("{key}[{i}]"),
                    format!("{name:?} is not a Linux capability"),
                    "write a capability such as NET_BIND_SERVICE or CAP_CHOWN, or ALL",
                );
            }
        }
        Some(bits)
    };
    let (drop, add) = (set("cap_drop"), set("cap_add"));
    if drop.is_none() && add.is_none() {
        return None;
    }
    Some((ALL_CAPABILITIES & !drop.unwrap_or(0)) | add.unwrap_or(0))
}

/// A limit: a number for both, or `{soft, hard}`; -1 is unlimited.
fn ulimit(node: &Node) -> Result<(Option<u64>, Option<u64>), String> {
    let number = |n: &Node| -> Result<Option<u64>, String> {
        let text = n.scalar_string().unwrap_or_default();
        match text.trim().parse::<i64>() {
            Ok(-1) => Ok(None),
            Ok(v) if v >= 0 => Ok(Some(v.unsigned_abs())),
            _ => Err(format!("{text:?} is not a limit")),
        }
    };
    let (soft, hard) = match &node.value {
        Value::Map(_) => {
            let soft = node.get("soft").map(number).transpose()?.flatten();
            let hard = node.get("hard").map(number).transpose()?.flatten();
            (soft, hard)
        }
        _ => {
            let v = number(node)?;
            (v, v)
        }
    };
    match (soft, hard) {
        (Some(s), Some(h)) if s > h => Err(format!("soft limit {s} is above the hard limit {h}")),
        (None, Some(h)) => Err(format!(
            "an unlimited soft limit is above the hard limit {h}"
        )),
        _ => Ok((soft, hard)),
    }
}
