//! From the [`Project`] to what the engine runs: per service, the argv, the
//! environment, the ports to listen on and to hand out, the probes, the
//! restart policy. The model is typed and validated with file and line, so
//! planning cannot fail; [`native_problems`] lists, at once and before
//! anything starts, what the native runtime cannot run.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_compose::{
    Bind, BuildCommand, Condition, HealthCheck, LogRotation, Project, Protocol, Ready,
    RestartPolicy, RuntimeChoice, RuntimeKind, Service, Signal, SignalId, VolumeKind,
};

/// Everything needed to run one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    pub name: String,
    /// Set when the service runs as containers (the Docker runtime).
    pub container: Option<ContainerPlan>,
    pub replicas: u32,
    pub argv: Vec<String>,
    pub working_dir: PathBuf,
    /// The environment before per-replica variables (`PORT`, `BERTH_REPLICA`).
    pub env: BTreeMap<String, String>,
    /// Declared container ports, in order: `PORT` is the first one's.
    pub targets: Vec<u16>,
    /// Addresses berth listens on and forwards from, per target.
    pub listen: Vec<Listen>,
    /// Published `/udp` ports of a container service: berth relays the
    /// datagrams arriving there to its ready replicas (their targets are
    /// in `targets` too, after the TCP ones).
    pub udp: Vec<Listen>,
    pub bind: Bind,
    pub healthcheck: Option<HealthCheck>,
    pub ready: Option<Ready>,
    pub restart: RestartPolicy,
    /// First restart delay (doubles up to [`MAX_BACKOFF`]).
    pub backoff: Duration,
    pub stop_signal: i32,
    pub stop_grace: Duration,
    pub depends_on: Vec<Dependency>,
    pub build: Option<BuildCommand>,
    pub log_rotation: LogRotation,
    /// Directories to create before the first start (named volumes).
    pub volume_dirs: Vec<PathBuf>,
    /// How long a deploy waits for a replacement replica to be ready.
    pub deploy_timeout: Duration,
    /// Limits and privileges of its processes (replicas, health checks).
    pub confinement: berth_compose::Confinement,
    /// `tmpfs` targets (and volumes of type tmpfs): each incarnation gets a
    /// fresh directory for each under `scratch`, removed when it ends (a
    /// tmpfs mounted on it where berth may mount).
    pub tmpfs: Vec<Tmpfs>,
    /// Where those directories go: `<state_dir>/tmpfs/<project>_<service>`.
    pub scratch: PathBuf,
    /// The host directories of its writable volumes (all that a
    /// `read_only` service may write, with `/dev`).
    pub writable: Vec<PathBuf>,
    /// Who they run as (`user`, `group_add`); `None`: as berth, or a user
    /// this machine does not know ([`native_problems`] says so).
    pub identity: Option<crate::confine::Identity>,
}

/// A dependency of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: String,
    pub condition: Condition,
    pub required: bool,
    /// `restart: true`: restarting the dependency restarts this service too.
    pub restart: bool,
}

impl ServicePlan {
    /// A replica's environment: the service's, then `BERTH_REPLICA`, `PORT`
    /// (its own port for the first declared port, or the port berth gave
    /// it when the service declares none) and `PORT_<n>` per declared port.
    /// `ports` maps declared ports to the replica's (0: no declared port).
    pub fn replica_env(&self, index: u32, ports: &BTreeMap<u16, u16>) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.insert("BERTH_REPLICA".into(), index.to_string());
        let first = self.targets.first().copied().unwrap_or(0);
        if let Some(port) = ports.get(&first) {
            env.insert("PORT".into(), port.to_string());
        }
        for (target, port) in ports {
            if *target != 0 {
                env.insert(format!("PORT_{target}"), port.to_string());
            }
        }
        env
    }
}

/// One address berth listens on for a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub target: u16,
    /// Published (`ports`) rather than `expose`-only.
    pub published: bool,
}

/// How long a replica leaving the load balancer keeps running before its
/// in-flight count is trusted: forwarders and the proxy follow the published
/// set on their own tasks, and must have seen it go.
pub const DEREGISTRATION_DELAY: Duration = Duration::from_millis(100);

/// The longest restart backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The first restart backoff.
pub const BASE_BACKOFF: Duration = Duration::from_millis(100);
/// A replica up this long gets its backoff reset.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// One problem that stops the stack from starting natively.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service {service}: {message}")]
pub struct PlanError {
    pub service: String,
    pub message: String,
}

