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
