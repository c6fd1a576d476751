//! One replica's life: wait for dependencies, spawn, watch health, restart
//! with backoff, roll to a new process without downtime, stop gracefully.
//!
//! A replica slot (`api-2`) runs one *incarnation* (process) at a time as
//! far as anyone can see. A rolling restart starts the next incarnation on a
//! new port beside the current one, waits until it is ready, switches the
//! published status (and so the proxy and the forwarders) to it, and only
//! then drains and stops the old one.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_compose::{Bind, RestartPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cell::{ServiceCell, Snapshot};
use crate::deps::{Verdict, wait};
use crate::error::RollError;
use crate::health::{HealthView, Monitor};
use crate::logs::{LogHub, Source};
use crate::plan::{BACKOFF_RESET, Dependency, MAX_BACKOFF, ServicePlan};
use crate::runtime::{ContainerSpec, Exit, Process, ProcessSpec, Runtime};
use crate::state::{Failure, Health, ReplicaState};

use crate::drain::Drain;

/// Commands to a running replica task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start a new incarnation (running `to`, when given), switch to it
    /// once ready, stop the old one; give up after `deadline`.
    Roll {
        to: Option<Arc<ServicePlan>>,
        deadline: Option<std::time::Duration>,
        reply: oneshot::Sender<Result<(), RollError>>,
    },
}

/// What a replica's task needs.
pub(crate) struct Replica {
    pub cell: Arc<ServiceCell>,
    /// What this replica runs (the service's plan when it started, or the
    /// one a deploy rolled it onto).
    pub plan: Arc<ServicePlan>,
    pub index: u32,
    pub runtime: Arc<dyn Runtime>,
    pub logs: LogHub,
    /// Dependencies with their services' snapshots.
    pub deps: Vec<(Dependency, watch::Receiver<Snapshot>)>,
    /// Stop this replica (graceful); a child of the stack's token, and the
    /// parent of its incarnations' monitors.
    pub stop: CancellationToken,
    /// Skip grace periods (second Ctrl-C).
    pub force: CancellationToken,
    pub commands: mpsc::Receiver<Command>,
    pub drain: Option<Arc<Drain>>,
    /// The current run has been ready at least once.
    pub was_ready: bool,
    /// Incarnations started, for naming their `tmpfs` directories.
    pub started: u64,
}

/// How a run ended.
enum Outcome {
    Exited(Exit),
    Unhealthy(Exit),
    Stopped,
}

/// One process of the replica, with its probes and log readers.
struct Incarnation {
    process: Box<dyn Process>,
    /// Its `tmpfs` directories, removed with it.
    _scratch: Option<Scratch>,
    pid: u32,
    ports: BTreeMap<u16, u16>,
    started_at: SystemTime,
    view: watch::Receiver<HealthView>,
    monitor: CancellationToken,
    monitor_task: JoinHandle<()>,
    log_task: Option<JoinHandle<()>>,
}