/// Plans every service of the project, in start order, each for the
/// runtime its settings choose. The model is typed and validated, so
/// planning cannot fail; what the native runtime cannot do is
/// [`native_problems`].
pub fn plan(project: &Project, inherited: &BTreeMap<String, String>) -> Vec<ServicePlan> {
    plan_with(project, inherited, None)
}

/// [`plan`], with every service's runtime `forced` (`up --runtime`).
pub fn plan_with(
    project: &Project,
    inherited: &BTreeMap<String, String>,
    forced: Option<RuntimeChoice>,
) -> Vec<ServicePlan> {
    project
        .start_order()
        .into_iter()
        .filter_map(|name| project.services.get(name))
        .map(|service| {
            let mut plan = plan_service(project, service, inherited);
            if project.runtime_of(service, forced) == RuntimeKind::Docker {
                plan.container = Some(container_plan(project, service));
                // `x-berth.build` makes what a native process runs; a
                // container runs its image.
                plan.build = None;
                plan.udp = udp_ports(service);
                for l in &plan.udp {
                    if !plan.targets.contains(&l.target) {
                        plan.targets.push(l.target);
                    }
                }
            }
            plan
        })
        .collect()
}

/// What a container of the service runs, as Compose says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan {
    pub project: String,
    /// The image to run: `image:`, or for a service with only `build:`
    /// the one built for it, `<project>-<service>` as Compose names it.
    pub image: Option<String>,
    /// `build:`: the image is built through the engine before it starts.
    pub build: Option<ImageBuild>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// The service's own environment (nothing of berth's).
    pub env: BTreeMap<String, String>,
    /// `com.docker.compose.config-hash`.
    pub config_hash: String,
    pub stop_signal: Option<String>,
    pub host: crate::runtime::ContainerHost,
}

/// `build:` as the engine takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    /// The context directory (absolute).
    pub context: PathBuf,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
}

fn image_build(s: &Service) -> Option<ImageBuild> {
    let b = s.other.get("build")?;
    let text = |k: &str| b.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(ImageBuild {
        context: PathBuf::from(text("context")?),
        dockerfile: text("dockerfile").unwrap_or_else(|| "Dockerfile".into()),
        args: b
            .get("args")
            .and_then(|a| a.as_object())
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        target: text("target"),
    })
}

fn container_plan(project: &Project, s: &Service) -> ContainerPlan {
    let build = image_build(s);
    ContainerPlan {
        project: project.name.clone(),
        image: s.image.clone().or_else(|| {
            build
                .as_ref()
                .map(|_| format!("{}-{}", project.name, s.name))
        }),
        build,
        command: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        env: s
            .environment
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect(),
        config_hash: berth_compose::diff::config_hash(s),
        stop_signal: s.stop_signal.as_ref().map(ToString::to_string),
        host: container_host(project, s),
    }
}

/// What the file says of a container beyond its command.
fn container_host(project: &Project, s: &Service) -> crate::runtime::ContainerHost {
    let binds = s
        .volumes
        .iter()
        .filter_map(|v| {
            let source = match v.kind {
                VolumeKind::Bind => v.source.clone()?,
                VolumeKind::Volume => project.volume_name(v.source.as_ref()?),
                _ => return None,
            };
            let ro = if v.read_only { ":ro" } else { "" };
            Some(format!("{source}:{}{ro}", v.target))
        })
        .collect();
    let tmpfs = tmpfs_targets(s)
        .into_iter()
        .map(|t| {
            let mut options = Vec::new();
            if let Some(size) = t.size {
                options.push(format!("size={size}"));
            }
            if let Some(mode) = t.mode {
                options.push(format!("mode={mode:o}"));
            }
            (t.target, options.join(","))
        })
        .collect();
    let extra_hosts = match s.other.get("extra_hosts") {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(h, a)| format!("{h}:{}", a.as_str().unwrap_or_default()))
            .collect(),
        _ => s
            .strings("extra_hosts")
            .into_iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
    };
    crate::runtime::ContainerHost {
        binds,
        tmpfs,
        read_only: s.confinement.read_only,
        cap_add: s.strings("cap_add"),
        cap_drop: s.strings("cap_drop"),
        security_opt: s.strings("security_opt"),
        limits: s.confinement.limits,
        ulimits: s.confinement.ulimits.clone(),
        init: s.other.get("init").and_then(serde_json::Value::as_bool),
        extra_hosts,
        networks: container_networks(project, s),
    }
}

