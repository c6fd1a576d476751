//! The fluent test builder: a temporary project directory, files in it,
//! and the berth binary run against it.
//!
//! ```ignore
//! Test::new()
//!     .compose("services: {web: {command: [sleep, '1']}}")
//!     .args(["config", "--services"])
//!     .run()
//!     .success()
//!     .stdout_is("web\n");
//! ```

#![allow(dead_code)] // not every test module uses every helper

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The berth binary under test.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// `shared/` beside the repository (conformance vectors, stacks).
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    for c in [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from("/work/shared"),
    ] {
        if c.is_dir() {
            return c.canonicalize().unwrap_or(c);
        }
    }
    panic!("shared/ not found; set BERTH_SHARED_DIR")
}

/// A test project: a temporary directory and a command line to run in it.
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    stdin: Option<String>,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::Builder::new()
                .prefix("berth-test-")
                .tempdir()
                .unwrap(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
        }
    }

    /// The project directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `compose.yaml`.
    pub fn compose(self, text: &str) -> Self {
        self.file("compose.yaml", text)
    }

    /// Writes a file (parent directories created).
    pub fn file(self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Runs in this subdirectory of the project instead of its root.
    pub fn cwd(mut self, sub: &str) -> Self {
        let p = self.dir.path().join(sub);
        std::fs::create_dir_all(&p).unwrap();
        self.cwd = Some(p);
        self
    }

    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// The command, ready to run or spawn.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.args(&self.args)
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs berth to completion.
    pub fn run(&self) -> Run {
        let mut cmd = self.command();
        let output = if let Some(input) = &self.stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        };
        Run {
            output,
            args: self.args.clone(),
        }
    }
}

/// A finished run, with assertions that print everything on failure.
pub struct Run {
    pub output: Output,
    args: Vec<String>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "berth {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.output.status.code(), Some(code), "{}", self.describe());
        self
    }

    pub fn success(self) -> Self {
        self.code(0)
    }

    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn stdout_is(self, want: &str) -> Self {
        assert_eq!(self.stdout(), want, "{}", self.describe());
        self
    }

    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn stderr_lacks(self, needle: &str) -> Self {
        assert!(
            !self.stderr().contains(needle),
            "stderr has {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", self.describe()))
    }
}
