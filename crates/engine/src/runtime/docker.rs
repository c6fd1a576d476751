//! The Docker runtime: replicas are containers, created and supervised
//! through the Engine API (bollard; nothing shells out to `docker`).
//!
//! Containers are labelled as `docker compose` labels its own
//! (`com.docker.compose.project`, `.service`, `.container-number`,
//! `.oneoff`, `.config-hash`), so `docker compose -p NAME ps` lists them,
//! and `io.berth.managed` besides. They have no Docker restart policy:
//! berth restarts them, as it does processes. Each joins its service's
//! networks (`networks:`; else the project's `<project>_default`) under
//! its service's name and aliases, so containers reach each other by
//! name on the networks they share; each declared port is published on
//! the loopback port berth chose for the replica, which is where the
//! proxy, the forwarders and `http`/`tcp` probes reach it (berth relays
//! that port itself for a container on `internal` networks only, where
//! the engine publishes nothing). Its output is attached
//! before it starts (nothing is missed) and split into the two pipes the
//! log pipeline reads. When it ends it is removed.
//!
//! # Layout
//! - `docker.rs`: the engine, containers, images, `exec`.
//! - `docker/exec.rs`: `berth exec`, with a TTY or without.
//! - `docker/images.rs`: whether a service runs the image its tag names.
//! - `docker/networks.rs`: the project's networks.
//! - `docker/relay.rs`: the loopback port of a container on internal
//!   networks only.

mod exec;
pub use exec::Tty;
mod images;
mod networks;
mod relay;

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkingConfig, PortBinding};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{
    BoxFuture, ContainerHost, ContainerSpec, Exit, Network, NetworkAttachment, Pipe, ProbeResult,
    Process, ProcessSpec, SpawnError, Stats,
};

/// The label every container berth creates carries.
pub const MANAGED_LABEL: &str = "io.berth.managed";

/// The Docker Engine, for one project.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    project: String,
    /// Where a container of a service without `networks:` goes.
    default_attachment: NetworkAttachment,
    /// The networks known to exist this run (not looked up again).
    made: Arc<Mutex<HashSet<String>>>,
}