/// The networks a container of `s` joins (`networks:`, list or map form,
/// with `aliases`), highest `priority` first, except that a network with
/// a route out comes first: the engine publishes ports only there.
fn container_networks(project: &Project, s: &Service) -> Vec<crate::runtime::NetworkAttachment> {
    use serde_json::Value as Json;
    let Some(joined) = s.other.get("networks").and_then(Json::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, crate::runtime::NetworkAttachment)> = joined
        .iter()
        .map(|(key, how)| {
            let aliases = how
                .get("aliases")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect();
            let priority = how.get("priority").and_then(Json::as_i64).unwrap_or(0);
            let network = project_network(project, key);
            (
                priority,
                crate::runtime::NetworkAttachment { network, aliases },
            )
        })
        .collect();
    out.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.network.key.cmp(&b.1.network.key))
    });
    let mut out: Vec<crate::runtime::NetworkAttachment> = out.into_iter().map(|(_, a)| a).collect();
    if let Some(routed) = out.iter().position(|a| !a.network.internal) {
        let first = out.remove(routed);
        out.insert(0, first);
    }
    out
}

/// A top-level network as the engine makes it.
fn project_network(project: &Project, key: &str) -> crate::runtime::Network {
    use serde_json::Value as Json;
    let def = project.networks.get(key);
    let field = |k: &str| def.and_then(|d| d.get(k));
    let flag = |k: &str| field(k).and_then(Json::as_bool).unwrap_or(false);
    let strings = |k: &str| -> BTreeMap<String, String> {
        field(k)
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect()
    };
    let external = flag("external");
    crate::runtime::Network {
        key: key.to_string(),
        name: field("name").and_then(Json::as_str).map_or_else(
            || {
                if external {
                    key.to_string()
                } else {
                    format!("{}_{key}", project.name)
                }
            },
            str::to_string,
        ),
        driver: field("driver").and_then(Json::as_str).map(str::to_string),
        driver_opts: strings("driver_opts"),
        labels: strings("labels"),
        internal: flag("internal"),
        attachable: flag("attachable"),
        external,
    }
}

/// What stops Docker services from running, all at once.
pub fn docker_problems(plans: &[ServicePlan]) -> Vec<PlanError> {
    plans
        .iter()
        .filter_map(|p| {
            let c = p.container.as_ref()?;
            c.image.is_none().then(|| PlanError {
                service: p.name.clone(),
                message: "has neither `image:` nor `build:` to run as a container".into(),
            })
        })
        .collect()
}

/// Everything that stops the plans from running as native processes, all
/// at once, each with what to do.
pub fn native_problems(project: &Project, plans: &[ServicePlan]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    for plan in plans {
        let Some(s) = project.services.get(&plan.name) else {
            continue;
        };
        if plan.container.is_some() {
            continue;
        }
        let mut problem = |message: String| {
            errors.push(PlanError {
                service: plan.name.clone(),
                message,
            });
        };
        if plan.argv.is_empty() {
            problem(match &s.image {
                Some(image) => format!(
                    "no command to run natively (image {image} is not run by the native runtime); add `command:` with the program to start"
                ),
                None => "no command to run; add `command:` (or `entrypoint:`)".to_string(),
            });
        }
        for p in s.ports.iter().filter(|p| p.protocol != Protocol::Tcp) {
            problem(format!(
                "port {}/{} is not TCP; the native runtime forwards TCP only",
                p.target, p.protocol
            ));
        }
        if plan.bind == Bind::Direct && plan.replicas > 1 {
            problem(format!(
                "x-berth.bind: direct runs one process that binds its own port, but {} replicas are asked for",
                plan.replicas
            ));
        }
        if let Some(Err(why)) = identity(s) {
            problem(format!("{why}; create it, or change `user`/`group_add`"));
        } else if let Some(who) = &plan.identity
            && !is_root()
            && who.uid != nix::unistd::getuid().as_raw()
        {
            problem(format!(
                "user: running as uid {} needs berth to run as root (it runs as uid {})",
                who.uid,
                nix::unistd::getuid()
            ));
        }
        if s.other.contains_key("cap_add") && !is_root() {
            problem(
                "cap_add: granting capabilities takes berth running as root (without it, processes have none to add)"
                    .to_string(),
            );
        }
        if plan.listen.len() > MAX_PORTS {
            problem(format!(
                "{} ports declared; natively berth listens on each declared port itself and takes at most {MAX_PORTS} per service — declare the ports the service uses",
                plan.listen.len()
            ));
        }
    }
    check_listen_conflicts(plans, &mut errors);
    errors
}

