//! Diagnostics: every error and warning carries its place in the source.
//!
//! A [`Span`] points into a file registered in the [`SourceMap`]; a
//! [`Diagnostic`] pairs a [`DiagnosticKind`] (what went wrong, as data) with a
//! message (how we say it) and an optional hint (what to do). Rendering prints
//! the source line under the message with a caret, like a compiler.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Index of a file in the [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A place in a source file: 1-based line and column (in characters), and the
/// length in characters of the text it covers (at least 1 when rendered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub column: u32,
    pub len: u32,
}

impl Span {
    /// A span that points nowhere in particular (for values made up by berth,
    /// e.g. defaults); rendering omits the source line.
    pub const NONE: Span = Span {
        file: FileId(u32::MAX),
        line: 0,
        column: 0,
        len: 0,
    };

    /// Whether this span refers to real source text.
    pub fn is_known(&self) -> bool {
        self.line > 0 && self.file != FileId(u32::MAX)
    }
}

/// One source file known to the loader: its path and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: Arc<str>,
}

/// All the files read during one load, so diagnostics can quote them.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<Source>,
}

impl SourceMap {
    /// Registers a file and returns its id.
    pub fn add(&mut self, path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX - 1));
        self.files.push(Source {
            path: path.into(),
            text: text.into(),
        });
        id
    }

    /// The file behind an id, if any.
    pub fn get(&self, id: FileId) -> Option<&Source> {
        self.files.get(id.0 as usize)
    }

    /// The path of a file, for messages.
    pub fn path(&self, id: FileId) -> Option<&Path> {
        self.get(id).map(|s| s.path.as_path())
    }

    /// The text of a (1-based) line of a file, without its line break.
    pub fn line_text(&self, id: FileId, line: u32) -> Option<&str> {
        let source = self.get(id)?;
        source
            .text
            .lines()
            .nth(line.checked_sub(1)? as usize)
            .map(|l| l.trim_end_matches('\r'))
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// What went wrong, as data: tests assert on this and on the span, not on the
/// wording of the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiagnosticKind {
    /// A file could not be read or found.
    Io,
    /// YAML syntax error.
    Syntax,
    /// The same mapping key twice.
    DuplicateKey,
    /// Alias expansion beyond the budget (alias bombs).
    ExcessiveAliasing,
    /// An alias or merge key that refers to a node enclosing itself.
    AliasCycle,
    /// A mapping key that is not a string.
    NonStringKey,
    /// A YAML tag berth does not know.
    UnknownTag,
    /// A key not in the Compose schema and not `x-*`.
    UnknownKey,
    /// A value of the wrong type or shape.
    InvalidType,
    /// A value of the right type that is not allowed (bad port, duration...).
    InvalidValue,
    /// A required key is missing.
    MissingKey,
    /// `${VAR:?message}` with VAR unset or empty.
    MissingVariable,
    /// Malformed `${...}`.
    InvalidInterpolation,
    /// A `.env` or `env_file` that cannot be parsed.
    InvalidEnvFile,
    /// `depends_on`, `extends`, a route... naming a service that does not exist.
    UnknownService,
    /// A service's `networks` naming a network the file does not define.
    UnknownNetwork,
    /// A dependency cycle; the message carries the whole path.
    DependencyCycle,
    /// An include or extends cycle.
    IncludeCycle,
    /// Two definitions that exclude each other.
    Conflict,
    /// Two services publishing the same host port.
    PortConflict,
    /// A field the native runtime cannot honour (warning) or that would change
    /// meaning silently (error).
    Unsupported,
    /// A variable used without a value and without a default.
    UnsetVariable,
    /// The obsolete top-level `version` key.
    Obsolete,
    /// The file has no content.
    Empty,
    /// Anything else about the project as a whole (name, profiles...).
    Project,
}