impl DockerRuntime {
    /// Connects to the engine (`DOCKER_HOST`, else the local socket) and
    /// checks that it answers.
    ///
    /// # Errors
    /// Why the engine cannot be used, naming where it was looked for.
    pub async fn connect(project: &str) -> Result<DockerRuntime, String> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let docker = Docker::connect_with_defaults()
            .map_err(|e| format!("cannot reach the Docker Engine at {host}: {e}"))?;
        let docker = tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version())
            .await
            .map_err(|_| format!("the Docker Engine at {host} did not answer within 5 s"))?
            .map_err(|e| format!("cannot reach the Docker Engine at {host}: {e}"))?;
        docker
            .ping()
            .await
            .map_err(|e| format!("cannot reach the Docker Engine at {host}: {e}"))?;
        Ok(DockerRuntime {
            docker,
            project: project.to_string(),
            default_attachment: NetworkAttachment {
                network: Network {
                    key: "default".into(),
                    name: format!("{project}_default"),
                    ..Network::default()
                },
                aliases: Vec::new(),
            },
            made: Arc::default(),
        })
    }

    /// Removes what an earlier run of the project left (its containers
    /// and networks, by label) and makes the networks the containers of
    /// `hosts` join; how many containers were removed.
    ///
    /// # Errors
    /// An external network that does not exist (checked before any
    /// network is made), or one the engine cannot make.
    pub async fn prepare(&self, hosts: &[&ContainerHost]) -> Result<usize, String> {
        let left = self.containers().await;
        for name in &left {
            self.remove(name).await;
        }
        self.remove_networks().await;
        let mut networks: Vec<&Network> = Vec::new();
        for host in hosts {
            for a in self.attachments(host) {
                if !networks.iter().any(|n| n.name == a.network.name) {
                    networks.push(&a.network);
                }
            }
        }
        self.networks(&networks).await?;
        Ok(left.len())
    }

    /// The networks a container joins: its service's, else the default.
    fn attachments<'a>(&'a self, host: &'a ContainerHost) -> &'a [NetworkAttachment] {
        if host.networks.is_empty() {
            std::slice::from_ref(&self.default_attachment)
        } else {
            &host.networks
        }
    }

    /// Removes every container of the project still there, and its
    /// networks (`down`).
    pub async fn finish(&self) {
        for name in self.containers().await {
            self.remove(&name).await;
        }
        self.remove_networks().await;
    }

    /// The address of the engine's default bridge on this machine, which
    /// `host.docker.internal` (`host-gateway`) names in containers.
    pub async fn host_gateway(&self) -> Option<std::net::IpAddr> {
        let bridge = self
            .docker
            .inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .ok()?;
        let configs = bridge.ipam?.config?;
        // Older engines list only the subnet: the gateway is its first
        // address, as the engine assigns it.
        configs.into_iter().find_map(|c| {
            c.gateway.and_then(|g| g.parse().ok()).or_else(|| {
                let subnet = c.subnet?;
                let (net, _) = subnet.split_once('/')?;
                let net: std::net::Ipv4Addr = net.parse().ok()?;
                Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    u32::from(net) + 1,
                )))
            })
        })
    }

    /// Makes sure the named volumes the containers mount exist: the
    /// project's own are created with `docker compose`'s labels (key
    /// `com.docker.compose.volume`) when missing; an `external` one must
    /// be there already. `volumes`: (key in the file, engine name,
    /// external).
    ///
    /// # Errors
    /// An external volume that does not exist, or one the engine cannot
    /// create.
    pub async fn volumes(&self, volumes: &[(String, String, bool)]) -> Result<(), String> {
        for (key, name, external) in volumes {
            if self.docker.inspect_volume(name).await.is_ok() {
                continue;
            }
            if *external {
                return Err(format!(
                    "external volume {name} does not exist: create it (docker volume create {name}) or drop `external: true`"
                ));
            }
            let labels = HashMap::from([
                (
                    "com.docker.compose.project".to_string(),
                    self.project.clone(),
                ),
                ("com.docker.compose.volume".to_string(), key.clone()),
                (MANAGED_LABEL.to_string(), "true".to_string()),
            ]);
            self.docker
                .create_volume(bollard::models::VolumeCreateRequest {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("cannot create the volume {name}: {e}"))?;
        }
        Ok(())
    }

    /// Removes the engine's volumes of these names (`down -v`); one line
    /// for each that was there.
    pub async fn remove_volumes(&self, names: &[String]) -> Vec<String> {
        let mut lines = Vec::new();
        for name in names {
            match self
                .docker
                .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await
            {
                Ok(()) => lines.push(format!("volume {name}: removed (Docker)")),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => lines.push(format!("volume {name}: cannot remove it: {e}")),
            }
        }
        lines
    }

    /// Names of the project's containers berth made, running or not.
    async fn containers(&self) -> Vec<String> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={}", self.project),
                format!("{MANAGED_LABEL}=true"),
            ],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| {
                c.names?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect()
    }

    async fn remove(&self, name: &str) {
        remove(&self.docker, name).await;
    }

    /// Creates, attaches to and starts the container `spec` describes.
    ///
    /// # Errors
    /// A [`SpawnError`] naming the image or what the engine said.
    pub async fn spawn(&self, spec: &ProcessSpec) -> Result<Box<dyn Process>, SpawnError> {
        let Some(c) = spec.container.as_deref() else {
            return Err(SpawnError::Empty);
        };
        let fail = |reason: String| SpawnError::Other {
            program: format!("container {}", c.name),
            reason,
        };
        self.create(c).await.map_err(fail)?;
        let attached = self
            .docker
            .attach_container(
                &c.name,
                Some(AttachContainerOptions {
                    stream: true,
                    logs: true,
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| fail(format!("cannot attach to it: {e}")))?;
        let (output, pump) = split_output(attached.output);
        if let Err(e) = self.docker.start_container(&c.name, None).await {
            pump.abort();
            self.remove(&c.name).await;
            return Err(fail(format!("cannot start it: {e}")));
        }
        let state = self
            .docker
            .inspect_container(&c.name, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let pid = state
            .state
            .as_ref()
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let relays = relays(c, &state).await;
        Ok(Box::new(Container {
            docker: self.docker.clone(),
            name: c.name.clone(),
            pid,
            output: Some(output),
            pump: Some(pump),
            relays,
            exited: false,
        }))
    }

    /// Creates the container (in its first network) and joins it to its
    /// other networks, each made first if it is not there.
    async fn create(&self, c: &ContainerSpec) -> Result<(), String> {
        let attachments = self.attachments(&c.host);
        let networks: Vec<&Network> = attachments.iter().map(|a| &a.network).collect();
        self.networks(&networks).await?;
        // A container of that name from a run that ended badly.
        self.remove(&c.name).await;
        let first = attachments.first().unwrap_or(&self.default_attachment);
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(c.name.clone()),
                    ..Default::default()
                }),
                body(c, first),
            )
            .await
            .map_err(|e| match &e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => format!(
                    "image {} is not on this machine (berth pulls nothing): build or load it first",
                    c.image
                ),
                _ => e.to_string(),
            })?;
        let others = attachments.get(1..).unwrap_or_default();
        if let Err(e) = self.join_others(&c.name, &c.service, others).await {
            self.remove(&c.name).await;
            return Err(e);
        }
        Ok(())
    }

    /// Builds `image` from `build` through the engine (the context sent
    /// as a tar stream), each line of the builder's output passed to
    /// `say`.
    ///
    /// # Errors
    /// What failed: the context, the Dockerfile, a step (with the
    /// builder's message).
    pub async fn build(
        &self,
        image: &str,
        build: &crate::plan::ImageBuild,
        say: impl Fn(&str),
    ) -> Result<(), String> {
        let (context, dockerfile) = (build.context.clone(), build.dockerfile.clone());
        let tar = tokio::task::spawn_blocking(move || {
            super::build_context::context_tar(&context, &dockerfile)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "cannot read the build context {}: {e}",
                build.context.display()
            )
        })?;
        let options = bollard::query_parameters::BuildImageOptions {
            dockerfile: build.dockerfile.clone(),
            t: Some(image.to_string()),
            target: build.target.clone().unwrap_or_default(),
            buildargs: Some(build.args.clone().into_iter().collect()),
            labels: Some(HashMap::from([(
                "com.docker.compose.project".to_string(),
                self.project.clone(),
            )])),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut output =
            self.docker
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        while let Some(step) = output.next().await {
            match step {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|d| d.message) {
                        return Err(error);
                    }
                    for line in info.stream.iter().flat_map(|s| s.lines()) {
                        if !line.trim().is_empty() {
                            say(line.trim_end());
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => return Err(error),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The id of the running container of replica `number` of `service`.
    pub(super) async fn running(&self, service: &str, number: u32) -> Result<String, String> {
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![
                    format!("com.docker.compose.project={}", self.project),
                    format!("com.docker.compose.service={service}"),
                    format!("com.docker.compose.container-number={number}"),
                    format!("{MANAGED_LABEL}=true"),
                ],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        self.docker
            .list_containers(Some(ListContainersOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .find_map(|c| c.id)
            .ok_or_else(|| format!("{service}-{number} has no running container"))
    }

    /// Runs a probe's command in the container: exit code 0 passes.
    pub fn exec_probe(
        &self,
        container: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, ProbeResult> {
        let docker = self.docker.clone();
        let container = container.to_string();
        Box::pin(async move {
            match tokio::time::timeout(timeout, exec(&docker, &container, argv)).await {
                Ok(result) => result,
                Err(_) => ProbeResult::Fail(format!("timed out after {timeout:?}")),
            }
        })
    }
}

/// What the engine creates for `c`.
fn body(c: &ContainerSpec, network: &NetworkAttachment) -> ContainerCreateBody {
    let labels = HashMap::from([
        ("com.docker.compose.project".to_string(), c.project.clone()),
        ("com.docker.compose.service".to_string(), c.service.clone()),
        (
            "com.docker.compose.container-number".to_string(),
            c.number.to_string(),
        ),
        ("com.docker.compose.oneoff".to_string(), "False".to_string()),
        (
            "com.docker.compose.config-hash".to_string(),
            c.config_hash.clone(),
        ),
        (MANAGED_LABEL.to_string(), "true".to_string()),
    ]);
    let published = c
        .publish
        .iter()
        .map(|(own, declared)| (own, format!("{declared}/tcp")))
        .chain(
            c.publish_udp
                .iter()
                .map(|(own, declared)| (own, format!("{declared}/udp"))),
        );
    let bindings: HashMap<String, Option<Vec<PortBinding>>> = published
        .map(|(own, port)| {
            (
                port,
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(own.to_string()),
                }]),
            )
        })
        .collect();
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: c.command.clone(),
        entrypoint: c.entrypoint.clone(),
        user: c.user.clone(),
        working_dir: c.working_dir.clone(),
        env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        stop_signal: c.stop_signal.clone(),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        exposed_ports: Some(bindings.keys().cloned().collect()),
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            network_mode: Some(network.network.name.clone()),
            // berth restarts it, with its backoff.
            restart_policy: Some(bollard::models::RestartPolicy {
                name: Some(bollard::models::RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..host_config(&c.host)
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.network.name.clone(),
                networks::endpoint(&c.service, network),
            )])),
        }),
        ..Default::default()
    }
}