fn plan_service(
    project: &Project,
    s: &Service,
    inherited: &BTreeMap<String, String>,
) -> ServicePlan {
    let mounts = mounts(project, s);
    let working_dir = match &s.working_dir {
        None => project.directory.clone(),
        Some(w) => translate(w, &mounts).unwrap_or_else(|| project.directory.join(w)),
    };
    let identity = identity(s).and_then(Result::ok);
    let (mut env, volume_dirs) = environment(project, s, inherited, &mounts);
    if let Some(who) = &identity {
        // As a login would, unless the file says otherwise.
        let unset = |k: &str| !s.environment.contains_key(k);
        if let (Some(home), true) = (&who.home, unset("HOME")) {
            env.insert("HOME".into(), home.to_string_lossy().into_owned());
        }
        if let Some(name) = &who.name {
            for k in ["USER", "LOGNAME"] {
                if unset(k) {
                    env.insert(k.into(), name.clone());
                }
            }
        }
    }
    let (targets, mut listen) = ports(s);
    let bind = s.settings.bind;
    if bind == Bind::Direct {
        // The process binds its declared ports itself; berth does not listen.
        listen.clear();
    }
    ServicePlan {
        name: s.name.clone(),
        container: None,
        replicas: s.replicas(),
        argv: s.argv(),
        working_dir,
        env,
        targets,
        listen,
        udp: Vec::new(),
        bind,
        healthcheck: s.healthcheck.clone().filter(HealthCheck::is_enabled),
        ready: s.settings.ready.clone(),
        restart: s.restart_policy(),
        backoff: backoff(s),
        stop_signal: s.stop_signal.as_ref().map_or(libc::SIGTERM, signal_number),
        stop_grace: s.stop_grace_period.0,
        depends_on: dependencies(project, s),
        build: s.settings.build.clone(),
        log_rotation: s.logging.as_ref().map(|l| l.rotation).unwrap_or_default(),
        volume_dirs,
        deploy_timeout: deploy_timeout(s),
        confinement: s.confinement.clone(),
        writable: mounts
            .iter()
            .filter(|m| !m.read_only)
            .map(|m| m.host.clone())
            .collect(),
        tmpfs: tmpfs_targets(s),
        scratch: project
            .settings
            .state_dir
            .join("tmpfs")
            .join(format!("{}_{}", project.name, s.name)),
        identity,
    }
}

/// `x-berth.deploy.timeout`, else the health check's start period plus
/// its retries' intervals; at least [`MIN_DEPLOY_TIMEOUT`].
fn deploy_timeout(s: &Service) -> Duration {
    if let Some(t) = s.settings.deploy_timeout {
        return t.0;
    }
    let from_health = s
        .healthcheck
        .as_ref()
        .filter(|h| h.is_enabled())
        .map_or(Duration::ZERO, |h| {
            h.start_period.map_or(Duration::ZERO, |d| d.0) + h.interval.0 * h.retries
        });
    from_health.max(MIN_DEPLOY_TIMEOUT)
}

/// The shortest wait for a replacement replica to be ready by default.
pub const MIN_DEPLOY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `tmpfs` target and the options a mount takes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: String,
    /// Bytes (`size=64m`); the kernel's default (half the memory) if unset.
    pub size: Option<u64>,
    /// The root's mode (`mode=1777`, Docker's default).
    pub mode: Option<u32>,
}

