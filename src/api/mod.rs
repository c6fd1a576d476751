//! The control API: a running stack (foreground or `up -d`) answers JSON
//! over HTTP/1.1 on the unix socket `<state_dir>/berth.sock` (mode 0600).
//! `ps`, `logs`, `restart`, `stop`, `start`, `scale`, `exec`, `events` and
//! `down` are its clients.
//!
//! # Layout
//! - `mod.rs`: paths and the types on the wire.
//! - `server.rs`: the server inside `berth up`.
//! - `client.rs`: the client the other verbs use.

pub mod client;
pub mod deploy;
pub mod edge;
pub mod logs;
pub mod server;
pub mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The socket of a project's running stack.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("berth.sock")
}

/// `GET /v1/ps`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ps {
    /// When this view was taken (RFC 3339).
    #[serde(default)]
    pub ts: Option<String>,
    pub project: String,
    pub pid: u32,
    pub started_at: String,
    /// Where the edge proxy listens, when there is one, as URLs
    /// (`http://127.0.0.1:8080`, `https://0.0.0.0:443`).
    pub proxy: Vec<String>,
    pub services: Vec<ServiceRow>,
    /// Log lines that never reached a file (a full disk…) since the start.
    #[serde(default)]
    pub log_lines_lost: u64,
    /// The edge proxy's TLS certificates, when it has TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateRow>,
}

/// A TLS certificate of the edge proxy (`file`, `acme`, `self-signed`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateRow {
    pub source: String,
    pub names: Vec<String>,
    /// RFC 3339; `None` while ACME has none yet.
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeRow>,
}

/// How ordering an ACME certificate goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcmeRow {
    pub directory: String,
    pub challenge: String,
    /// Orders placed since the start (0: a kept certificate is served).
    pub orders: u32,
    /// Failed orders in a row.
    pub failures: u32,
    /// The last failure, with the CA's problem detail.
    pub last_error: Option<String>,
    /// RFC 3339: when the next order is due (renewal or retry).
    pub next_attempt: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRow {
    pub name: String,
    /// Declared port -> where berth listens for it.
    pub listening: BTreeMap<u16, String>,
    /// Declared `/udp` port -> where berth relays datagrams from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listening_udp: BTreeMap<u16, String>,
    /// Its restart policy restarts a replica that turns unhealthy.
    #[serde(default)]
    pub self_heals: bool,
    pub replicas: Vec<ReplicaRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaRow {
    pub name: String,
    pub index: u32,
    pub state: berth_engine::ReplicaState,
    pub health: berth_engine::Health,
    pub ready: bool,
    pub pid: Option<u32>,
    /// Declared port -> this replica's own port.
    pub ports: BTreeMap<u16, u16>,
    pub restarts: u32,
    pub started_at: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub exit: Option<String>,
    pub cpu_seconds: Option<f64>,
    /// Memory in use (what its cgroup charges, where it has one).
    pub rss_bytes: Option<u64>,
    /// The memory limit its cgroup enforces.
    #[serde(default)]
    pub memory_limit: Option<u64>,
    /// Runs of it the OOM killer ended.
    #[serde(default)]
    pub oom_kills: u32,
    pub message: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub failure: Option<berth_engine::Failure>,
}

/// Body of `POST /v1/{restart,stop,start}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Services {
    /// Empty: every service.
    pub services: Vec<String>,
}

/// Body of `POST /v1/scale`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scale {
    pub scale: BTreeMap<String, u32>,
}

/// Body of `POST /v1/down`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Down {
    /// Seconds before remaining processes are killed (default: each
    /// service's stop_grace_period).
    pub timeout: Option<u64>,
    /// Also delete named volumes.
    pub volumes: bool,
}

/// What `exec` needs to run a command as a replica would.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecTarget {
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    /// Set when the service runs as containers: the command runs in the
    /// replica's container (`docker exec`), as this replica number.
    #[serde(default)]
    pub container: Option<ExecContainer>,
}

/// Which container `berth exec` runs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecContainer {
    pub project: String,
    pub replica: u32,
}

/// Replies of the POST verbs: what happened, one line each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub lines: Vec<String>,
}

/// Any error reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Body of `POST /v1/deploy`: reconcile the running stack with the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deploy {
    /// How the client loaded the file (its directory, flags, environment).
    pub load: berth_compose::LoadOptions,
    /// Only these services (with their dependencies); empty: all.
    pub services: Vec<String>,
    /// `--scale`.
    pub scale: BTreeMap<String, u32>,
    /// Stop services no longer in the file.
    pub remove_orphans: bool,
    /// Say what would change, change nothing.
    pub dry_run: bool,
    /// Run `x-berth.build` steps of services being replaced or started.
    pub build: bool,
    /// `up --runtime`: must be the one the stack runs with.
    #[serde(default)]
    pub runtime: Option<berth_compose::RuntimeChoice>,
}

/// The answer to `POST /v1/deploy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployReport {
    /// One line per service: keep, replace (keys), start, stop, scale.
    pub plan: Vec<String>,
    /// Nothing differs.
    pub nothing_to_do: bool,
    /// What was done, one line each.
    pub done: Vec<String>,
    /// Services gone from the file, left running (no `--remove-orphans`).
    pub orphans: Vec<String>,
    /// Why the deploy stopped (the failed service and its last probe output).
    pub failed: Option<String>,
}
