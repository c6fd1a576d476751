//! `berth up`: run the stack, in the foreground with logs multiplexed on
//! the terminal until Ctrl-C (graceful; a second Ctrl-C forces), or
//! detached (`-d`) with logs in the state directory. Either way the stack
//! serves the control API for `ps`, `logs`, `restart`, `down`…

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use berth_compose::Project;
use berth_engine::logs::{Formatter, LogHub, PrintOptions, Printer};
use berth_engine::{NativeRuntime, Settled, Stack, UpOptions};
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Failure, Global, load};
use crate::api::{self, DeployReport, Report, server::DownRequest};

use super::detach::DETACHED;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run in the background; return once the stack is up
    #[arg(short, long)]
    detach: bool,
    /// With -d: return once every service is healthy (or failed: exit 1)
    #[arg(long)]
    wait: bool,
    /// Replicas of a service, overriding the file (repeatable)
    #[arg(long, value_name = "SERVICE=N", value_parser = super::parse_scale)]
    scale: Vec<(String, u32)>,
    /// Run the services' x-berth.build steps (the default; for docker compose habits)
    #[arg(long, conflicts_with = "no_build")]
    build: bool,
    /// Do not run the services' x-berth.build steps
    #[arg(long)]
    no_build: bool,
    /// Prefix log lines with timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Logs as JSON lines
    #[arg(long)]
    json: bool,
    /// Say what would change in the running stack (or start), change nothing
    #[arg(long)]
    dry_run: bool,
    /// Stop services of the running stack that are no longer in the file
    #[arg(long)]
    remove_orphans: bool,
    /// Run every service with this runtime: native processes or Docker
    /// containers (default: each service's x-berth.runtime, else auto:
    /// Docker for services with image or build)
    #[arg(long, value_name = "auto|native|docker")]
    runtime: Option<berth_compose::RuntimeChoice>,
    /// Services to start, with their dependencies (default: all)
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
}