/// `tmpfs: [/run, "/tmp:size=64m,mode=1770"]` and `volumes` of type
/// tmpfs: their targets, sizes and modes (other options are a
/// container's).
fn tmpfs_targets(s: &Service) -> Vec<Tmpfs> {
    let listed = s
        .other
        .get("tmpfs")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .map(|t| {
            let (target, options) = t.split_once(':').unwrap_or((t, ""));
            let option = |key: &str| {
                options
                    .split(',')
                    .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
            };
            Tmpfs {
                target: target.to_string(),
                size: option("size")
                    .and_then(|v| berth_compose::ByteSize::parse(v).ok())
                    .map(berth_compose::ByteSize::bytes),
                mode: option("mode").and_then(|m| u32::from_str_radix(m, 8).ok()),
            }
        });
    let volumes = s
        .volumes
        .iter()
        .filter(|v| v.kind == VolumeKind::Tmpfs)
        .map(|v| Tmpfs {
            target: v.target.clone(),
            size: v.tmpfs.as_ref().and_then(|t| t.size).map(|b| b.bytes()),
            mode: v.tmpfs.as_ref().and_then(|t| t.mode),
        });
    let mut out: Vec<Tmpfs> = listed.chain(volumes).collect();
    out.dedup_by(|a, b| a.target == b.target);
    out
}

/// `user` and `group_add` resolved on this machine (`None`: neither set).
fn identity(s: &Service) -> Option<Result<crate::confine::Identity, String>> {
    let groups: Vec<String> = s
        .other
        .get("group_add")
        .and_then(|g| g.as_array())
        .map(|g| {
            g.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match &s.user {
        Some(user) => Some(crate::confine::resolve(user, &groups)),
        None if groups.is_empty() => None,
        // Extra groups for berth's own user.
        None => Some(crate::confine::resolve(
            &nix::unistd::getuid().to_string(),
            &groups,
        )),
    }
}

/// The first restart delay: `deploy.restart_policy.delay` (at least 10 ms).
fn backoff(s: &Service) -> Duration {
    s.deploy
        .as_ref()
        .and_then(|d| d.restart_policy.as_ref())
        .and_then(|r| r.delay)
        .map_or(BASE_BACKOFF, |d| d.0.max(Duration::from_millis(10)))
}

/// The dependencies that exist (an optional one on a missing service is none).
fn dependencies(project: &Project, s: &Service) -> Vec<Dependency> {
    s.depends_on
        .iter()
        .filter(|(dep, d)| d.required || project.services.contains_key(*dep))
        .map(|(dep, d)| Dependency {
            service: dep.clone(),
            condition: d.condition,
            required: d.required,
            restart: d.restart,
        })
        .collect()
}

/// The service's environment (berth's, then the file's, then berth's own
/// variables and one per mount), and the named volumes' directories.
fn environment(
    project: &Project,
    s: &Service,
    inherited: &BTreeMap<String, String>,
    mounts: &[Mount],
) -> (BTreeMap<String, String>, Vec<PathBuf>) {
    let mut env: BTreeMap<String, String> = inherited.clone();
    for (k, v) in &s.environment {
        if let Some(v) = v {
            env.insert(k.clone(), v.clone());
        }
    }
    let mut volume_dirs = Vec::new();
    for m in mounts {
        env.insert(volume_var(&m.target), m.host.to_string_lossy().into_owned());
        if m.named {
            volume_dirs.push(m.host.clone());
        }
    }
    env.insert("BERTH_SERVICE".into(), s.name.clone());
    env.insert("BERTH_PROJECT".into(), project.name.clone());
    (env, volume_dirs)
}

/// Declared TCP ports in order, and where berth listens for each.
fn ports(s: &Service) -> (Vec<u16>, Vec<Listen>) {
    let mut targets: Vec<u16> = Vec::new();
    // Membership of `targets` and of the targets in `listen`, so that long
    // ranges stay linear.
    let mut target_set: BTreeSet<u16> = BTreeSet::new();
    let mut listened: BTreeSet<u16> = BTreeSet::new();
    let mut listen = Vec::new();
    for p in s.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
        if target_set.insert(p.target) {
            targets.push(p.target);
        }
        let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let port = p.published.map_or(0, |r| r.start);
        listened.insert(p.target);
        listen.push(Listen {
            addr: SocketAddr::new(ip, port),
            target: p.target,
            published: true,
        });
    }
    for e in s.expose.iter().filter(|e| e.protocol == Protocol::Tcp) {
        for t in e.ports.ports() {
            if target_set.insert(t) {
                targets.push(t);
            }
            if listened.insert(t) {
                listen.push(Listen {
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), t),
                    target: t,
                    published: false,
                });
            }
        }
    }
    (targets, listen)
}

