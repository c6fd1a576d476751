//! Interpolation of every string value of a file's tree.
//!
//! Keys are never interpolated (as in the reference). Each failure is one
//! diagnostic at the value, naming its path; a variable used without a value
//! and without a default is warned about once per load, at its first use.

use std::collections::HashSet;

use crate::diag::{Diagnostic, DiagnosticKind, Sink};
use crate::interpolate::{TemplateError, substitute};
use crate::schema::display_path;
use crate::yaml::{Node, Value};

/// Interpolation state for one load: the lookup and which unset variables
/// were already warned about.
pub(crate) struct Interpolator<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub warned: HashSet<String>,
}

impl Interpolator<'_> {
    /// Substitutes every string under `node`, in place.
    pub fn run(&mut self, node: &mut Node, path: &mut Vec<String>, sink: &mut Sink) {
        match &mut node.value {
            Value::Str(s) => {
                if !s.contains('$') {
                    return;
                }
                match substitute(s, self.lookup) {
                    Ok(sub) => {
                        for name in sub.unset {
                            if self.warned.insert(name.clone()) {
                                sink.push(
                                    Diagnostic::warning(
                                        DiagnosticKind::UnsetVariable,
                                        node.span,
                                        format!(
                                            "the {name} variable is not set; substituting an empty string"
                                        ),
                                    )
                                    .with_help(format!(
                                        "set {name} in the environment or in .env, or give a default: ${{{name}:-default}}"
                                    )),
                                );
                            }
                        }
                        *s = sub.value;
                    }
                    Err(e) => sink.push(template_error(&e, node, path)),
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    self.run(item, path, sink);
                    path.pop();
                }
            }
            Value::Map(m) => {
                for (k, entry) in m.iter_mut() {
                    path.push(k.clone());
                    self.run(&mut entry.value, path, sink);
                    path.pop();
                }
            }
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
        }
    }
}

fn template_error(e: &TemplateError, node: &Node, path: &[String]) -> Diagnostic {
    let at = display_path(path);
    match e {
        TemplateError::MissingRequired { name, message } => {
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            Diagnostic::error(
                DiagnosticKind::MissingVariable,
                node.span,
                format!("error while interpolating {at}: required variable {name} is missing a value{detail}"),
            )
            .with_help(format!("set {name} in the environment or in the project's .env file"))
        }
        TemplateError::Invalid { template } => Diagnostic::error(
            DiagnosticKind::InvalidInterpolation,
            node.span,
            format!("invalid interpolation format for {at}: {template:?}"),
        )
        .with_help("you may need to escape any $ with another $ ($$)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::testsupport::conformance_json;

    #[test]
    fn nested_conformance_cases() {
        let data = conformance_json("interpolation.json");
        let cases = data["nested_cases"].as_array().unwrap();
        let mut failures = Vec::new();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let env: std::collections::HashMap<String, String> = case["env"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let lookup = |k: &str| env.get(k).cloned();
            let mut interp = Interpolator {
                lookup: &lookup,
                warned: HashSet::new(),
            };
            let mut node = Node::from_json(&case["input"], Span::NONE);
            let mut sink = Sink::default();
            interp.run(&mut node, &mut Vec::new(), &mut sink);
            if case["error"].as_bool().unwrap() {
                let want = case["error_contains"].as_str().unwrap_or("");
                // The first line of the reference message names the failure and
                // its path; the rest is its advice, which we word ourselves.
                let want_head = want.lines().next().unwrap_or("").trim_end_matches('.');
                let got: Vec<String> = sink.errors.iter().map(|d| d.message.clone()).collect();
                let ok = got.iter().any(|m| {
                    m.contains(want_head)
                        || (want_head.starts_with("invalid interpolation format for ")
                            && m.starts_with(want_head))
                });
                if !ok {
                    failures.push(format!(
                        "{name}: want error containing {want_head:?}, got {got:?}"
                    ));
                }
            } else if !sink.errors.is_empty() {
                failures.push(format!("{name}: unexpected errors {:?}", sink.errors));
            } else if node.to_json() != case["expected"] {
                failures.push(format!(
                    "{name}: got {} want {}",
                    node.to_json(),
                    case["expected"]
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn unset_variables_warn_once_per_load() {
        let lookup = |_: &str| None;
        let mut interp = Interpolator {
            lookup: &lookup,
            warned: HashSet::new(),
        };
        let mut node = Node::from_json(
            &serde_json::json!({"a": "$X", "b": "${X}", "c": "${Y:-d}"}),
            Span::NONE,
        );
        let mut sink = Sink::default();
        interp.run(&mut node, &mut Vec::new(), &mut sink);
        assert_eq!(sink.warnings.len(), 1);
        assert!(sink.warnings[0].message.contains("X variable is not set"));
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": "", "b": "", "c": "d"})
        );
    }
}
