//! Loading: files and environment to one merged, canonical tree, then to a
//! [`Project`](crate::Project).
//!
//! Per file: read, parse, interpolate, validate against the schema,
//! canonicalize, apply `include` and `extends`; then files merge in order,
//! paths are resolved, and the tree is normalized into the model. Errors are
//! collected across all files and stages that can still run, so one run
//! reports everything it can.
//!
//! # Layout
//! - `mod.rs`: options, the pipeline, discovery, environment.
//! - `interp.rs`, `canon.rs`, `merge.rs`, `paths.rs`: tree passes.
//! - `extends.rs`, `include.rs`: composition across services and files.

mod canon;
mod extends;
mod include;
mod interp;
mod merge;
mod paths;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diag::{Diagnostic, DiagnosticKind, Diagnostics, FileId, Sink, SourceMap, Span};
use crate::model::Project;
use crate::yaml::{Node, Value, parse_documents};

pub(crate) use crate::context::{Ctx, Env, absolute, io_reason};
pub use crate::options::LoadOptions;

/// The file names `docker compose` looks for, in order of preference.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// A successfully loaded project with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<Diagnostic>,
    pub sources: SourceMap,
    /// The merged canonical tree, for locating model values in the files.
    pub tree: Node,
}

impl Loaded {
    /// The place in the files of a model value, by path
    /// (`["services", "web", "ports", "0"]`).
    pub fn span<S: AsRef<str>>(&self, path: &[S]) -> Span {
        self.tree.span_at(path)
    }
}

/// Loads and validates a project.
///
/// # Errors
/// Every error found, with the warnings gathered so far and the sources to
/// render them with.
pub fn load(options: &LoadOptions) -> Result<Loaded, Diagnostics> {
    let mut ctx = Ctx {
        options,
        sources: SourceMap::default(),
        sink: Sink::default(),
        warned: HashSet::new(),
        file_cache: HashMap::new(),
        include_stack: Vec::new(),
    };
    let result = ctx.run();
    match result {
        Some((project, tree)) if !ctx.sink.has_errors() => Ok(Loaded {
            project,
            warnings: ctx.sink.warnings,
            sources: ctx.sources,
            tree,
        }),
        _ => {
            if ctx.sink.errors.is_empty() {
                ctx.sink.error(
                    DiagnosticKind::Project,
                    Span::NONE,
                    "the project could not be loaded",
                );
            }
            Err(Diagnostics {
                errors: ctx.sink.errors,
                warnings: ctx.sink.warnings,
                sources: ctx.sources,
            })
        }
    }
}

