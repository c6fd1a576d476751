//! `extends`: a service built on another one, in the same file or another.
//!
//! The base is resolved first (recursively, with cycle detection), its
//! relative paths made absolute against its own file's directory when it
//! comes from another file, then the local definition is merged over it with
//! the usual merge rules.

use std::path::{Path, PathBuf};

use super::{Ctx, Env, absolute, merge, paths, services_of};
use crate::diag::{Diagnostic, DiagnosticKind};
use crate::yaml::{Map, Node};

impl Ctx<'_> {
    pub(crate) fn apply_extends(&mut self, doc: &mut Node, file: &Path, env: &Env) {
        let Some(services) = services_of(doc) else {
            return;
        };
        if !services.values().any(|e| e.value.get("extends").is_some()) {
            return;
        }
        let services = services.clone();
        let mut resolved: Vec<(String, Node)> = Vec::new();
        for name in services.keys() {
            if services[name].value.get("extends").is_none() {
                continue;
            }
            let mut stack = Vec::new();
            if let Some(node) = self.extended(&services, name, file, env, &mut stack) {
                resolved.push((name.clone(), node));
            }
        }
        if let Some(map) = doc.get_mut("services").and_then(Node::as_map_mut) {
            for (name, node) in resolved {
                if let Some(entry) = map.get_mut(&name) {
                    entry.value = node;
                }
            }
        }
    }

    /// The service `name` of `services` (from `file`) with its `extends`
    /// chain applied.
    fn extended(
        &mut self,
        services: &Map,
        name: &str,
        file: &Path,
        env: &Env,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Option<Node> {
        let entry = services.get(name)?;
        let mut service = entry.value.clone();
        let Some(ext) = service.get("extends").cloned() else {
            return Some(service);
        };
        let key = (file.to_path_buf(), name.to_string());
        if stack.contains(&key) {
            let mut chain: Vec<String> = stack.iter().map(|(_, s)| s.clone()).collect();
            chain.push(name.to_string());
            self.sink.push(Diagnostic::error(
                DiagnosticKind::IncludeCycle,
                ext.span,
                format!("circular reference with extends: {}", chain.join(" -> ")),
            ));
            return None;
        }
        stack.push(key);
        let base_name = ext
            .get("service")
            .and_then(Node::scalar_string)
            .unwrap_or_default();
        let base = match ext.get("file").and_then(Node::scalar_string) {
            None => {
                if !services.contains_key(&base_name) {
                    self.sink.push(
                        Diagnostic::error(
                            DiagnosticKind::UnknownService,
                            ext.get("service").map_or(ext.span, |n| n.span),
                            format!("services.{name}.extends: service {base_name:?} is not defined in this file"),
                        )
                        .with_help("add `file:` to extend a service from another file"),
                    );
                    stack.pop();
                    return None;
                }
                self.extended(services, &base_name, file, env, stack)
            }
            Some(other) => self.extended_from(&other, &base_name, name, &ext, file, env, stack),
        };
        stack.pop();
        let base = base?;
        if let Some(m) = service.as_map_mut() {
            m.shift_remove("extends");
        }
        let mut base = base;
        if let Some(m) = base.as_map_mut() {
            m.shift_remove("extends");
        }
        Some(merge::merge_service(name, base, service, &mut self.sink))
    }

    /// Service `base_name` of file `other` (relative to `file`), extended
    /// by service `name`, rebased onto that file's directory.
    #[allow(clippy::too_many_arguments)]
    fn extended_from(
        &mut self,
        other: &str,
        base_name: &str,
        name: &str,
        ext: &Node,
        file: &Path,
        env: &Env,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Option<Node> {
        let dir = file.parent().unwrap_or(Path::new("."));
        let other_path = absolute(dir, Path::new(other));
        let docs = self.extends_file(&other_path, env, ext.span)?;
        let other_services: Map = docs
            .iter()
            .filter_map(services_of)
            .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        if !other_services.contains_key(base_name) {
            self.sink.push(Diagnostic::error(
                DiagnosticKind::UnknownService,
                ext.span,
                format!(
                    "services.{name}.extends: service {base_name:?} is not defined in {}",
                    other_path.display()
                ),
            ));
            stack.pop();
            return None;
        }
        let base = self.extended(&other_services, base_name, &other_path, env, stack);
        base.map(|b| self.rebase(b, base_name, &other_path, env))
    }

    /// Relative paths of a service from another file resolve against that
    /// file's directory, not this project's.
    fn rebase(&self, service: Node, name: &str, file: &Path, env: &Env) -> Node {
        if !self.options.resolve_paths {
            return service;
        }
        let span = service.span;
        let mut doc = Node::map(span);
        if let Some(m) = super::section_mut(&mut doc, "services") {
            m.insert(
                name.to_string(),
                crate::yaml::Entry {
                    key_span: span,
                    value: service,
                },
            );
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        paths::resolve(&mut doc, dir, env.get("HOME").as_deref());
        doc.at(&["services", name])
            .cloned()
            .unwrap_or_else(|| Node::map(span))
    }

    fn extends_file(
        &mut self,
        path: &Path,
        env: &Env,
        span: crate::diag::Span,
    ) -> Option<Vec<Node>> {
        if let Some(cached) = self.file_cache.get(path) {
            return cached.clone();
        }
        if !path.is_file() {
            self.sink.push(Diagnostic::error(
                DiagnosticKind::Io,
                span,
                format!("extends: cannot read {}: no such file", path.display()),
            ));
            self.file_cache.insert(path.to_path_buf(), None);
            return None;
        }
        // Mark as in progress so a file extending itself terminates.
        self.file_cache.insert(path.to_path_buf(), None);
        let loaded = self.parse_file(path).map(|(_, docs)| {
            docs.into_iter()
                .filter_map(|d| {
                    let mut d = d;
                    if let Some(m) = d.as_map_mut() {
                        // Only services matter; includes of that file are not followed.
                        m.shift_remove("include");
                    }
                    self.process_document(d, path, env)
                })
                .collect::<Vec<_>>()
        });
        self.file_cache.insert(path.to_path_buf(), loaded.clone());
        loaded
    }
}