pub fn run(global: &Global, args: UpArgs) -> Result<(), Failure> {
    let options = global.load_options(&args.services)?;
    let loaded = load(&options)?;
    let mut project = loaded.project;
    // The stack runs with it, and `down`, `ps` and deploys know it.
    project.settings.forced_runtime = args.runtime;
    if !args.services.is_empty() {
        project.retain_with_dependencies(&args.services);
    }
    for (name, _) in &args.scale {
        if !project.services.contains_key(name) {
            return Err(Failure::Usage(format!("--scale {name}=…: no such service")));
        }
    }
    // A running project is reconciled with the file instead (not from the
    // detached child, which is the one starting it).
    if std::env::var_os(DETACHED).is_none() {
        let change = super::deploy::Change {
            services: args.services.clone(),
            scale: args.scale.iter().cloned().collect(),
            remove_orphans: args.remove_orphans,
            dry_run: args.dry_run,
            build: !args.no_build,
        };
        if let Some(report) = super::deploy::to_running(&options, &project, change)? {
            return super::deploy::print(&report, args.dry_run);
        }
    }
    let inherited = inherited_environment();
    let plans = berth_engine::plan_with(&project, &inherited, args.runtime);
    if args.dry_run {
        return super::deploy::print(&fresh_plan(&plans, &args.scale), true);
    }
    check_plans(&project, &plans, &args)?;
    let state_dir = project.settings.state_dir.clone();
    berth_engine::private::dir(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    if args.detach {
        return super::detach::run(&project, args.wait);
    }
    let lock = match super::lock::take_over() {
        Some(lock) => lock,
        None => super::lock::acquire(&state_dir, &project.name)?,
    };
    let exe = std::env::current_exe().context("cannot find the berth executable")?;
    let containment = berth_engine::contain::start(&exe, &super::lock::groups_record(&state_dir))
        .context("cannot start berth's init or guard process")?;
    let detached = std::env::var_os(DETACHED).is_some();
    let printer = (!detached).then_some(PrintOptions {
        color: !global.no_color && super::stdout_color(),
        timestamps: args.timestamps,
        json: args.json,
    });
    let options = UpOptions {
        scale: args.scale.iter().cloned().collect(),
        build: !args.no_build,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let run = Run {
        project,
        plans,
        inherited,
        options,
        printer,
        containment,
    };
    let result = runtime.block_on(foreground(run));
    drop(lock);
    result
}

/// The environment berth's services inherit: berth's own, without what
/// berth hands itself.
fn inherited_environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter(|(k, _)| k != DETACHED && k != super::lock::LOCK_FD)
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// What `up --dry-run` says of a project that is not running.
fn fresh_plan(plans: &[berth_engine::ServicePlan], scale: &[(String, u32)]) -> DeployReport {
    let plan = plans
        .iter()
        .map(|p| {
            let n = scale
                .iter()
                .find(|(name, _)| *name == p.name)
                .map_or(p.replicas, |(_, n)| *n);
            format!("{}: start ({n} replicas)", p.name)
        })
        .collect();
    DeployReport {
        plan,
        ..DeployReport::default()
    }
}

/// Refuses, before anything starts, what the native runtime cannot run
/// and more replicas than open files allow.
fn check_plans(
    project: &Project,
    plans: &[berth_engine::ServicePlan],
    args: &UpArgs,
) -> Result<(), Failure> {
    let mut scaled = plans.to_vec();
    for p in &mut scaled {
        if let Some((_, n)) = args.scale.iter().find(|(name, _)| *name == p.name) {
            p.replicas = *n;
        }
    }
    super::enforcement(project, args.runtime)?;
    let mut problems = berth_engine::native_problems(project, &scaled);
    problems.extend(berth_engine::docker_problems(&scaled));
    if !problems.is_empty() {
        return Err(Failure::Usage(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\nberth: "),
        ));
    }
    berth_engine::limits::ensure_open_files(&scaled, !args.detach)
        .map_err(|e| Failure::Runtime(e.into()))
}

/// The native runtime, with a cgroup per replica where the machine
/// allows; what a crashed run left in the project's cgroups is killed.
fn native_runtime(project: &str, state_dir: &std::path::Path, logs: &LogHub) -> NativeRuntime {
    match berth_engine::cgroup::Cgroups::detect(project, state_dir) {
        Ok(cgroups) => {
            logs.system("berth", 0, cgroups.describe());
            // If berth dies, the guard (where there is one) kills what is in them.
            for dir in cgroups.dirs() {
                berth_engine::guard::register_cgroup(dir);
            }
            let killed = cgroups.sweep();
            if killed > 0 {
                logs.system(
                    "berth",
                    0,
                    format!("killed {killed} processes an earlier run left in its cgroups"),
                );
            }
            NativeRuntime::with_cgroups(Arc::new(cgroups))
        }
        Err(why) => {
            logs.system(
                "berth",
                0,
                format!("no cgroups ({why}): resource limits are not enforced"),
            );
            NativeRuntime::default()
        }
    }
}

/// The runtimes of the stack: native processes, and the Docker Engine when
/// a service runs as containers.
async fn runtimes(
    project: &Project,
    plans: &[berth_engine::ServicePlan],
    logs: &LogHub,
) -> Result<
    (
        berth_engine::runtime::docker::Runtimes,
        Option<Arc<berth_engine::runtime::docker::DockerRuntime>>,
        Option<crate::dashboard::Listeners>,
    ),
    Failure,
> {
    // Its port taken stops `up` before anything starts.
    let dashboard = match &project.settings.dashboard {
        Some(d) => Some(
            crate::dashboard::Listeners::bind(d)
                .await
                .map_err(Failure::Runtime)?,
        ),
        None => None,
    };
    let state_dir = &project.settings.state_dir;
    let native = native_runtime(&project.name, state_dir, logs);
    let exe = std::env::current_exe().context("cannot find the berth executable")?;
    let record = super::lock::groups_record(state_dir);
    let docker = docker_runtime(project, plans, logs, (&exe, &record)).await?;
    let runtimes = berth_engine::runtime::docker::Runtimes {
        native,
        docker: docker.clone(),
    };
    Ok((runtimes, docker, dashboard))
}

/// The Docker Engine, when a service runs as containers: what an earlier
/// run left is removed and the project's networks made.
///
/// # Errors
/// [`Failure::Usage`] (exit 2, before anything starts) when no engine
/// answers, naming the services that need one and how to run them natively.
async fn docker_runtime(
    model: &Project,
    plans: &[berth_engine::ServicePlan],
    logs: &LogHub,
    (exe, record): (&std::path::Path, &std::path::Path),
) -> Result<Option<Arc<berth_engine::runtime::docker::DockerRuntime>>, Failure> {
    let project = model.name.as_str();
    let needing: Vec<&str> = plans
        .iter()
        .filter(|p| p.container.is_some())
        .map(|p| p.name.as_str())
        .collect();
    if needing.is_empty() {
        return Ok(None);
    }
    let docker = berth_engine::runtime::docker::DockerRuntime::connect(project)
        .await
        .map_err(|why| {
            Failure::Usage(format!(
                "{} run as Docker containers, but {why}; start the engine, or run them natively (`x-berth.runtime: native` with a `command`, or `berth up --runtime native`)",
                needing.join(", ")
            ))
        })?;
    let hosts: Vec<&berth_engine::runtime::ContainerHost> = plans
        .iter()
        .filter_map(|p| Some(&p.container.as_ref()?.host))
        .collect();
    let removed = match docker.prepare(&hosts).await {
        Ok(removed) => removed,
        Err(e) => {
            docker.finish().await;
            return Err(Failure::Runtime(anyhow::anyhow!(e)));
        }
    };
    if let Err(e) = docker.volumes(&docker_volumes(model, plans)).await {
        docker.finish().await;
        return Err(Failure::Runtime(anyhow::anyhow!(e)));
    }
    for plan in plans {
        let Some(c) = &plan.container else { continue };
        let (Some(build), Some(image)) = (&c.build, &c.image) else {
            continue;
        };
        logs.system(&plan.name, 0, format!("building image {image}"));
        let built = docker
            .build(image, build, |line| {
                logs.system(&plan.name, 0, line.to_string())
            })
            .await;
        if let Err(e) = built {
            // Nothing started: the network goes again.
            docker.finish().await;
            return Err(Failure::Runtime(anyhow::anyhow!(
                "the image build of service {} failed: {e}",
                plan.name
            )));
        }
    }
    // If berth dies, its guard removes the containers.
    berth_engine::guard::start(exe, record).map_err(|e| {
        Failure::Runtime(anyhow::anyhow!("cannot start berth's guard process: {e}"))
    })?;
    berth_engine::guard::register_docker(Some(project));
    if removed > 0 {
        logs.system(
            "berth",
            0,
            format!("removed {removed} containers an earlier run left"),
        );
    }
    logs.system(
        "berth",
        0,
        format!("{} run as Docker containers", needing.join(", ")),
    );
    Ok(Some(Arc::new(docker)))
}

/// Containers reach a native service at `host.docker.internal:<declared
/// port>`: each declared port of each native service is forwarded from
/// the engine's host gateway too (the stack keeps doing so for the ports
/// a deploy re-binds and the services it adds).
async fn reach_native_from_containers(
    stack: &Stack,
    docker: &berth_engine::runtime::docker::DockerRuntime,
    logs: &LogHub,
) {
    let Some(gateway) = docker.host_gateway().await else {
        logs.system(
            "berth",
            0,
            "no host gateway found on the engine's bridge: containers cannot reach native services",
        );
        return;
    };
    stack.forward_natives_on(gateway);
}

/// The named volumes the project's containers mount: (key, engine name,
/// external).
fn docker_volumes(
    project: &Project,
    plans: &[berth_engine::ServicePlan],
) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = Vec::new();
    for plan in plans.iter().filter(|p| p.container.is_some()) {
        let Some(service) = project.services.get(&plan.name) else {
            continue;
        };
        for v in &service.volumes {
            let (berth_compose::VolumeKind::Volume, Some(key)) = (v.kind, &v.source) else {
                continue;
            };
            if out.iter().any(|(k, _, _)| k == key) {
                continue;
            }
            let external = project
                .volumes
                .get(key)
                .and_then(|d| d.get("external"))
                .and_then(serde_json::Value::as_bool)
                == Some(true);
            out.push((key.clone(), project.volume_name(key), external));
        }
    }
    out
}

/// Removes what is left of the project's containers and its network.
async fn finish_docker(docker: Option<&berth_engine::runtime::docker::DockerRuntime>) {
    if let Some(docker) = docker {
        docker.finish().await;
        berth_engine::guard::register_docker(None);
    }
}

/// What a foreground run starts with.
struct Run {
    project: Project,
    plans: Vec<berth_engine::ServicePlan>,
    inherited: BTreeMap<String, String>,
    options: UpOptions,
    printer: Option<PrintOptions>,
    containment: berth_engine::contain::Containment,
}

async fn foreground(run: Run) -> Result<(), Failure> {
    let Run {
        project,
        plans,
        inherited,
        options,
        printer,
        containment,
    } = run;
    // Every task of the run hangs off this token. Shutdown cancels its
    // children in order; what is left when the run ends goes with it.
    let root = CancellationToken::new();
    let _cancel_the_rest = root.clone().drop_guard();
    let state_dir = project.settings.state_dir.clone();
    let logs = LogHub::new(state_dir.join("logs"))
        .with_context(|| format!("cannot write logs under {}", state_dir.display()))?;
    let terminal = Terminal::start(&project, &logs, printer, root.child_token())?;
    logs.system("berth", 0, containment.describe());
    let (runtime, docker, dashboard) = match runtimes(&project, &plans, &logs).await {
        Ok(r) => r,
        Err(failure) => {
            terminal.finish(&logs).await;
            return Err(failure);
        }
    };
    let mut signals = Signals::new()?;
    let start = Stack::start(
        &project.name,
        plans,
        Arc::new(runtime),
        logs.clone(),
        &options,
        root.child_token(),
    );
    let stack = match interruptible(start, &mut signals).await {
        Ok(stack) => stack,
        Err(failure) => {
            finish_docker(docker.as_deref()).await;
            // A build's output is on the terminal before the error.
            terminal.finish(&logs).await;
            return Err(failure);
        }
    };
    announce_ports(&stack, &logs);
    if let Some(docker) = &docker {
        reach_native_from_containers(&stack, docker, &logs).await;
    }
    let mount = dashboard.as_ref().and_then(|d| d.mount_addr());
    let edge = match Edge::start(&project, &stack, &logs, mount, root.child_token()).await {
        Ok(edge) => edge,
        Err(e) => {
            logs.system("berth", 0, format!("the proxy cannot start: {e}"));
            stop(&stack, &mut signals, None).await;
            finish_docker(docker.as_deref()).await;
            terminal.finish(&logs).await;
            return Err(Failure::Runtime(anyhow::anyhow!(
                "the proxy cannot start: {e}"
            )));
        }
    };
    announce_when_up(&stack, &logs, &edge.addrs, root.child_token());
    let (down_tx, mut down_rx) = mpsc::channel::<DownRequest>(1);
    let state = api_state(&project, &stack, &edge, &logs, inherited, down_tx, &root);
    let api = serve_api(&state_dir, state, dashboard, &edge).await?;
    super::scheduled::spawn(&project, &logs, root.child_token());
    let outcome = tokio::select! {
        settled = stack.settled() => Outcome::Settled(settled),
        () = signals.next() => Outcome::Interrupted,
        Some(down) = down_rx.recv() => Outcome::Down(down),
    };
    let result = conclude(outcome, &project, &stack, &logs, edge, &mut signals).await;
    // Answers what is in flight (the `down` reply) before the socket goes.
    api.shutdown(stack.grace()).await;
    drop(stack);
    finish_docker(docker.as_deref()).await;
    terminal.finish(&logs).await;
    let _ = std::io::stdout().flush();
    result
}

/// The stack once started, unless Ctrl-C comes first.
async fn interruptible(
    start: impl std::future::Future<Output = Result<Arc<Stack>, berth_engine::Error>>,
    signals: &mut Signals,
) -> Result<Arc<Stack>, Failure> {
    tokio::select! {
        s = start => s.map_err(|e| Failure::Runtime(e.into())),
        () = signals.next() => Err(Failure::Interrupted),
    }
}

/// What the control API's handlers share.
fn api_state(
    project: &Project,
    stack: &Arc<Stack>,
    edge: &Edge,
    logs: &LogHub,
    inherited: BTreeMap<String, String>,
    down: mpsc::Sender<DownRequest>,
    root: &CancellationToken,
) -> Arc<api::server::State> {
    Arc::new(api::server::State {
        stack: stack.clone(),
        project: project.name.clone(),
        started_at: SystemTime::now(),
        proxy: std::sync::Mutex::new(edge.addrs.clone()),
        down,
        logs: logs.clone(),
        shutdown: root.child_token(),
        running: std::sync::Mutex::new(project.clone()),
        inherited,
        state_dir: project.settings.state_dir.clone(),
        routes: edge.proxy.as_ref().map(berth_proxy::Proxy::routes),
        deploys: tokio::sync::broadcast::channel(16).0,
        deploying: tokio::sync::Mutex::new(()),
        dashboard: std::sync::OnceLock::new(),
    })
}

/// The control API on the state directory's socket, and the dashboard.
async fn serve_api(
    state_dir: &std::path::Path,
    state: Arc<api::server::State>,
    dashboard: Option<crate::dashboard::Listeners>,
    edge: &Edge,
) -> Result<api::server::ApiServer, Failure> {
    if let Some(d) = dashboard {
        crate::dashboard::serve(d, &state, edge.cancel.clone()).announce(&state.logs, &edge.addrs);
    }
    let socket = api::socket_path(state_dir);
    api::server::serve(&socket, state)
        .await
        .with_context(|| format!("cannot serve the control API on {}", socket.display()))
        .map_err(Failure::Runtime)
}

/// How the run ends, once it has: stops what runs and says why.
async fn conclude(
    outcome: Outcome,
    project: &Project,
    stack: &Arc<Stack>,
    logs: &LogHub,
    edge: Edge,
    signals: &mut Signals,
) -> Result<(), Failure> {
    match outcome {
        Outcome::Settled(Settled::Failed(failures)) => {
            for f in &failures {
                logs.system("berth", 0, format!("failed: {f}"));
            }
            logs.system("berth", 0, "stopping the stack");
            shutdown(edge, stack, signals, None).await;
            Err(Failure::Runtime(anyhow::anyhow!(
                "the stack did not start: {}",
                summarize(&failures)
            )))
        }
        Outcome::Settled(Settled::Finished { success }) => {
            shutdown(edge, stack, signals, None).await;
            if success {
                Ok(())
            } else {
                Err(Failure::Runtime(anyhow::anyhow!(
                    "every service has exited, some with an error"
                )))
            }
        }
        Outcome::Interrupted => {
            logs.system("berth", 0, "stopping (press Ctrl-C again to force)");
            shutdown(edge, stack, signals, None).await;
            Err(Failure::Interrupted)
        }
        Outcome::Down((down, reply)) => {
            logs.system("berth", 0, "stopping (berth down)");
            // `--timeout`: what still runs then is killed.
            let deadline = down
                .timeout
                .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
            shutdown(edge, stack, signals, deadline).await;
            let mut lines = vec![format!("project {}: stopped", project.name)];
            if down.volumes {
                lines.extend(super::volumes::remove(project));
                lines.extend(super::volumes::remove_docker(project).await);
            }
            let _ = reply.send(Report { lines });
            Ok(())
        }
    }
}

/// The log printer on the terminal, in the foreground.
struct Terminal {
    stop: CancellationToken,
    printer: Option<Printer>,
}

impl Terminal {
    fn start(
        project: &Project,
        logs: &LogHub,
        options: Option<PrintOptions>,
        stop: CancellationToken,
    ) -> Result<Terminal, Failure> {
        let Some(options) = options else {
            return Ok(Terminal {
                stop,
                printer: None,
            });
        };
        let mut formatter = Formatter::new(options);
        // Colours in file order, stable from run to run.
        formatter.register("berth", 0);
        for (name, s) in &project.services {
            for i in 1..=s.replicas() {
                formatter.register(name, i);
            }
        }
        let printer = Printer::spawn(logs.subscribe(), formatter, std::io::stdout(), stop.clone())
            .context("cannot start the log printer")?;
        Ok(Terminal {
            stop,
            printer: Some(printer),
        })
    }

    /// Prints what is left of the logs, then stops.
    async fn finish(self, logs: &LogHub) {
        logs.flush().await;
        self.stop.cancel();
        if let Some(p) = self.printer {
            p.finished().await;
        }
    }
}

/// SIGINT and SIGTERM: the first stops the stack gracefully, the next
/// skips the grace periods.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> Result<Signals, Failure> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// The edge proxy in front of the stack, when one is configured.
struct Edge {
    proxy: Option<berth_proxy::Proxy>,
    cancel: CancellationToken,
    /// Where it listens.
    addrs: Vec<String>,
}

impl Edge {
    /// The proxy serves until `cancel`, then lets requests in flight finish
    /// within the stack's grace period.
    async fn start(
        project: &Project,
        stack: &Arc<Stack>,
        logs: &LogHub,
        dashboard: Option<std::net::SocketAddr>,
        cancel: CancellationToken,
    ) -> Result<Edge, berth_proxy::ProxyError> {
        let Some(mut settings) = project.settings.proxy.clone() else {
            return Ok(Edge {
                proxy: None,
                cancel,
                addrs: Vec::new(),
            });
        };
        crate::notices::forward_proxy_notices(logs);
        crate::dashboard::mount(&mut settings, project.settings.dashboard.as_ref());
        let view = Arc::new(
            crate::edge::EngineView::new(stack.clone(), logs.clone(), &cancel)
                .with_dashboard(dashboard),
        );
        let options = berth_proxy::ServeOptions {
            drain_timeout: stack.grace(),
            state_dir: Some(project.settings.state_dir.clone()),
            ..berth_proxy::ServeOptions::default()
        };
        let proxy = berth_proxy::serve_with(settings, view, cancel.clone(), options).await?;
        let addrs = super::proxy_urls(proxy.local_addrs(), proxy.tls_addrs());
        for a in &addrs {
            logs.system("berth", 0, format!("proxy listening on {a}"));
        }
        Ok(Edge {
            proxy: Some(proxy),
            cancel,
            addrs,
        })
    }
}

/// Says where each declared port listens.
fn announce_ports(stack: &Stack, logs: &LogHub) {
    for (service, target, addr) in &stack.listening() {
        logs.system(
            "berth",
            0,
            format!("{service}: port {target} listening on {addr}"),
        );
    }
}

/// Says "stack is up" once every replica is (unless `cancel` comes first).
fn announce_when_up(
    stack: &Arc<Stack>,
    logs: &LogHub,
    proxy_addrs: &[String],
    cancel: CancellationToken,
) {
    // The page to open: on https when there is a TLS listener.
    let first = proxy_addrs
        .iter()
        .find(|a| a.starts_with("https://"))
        .or(proxy_addrs.first())
        .cloned();
    let (stack, logs) = (stack.clone(), logs.clone());
    tokio::spawn(async move {
        let summary = tokio::select! {
            summary = stack.all_up() => summary,
            () = cancel.cancelled() => return,
        };
        if !summary.is_empty() {
            let mut line = format!("stack is up: {}", summary.join(", "));
            if let Some(a) = first {
                line.push_str(&format!("; open {a}"));
            }
            logs.system("berth", 0, line);
        }
    });
}

enum Outcome {
    Settled(Settled),
    Interrupted,
    Down(DownRequest),
}

/// Stops the proxy (in-flight requests finish within the stack's grace
/// period), then the stack; a further signal, or `deadline`, skips the
/// grace periods.
async fn shutdown(
    edge: Edge,
    stack: &Arc<Stack>,
    signals: &mut Signals,
    deadline: Option<tokio::time::Instant>,
) {
    edge.cancel.cancel();
    if let Some(p) = edge.proxy {
        // The proxy ends by itself after the same grace; this only bounds
        // a worker that would not.
        let _ = tokio::time::timeout(stack.grace(), p.join()).await;
    }
    stop(stack, signals, deadline).await;
}

/// Stops the stack; a further signal, or `deadline`, skips the grace
/// periods.
async fn stop(stack: &Arc<Stack>, signals: &mut Signals, deadline: Option<tokio::time::Instant>) {
    let stopping = stack.stop();
    tokio::pin!(stopping);
    let mut deadline = deadline;
    loop {
        tokio::select! {
            () = &mut stopping => return,
            () = signals.next() => stack.force(),
            () = until(deadline) => {
                stack.force();
                deadline = None;
            }
        }
    }
}

/// Completes at `deadline`; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The first few failures, and how many more there were.
fn summarize(failures: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = failures
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if failures.len() > SHOWN {
        text.push_str(&format!(
            "; and {} more (see `berth logs`)",
            failures.len() - SHOWN
        ));
    }
    text
}
