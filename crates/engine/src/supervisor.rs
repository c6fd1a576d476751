//! One replica's life: wait for dependencies, spawn, watch health, restart
//! with backoff, stop gracefully.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_compose::{Bind, RestartPolicy};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cell::{ServiceCell, Snapshot};
use crate::deps::{Verdict, wait};
use crate::health::Monitor;
use crate::logs::{LogHub, Source};
use crate::plan::{BACKOFF_RESET, Dependency, MAX_BACKOFF};
use crate::runtime::{Exit, Process, ProcessSpec, Runtime};
use crate::state::{Health, ReplicaState};

/// What a replica's task needs.
pub(crate) struct Replica {
    pub cell: Arc<ServiceCell>,
    pub index: u32,
    pub runtime: Arc<dyn Runtime>,
    pub logs: LogHub,
    /// Dependencies with their services' snapshots.
    pub deps: Vec<(Dependency, watch::Receiver<Snapshot>)>,
    /// Stop this replica (graceful).
    pub stop: CancellationToken,
    /// Skip grace periods (second Ctrl-C).
    pub force: CancellationToken,
    /// Ports of this replica's previous incarnation to avoid (rolling restarts).
    pub avoid_ports: Vec<u16>,
}

/// How the message of a replica blocked by a failed dependency starts.
pub const NOT_STARTED: &str = "not started: ";

/// How a run ended.
enum Outcome {
    Exited(Exit),
    Unhealthy(Exit),
    Stopped,
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

    fn fail(&self, message: String) {
        self.say(message.clone());
        self.set(|r| {
            r.state = ReplicaState::Failed;
            r.ready = false;
            r.pid = None;
            r.message = Some(message);
        });
    }

    /// Runs the replica until it is stopped, exits for good, or fails.
    pub async fn run(self) {
        if !self.wait_for_dependencies().await {
            return;
        }
        let plan = self.cell.plan.clone();
        let mut backoff = plan.backoff;
        let mut restarts_done = 0u32;
        loop {
            if self.stop.is_cancelled() {
                self.set(|r| r.state = ReplicaState::Stopped);
                return;
            }
            let started = Instant::now();
            let outcome = match self.run_once().await {
                Ok(outcome) => outcome,
                Err(message) => {
                    self.fail(message);
                    return;
                }
            };
            let exit = match outcome {
                Outcome::Stopped => {
                    self.say("stopped");
                    self.set(|r| {
                        r.state = ReplicaState::Stopped;
                        r.ready = false;
                        r.pid = None;
                    });
                    return;
                }
                Outcome::Exited(exit) | Outcome::Unhealthy(exit) => exit,
            };
            let unhealthy = matches!(outcome, Outcome::Unhealthy(_));
            if started.elapsed() >= BACKOFF_RESET {
                backoff = plan.backoff;
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
                    self.set(|r| r.state = ReplicaState::Stopped);
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
                    self.fail(format!(
                        "{NOT_STARTED}dependency {} failed ({why})",
                        dep.service
                    ));
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

    /// One incarnation: spawn, watch, and end it.
    async fn run_once(&self) -> Result<Outcome, String> {
        let plan = self.cell.plan.clone();
        self.set(|r| {
            r.state = ReplicaState::Starting;
            r.message = None;
        });
        let ports = self.allocate_ports()?;
        let mut env = plan.env.clone();
        env.insert("BERTH_REPLICA".into(), self.index.to_string());
        let first = plan.targets.first().copied().unwrap_or(0);
        let main_port = ports.get(&first).copied();
        if let Some(port) = main_port {
            env.insert("PORT".into(), port.to_string());
        }
        for (target, port) in &ports {
            if *target != 0 {
                env.insert(format!("PORT_{target}"), port.to_string());
            }
        }
        let spec = ProcessSpec {
            argv: plan.argv.clone(),
            env: env.clone(),
            working_dir: plan.working_dir.clone(),
            label: self.label(),
        };
        // Subscribe before spawning so a `log:` ready probe sees the first line.
        let log_rx = match &plan.ready {
            Some(r) if matches!(r.probe, berth_compose::ReadyProbe::Log(_)) => {
                Some(self.logs.subscribe())
            }
            _ => None,
        };
        let mut process = self
            .runtime
            .spawn(&spec)
            .map_err(|e| format!("cannot start {}: {e}", self.label()))?;
        let pid = process.pid();
        let public_ports: BTreeMap<u16, u16> = ports
            .iter()
            .filter(|(t, _)| **t != 0)
            .map(|(t, p)| (*t, *p))
            .collect();
        self.set(|r| {
            r.state = ReplicaState::Running;
            r.pid = Some(pid);
            r.ports = public_ports;
            r.started_at = Some(SystemTime::now());
            r.has_started = true;
            r.exit = None;
            r.health = Health::None;
            r.ready = false;
        });
        let log_task = process.take_output().map(|(out, err)| {
            self.logs.attach(
                Source {
                    service: Arc::from(self.cell.name()),
                    replica: self.index,
                    max_size: plan.log_max_size,
                    max_files: plan.log_max_files,
                },
                out,
                err,
            )
        });
        let (unhealthy_tx, mut unhealthy_rx) = watch::channel(false);
        let probe_port = main_port.unwrap_or(0);
        let monitor_cancel = CancellationToken::new();
        let monitor = Monitor {
            runtime: self.runtime.clone(),
            cell: self.cell.clone(),
            index: self.index,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, probe_port)),
            env,
            working_dir: plan.working_dir.clone(),
            logs: log_rx,
            unhealthy: unhealthy_tx,
            cancel: monitor_cancel.clone(),
        };
        let monitor_task = tokio::spawn(monitor.run());
        let restart_on_unhealthy = plan.restart != RestartPolicy::No;
        let outcome = tokio::select! {
            exit = process.wait() => {
                let exit = exit.map_err(|e| format!("waiting for {}: {e}", self.label()))?;
                Outcome::Exited(exit)
            }
            () = async {
                while unhealthy_rx.changed().await.is_ok() {
                    if *unhealthy_rx.borrow() && restart_on_unhealthy {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            } => {
                self.say("unhealthy; restarting it");
                Outcome::Unhealthy(self.terminate(process.as_mut()).await)
            }
            () = self.stop.cancelled() => {
                self.terminate(process.as_mut()).await;
                Outcome::Stopped
            }
        };
        monitor_cancel.cancel();
        let _ = monitor_task.await;
        if let Some(t) = log_task {
            // The pipes close when the process (group) is gone; flush every line.
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.set(|r| {
            r.ready = false;
            r.health = if r.health == Health::None {
                Health::None
            } else {
                Health::Starting
            };
        });
        Ok(outcome)
    }

    /// Graceful stop: the stop signal to the group, SIGKILL after the grace
    /// period (at once once forced).
    async fn terminate(&self, process: &mut dyn Process) -> Exit {
        let plan = &self.cell.plan;
        self.set(|r| {
            r.state = ReplicaState::Stopping;
            r.ready = false;
        });
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
    fn allocate_ports(&self) -> Result<BTreeMap<u16, u16>, String> {
        let plan = &self.cell.plan;
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
        for t in targets {
            let port = free_port(&self.avoid_ports)
                .map_err(|e| format!("no free port for {}: {e}", self.label()))?;
            ports.insert(t, port);
        }
        Ok(ports)
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
