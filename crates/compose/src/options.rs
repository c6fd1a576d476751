//! How to load a project: what the CLI's `-f`, `-p`, `--project-directory`,
//! `--env-file` and `--profile` say.

use std::path::PathBuf;

use indexmap::IndexMap;

use crate::yaml::ParseLimits;

/// How to load a project; the CLI's `-f`, `-p`, `--project-directory`,
/// `--env-file`, `--profile` land here. It serializes, so that a running
/// stack can load a file the way a client did (`berth up` on it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadOptions {
    /// `-f` files in order; empty means discovery from `working_dir` up.
    /// `-` reads standard input.
    pub files: Vec<PathBuf>,
    /// Where discovery starts and relative `-f` paths are resolved.
    pub working_dir: PathBuf,
    pub project_directory: Option<PathBuf>,
    pub project_name: Option<String>,
    /// `--env-file`s; empty means `<project directory>/.env` when present.
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are enabled.
    pub services: Vec<String>,
    /// The shell environment (wins over `.env`).
    pub environment: IndexMap<String, String>,
    /// Make relative paths absolute (`config --no-path-resolution` turns it off).
    pub resolve_paths: bool,
    /// Substitute `${VAR}` (`config --no-interpolate` turns it off).
    pub interpolate: bool,
    /// Check each file against the Compose schema.
    pub validate_schema: bool,
    /// Project-wide checks: dependencies, cycles, ports, routes, native
    /// runtime support (`config --no-consistency` turns them off).
    pub consistency: bool,
    /// Default network, resource names, implicit dependencies
    /// (`config --no-normalize` turns them off).
    pub normalize: bool,
    /// Report what the native runtime cannot honour (warnings, and errors
    /// for `network_mode` values it would change). `berth export
    /// kubernetes` turns it off: a cluster honours those fields.
    #[serde(default = "yes")]
    pub native_checks: bool,
    #[serde(skip)]
    pub limits: ParseLimits,
    /// Standard input, when a file is `-` (tests set it; the CLI reads stdin).
    pub stdin: Option<String>,
}

impl LoadOptions {
    /// Options for a directory with the given shell environment.
    pub fn new(working_dir: impl Into<PathBuf>, environment: IndexMap<String, String>) -> Self {
        LoadOptions {
            files: Vec::new(),
            working_dir: working_dir.into(),
            project_directory: None,
            project_name: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            services: Vec::new(),
            environment,
            resolve_paths: true,
            interpolate: true,
            validate_schema: true,
            consistency: true,
            normalize: true,
            native_checks: true,
            limits: ParseLimits::default(),
            stdin: None,
        }
    }
}

fn yes() -> bool {
    true
}
