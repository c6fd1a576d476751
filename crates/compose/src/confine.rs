//! How a service's processes are confined natively: `ulimits`,
//! `security_opt: [no-new-privileges]`, `oom_score_adj`, `read_only`,
//! capabilities and the cgroup limits (memory, CPU, processes). Read from
//! the file as written (the keys stay in the service's `other` map for
//! `config` to print), checked at their lines.

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
    /// What the replica's cgroup allows it.
    pub limits: Limits,
}

/// The resource limits of each replica (each its own cgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Bytes of memory: `mem_limit` or `deploy.resources.limits.memory`.
    pub memory: Option<u64>,
    /// Memory and swap together: `memswap_limit`.
    pub memory_swap: Option<SwapLimit>,
    /// Thousandths of a CPU: `cpus` or `deploy.resources.limits.cpus`.
    pub cpu_millis: Option<u64>,
    /// Relative weight: `cpu_shares` (Docker's 2 to 262144, 1024 each by default).
    pub cpu_shares: Option<u64>,
    /// Processes and threads: `pids_limit` or `deploy.resources.limits.pids`.
    pub pids: Option<u64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != Limits::default()
    }

    /// Each limit that is set, as (the field that sets it, its value in words).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.memory {
            out.push(("memory", crate::units::human_bytes(m)));
        }
        if let Some(s) = self.memory_swap {
            out.push((
                "memswap_limit",
                match s {
                    SwapLimit::Unlimited => "unlimited".to_string(),
                    SwapLimit::Bytes(b) => crate::units::human_bytes(b),
                },
            ));
        }
        if let Some(c) = self.cpu_millis {
            out.push(("cpus", format!("{}", c as f64 / 1000.0)));
        }
        if let Some(c) = self.cpu_shares {
            out.push(("cpu_shares", c.to_string()));
        }
        if let Some(p) = self.pids {
            out.push(("pids_limit", p.to_string()));
        }
        out
    }
}

/// `memswap_limit`: memory and swap together, or `-1` for unlimited swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapLimit {
    Unlimited,
    Bytes(u64),
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
    out.limits = limits(node, &mut bad);
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

/// The cgroup limits, from the service's own keys and
/// `deploy.resources.limits`; a limit set both ways must agree (as in
/// `docker compose`).
fn limits(node: &Node, bad: &mut impl FnMut(&Node, String, String, &str)) -> Limits {
    let memory = either(
        node,
        ("mem_limit", "memory"),
        &|n| match size(n)? {
            Some(b) if b < MIN_MEMORY => Err(format!(
                "{} is below the 6 MiB a process needs to start",
                crate::units::human_bytes(b)
            )),
            Some(b) => Ok(b),
            None => Err("-1 is not a memory limit".to_string()),
        },
        "write a size such as 512m or 1g (6m at least)",
        bad,
    );
    let cpu_millis = either(
        node,
        ("cpus", "cpus"),
        &cpus,
        "write a number of CPUs such as 0.5 or 2",
        bad,
    );
    let pids = either(
        node,
        ("pids_limit", "pids"),
        &|n| {
            let text = n.scalar_string().unwrap_or_default();
            match text.trim().parse::<i64>() {
                // 0 and -1 are unlimited, as in Docker.
                Ok(-1..=0) => Ok(0),
                Ok(v) if v > 0 => Ok(v.unsigned_abs()),
                _ => Err(format!("{text:?} is not a number of processes")),
            }
        },
        "write a number of processes (-1: unlimited)",
        bad,
    )
    .filter(|p| *p > 0);
    Limits {
        memory,
        memory_swap: swap(node, memory, bad),
        cpu_millis,
        cpu_shares: shares(node, bad),
        pids,
    }
}

/// Docker's smallest memory limit, and about what a process needs to start.
const MIN_MEMORY: u64 = 6 << 20;

