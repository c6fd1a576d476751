//! `include`: another Compose application's resources, loaded as their own
//! project (own directory, own `.env`) and added to this one.

use std::path::{Path, PathBuf};

use super::{Ctx, Env, absolute, paths, section_mut};
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::yaml::{Node, Value};

const SECTIONS: [&str; 6] = [
    "services", "networks", "volumes", "secrets", "configs", "models",
];

impl Ctx<'_> {
    pub(crate) fn apply_include(&mut self, doc: &mut Node, file: &Path, env: &Env) {
        let Some(entries) = doc.as_map_mut().and_then(|m| m.shift_remove("include")) else {
            return;
        };
        let Value::Seq(entries) = entries.value.value else {
            return;
        };
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        self.include_stack.push(file.to_path_buf());
        for entry in entries {
            let Some(included) = self.load_included(&entry, &dir, env) else {
                continue;
            };
            for section in SECTIONS {
                let Some(items) = included.get(section).and_then(Node::as_map) else {
                    continue;
                };
                let items = items.clone();
                let Some(target) = section_mut(doc, section) else {
                    continue;
                };
                let mut conflicts = Vec::new();
                for (name, item) in items {
                    match target.get(&name) {
                        Some(existing) if existing.value.to_json() != item.value.to_json() => {
                            conflicts.push((name, existing.key_span));
                        }
                        Some(_) => {}
                        None => {
                            target.insert(name, item);
                        }
                    }
                }
                for (name, span) in conflicts {
                    self.sink.push(
                        Diagnostic::error(
                            DiagnosticKind::Conflict,
                            span,
                            format!("{section}.{name} conflicts with the {section} of the same name that `include` imports"),
                        )
                        .with_help("rename one of them, or use extends to build on the included definition"),
                    );
                }
            }
        }
        self.include_stack.pop();
    }

    fn load_included(&mut self, entry: &Node, dir: &Path, env: &Env) -> Option<Node> {
        let files: Vec<PathBuf> = entry
            .get("path")
            .and_then(Node::as_seq)
            .map(|s| {
                s.iter()
                    .filter_map(Node::scalar_string)
                    .map(|p| absolute(dir, Path::new(&p)))
                    .collect()
            })
            .unwrap_or_default();
        let first = files.first()?.clone();
        if let Some(pos) = self.include_stack.iter().position(|f| *f == first) {
            let mut chain: Vec<String> = self.include_stack[pos..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            chain.push(first.display().to_string());
            self.sink.push(Diagnostic::error(
                DiagnosticKind::IncludeCycle,
                entry.span,
                format!("include cycle detected: {}", chain.join(" -> ")),
            ));
            return None;
        }
        let project_dir = entry
            .get("project_directory")
            .and_then(Node::scalar_string)
            .map_or_else(
                || first.parent().unwrap_or(Path::new(".")).to_path_buf(),
                |d| absolute(dir, Path::new(&d)),
            );
        let env_files: Vec<PathBuf> = match entry.get("env_file") {
            Some(n) => match &n.value {
                Value::Str(s) => vec![absolute(dir, Path::new(s))],
                Value::Seq(items) => items
                    .iter()
                    .filter_map(Node::scalar_string)
                    .map(|s| absolute(dir, Path::new(&s)))
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let mut sub_env = if env_files.is_empty() {
            self.environment(&project_dir, &[])
        } else {
            self.environment(&project_dir, &env_files)
        };
        for (k, v) in &env.vars {
            sub_env.vars.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut merged: Option<Node> = None;
        for file in &files {
            let (_, docs) = self.parse_file(file)?;
            for doc in docs {
                self.merge_in(&mut merged, doc, file, &sub_env);
            }
        }
        let mut merged = merged?;
        if self.options.resolve_paths {
            paths::resolve(&mut merged, &project_dir, sub_env.get("HOME").as_deref());
        }
        Some(merged)
    }
}
