//! berth's own settings, under `x-berth` keys so the same file stays valid
//! for `docker compose`.
//!
//! The shapes are checked by `schema/x-berth.json` with the rest of the
//! file; these types are what the engine and the proxy read, with every
//! default filled in.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::units::{ByteSize, Duration};

pub use crate::backup::*;
pub use crate::dashboard::*;
pub use crate::edge::*;

/// `x-berth` at the top level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectSettings {
    /// Socket, logs, named volumes and pid file; absolute.
    pub state_dir: PathBuf,
    /// The edge proxy, when configured.
    pub proxy: Option<ProxySettings>,
    /// A limit the machine cannot enforce is an error, not a warning.
    pub strict: bool,
    /// The services' default runtime.
    pub runtime: RuntimeChoice,
    /// `berth up --runtime`: every service's runtime for this run, over
    /// what the file says; kept with the running project, so that `down`
    /// and later deploys see the runtime the stack runs with.
    #[serde(skip)]
    pub forced_runtime: Option<RuntimeChoice>,
    /// `x-berth.backup`: where archives go, which are kept, when they are
    /// made and who can read them.
    pub backup: BackupSettings,
    /// `x-berth.dashboard`: the browser dashboard, when it is on.
    pub dashboard: Option<DashboardSettings>,
}

/// `x-berth.runtime`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeChoice {
    /// Docker for a service with `image` or `build`, native otherwise.
    #[default]
    Auto,
    Native,
    Docker,
}

/// What runs a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// A process on this machine (its `command` is the program).
    Native,
    /// A container through the Docker Engine.
    Docker,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Native => "native",
            RuntimeKind::Docker => "docker",
        }
    }
}

impl std::str::FromStr for RuntimeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(RuntimeChoice::Auto),
            "native" => Ok(RuntimeChoice::Native),
            "docker" => Ok(RuntimeChoice::Docker),
            _ => Err(format!(
                "{s:?} is not a runtime: use auto, native or docker"
            )),
        }
    }
}

impl Default for ProjectSettings {
    fn default() -> Self {
        ProjectSettings {
            state_dir: PathBuf::from(".berth"),
            proxy: None,
            strict: false,
            runtime: RuntimeChoice::Auto,
            forced_runtime: None,
            backup: BackupSettings::defaults(std::path::Path::new(".berth")),
            dashboard: None,
        }
    }
}