/// Published `/udp` ports, where berth listens for datagrams.
fn udp_ports(s: &Service) -> Vec<Listen> {
    let mut out: Vec<Listen> = Vec::new();
    for p in s.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        let ip = p.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, p.published.map_or(0, |r| r.start));
        if !out.iter().any(|l| l.addr == addr && l.target == p.target) {
            out.push(Listen {
                addr,
                target: p.target,
                published: true,
            });
        }
    }
    out
}

/// A mount as the native runtime sees it: the container path a program
/// expects, and the host directory standing for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    target: String,
    host: PathBuf,
    named: bool,
    read_only: bool,
}

fn mounts(project: &Project, s: &Service) -> Vec<Mount> {
    let mut out = Vec::new();
    for v in &s.volumes {
        match v.kind {
            VolumeKind::Bind => {
                if let Some(src) = &v.source {
                    out.push(Mount {
                        target: v.target.clone(),
                        host: project.directory.join(src),
                        named: false,
                        read_only: v.read_only,
                    });
                }
            }
            VolumeKind::Volume => {
                // An anonymous volume gets a directory of its own per service.
                let name = match &v.source {
                    Some(src) => project.volume_name(src),
                    None => format!(
                        "{}_{}_anon{}",
                        project.name,
                        s.name,
                        berth_compose::target_word(&v.target).to_lowercase()
                    ),
                };
                out.push(Mount {
                    target: v.target.clone(),
                    host: project.settings.state_dir.join("volumes").join(name),
                    named: true,
                    read_only: v.read_only,
                });
            }
            _ => {}
        }
    }
    out
}

pub use berth_compose::volume_var;