/// An incarnation's `tmpfs` directories; removed when dropped.
struct Scratch {
    root: std::path::PathBuf,
    /// A tmpfs on each of its directories, where berth may mount.
    mounts: Vec<crate::confine::Mount>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The mounts went with the run's mount namespace.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Incarnation {
    /// Where it takes traffic, per declared port.
    fn addrs(&self) -> Vec<SocketAddr> {
        self.ports
            .values()
            .map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, *p)))
            .collect()
    }

    /// After the process ended: stop probes, flush logs.
    async fn finish(self) {
        self.monitor.cancel();
        let _ = self.monitor_task.await;
        if let Some(t) = self.log_task {
            // The pipes close when the process (group) is gone; keep every line.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Replica {
    fn label(&self) -> String {
        format!("{}-{}", self.cell.name(), self.index)
    }

    fn set(&self, change: impl FnOnce(&mut crate::state::ReplicaStatus)) -> bool {
        self.cell.update(self.index, change)
    }

    fn say(&self, text: impl Into<String>) {
        self.logs.system(self.cell.name(), self.index, text.into());
    }

    fn fail(&self, failure: Failure) {
        self.say(failure.to_string());
        self.set(|r| {
            r.state = ReplicaState::Failed;
            r.ready = false;
            r.pid = None;
            r.message = Some(failure.to_string());
            r.failure = Some(failure);
        });
    }

    fn stopped(&self) {
        self.say("stopped");
        self.set(|r| {
            r.state = ReplicaState::Stopped;
            r.ready = false;
            r.pid = None;
        });
    }

    /// Runs the replica until it is stopped, exits for good, or fails.
    pub async fn run(mut self) {
        if !self.wait_for_dependencies().await {
            return;
        }
        let plan = self.plan.clone();
        let mut backoff = plan.backoff;
        let mut restarts_done = 0u32;
        loop {
            if self.stop.is_cancelled() {
                self.stopped();
                return;
            }
            let started = Instant::now();
            let outcome = match self.run_once().await {
                Ok(outcome) => outcome,
                Err(failure) => {
                    self.fail(failure);
                    return;
                }
            };
            let exit = match outcome {
                Outcome::Stopped => {
                    self.stopped();
                    return;
                }
                Outcome::Exited(exit) | Outcome::Unhealthy(exit) => exit,
            };
            let unhealthy = matches!(outcome, Outcome::Unhealthy(_));
            // A run that was up long enough, or turned ready, is no crash
            // loop: the next restart comes quickly again.
            if started.elapsed() >= BACKOFF_RESET || std::mem::take(&mut self.was_ready) {
                backoff = plan.backoff;
            }
            if self.stop.is_cancelled() {
                self.stopped();
                return;
            }
            if !should_restart(plan.restart, exit, unhealthy, restarts_done) {
                let what = if unhealthy {
                    format!("unhealthy, {exit}")
                } else {
                    exit.to_string()
                };
                self.say(what);
                self.set(|r| {
                    r.state = ReplicaState::Exited;
                    r.ready = false;
                    r.pid = None;
                    r.exit = Some(exit);
                });
                return;
            }
            restarts_done += 1;
            let why = if unhealthy {
                "unhealthy".to_string()
            } else {
                exit.to_string()
            };
            self.say(format!(
                "{why}; restarting in {}",
                humantime::format_duration(backoff)
            ));
            self.set(|r| {
                r.state = ReplicaState::Restarting;
                r.ready = false;
                r.pid = None;
                r.exit = Some(exit);
                r.restarts += 1;
            });
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => {
                    self.stopped();
                    return;
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn wait_for_dependencies(&self) -> bool {
        if self.deps.is_empty() {
            return true;
        }
        self.set(|r| r.state = ReplicaState::Waiting);
        for (dep, rx) in &self.deps {
            if crate::deps::verdict(dep.condition, &rx.borrow()) == Verdict::Waiting {
                self.say(format!(
                    "waiting for {} ({})",
                    dep.service,
                    condition_words(dep.condition)
                ));
            }
            let verdict = tokio::select! {
                v = wait(dep.condition, rx.clone()) => v,
                () = self.stop.cancelled() => {
                    self.set(|r| r.state = ReplicaState::Stopped);
                    return false;
                }
            };
            match verdict {
                Verdict::Satisfied | Verdict::Waiting => {}
                Verdict::Failed(why) if dep.required => {
                    self.fail(Failure::Dependency {
                        service: dep.service.clone(),
                        reason: why,
                    });
                    return false;
                }
                Verdict::Failed(why) => {
                    self.say(format!(
                        "optional dependency {} failed ({why}); starting anyway",
                        dep.service
                    ));
                }
            }
        }
        true
    }

    /// Starts a process with fresh ports (avoiding `avoid`) and its monitor.
    async fn spawn(
        &mut self,
        plan: &Arc<ServicePlan>,
        avoid: &[u16],
    ) -> Result<Incarnation, Failure> {
        let plan = plan.clone();
        let ports = self
            .allocate_ports(&plan, avoid)
            .map_err(|e| Failure::Start {
                reason: format!("no free port for {}: {e}", self.label()),
            })?;
        let mut env = plan.replica_env(self.index, &ports);
        self.started += 1;
        let scratch = self.scratch(&plan, &mut env)?;
        let first = plan.targets.first().copied().unwrap_or(0);
        let main_port = ports.get(&first).copied();
        let spec = self.process_spec(&plan, &env, &ports, scratch.as_ref());
        // Registered before spawning so a `log:` ready probe sees the first line.
        let log_wait: Option<crate::health::LogWait> = match plan.ready.as_ref().map(|r| &r.probe) {
            Some(berth_compose::ReadyProbe::Log(pattern)) => {
                regex::bytes::Regex::new(pattern).ok().map(|re| {
                    Box::pin(self.logs.wait_for(self.cell.name(), self.index, re))
                        as crate::health::LogWait
                })
            }
            _ => None,
        };
        let mut process = self
            .runtime
            .spawn(&spec)
            .await
            .map_err(|e| Failure::Start {
                reason: format!("cannot start {}: {e}", self.label()),
            })?;
        let pid = process.pid();
        let log_task = process.take_output().map(|(out, err)| {
            self.logs.attach(
                Source {
                    service: Arc::from(self.cell.name()),
                    replica: self.index,
                    max_size: plan.log_rotation.max_size,
                    max_files: plan.log_rotation.max_files,
                },
                out,
                err,
            )
        });
        let (view_tx, view) = watch::channel(HealthView {
            health: Health::None,
            ready: false,
            message: None,
        });
        let monitor_cancel = self.stop.child_token();
        let monitor = Monitor {
            runtime: self.runtime.clone(),
            plan: plan.clone(),
            index: self.index,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, main_port.unwrap_or(0))),
            env,
            working_dir: plan.working_dir.clone(),
            log_wait,
            mounts_of: (!spec.mounts.is_empty()).then_some(pid),
            container: spec.container.clone(),
            view: view_tx,
            cancel: monitor_cancel.clone(),
        };
        let monitor_task = tokio::spawn(monitor.run());
        Ok(Incarnation {
            process,
            _scratch: scratch,
            pid,
            ports,
            started_at: SystemTime::now(),
            view,
            monitor: monitor_cancel,
            monitor_task,
            log_task,
        })
    }

    /// What to run for one incarnation.
    fn process_spec(
        &self,
        plan: &ServicePlan,
        env: &BTreeMap<String, String>,
        ports: &BTreeMap<u16, u16>,
        scratch: Option<&Scratch>,
    ) -> ProcessSpec {
        let mut writable = plan.writable.clone();
        writable.extend(scratch.map(|s| s.root.clone()));
        ProcessSpec {
            argv: plan.argv.clone(),
            env: env.clone(),
            working_dir: plan.working_dir.clone(),
            label: self.label(),
            confinement: plan.confinement.clone(),
            identity: plan.identity.clone(),
            writable,
            mounts: scratch.map(|s| s.mounts.clone()).unwrap_or_default(),
            mounts_of: None,
            container: plan
                .container
                .as_ref()
                .map(|c| Box::new(self.container_spec(c, ports, plan))),
        }
    }

    /// The container of this incarnation: the service's environment and
    /// berth's replica variables, `PORT` the declared port (the container
    /// has its own network), each declared port published on the
    /// loopback port berth chose.
    fn container_spec(
        &self,
        c: &crate::plan::ContainerPlan,
        ports: &BTreeMap<u16, u16>,
        plan: &ServicePlan,
    ) -> ContainerSpec {
        let first = plan.targets.first().copied();
        let publish_udp: Vec<(u16, u16)> = plan
            .udp
            .iter()
            .filter_map(|l| Some((*ports.get(&l.target)?, l.target)))
            .collect();
        let publish: Vec<(u16, u16)> = ports
            .iter()
            .filter(|(declared, _)| **declared != 0)
            .map(|(declared, own)| (*own, *declared))
            .collect();
        let mut env = c.env.clone();
        env.insert("BERTH_REPLICA".into(), self.index.to_string());
        if let Some(first) = first.filter(|t| *t != 0) {
            env.entry("PORT".into())
                .or_insert_with(|| first.to_string());
        }
        let base = format!("{}-{}-{}", c.project, self.cell.name(), self.index);
        ContainerSpec {
            name: if self.started > 1 {
                format!("{base}.{}", self.started)
            } else {
                base
            },
            project: c.project.clone(),
            service: self.cell.name().to_string(),
            number: self.index,
            image: c.image.clone().unwrap_or_default(),
            command: c.command.clone(),
            entrypoint: c.entrypoint.clone(),
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            env,
            publish,
            publish_udp,
            config_hash: c.config_hash.clone(),
            stop_signal: c.stop_signal.clone(),
            host: c.host.clone(),
        }
    }

    /// Fresh directories for the plan's `tmpfs` targets, each handed over
    /// in `BERTH_VOLUME_<TARGET>` like a volume, the user's when the
    /// service runs as one.
    fn scratch(
        &self,
        plan: &ServicePlan,
        env: &mut BTreeMap<String, String>,
    ) -> Result<Option<Scratch>, Failure> {
        if plan.tmpfs.is_empty() {
            return Ok(None);
        }
        let root = plan
            .scratch
            .join(format!("{}-{}", self.index, self.started));
        let mut scratch = Scratch {
            root: root.clone(),
            mounts: Vec::new(),
        };
        let fail = |e: std::io::Error| Failure::Start {
            reason: format!("cannot create {} for tmpfs: {e}", root.display()),
        };
        for tmpfs in &plan.tmpfs {
            let var = crate::plan::volume_var(&tmpfs.target);
            let dir = root.join(var.trim_start_matches("BERTH_VOLUME_").to_lowercase());
            std::fs::create_dir_all(&dir).map_err(fail)?;
            if let Some(who) = &plan.identity {
                std::os::unix::fs::chown(&dir, Some(who.uid), Some(who.gid)).map_err(fail)?;
                // The state directory above `tmpfs/`: passable for that user.
                if let Some(state) = plan.scratch.parent().and_then(std::path::Path::parent) {
                    crate::private::passable(state).map_err(fail)?;
                }
            }
            if crate::confine::can_mount() {
                let (uid, gid) = plan.identity.as_ref().map_or_else(
                    || {
                        (
                            nix::unistd::getuid().as_raw(),
                            nix::unistd::getgid().as_raw(),
                        )
                    },
                    |who| (who.uid, who.gid),
                );
                scratch.mounts.push(crate::confine::Mount::tmpfs(
                    dir.clone(),
                    tmpfs.size,
                    tmpfs.mode,
                    (uid, gid),
                ));
            }
            env.insert(var, dir.to_string_lossy().into_owned());
        }
        Ok(Some(scratch))
    }

    /// Makes an incarnation the one the slot publishes.
    fn publish_current(&self, cur: &Incarnation) {
        // Port 0 stands for `$PORT` of a service that declares no port.
        let public = cur.ports.clone();
        let view = cur.view.borrow().clone();
        self.set(|r| {
            r.state = ReplicaState::Running;
            r.pid = Some(cur.pid);
            r.ports = public;
            r.started_at = Some(cur.started_at);
            r.has_started = true;
            r.exit = None;
            r.health = view.health;
            r.ready = view.ready && !r.leaving;
            r.message = view.message;
        });
    }

    /// One incarnation (and the ones rolling restarts put in its place).
    async fn run_once(&mut self) -> Result<Outcome, Failure> {
        self.set(|r| {
            r.state = ReplicaState::Starting;
            r.message = None;
        });
        let plan = self.plan.clone();
        let mut cur = self.spawn(&plan, &[]).await?;
        self.publish_current(&cur);
        // A container that finished before the engine was asked about it
        // has no process left to name.
        self.say(match cur.pid {
            0 => "started".to_string(),
            pid => format!("started (pid {pid})"),
        });
        let outcome = self.follow(&mut cur).await?;
        cur.finish().await;
        let oom = matches!(outcome, Outcome::Exited(Exit::OutOfMemory { .. }));
        self.set(|r| {
            r.oom_kills += u32::from(oom);
            r.ready = false;
            if r.health != Health::None {
                r.health = Health::Starting;
            }
        });
        Ok(outcome)
    }

    /// Follows the current incarnation until it exits, turns unhealthy and
    /// is to be restarted, or is stopped; rolling restarts replace it
    /// meanwhile.
    async fn follow(&mut self, cur: &mut Incarnation) -> Result<Outcome, Failure> {
        // Its monitor ends with `stop` (its parent token): nothing more to read then.
        let mut monitored = true;
        loop {
            tokio::select! {
                exit = cur.process.wait() => {
                    let exit = exit.map_err(|e| Failure::Wait {
                        reason: format!("waiting for {}: {e}", self.label()),
                    })?;
                    return Ok(Outcome::Exited(exit));
                }
                changed = cur.view.changed(), if monitored => {
                    if changed.is_err() {
                        monitored = false;
                        continue;
                    }
                    let view = cur.view.borrow_and_update().clone();
                    if let Some(outcome) = self.health_changed(cur, view).await {
                        return Ok(outcome);
                    }
                }
                Some(command) = self.commands.recv() => {
                    if let Some(outcome) = self.obey(cur, command).await {
                        return Ok(outcome);
                    }
                    // Possibly a new incarnation, with a monitor of its own.
                    monitored = true;
                }
                () = self.stop.cancelled() => {
                    self.terminate(cur.process.as_mut(), false).await;
                    return Ok(Outcome::Stopped);
                }
            }
        }
    }

    /// Publishes what the probes say about the current incarnation; ends
    /// it when it turned unhealthy and its policy restarts it.
    async fn health_changed(&mut self, cur: &mut Incarnation, view: HealthView) -> Option<Outcome> {
        let plan = self.plan.clone();
        let before = self.cell.replica(self.index);
        // Unhealthy and to be restarted: `restarting` in the same update, so
        // that nobody (dependents, `up --wait`) takes a replica that heals
        // itself for a failed one.
        let heal = view.health == Health::Unhealthy && plan.restart != RestartPolicy::No;
        self.set(|r| {
            r.health = view.health;
            r.ready = view.ready && !r.leaving && !heal;
            r.message = view.message.clone();
            if heal {
                r.state = ReplicaState::Restarting;
            }
        });
        let was_ready = before.as_ref().is_some_and(|r| r.ready);
        // Ready by a probe, not merely by running.
        let probed = plan.healthcheck.is_some() || plan.ready.is_some();
        self.was_ready |= view.ready && probed;
        let was_unhealthy = before
            .as_ref()
            .is_some_and(|r| r.health == Health::Unhealthy);
        if view.ready && !was_ready && view.health != Health::None {
            self.say("healthy");
        }
        let why = view.message.as_deref().unwrap_or("health check failing");
        if heal {
            self.say(format!("unhealthy ({why}); restarting it"));
            self.drain(cur.addrs()).await;
            let exit = self.terminate(cur.process.as_mut(), true).await;
            return Some(Outcome::Unhealthy(exit));
        }
        if view.health == Health::Unhealthy && !was_unhealthy {
            self.say(format!(
                "unhealthy ({why}); not restarted (restart: no); see `berth logs {}`",
                self.cell.name()
            ));
        }
        None
    }

    /// Carries out a command; ends the incarnation when the replica was
    /// stopped meanwhile.
    async fn obey(&mut self, cur: &mut Incarnation, command: Command) -> Option<Outcome> {
        let Command::Roll {
            to,
            deadline,
            reply,
        } = command;
        match self.roll(cur, to, deadline).await {
            Ok(()) => {
                let _ = reply.send(Ok(()));
                None
            }
            Err(RollError::Stopped) => {
                let _ = reply.send(Err(RollError::Stopped));
                self.terminate(cur.process.as_mut(), false).await;
                Some(Outcome::Stopped)
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    }

    /// A rolling restart of this slot: the next incarnation starts beside
    /// `cur`; once ready it replaces `cur`, and the old one is drained and
    /// stopped in the background ([`RollError::Stopped`]: the replica was
    /// stopped meanwhile).
    async fn roll(
        &mut self,
        cur: &mut Incarnation,
        to: Option<Arc<ServicePlan>>,
        deadline: Option<std::time::Duration>,
    ) -> Result<(), RollError> {
        if self.plan.bind == Bind::Direct {
            return Err(RollError::Direct);
        }
        let plan = to.unwrap_or_else(|| self.plan.clone());
        let avoid: Vec<u16> = cur.ports.values().copied().collect();
        let mut next = self.spawn(&plan, &avoid).await.map_err(RollError::Spawn)?;
        self.say(format!(
            "rolling: new process {} started beside {}",
            next.pid, cur.pid
        ));
        let ready = match deadline {
            None => self.until_ready(&mut next).await,
            Some(limit) => match tokio::time::timeout(limit, self.until_ready(&mut next)).await {
                Ok(ready) => ready,
                Err(_) => {
                    let last = next.view.borrow().message.clone();
                    self.say(format!(
                        "rolling: the new process {} was not ready within {}s; keeping {}",
                        next.pid,
                        limit.as_secs(),
                        cur.pid
                    ));
                    self.terminate(next.process.as_mut(), true).await;
                    Err(RollError::Deadline {
                        waited: limit,
                        last,
                    })
                }
            },
        };
        if let Err(reason) = ready {
            next.finish().await;
            return Err(reason);
        }
        self.plan = plan;
        let old = std::mem::replace(cur, next);
        self.publish_current(cur);
        self.say(format!(
            "rolling: switched to {}; draining {}",
            cur.pid, old.pid
        ));
        tokio::spawn(self.retire(old));
        Ok(())
    }

    /// Waits until a new incarnation is ready. When it will not be (it
    /// ended, or the replica is being stopped), its process is gone on
    /// return.
    async fn until_ready(&self, next: &mut Incarnation) -> Result<(), RollError> {
        loop {
            if next.view.borrow_and_update().ready {
                return Ok(());
            }
            tokio::select! {
                changed = next.view.changed() => {
                    if changed.is_err() {
                        // Its monitor ended: the replica is being stopped.
                        self.terminate(next.process.as_mut(), true).await;
                        return Err(if self.stop.is_cancelled() {
                            RollError::Stopped
                        } else {
                            RollError::Unmonitored
                        });
                    }
                }
                exit = next.process.wait() => {
                    let reason = match exit {
                        Ok(exit) => RollError::NotReady(exit),
                        Err(e) => RollError::Lost(e),
                    };
                    let why = match &reason {
                        RollError::Lost(e) => format!("{reason} ({e})"),
                        _ => reason.to_string(),
                    };
                    self.say(format!("rolling: {why}; keeping the old one"));
                    return Err(reason);
                }
                () = self.stop.cancelled() => {
                    self.terminate(next.process.as_mut(), true).await;
                    return Err(RollError::Stopped);
                }
            }
        }
    }

    /// Stops an incarnation that was replaced: whoever routes to it
    /// (forwarders, the proxy) lets go of it and finishes its in-flight
    /// requests and WebSockets within the grace period, then it gets the
    /// stop signal, and SIGKILL once the grace period is over.
    fn retire(&self, mut old: Incarnation) -> impl std::future::Future<Output = ()> + use<> {
        let drain = self.drain.clone();
        let grace = self.plan.stop_grace;
        let signal = self.plan.stop_signal;
        let force = self.force.clone();
        let logs = self.logs.clone();
        let (service, index) = (self.cell.name().to_string(), self.index);
        async move {
            let addrs = old.addrs();
            let started = Instant::now();
            if let Some(d) = &drain {
                d.wait_idle(&addrs, grace).await;
            }
            let deadline = started + grace;
            let _ = old.process.signal(signal);
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            let done = tokio::select! {
                r = tokio::time::timeout(left, old.process.wait()) => r.ok().and_then(Result::ok),
                () = force.cancelled() => None,
            };
            if done.is_none() {
                let _ = old.process.signal(libc::SIGKILL);
                let _ = old.process.wait().await;
            }
            logs.system(
                &service,
                index,
                format!("rolling: old process {} stopped", old.pid),
            );
            old.finish().await;
        }
    }

    /// Lets whoever routes to an incarnation that left the balancer
    /// (forwarders, the proxy) finish what is in flight, within the grace
    /// period, so that restarting an unhealthy replica fails no request
    /// it had already accepted.
    async fn drain(&self, addrs: Vec<SocketAddr>) {
        let Some(drain) = &self.drain else { return };
        tokio::select! {
            () = drain.wait_idle(&addrs, self.plan.stop_grace) => {}
            () = self.stop.cancelled() => {}
            () = self.force.cancelled() => {}
        }
    }

    /// Graceful stop: the stop signal to the group, SIGKILL after the grace
    /// period (at once when forced). `quiet` leaves the published state
    /// alone (processes nobody sees, or a replica already `restarting`).
    async fn terminate(&self, process: &mut dyn Process, quiet: bool) -> Exit {
        let plan = &self.plan;
        if !quiet {
            self.set(|r| {
                r.state = ReplicaState::Stopping;
                r.ready = false;
            });
        }
        let _ = process.signal(plan.stop_signal);
        let graceful = tokio::select! {
            r = tokio::time::timeout(plan.stop_grace, process.wait()) => r.ok().and_then(Result::ok),
            () = self.force.cancelled() => None,
        };
        if let Some(exit) = graceful {
            return exit;
        }
        self.say(format!(
            "did not stop within {}; killing it",
            humantime::format_duration(plan.stop_grace)
        ));
        let _ = process.signal(libc::SIGKILL);
        process.wait().await.unwrap_or(Exit::Signal(libc::SIGKILL))
    }

    /// A free loopback port per declared port (forwarded), or the declared
    /// ports themselves (direct). Key 0 stands for `$PORT` when the service
    /// declares none.
    fn allocate_ports(
        &self,
        plan: &ServicePlan,
        avoid: &[u16],
    ) -> std::io::Result<BTreeMap<u16, u16>> {
        let mut ports = BTreeMap::new();
        if plan.bind == Bind::Direct {
            for t in &plan.targets {
                ports.insert(*t, *t);
            }
            return Ok(ports);
        }
        let targets: Vec<u16> = if plan.targets.is_empty() {
            vec![0]
        } else {
            plan.targets.clone()
        };
        let mut taken: Vec<u16> = avoid.to_vec();
        for t in targets {
            let port = free_port(&taken)?;
            taken.push(port);
            ports.insert(t, port);
        }
        Ok(ports)
    }
}

fn condition_words(c: berth_compose::Condition) -> &'static str {
    match c {
        berth_compose::Condition::ServiceStarted => "to start",
        berth_compose::Condition::ServiceHealthy => "to be healthy",
        berth_compose::Condition::ServiceCompletedSuccessfully => "to complete",
    }
}

/// Whether a replica that ended gets another run.
pub fn should_restart(
    policy: RestartPolicy,
    exit: Exit,
    unhealthy: bool,
    restarts_done: u32,
) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always { max_retries } => max_retries.is_none_or(|m| restarts_done < m),
        RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            (unhealthy || !exit.success()) && max_retries.is_none_or(|m| restarts_done < m)
        }
    }
}

