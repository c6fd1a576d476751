//! What loading and normalizing share: the load's context (options,
//! sources, diagnostics, caches), a project's variables, and path helpers.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;

use crate::diag::{Sink, SourceMap};
use crate::options::LoadOptions;
use crate::yaml::Node;

/// The variables of one (sub-)project: shell environment over env files.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    pub vars: IndexMap<String, String>,
}

impl Env {
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

pub(crate) struct Ctx<'o> {
    pub options: &'o LoadOptions,
    pub sources: SourceMap,
    pub sink: Sink,
    /// Unset variables already warned about.
    pub warned: HashSet<String>,
    /// Canonical documents of files loaded for `extends: {file}`, by path.
    pub file_cache: HashMap<PathBuf, Option<Vec<Node>>>,
    /// Files being included, outermost first (cycle detection).
    pub include_stack: Vec<PathBuf>,
}

pub(crate) fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        clean(p)
    } else {
        clean(&base.join(p))
    }
}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// Lexical clean-up like Go's `filepath.Clean`: no `.` components, `..`
/// folded, no trailing slash.
pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