/// A container path under a mount target, as the host path behind it.
fn translate(container_path: &str, mounts: &[Mount]) -> Option<PathBuf> {
    let p = Path::new(container_path);
    mounts
        .iter()
        .filter_map(|m| p.strip_prefix(&m.target).ok().map(|rest| (m, rest)))
        .max_by_key(|(m, _)| m.target.len())
        .map(|(m, rest)| m.host.join(rest))
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A signal's number on this system (`SIGTERM` for a name this system
/// lacks, which only Linux-only names are).
pub fn signal_number(signal: &Signal) -> i32 {
    let parsed = match signal.id() {
        SignalId::Number(n) => nix::sys::signal::Signal::try_from(i32::from(n)).ok(),
        SignalId::Named(name) => format!("SIG{name}").parse().ok(),
    };
    parsed.map_or(libc::SIGTERM, |s: nix::sys::signal::Signal| s as i32)
}

/// The stop grace period Compose gives a service that sets none.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// Ports one service may declare natively: berth opens a listener for each.
pub const MAX_PORTS: usize = 1024;

/// Two services cannot listen on the same address natively, even where
/// containers could (each container has its own IP).
fn check_listen_conflicts(plans: &[ServicePlan], errors: &mut Vec<PlanError>) {
    let mut seen: BTreeMap<u16, (&str, SocketAddr)> = BTreeMap::new();
    for p in plans {
        let mut own: BTreeSet<u16> = BTreeSet::new();
        for l in &p.listen {
            let port = l.addr.port();
            if port == 0 || !own.insert(port) {
                continue;
            }
            if let Some((other, addr)) = seen.get(&port) {
                let overlap = addr.ip().is_unspecified()
                    || l.addr.ip().is_unspecified()
                    || addr.ip() == l.addr.ip();
                if overlap {
                    errors.push(PlanError {
                        service: p.name.clone(),
                        message: format!(
                            "port {port} is also used by service {other} ({addr}); natively all services share one network, so each port can be used once — publish or expose another port"
                        ),
                    });
                    continue;
                }
            }
            seen.insert(port, (&p.name, l.addr));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
        let opts = berth_compose::LoadOptions::new(dir.path(), Default::default());
        let p = berth_compose::load(&opts)
            .unwrap_or_else(|d| panic!("{}", d.render(false)))
            .project;
        std::mem::forget(dir);
        p
    }

    #[test]
    fn ports_environment_and_volumes() {
        let p = project(
            "name: t\nservices:\n  api:\n    command: ./api --flag\n    working_dir: /app/sub\n    volumes: [\"./src:/app\", \"data:/var/lib/data\"]\n    environment: {A: \"1\", EMPTY: \"\"}\n    ports: [\"127.0.0.1:8080:80\"]\n    expose: [\"9000\"]\n    deploy: {replicas: 2}\nvolumes:\n  data: {}\n",
        );
        let plans = plan(&p, &BTreeMap::from([("PATH".into(), "/bin".into())]));
        let api = &plans[0];
        assert_eq!(api.argv, vec!["./api", "--flag"]);
        assert_eq!(api.working_dir, p.directory.join("src").join("sub"));
        assert_eq!(api.targets, vec![80, 9000]);
        assert_eq!(api.listen[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(api.listen[1].addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(api.env["A"], "1");
        assert_eq!(api.env["EMPTY"], "");
        assert_eq!(api.env["PATH"], "/bin");
        assert_eq!(
            api.env["BERTH_VOLUME_APP"],
            p.directory.join("src").to_string_lossy()
        );
        assert!(api.env["BERTH_VOLUME_VAR_LIB_DATA"].ends_with(".berth/volumes/t_data"));
        assert_eq!(api.volume_dirs.len(), 1);
        assert_eq!(api.replicas, 2);
    }

    #[test]
    fn what_cannot_run_natively_is_reported_all_at_once() {
        let p = project(
            "services:\n  db:\n    image: postgres:16\n  a:\n    command: [x]\n    expose: [\"8000\"]\n  b:\n    command: [y]\n    ports: [\"8000:80\"]\n  c:\n    command: [z]\n    deploy: {replicas: 2}\n    x-berth: {bind: direct}\n",
        );
        // An image-only service runs in Docker unless told to run natively.
        assert!(
            native_problems(&p, &plan(&p, &BTreeMap::new()))
                .iter()
                .all(|e| e.service != "db")
        );
        let native = plan_with(&p, &BTreeMap::new(), Some(RuntimeChoice::Native));
        let errors = native_problems(&p, &native);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("service db: no command to run natively (image postgres:16")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("service b: port 8000 is also used by service a")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("service c: x-berth.bind: direct")),
            "{text:?}"
        );
    }

    #[test]
    fn signals_map_to_this_system_in_every_spelling() {
        let number = |s: &str| signal_number(&s.parse().unwrap());
        assert_eq!(number("SIGTERM"), libc::SIGTERM);
        assert_eq!(number("int"), libc::SIGINT);
        assert_eq!(number("9"), libc::SIGKILL);
        assert_eq!(number("SIGUSR1"), libc::SIGUSR1);
        assert_eq!(number("quit"), libc::SIGQUIT);
    }

    /// Every file `berth config` accepts plans, and the plan carries its
    /// typed values: the conformance vectors' valid files and the shared
    /// stacks.
    #[test]
    fn every_file_config_accepts_plans() {
        // `shared/` beside the repository, as the other tests find it.
        let shared = std::env::var_os("BERTH_SHARED_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
                PathBuf::from("/work/shared"),
            ])
            .find(|d| d.is_dir())
            .expect("shared/ not found; set BERTH_SHARED_DIR");
        let mut files = Vec::new();
        for dir in [
            "conformance/awesome-compose",
            "conformance/normalize",
            "stacks",
        ] {
            collect_compose_files(&shared.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found only {files:?} under {shared:?}");
        let mut planned = 0;
        for file in &files {
            let dir = file.parent().unwrap();
            let mut opts = berth_compose::LoadOptions::new(dir, Default::default());
            opts.files = vec![file.clone()];
            let Ok(loaded) = berth_compose::load(&opts) else {
                continue; // config rejects it too
            };
            let p = loaded.project;
            let plans = plan(&p, &BTreeMap::new());
            assert_eq!(plans.len(), p.services.len(), "{file:?}");
            for (plan, s) in plans.iter().map(|pl| (pl, &p.services[&pl.name])) {
                assert_eq!(plan.argv, s.argv(), "{file:?}");
                let tcp = s.ports.iter().filter(|p| p.protocol == Protocol::Tcp);
                assert!(plan.listen.len() >= tcp.count() || plan.bind == Bind::Direct);
            }
            planned += 1;
        }
        assert!(
            planned > 20,
            "only {planned} of {} files loaded",
            files.len()
        );
    }

    fn collect_compose_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                collect_compose_files(&path, out);
            } else if (name.ends_with(".yaml") || name.ends_with(".yml"))
                && !name.contains(".expected.")
            {
                out.push(path);
            }
        }
    }
}