impl Ctx<'_> {
    fn run(&mut self) -> Option<(Project, Node)> {
        let files = self.files()?;
        let project_dir = match &self.options.project_directory {
            Some(d) => absolute(&self.options.working_dir, d),
            None => files
                .first()
                .filter(|f| f.as_path() != Path::new("-"))
                .and_then(|f| f.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| self.options.working_dir.clone()),
        };
        let mut env = self.environment(&project_dir, &self.options.env_files.clone());

        // Parse everything first: the project name may come from a file and
        // must be known before interpolation (`${COMPOSE_PROJECT_NAME}`).
        let mut parsed: Vec<(PathBuf, FileId, Vec<Node>)> = Vec::new();
        for file in &files {
            if let Some((id, docs)) = self.parse_file(file) {
                parsed.push((file.clone(), id, docs));
            }
        }
        // A file that could not be read or parsed leaves a partial project;
        // checking it would only report errors that are not really there.
        let complete = parsed.len() == files.len();
        let name = self.project_name(&parsed, &project_dir, &env);
        env.vars
            .entry("COMPOSE_PROJECT_NAME".to_string())
            .or_insert_with(|| name.clone());

        let mut merged: Option<Node> = None;
        for (file, _, docs) in parsed {
            for doc in docs {
                self.merge_in(&mut merged, doc, &file, &env);
            }
        }
        let mut tree = merged?;
        if !complete {
            return None;
        }
        crate::normalize::fill_tree_defaults(&mut tree);
        if self.options.resolve_paths {
            paths::resolve(&mut tree, &project_dir, env.get("HOME").as_deref());
        }
        let project = crate::normalize::normalize(self, &tree, name, project_dir, files, &env)?;
        Some((project, tree))
    }

    /// Processes one document of `file` and merges it over what came before
    /// (the first one becomes the base).
    pub(crate) fn merge_in(
        &mut self,
        merged: &mut Option<Node>,
        doc: Node,
        file: &Path,
        env: &Env,
    ) {
        let Some(doc) = self.process_document(doc, file, env) else {
            return;
        };
        match merged {
            None => {
                let mut doc = doc;
                merge::strip_tags(&mut doc);
                *merged = Some(doc);
            }
            Some(base) => merge::merge_documents(base, doc, &mut self.sink),
        }
    }

    /// Reports a `.env`-style file that does not parse, at its line.
    pub(crate) fn env_file_error(
        &mut self,
        file: &Path,
        id: FileId,
        e: &crate::dotenv::DotenvError,
    ) {
        self.sink.push(Diagnostic::error(
            DiagnosticKind::InvalidEnvFile,
            Span {
                file: id,
                line: u32::try_from(e.line).unwrap_or(0),
                column: 1,
                len: 1,
            },
            format!("{}: {}", file.display(), e.message),
        ));
    }

    /// Interpolation, schema validation, canonical forms, `include` and
    /// `extends` for one document of a file.
    pub(crate) fn process_document(
        &mut self,
        mut doc: Node,
        file: &Path,
        env: &Env,
    ) -> Option<Node> {
        if doc.as_map().is_none() {
            self.sink.push(Diagnostic::error(
                DiagnosticKind::InvalidType,
                doc.span,
                format!(
                    "top-level object must be a mapping, not {}",
                    crate::yaml::with_article(doc.type_name())
                ),
            ));
            return None;
        }
        if self.options.interpolate {
            let lookup = |name: &str| env.get(name);
            let mut interp = interp::Interpolator {
                lookup: &lookup,
                warned: std::mem::take(&mut self.warned),
            };
            interp.run(&mut doc, &mut Vec::new(), &mut self.sink);
            self.warned = interp.warned;
        }
        if let Some(map) = doc.as_map_mut()
            && let Some(entry) = map.shift_remove("version")
        {
            self.sink.push(
                Diagnostic::warning(
                    DiagnosticKind::Obsolete,
                    entry.key_span,
                    "the top-level `version` key is obsolete and ignored",
                )
                .with_help("remove it; the Compose Specification has no versions"),
            );
        }
        if self.options.validate_schema {
            let invalid = crate::schema::validate(&doc, &mut self.sink);
            if !invalid.is_empty() {
                // Drop what is wrong and carry on, so later stages report
                // their errors in the same run; the load fails regardless.
                for path in &invalid {
                    if let Some(node) = node_at_mut(&mut doc, path) {
                        node.tag = crate::yaml::Tag::Reset;
                    }
                }
                merge::strip_tags(&mut doc);
                doc.as_map()?;
            }
        }
        canon::canonicalize(&mut doc, &mut self.sink);
        self.apply_include(&mut doc, file, env);
        self.apply_extends(&mut doc, file, env);
        Some(doc)
    }

    /// Reads and parses a file (`-` is standard input).
    pub(crate) fn parse_file(&mut self, file: &Path) -> Option<(FileId, Vec<Node>)> {
        let text = if file == Path::new("-") {
            self.options.stdin.clone().unwrap_or_default()
        } else {
            match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    self.sink.push(Diagnostic::error(
                        DiagnosticKind::Io,
                        Span::NONE,
                        format!("cannot read {}: {}", file.display(), io_reason(&e)),
                    ));
                    return None;
                }
            }
        };
        let id = self.sources.add(file, text.as_str());
        match parse_documents(&text, id, self.options.limits) {
            Ok(docs) if docs.is_empty() || docs.iter().all(Node::is_null) => {
                self.sink.push(
                    Diagnostic::error(
                        DiagnosticKind::Empty,
                        Span {
                            file: id,
                            line: 1,
                            column: 1,
                            len: 1,
                        },
                        format!("empty compose file: {}", file.display()),
                    )
                    .with_help("a compose file needs at least a `services:` mapping"),
                );
                None
            }
            Ok(docs) => Some((id, docs.into_iter().filter(|d| !d.is_null()).collect())),
            Err(errors) => {
                for e in errors {
                    self.sink.push(e);
                }
                None
            }
        }
    }

    /// The compose files to load, absolute.
    fn files(&mut self) -> Option<Vec<PathBuf>> {
        let wd = &self.options.working_dir;
        if !self.options.files.is_empty() {
            return Some(
                self.options
                    .files
                    .iter()
                    .map(|f| {
                        if f == Path::new("-") {
                            f.clone()
                        } else {
                            absolute(wd, f)
                        }
                    })
                    .collect(),
            );
        }
        if let Some(list) = self.options.environment.get("COMPOSE_FILE") {
            let sep = self
                .options
                .environment
                .get("COMPOSE_PATH_SEPARATOR")
                .cloned()
                .unwrap_or_else(|| ":".to_string());
            let files: Vec<PathBuf> = list
                .split(sep.as_str())
                .filter(|s| !s.is_empty())
                .map(|f| absolute(wd, Path::new(f)))
                .collect();
            if !files.is_empty() {
                return Some(files);
            }
        }
        self.discover()
    }

    /// The default files of the project directory or its nearest parent
    /// that has one, with its override file.
    fn discover(&mut self) -> Option<Vec<PathBuf>> {
        let wd = &self.options.working_dir;
        let start = self
            .options
            .project_directory
            .as_ref()
            .map_or_else(|| wd.clone(), |d| absolute(wd, d));
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            let found: Vec<&str> = DEFAULT_FILES
                .iter()
                .copied()
                .filter(|f| d.join(f).is_file())
                .collect();
            if let Some(first) = found.first() {
                if found.len() > 1 {
                    self.sink.warn(
                        DiagnosticKind::Project,
                        Span::NONE,
                        format!(
                            "found several compose files in {} ({}); using {first}",
                            d.display(),
                            found.join(", ")
                        ),
                    );
                }
                let mut files = vec![d.join(first)];
                if let Some(o) = OVERRIDE_FILES.iter().find(|f| d.join(f).is_file()) {
                    files.push(d.join(o));
                }
                return Some(files);
            }
            dir = d.parent();
        }
        self.sink.push(
            Diagnostic::error(
                DiagnosticKind::Io,
                Span::NONE,
                format!(
                    "no compose file found in {} or any parent directory",
                    start.display()
                ),
            )
            .with_help(format!(
                "create one of {}, or pass -f FILE",
                DEFAULT_FILES.join(", ")
            )),
        );
        None
    }

    /// Shell environment over the env files (`.env` by default).
    pub(crate) fn environment(&mut self, project_dir: &Path, env_files: &[PathBuf]) -> Env {
        let shell = &self.options.environment;
        let (files, explicit) = if env_files.is_empty() {
            (vec![project_dir.join(".env")], false)
        } else {
            (
                env_files
                    .iter()
                    .map(|f| absolute(&self.options.working_dir, f))
                    .collect(),
                true,
            )
        };
        let mut from_files: IndexMap<String, String> = IndexMap::new();
        for file in files {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.sink.error(
                        DiagnosticKind::Io,
                        Span::NONE,
                        format!("cannot read env file {}: {}", file.display(), io_reason(&e)),
                    );
                    continue;
                }
            };
            let id = self.sources.add(&file, text.as_str());
            let lookup = |k: &str| shell.get(k).cloned();
            if let Err(e) = crate::dotenv::parse_into(&text, &lookup, &mut from_files) {
                self.env_file_error(&file, id, &e);
            }
        }
        let mut vars = from_files;
        for (k, v) in shell {
            vars.insert(k.clone(), v.clone());
        }
        Env { vars }
    }

    fn project_name(
        &mut self,
        parsed: &[(PathBuf, FileId, Vec<Node>)],
        project_dir: &Path,
        env: &Env,
    ) -> String {
        if let Some(name) = &self.options.project_name {
            return self.checked_name(name, Span::NONE, "-p");
        }
        if let Some(name) = env.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
            return self.checked_name(&name, Span::NONE, "COMPOSE_PROJECT_NAME");
        }
        let from_file = parsed
            .iter()
            .flat_map(|(_, _, docs)| docs.iter())
            .filter_map(|d| d.get("name"))
            .next_back();
        if let Some(node) = from_file
            && let Some(raw) = node.as_str()
        {
            let lookup = |k: &str| env.get(k);
            let value = crate::interpolate::substitute(raw, &lookup)
                .map(|s| s.value)
                .unwrap_or_else(|_| raw.to_string());
            let normalized = normalize_project_name(&value);
            if normalized != value && !normalized.is_empty() {
                self.sink.push(
                    Diagnostic::warning(
                        DiagnosticKind::Project,
                        node.span,
                        format!("project name {value:?} is used as {normalized:?}"),
                    )
                    .with_help("project names use lowercase letters, digits, '-' and '_'"),
                );
            }
            if !normalized.is_empty() {
                return normalized;
            }
        }
        let base = project_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let normalized = normalize_project_name(&base);
        if normalized.is_empty() {
            self.sink.push(
                Diagnostic::error(
                    DiagnosticKind::Project,
                    Span::NONE,
                    format!(
                        "cannot derive a project name from the directory {}",
                        project_dir.display()
                    ),
                )
                .with_help("set `name:` in the compose file or pass -p NAME"),
            );
        }
        normalized
    }

    fn checked_name(&mut self, name: &str, span: Span, from: &str) -> String {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            self.sink.push(
                Diagnostic::error(
                    DiagnosticKind::Project,
                    span,
                    format!("invalid project name {name:?} (from {from})"),
                )
                .with_help(format!(
                    "project names use lowercase letters, digits, '-' and '_', and start with a letter or digit, e.g. {:?}",
                    normalize_project_name(name)
                )),
            );
        }
        name.to_string()
    }
}

