//! Typed service fields checked as written, before binding: every bad
//! value of a service is reported at its line with how to write it, not
//! only the first one serde would stop at.

use std::str::FromStr;

use crate::context::Ctx;
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::model::{Expose, Invalid, LogRotation, RestartPolicy, Signal};
use crate::yaml::Node;

/// Reports every unparsable typed value of service `name`; true when all parse.
pub(crate) fn check(ctx: &mut Ctx<'_>, name: &str, node: &Node) -> bool {
    let mut ok = true;
    let mut report = |at: &Node, path: &str, e: Invalid| {
        ok = false;
        ctx.sink.push(
            Diagnostic::error(
                DiagnosticKind::InvalidValue,
                at.span,
                format!("services.{name}.{path}: {}", e.message),
            )
            .with_help(e.help.to_string()),
        );
    };
    let mut text = |path: &str, at: Option<&Node>, parse: &dyn Fn(&str) -> Result<(), Invalid>| {
        if let Some(at) = at
            && let Some(s) = at.scalar_string()
            && let Err(e) = parse(&s)
        {
            report(at, path, e);
        }
    };
    text("restart", node.get("restart"), &parses::<RestartPolicy>);
    text("stop_signal", node.get("stop_signal"), &parses::<Signal>);
    if let Some(expose) = node.get("expose").and_then(Node::as_seq) {
        for (i, e) in expose.iter().enumerate() {
            text(&format!("expose[{i}]"), Some(e), &parses::<Expose>);
        }
    }
    let options = node.at(&["logging", "options"]);
    text(
        "logging.options.max-size",
        options.and_then(|o| o.get("max-size")),
        &|s| LogRotation::parse_size(s).map(drop),
    );
    text(
        "logging.options.max-file",
        options.and_then(|o| o.get("max-file")),
        &|s| LogRotation::parse_files(s).map(drop),
    );
    ok
}

fn parses<T: FromStr<Err = Invalid>>(s: &str) -> Result<(), Invalid> {
    s.parse::<T>().map(drop)
}
