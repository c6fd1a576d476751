//! The operating system behind a trait.
//!
//! The engine starts processes and runs probes only through [`Runtime`], so
//! its ordering, backoff and restart logic can be tested against a recording
//! fake under a paused clock, and the real thing ([`native::NativeRuntime`])
//! stays small.
//!
//! # Layout
//! - `mod.rs`: the trait and the types crossing it.
//! - `native.rs`: processes in their own session and process group,
//!   `PR_SET_PDEATHSIG`, registered with the guard.
//! - `docker.rs`, `docker/`: containers through the Docker Engine API, and
//!   [`docker::Runtimes`], both runtimes behind one trait object.
//! - `build_context.rs`: an image build's context, as `.dockerignore` says.
//! - `fake.rs`: the recording fake (tests).

mod build_context;
pub mod docker;
pub mod native;

#[cfg(test)]
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncRead;

/// A boxed future, as the trait returns them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An output pipe of a process.
pub type Pipe = Box<dyn AsyncRead + Send + Unpin>;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// `argv[0]` is looked up in `PATH` unless it contains a `/`; a relative
    /// path with a `/` is relative to `working_dir`.
    pub argv: Vec<String>,
    /// The complete environment (nothing is inherited beyond it).
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    /// For messages: `api-2`, `api-2 healthcheck`.
    pub label: String,
    /// Limits and privileges applied before it runs.
    pub confinement: berth_compose::Confinement,
    /// Who it runs as (`None`: as berth).
    pub identity: Option<crate::confine::Identity>,
    /// With `read_only`: the only places it may write (its volumes).
    pub writable: Vec<PathBuf>,
    /// tmpfs file systems mounted for it alone (in a mount namespace of
    /// its own), where berth may mount.
    pub mounts: Vec<crate::confine::Mount>,
    /// Runs in the mount namespace of this process (a replica's health
    /// check sees the replica's tmpfs mounts).
    pub mounts_of: Option<u32>,
    /// Set for a container (the Docker runtime): what to create; the
    /// native fields above are not used then. A probe with it runs in
    /// that container.
    pub container: Option<Box<ContainerSpec>>,
}

/// One container of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// `<project>-<service>-<replica>` (a rolling restart's new one gets
    /// `.<run>` appended: both live a moment).
    pub name: String,
    pub project: String,
    pub service: String,
    pub number: u32,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub env: BTreeMap<String, String>,
    /// (the host port on 127.0.0.1, the container's declared port).
    pub publish: Vec<(u16, u16)>,
    /// The same for `/udp` ports (on the same loopback port numbers).
    pub publish_udp: Vec<(u16, u16)>,
    pub config_hash: String,
    pub stop_signal: Option<String>,
    /// What the file says of the container's confinement and mounts.
    pub host: ContainerHost,
}

/// A container's confinement, limits and mounts, as the file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerHost {
    /// `source:target[:ro]`: bind mounts, and named volumes by their
    /// engine name (`<project>_<name>` unless named otherwise).
    pub binds: Vec<String>,
    /// target -> mount options (`size=…,mode=…`).
    pub tmpfs: Vec<(String, String)>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub limits: berth_compose::Limits,
    pub ulimits: Vec<berth_compose::Ulimit>,
    pub init: Option<bool>,
    /// `host:address`.
    pub extra_hosts: Vec<String>,
    /// The networks it joins, in the order the engine attaches them (the
    /// first at creation); none: the project's `default`.
    pub networks: Vec<NetworkAttachment>,
}

/// A network a container joins, and the names it has there besides its
/// service's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub network: Network,
    /// `aliases` from the file.
    pub aliases: Vec<String>,
}

/// A network of the project (top-level `networks:`), as the engine makes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    /// Its key in the file (`com.docker.compose.network`).
    pub key: String,
    /// The engine's name: `name:`, else `<project>_<key>` (the key itself
    /// for an external one).
    pub name: String,
    /// `bridge` unless the file says otherwise.
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// No route out: its containers reach only each other.
    pub internal: bool,
    pub attachable: bool,
    /// Made by someone else: it must exist, and `down` leaves it.
    pub external: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// The OOM killer ended it (its cgroup says so), at this memory limit.
    OutOfMemory {
        limit: Option<u64>,
    },
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with code {c}"),
            Exit::OutOfMemory { limit: Some(l) } => write!(
                f,
                "killed: out of memory (limit {})",
                berth_compose::units::human_bytes(*l)
            ),
            Exit::OutOfMemory { limit: None } => write!(f, "killed: out of memory"),
            Exit::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {s}"));
                write!(f, "killed by {name}")
            }
        }
    }
}

/// Why a process could not be started: one line naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    #[error("command not found: {program}")]
    NotFound { program: String },
    #[error("permission denied: {program} is not executable")]
    PermissionDenied { program: String },
    #[error("working directory {dir} does not exist")]
    NoWorkingDir { dir: PathBuf },
    #[error("empty command")]
    Empty,
    #[error("cannot start {program}: {reason}")]
    Other { program: String, reason: String },
}

/// Resource usage of a running process (its whole process group).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// CPU seconds used so far.
    pub cpu_seconds: f64,
    /// Memory in use: resident set, or what its cgroup charges.
    pub rss_bytes: u64,
    /// Its cgroup's memory limit.
    pub memory_limit: Option<u64>,
    /// Times the OOM killer struck in its cgroup this run.
    pub oom_kills: u64,
}

/// A started process.
pub trait Process: Send {
    fn pid(&self) -> u32;
    /// Sends a signal to the whole process group.
    fn signal(&self, signal: i32) -> std::io::Result<()>;
    /// Waits for the process to end.
    fn wait(&mut self) -> BoxFuture<'_, std::io::Result<Exit>>;
    /// Its stdout and stderr, once.
    fn take_output(&mut self) -> Option<(Pipe, Pipe)>;
    fn stats(&self) -> Option<Stats>;
}

/// A probe's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Pass,
    /// With what it said (the last lines of its output, or the error).
    Fail(String),
}

/// Something to check about a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Run a command; exit 0 passes. Killed (process group) at the timeout.
    Command(Box<ProcessSpec>),
    /// `GET path` answers 2xx/3xx.
    Http { addr: SocketAddr, path: String },
    /// A TCP connect succeeds.
    Tcp { addr: SocketAddr },
}

/// The operating system, as the engine sees it.
pub trait Runtime: Send + Sync + 'static {
    /// Starts a process in its own session and process group, stdout and
    /// stderr piped, stdin from /dev/null.
    ///
    /// # Errors
    /// A [`SpawnError`] naming the program or directory at fault.
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, SpawnError>>;

    /// Runs a probe with a timeout.
    fn probe(&self, probe: &Probe, timeout: Duration) -> BoxFuture<'static, ProbeResult>;
}