/// A directory name made into a valid project name (lowercase, only
/// `[a-z0-9_-]`, starting with a letter or digit).
pub fn normalize_project_name(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered
        .trim_start_matches(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .to_string()
}

fn node_at_mut<'a>(node: &'a mut Node, path: &[String]) -> Option<&'a mut Node> {
    let mut node = node;
    for segment in path {
        node = match &mut node.value {
            Value::Map(m) => &mut m.get_mut(segment)?.value,
            Value::Seq(s) => s.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The services mapping of a document, if any.
pub(crate) fn services_of(doc: &Node) -> Option<&crate::yaml::Map> {
    doc.get("services").and_then(Node::as_map)
}

/// Inserts into a top-level mapping of a document, creating it as needed.
pub(crate) fn section_mut<'a>(doc: &'a mut Node, key: &str) -> Option<&'a mut crate::yaml::Map> {
    let span = doc.span;
    let map = doc.as_map_mut()?;
    let entry = map
        .entry(key.to_string())
        .or_insert_with(|| crate::yaml::Entry {
            key_span: span,
            value: Node::map(span),
        });
    if entry.value.is_null() {
        entry.value = Node::map(span);
    }
    match &mut entry.value.value {
        Value::Map(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_valid_project_names() {
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("_x-Y"), "x-y");
        assert_eq!(normalize_project_name("..."), "");
    }
}