/// Relays the declared ports the engine did not publish (a container on
/// `internal` networks only) from their loopback port to the container's
/// address.
async fn relays(
    c: &ContainerSpec,
    state: &bollard::models::ContainerInspectResponse,
) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = state.network_settings.as_ref();
    let published = |declared: u16| {
        settings
            .and_then(|n| n.ports.as_ref()?.get(&format!("{declared}/tcp"))?.as_ref())
            .is_some_and(|b| {
                b.iter()
                    .any(|b| b.host_port.as_deref().is_some_and(|p| !p.is_empty()))
            })
    };
    let address: Option<std::net::IpAddr> = settings
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flat_map(|n| n.values())
        .find_map(|e| e.ip_address.as_deref()?.parse().ok());
    let mut out = Vec::new();
    for (own, declared) in c.publish.iter().filter(|(_, d)| !published(*d)) {
        let Some(ip) = address else { break };
        let from = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, *own));
        if let Ok(task) = relay::start(from, std::net::SocketAddr::new(ip, *declared)).await {
            out.push(task);
        }
    }
    out
}

/// The file's confinement, limits and mounts, as the engine takes them.
fn host_config(h: &super::ContainerHost) -> HostConfig {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let limit = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
    let mut extra_hosts = vec!["host.docker.internal:host-gateway".to_string()];
    extra_hosts.extend(h.extra_hosts.iter().cloned());
    HostConfig {
        binds: some(&h.binds),
        tmpfs: (!h.tmpfs.is_empty()).then(|| h.tmpfs.iter().cloned().collect()),
        readonly_rootfs: h.read_only.then_some(true),
        cap_add: some(&h.cap_add),
        cap_drop: some(&h.cap_drop),
        security_opt: some(&h.security_opt),
        memory: limit(h.limits.memory),
        memory_swap: h.limits.memory_swap.map(|s| match s {
            berth_compose::SwapLimit::Unlimited => -1,
            berth_compose::SwapLimit::Bytes(b) => i64::try_from(b).unwrap_or(i64::MAX),
        }),
        nano_cpus: limit(h.limits.cpu_millis.map(|m| m * 1_000_000)),
        cpu_shares: limit(h.limits.cpu_shares),
        pids_limit: limit(h.limits.pids),
        ulimits: (!h.ulimits.is_empty()).then(|| {
            h.ulimits
                .iter()
                .map(|u| bollard::models::ResourcesUlimits {
                    name: Some(u.name.to_string()),
                    soft: Some(limit(u.soft).unwrap_or(-1)),
                    hard: Some(limit(u.hard).unwrap_or(-1)),
                })
                .collect()
        }),
        init: h.init,
        extra_hosts: Some(extra_hosts),
        ..Default::default()
    }
}