/// `x-berth.proxy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxySettings {
    /// Addresses to listen on (`127.0.0.1:8080`, `:80`, `[::1]:8443`).
    pub listen: Vec<String>,
    /// Addresses to listen on with TLS (HTTP/2 and HTTP/1.1 by ALPN).
    pub listen_tls: Vec<String>,
    /// Certificates for `listen_tls`; set whenever `listen_tls` is.
    pub tls: Option<TlsSettings>,
    /// Plain listeners answer 308 to the same URL on https (ACME http-01
    /// paths excepted).
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age` on TLS responses, in seconds; 0: none.
    pub hsts: u64,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Routes in the order written; matching picks the longest path prefix.
    pub routes: Vec<Route>,
    /// Aggregated stack health as JSON; `None` turns it off.
    pub health_path: Option<String>,
    /// Prometheus metrics; `None` turns them off.
    pub metrics_path: Option<String>,
    /// One JSON line per request in the log stream, under `proxy`.
    pub access_log: bool,
    /// Largest request body accepted (413 above), unless a route says otherwise.
    pub max_body_size: ByteSize,
    /// Largest request head accepted (431 above).
    pub max_header_size: ByteSize,
    pub timeouts: ProxyTimeouts,
}

impl Default for ProxySettings {
    /// What `proxy: {}` means: one plain listener on 127.0.0.1:8080, no
    /// routes, no TLS, access log on, 10 MiB bodies, 64 KiB heads.
    fn default() -> Self {
        ProxySettings {
            listen: vec!["127.0.0.1:8080".into()],
            listen_tls: Vec::new(),
            tls: None,
            redirect_http: false,
            hsts: 0,
            trusted_proxies: Vec::new(),
            routes: Vec::new(),
            health_path: None,
            metrics_path: None,
            access_log: true,
            max_body_size: ByteSize(10 * 1024 * 1024),
            max_header_size: ByteSize(64 * 1024),
            timeouts: ProxyTimeouts::default(),
        }
    }
}

/// Proxy timeouts, defaults filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProxyTimeouts {
    /// Time a client has to send the request head (slowloris guard).
    pub header_read: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle: Duration,
    /// Connecting to an upstream replica.
    pub connect: Duration,
    /// Waiting for an upstream's response head (504 after).
    pub response: Duration,
    /// A WebSocket with no traffic either way is closed after this.
    pub websocket_idle: Duration,
}

impl Default for ProxyTimeouts {
    fn default() -> Self {
        let s = |n| Duration(std::time::Duration::from_secs(n));
        ProxyTimeouts {
            header_read: s(10),
            idle: s(60),
            connect: s(5),
            response: s(60),
            websocket_idle: s(3600),
        }
    }
}

/// One route of the edge proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Path prefix, matched on whole segments (`/api` matches `/api/x`, not `/apix`).
    pub path: String,
    /// Matches the request's host (without port) exactly when set.
    pub host: Option<String>,
    pub target: RouteTarget,
    /// Largest request body for this route, overriding the proxy's.
    pub max_body_size: Option<ByteSize>,
    /// Upstream response timeout for this route, overriding the proxy's.
    pub timeout: Option<Duration>,
    /// Who may use it, how often, and what its responses carry.
    pub policy: RoutePolicy,
}

/// Where a route sends requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// The ready replicas of a service.
    Service {
        service: String,
        /// The declared container port to use, when the service has several.
        port: Option<u16>,
        strip_prefix: bool,
        lb: LoadBalancing,
    },
    /// Files from a directory.
    Static {
        /// Absolute.
        root: PathBuf,
        /// Unknown extension-less paths serve `index`.
        spa: bool,
        index: String,
        /// Served as `/env-config.js`: `window._env_ = {...};`.
        env_js: IndexMap<String, Json>,
    },
}

/// How a route spreads requests over replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    #[default]
    RoundRobin,
    LeastConn,
}

/// `x-berth` on a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceSettings {
    /// Native build step run before the service first starts.
    pub build: Option<BuildCommand>,
    /// Readiness probe polled fast until the first success.
    pub ready: Option<Ready>,
    pub bind: Bind,
    /// `x-berth.runtime` of the service, if written.
    pub runtime: Option<RuntimeChoice>,
    /// How long a deploy waits for a replacement replica to be ready
    /// before it rolls the service back (`x-berth.deploy.timeout`).
    pub deploy_timeout: Option<Duration>,
    /// `x-berth.stateful: true`: exported to Kubernetes as a StatefulSet
    /// whatever its replica count.
    pub stateful: bool,
    /// `x-berth.kube`: only read by `berth export kubernetes`.
    pub kube: KubeSettings,
    /// `x-berth.backup`: only read by `berth backup` and `berth restore`.
    pub backup: ServiceBackup,
}

/// `x-berth.kube` on a service: what `berth export kubernetes` cannot learn
/// from the rest of the file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct KubeSettings {
    /// The image to run in the cluster; a service that runs natively (a
    /// `command`, no `image` or `build`) has no other.
    pub image: Option<String>,
    /// The size of each PersistentVolumeClaim made for the service's named
    /// volumes (default 1 GiB).
    pub storage: Option<ByteSize>,
    /// The type of the Kubernetes Service for the published ports.
    pub service_type: Option<ServiceType>,
}

/// `x-berth.kube.service_type`, spelled as Kubernetes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    /// Reachable inside the cluster only (the default).
    #[serde(rename = "ClusterIP")]
    ClusterIp,
    /// Also on a port of every node.
    NodePort,
    /// Also through the cloud's load balancer.
    LoadBalancer,
}

/// A build step: a string runs through `sh -c`, a list is an argv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BuildCommand {
    Shell(String),
    Argv(Vec<String>),
}

/// `x-berth.ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ready {
    pub probe: ReadyProbe,
    /// Time between polls until the first success.
    pub interval: Duration,
    /// Time one poll may take.
    pub timeout: Duration,
}

/// What counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyProbe {
    /// `GET` this path on the replica's `$PORT` answers 2xx or 3xx.
    Http(String),
    /// A TCP connect to the replica's `$PORT` succeeds.
    Tcp,
    /// A line of the replica's output matches this regex.
    Log(String),
}