/// A port nothing listens on right now (the process binds it next).
pub fn free_port(avoid: &[u16]) -> std::io::Result<u16> {
    for _ in 0..16 {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        if !avoid.contains(&port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::other(
        "the kernel keeps handing out ports in use",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        let fail = Exit::Code(1);
        let ok = Exit::Code(0);
        assert!(!should_restart(RestartPolicy::No, fail, false, 0));
        assert!(should_restart(
            RestartPolicy::Always { max_retries: None },
            ok,
            false,
            99
        ));
        assert!(!should_restart(
            RestartPolicy::Always {
                max_retries: Some(2)
            },
            ok,
            false,
            2
        ));
        assert!(should_restart(
            RestartPolicy::OnFailure { max_retries: None },
            fail,
            false,
            5
        ));
        assert!(!should_restart(
            RestartPolicy::OnFailure { max_retries: None },
            ok,
            false,
            0
        ));
        assert!(should_restart(
            RestartPolicy::OnFailure { max_retries: None },
            ok,
            true,
            0
        ));
        assert!(!should_restart(
            RestartPolicy::OnFailure {
                max_retries: Some(3)
            },
            fail,
            false,
            3
        ));
        assert!(should_restart(RestartPolicy::UnlessStopped, ok, false, 100));
    }
}