/// One error or warning with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: DiagnosticKind,
    pub message: String,
    pub span: Span,
    /// What to do about it, when there is something to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at a place.
    pub fn error(kind: DiagnosticKind, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            kind,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// A warning at a place.
    pub fn warning(kind: DiagnosticKind, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            kind,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// Adds a hint saying what to do.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (as opposed to a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with its file, line, column, the source line and
    /// a caret under the offending text.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let mut out = String::new();
        let (label, paint) = match self.severity {
            Severity::Error => ("error", "\x1b[1;31m"),
            Severity::Warning => ("warning", "\x1b[1;33m"),
        };
        if color {
            out.push_str(&format!(
                "{paint}{label}\x1b[0m\x1b[1m: {}\x1b[0m\n",
                self.message
            ));
        } else {
            out.push_str(&format!("{label}: {}\n", self.message));
        }
        if self.span.is_known() {
            let path = sources
                .path(self.span.file)
                .map(shown_path)
                .unwrap_or_else(|| "<unknown>".to_string());
            let gutter = self.span.line.to_string();
            let pad = " ".repeat(gutter.len());
            out.push_str(&format!(
                "{pad}--> {}:{}:{}\n",
                path, self.span.line, self.span.column
            ));
            if let Some(text) = sources.line_text(self.span.file, self.span.line) {
                let chars: Vec<char> = text.chars().collect();
                let col0 = self.span.column.saturating_sub(1) as usize;
                let caret_pad: String = (0..col0)
                    .map(|i| {
                        if chars.get(i) == Some(&'\t') {
                            '\t'
                        } else {
                            ' '
                        }
                    })
                    .collect();
                let remaining = chars.len().saturating_sub(col0).max(1);
                let len = (self.span.len as usize).clamp(1, remaining);
                let carets = "^".repeat(len);
                out.push_str(&format!("{pad} |\n{gutter} | {text}\n{pad} | {caret_pad}"));
                if color {
                    out.push_str(&format!("{paint}{carets}\x1b[0m\n"));
                } else {
                    out.push_str(&format!("{carets}\n"));
                }
            }
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A path as messages show it: relative to the current directory when it
/// is below it, as written otherwise.
pub fn shown_path(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|rel| !rel.as_os_str().is_empty())
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}

/// A failed load: every error found (all of them, not just the first), the
/// warnings gathered until then, and the sources to render them with.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    pub sources: SourceMap,
}

impl Diagnostics {
    /// Renders every warning then every error, and a summary line.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for d in self.warnings.iter().chain(&self.errors) {
            out.push_str(&d.render(&self.sources, color));
            out.push('\n');
        }
        let n = self.errors.len();
        out.push_str(&format!(
            "{n} error{} found; nothing was started",
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics while a stage runs.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Sink {
    pub fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    pub fn error(&mut self, kind: DiagnosticKind, span: Span, message: impl Into<String>) {
        self.errors.push(Diagnostic::error(kind, span, message));
    }

    pub fn warn(&mut self, kind: DiagnosticKind, span: Span, message: impl Into<String>) {
        self.warnings.push(Diagnostic::warning(kind, span, message));
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_a_caret_under_the_offending_text() {
        let mut sources = SourceMap::default();
        let file = sources.add("compose.yaml", "services:\n  web:\n    imagee: nginx\n");
        let d = Diagnostic::error(
            DiagnosticKind::UnknownKey,
            Span {
                file,
                line: 3,
                column: 5,
                len: 6,
            },
            "services.web: unknown key `imagee`",
        )
        .with_help("did you mean `image`?");
        let text = d.render(&sources, false);
        assert_eq!(
            text,
            "error: services.web: unknown key `imagee`\n --> compose.yaml:3:5\n  |\n3 |     imagee: nginx\n  |     ^^^^^^\n  = help: did you mean `image`?\n"
        );
    }

    #[test]
    fn render_clamps_a_span_past_the_end_of_the_line() {
        let mut sources = SourceMap::default();
        let file = sources.add("c.yaml", "a: b");
        let d = Diagnostic::error(
            DiagnosticKind::Syntax,
            Span {
                file,
                line: 1,
                column: 9,
                len: 40,
            },
            "x",
        );
        let text = d.render(&sources, false);
        assert!(text.contains("1 | a: b\n  |         ^\n"), "{text}");
    }
}