/// A limit written as the service's own key or under
/// `deploy.resources.limits` (`keys`: the two names), parsed by `parse`.
fn either(
    node: &Node,
    (own, nested): (&str, &str),
    parse: &dyn Fn(&Node) -> Result<u64, String>,
    help: &str,
    bad: &mut impl FnMut(&Node, String, String, &str),
) -> Option<u64> {
    let deploy = node
        .get("deploy")
        .and_then(|d| d.get("resources"))
        .and_then(|r| r.get("limits"));
    let a = node.get(own).map(|n| (n, own.to_string()));
    let b = deploy
        .and_then(|d| d.get(nested))
        .map(|n| (n, format!("deploy.resources.limits.{nested}")));
    let mut values = Vec::new();
    for (n, path) in a.into_iter().chain(b) {
        match parse(n) {
            Ok(v) => values.push((n, path, v)),
            Err(message) => bad(n, path, message, help),
        }
    }
    match values.as_slice() {
        [(_, _, x), (n, path, y)] if x != y => {
            let text = |n: &Node| n.scalar_string().unwrap_or_default();
            bad(
                n,
                path.clone(),
                format!("{} differs from {own}: {}", text(n), text(values[0].0)),
                &format!("set the limit once, with {own} or {path}"),
            );
            None
        }
        [(_, _, v), ..] => Some(*v),
        [] => None,
    }
}

/// `cpu_shares`: Docker's relative weight.
fn shares(node: &Node, bad: &mut impl FnMut(&Node, String, String, &str)) -> Option<u64> {
    let n = node.get("cpu_shares")?;
    let text = n.scalar_string().unwrap_or_default();
    match text.trim().parse::<u64>() {
        Ok(v) if (2..=262_144).contains(&v) => Some(v),
        _ => {
            bad(
                n,
                "cpu_shares".into(),
                format!("{text:?} is not a CPU weight from 2 to 262144"),
                "write a relative weight; 1024 is every service's default",
            );
            None
        }
    }
}

/// `memswap_limit`: memory and swap together, at least the memory limit.
fn swap(
    node: &Node,
    memory: Option<u64>,
    bad: &mut impl FnMut(&Node, String, String, &str),
) -> Option<SwapLimit> {
    let n = node.get("memswap_limit")?;
    match size(n) {
        Ok(None) => Some(SwapLimit::Unlimited),
        Ok(Some(b)) if memory.is_some_and(|m| b < m) => {
            bad(
                n,
                "memswap_limit".into(),
                format!(
                    "{} is below mem_limit; it counts memory and swap together",
                    n.scalar_string().unwrap_or_default()
                ),
                "write a size at least the memory limit, or -1 for unlimited swap",
            );
            None
        }
        Ok(Some(b)) => Some(SwapLimit::Bytes(b)),
        Err(message) => {
            bad(
                n,
                "memswap_limit".into(),
                message,
                "write a size such as 1g, or -1 for unlimited swap",
            );
            None
        }
    }
}

/// A size (`512m`, `1073741824`); `None` for `-1`.
fn size(node: &Node) -> Result<Option<u64>, String> {
    let text = node.scalar_string().unwrap_or_default();
    if text.trim() == "-1" {
        return Ok(None);
    }
    match crate::units::ByteSize::parse(text.trim()) {
        Ok(b) if b.bytes() > 0 => Ok(Some(b.bytes())),
        Ok(_) => Err("0 is not a limit".into()),
        Err(_) => Err(format!("{text:?} is not a size")),
    }
}

/// `cpus` as thousandths of a CPU: `0.5` is 500.
fn cpus(node: &Node) -> Result<u64, String> {
    let text = node.scalar_string().unwrap_or_default();
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 4096.0 => {
            let millis = (v * 1000.0).round();
            if millis < 1.0 {
                Err(format!("{text} is less than a thousandth of a CPU"))
            } else {
                Ok(millis as u64)
            }
        }
        _ => Err(format!("{text:?} is not a number of CPUs")),
    }
}