/// `docker exec`: the exit code and the last lines of its output.
async fn exec(docker: &Docker, container: &str, argv: Vec<String>) -> ProbeResult {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let created = match docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return ProbeResult::Fail(format!("cannot run it in {container}: {e}")),
    };
    let mut said = Vec::new();
    match docker.start_exec(&created.id, None).await {
        Ok(StartExecResults::Attached { mut output, .. }) => {
            while let Some(Ok(chunk)) = output.next().await {
                said.extend_from_slice(&chunk.into_bytes());
            }
        }
        Ok(StartExecResults::Detached) => {}
        Err(e) => return ProbeResult::Fail(format!("cannot run it in {container}: {e}")),
    }
    match docker.inspect_exec(&created.id).await {
        Ok(i) if i.exit_code == Some(0) => ProbeResult::Pass,
        Ok(i) => {
            let text = String::from_utf8_lossy(&said);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            ProbeResult::Fail(format!(
                "exit code {}{}",
                i.exit_code.unwrap_or(-1),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", tail.join(" / "))
                }
            ))
        }
        Err(e) => ProbeResult::Fail(e.to_string()),
    }
}

async fn remove(docker: &Docker, name: &str) {
    let _ = docker
        .remove_container(
            name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
}

/// The attached stream as two pipes (stdout, stderr), fed by a task.
fn split_output(
    mut stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
) -> ((Pipe, Pipe), tokio::task::JoinHandle<()>) {
    let (out_read, mut out_write) = tokio::io::duplex(64 * 1024);
    let (err_read, mut err_write) = tokio::io::duplex(64 * 1024);
    let pump = tokio::spawn(async move {
        while let Some(Ok(chunk)) = stream.next().await {
            let written = match chunk {
                LogOutput::StdErr { message } => err_write.write_all(&message).await,
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    out_write.write_all(&message).await
                }
                LogOutput::StdIn { .. } => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = out_write.shutdown().await;
        let _ = err_write.shutdown().await;
    });
    ((Box::new(out_read), Box::new(err_read)), pump)
}

/// A started container.
struct Container {
    docker: Docker,
    name: String,
    /// Its first process, as this machine numbers it.
    pid: u32,
    output: Option<(Pipe, Pipe)>,
    pump: Option<tokio::task::JoinHandle<()>>,
    /// Its loopback ports berth relays itself (see `relay.rs`).
    relays: Vec<tokio::task::JoinHandle<()>>,
    exited: bool,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

impl Drop for Container {
    /// A container whose handle is dropped unawaited is removed.
    fn drop(&mut self) {
        for relay in &self.relays {
            relay.abort();
        }
        if !self.exited
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            let name = self.name.clone();
            handle.spawn(async move { remove(&docker, &name).await });
        }
    }
}

impl Process for Container {
    fn pid(&self) -> u32 {
        self.pid
    }

    /// `docker kill --signal`, sent on a task of its own.
    fn signal(&self, signal: i32) -> io::Result<()> {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
            .as_str()
            .to_string();
        let docker = self.docker.clone();
        let container = self.name.clone();
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        handle.spawn(async move {
            let _ = docker
                .kill_container(&container, Some(KillContainerOptions { signal: name }))
                .await;
        });
        Ok(())
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<Exit>> {
        Box::pin(async move {
            let mut waited = self.docker.wait_container(&self.name, None);
            let code = match waited.next().await {
                Some(Ok(r)) => r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                None => -1,
            };
            let state = self.docker.inspect_container(&self.name, None).await.ok();
            let oom = state
                .as_ref()
                .and_then(|s| s.state.as_ref()?.oom_killed)
                .unwrap_or(false);
            let limit = state
                .as_ref()
                .and_then(|s| s.host_config.as_ref()?.memory)
                .and_then(|m| u64::try_from(m).ok())
                .filter(|m| *m > 0);
            // Its output is read to the end before it goes.
            if let Some(pump) = self.pump.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
            }
            remove(&self.docker, &self.name).await;
            for relay in self.relays.drain(..) {
                relay.abort();
            }
            self.exited = true;
            let code = i32::try_from(code).unwrap_or(-1);
            Ok(if oom {
                Exit::OutOfMemory { limit }
            } else if code > 128 && code < 128 + 65 {
                // How Docker reports a container its signal ended.
                Exit::Signal(code - 128)
            } else {
                Exit::Code(code)
            })
        })
    }

    fn take_output(&mut self) -> Option<(Pipe, Pipe)> {
        self.output.take()
    }

    fn stats(&self) -> Option<Stats> {
        crate::runtime::native::group_stats(self.pid)
    }
}

/// Both runtimes behind one [`super::Runtime`]: a spec with a container
/// goes to Docker, the rest runs natively.
#[derive(Debug, Clone)]
pub struct Runtimes {
    pub native: super::native::NativeRuntime,
    pub docker: Option<Arc<DockerRuntime>>,
}

impl super::Runtime for Runtimes {
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, SpawnError>> {
        match (&spec.container, &self.docker) {
            (None, _) => self.native.spawn(spec),
            (Some(_), Some(docker)) => Box::pin(docker.spawn(spec)),
            (Some(c), None) => Box::pin(std::future::ready(Err(SpawnError::Other {
                program: format!("container {}", c.name),
                reason: "no Docker Engine is connected".into(),
            }))),
        }
    }

    fn probe(&self, probe: &super::Probe, timeout: Duration) -> BoxFuture<'static, ProbeResult> {
        match (probe, &self.docker) {
            (super::Probe::Command(spec), Some(docker)) if spec.container.is_some() => {
                let name = spec
                    .container
                    .as_ref()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                docker.exec_probe(&name, spec.argv.clone(), timeout)
            }
            _ => self.native.probe(probe, timeout),
        }
    }
}