/// How a replica's port is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bind {
    /// Each replica gets its own port in `$PORT`; berth listens on the
    /// declared ports and forwards.
    #[default]
    Forwarded,
    /// The process binds its declared port itself: one replica, restarts in place.
    Direct,
}

/// Raw shapes as written, bound from the tree after schema validation.
pub(crate) mod raw {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Project {
        pub state_dir: Option<String>,
        pub proxy: Option<Proxy>,
        pub strict: bool,
        pub runtime: RuntimeChoice,
        /// Bound and checked by `normalize::backup`, at its own lines.
        #[serde(rename = "backup")]
        pub _backup: Option<serde::de::IgnoredAny>,
        /// Bound and checked by `normalize::dashboard`, at its own lines.
        #[serde(rename = "dashboard")]
        pub _dashboard: Option<serde::de::IgnoredAny>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Proxy {
        pub listen: Option<OneOrMany>,
        pub listen_tls: Option<OneOrMany>,
        pub tls: Option<Tls>,
        pub redirect_http: Option<bool>,
        /// Seconds, or a duration: checked where it is converted.
        pub hsts: Option<Json>,
        pub trusted_proxies: Vec<String>,
        pub routes: Vec<Route>,
        pub health_path: Option<Option<String>>,
        pub metrics_path: Option<Option<String>>,
        pub access_log: Option<bool>,
        pub max_body_size: Option<ByteSize>,
        pub max_header_size: Option<ByteSize>,
        pub timeouts: Timeouts,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Tls {
        pub certificates: Vec<Certificate>,
        pub acme: Option<Acme>,
        pub self_signed: bool,
        /// `1.2` or `1.3`, a number or a string.
        pub min_version: Option<Json>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Certificate {
        pub cert: String,
        pub key: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Acme {
        pub email: Option<String>,
        pub domains: Vec<String>,
        pub directory: Option<String>,
        pub challenge: Option<String>,
        pub ca_root: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Headers {
        pub set: IndexMap<String, String>,
        pub remove: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Cors {
        pub origins: Vec<String>,
        pub methods: Option<Vec<String>>,
        pub headers: Vec<String>,
        pub expose_headers: Vec<String>,
        pub credentials: bool,
        pub max_age: Option<Duration>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct RateLimit {
        pub rate: String,
        pub burst: Option<u32>,
        pub key: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Timeouts {
        pub header_read: Option<Duration>,
        pub idle: Option<Duration>,
        pub connect: Option<Duration>,
        pub response: Option<Duration>,
        pub websocket_idle: Option<Duration>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    impl OneOrMany {
        pub fn into_vec(self) -> Vec<String> {
            match self {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            }
        }
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Route {
        pub path: String,
        pub host: Option<String>,
        pub service: Option<String>,
        pub port: Option<u16>,
        pub strip_prefix: bool,
        pub lb: LoadBalancing,
        #[serde(rename = "static")]
        pub static_dir: Option<String>,
        pub spa: bool,
        pub index: Option<String>,
        pub env_js: IndexMap<String, Json>,
        pub max_body_size: Option<ByteSize>,
        pub timeout: Option<Duration>,
        pub headers: Headers,
        pub security_headers: Option<bool>,
        pub cors: Option<Cors>,
        pub rate_limit: Option<RateLimit>,
        pub allow: Vec<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct Service {
        pub build: Option<OneOrMany>,
        pub ready: Option<ReadyRaw>,
        pub bind: Bind,
        pub deploy: DeployRaw,
        pub runtime: Option<RuntimeChoice>,
        pub stateful: Option<bool>,
        pub kube: KubeRaw,
        /// Bound and checked by `normalize::backup`, at its own lines.
        #[serde(rename = "backup")]
        pub _backup: Option<serde::de::IgnoredAny>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct KubeRaw {
        pub image: Option<String>,
        /// A size: checked where it is converted, to report it at its line.
        pub storage: Option<Json>,
        pub service_type: Option<ServiceType>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct DeployRaw {
        pub timeout: Option<Duration>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    pub struct ReadyRaw {
        pub http: Option<String>,
        pub tcp: Option<bool>,
        pub log: Option<String>,
        pub interval: Option<Duration>,
        pub timeout: Option<Duration>,
    }
}
