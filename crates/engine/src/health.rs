//! Health and readiness of one running replica.
//!
//! Two probes, both optional:
//! - `x-berth.ready` (HTTP GET to the replica's port, TCP connect, or a log
//!   line matching a regex), polled fast (every 25 ms by default) until it
//!   first passes, so dependents start within tens of milliseconds;
//! - the Compose `healthcheck`, with Docker's meaning and one improvement:
//!   the first probe runs at once, then every `start_interval` (default 1 s)
//!   until the first success, then every `interval`. Failures during
//!   `start_period` before the first success do not count; `retries`
//!   consecutive failures make the replica unhealthy.
//!
//! A replica is ready (takes traffic, satisfies `service_healthy`) once its
//! ready probe has passed and its health check, if any, is passing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_compose::ReadyProbe;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::logs::LogRecord;

/// A registered wait for a log line.
pub(crate) type LogWait = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<LogRecord, crate::logs::WaitError>> + Send + Sync>,
>;
use crate::plan::ServicePlan;
use crate::runtime::{Probe, ProbeResult, ProcessSpec, Runtime};
use crate::state::Health;

/// Default `start_interval` (Docker's is 5 s, and only with `start_period`).
pub const START_INTERVAL: Duration = Duration::from_secs(1);

/// What the probes say about one incarnation of a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthView {
    pub health: Health,
    pub ready: bool,
    /// What the last failing probe said; None once a probe passes.
    pub message: Option<String>,
}

/// What the monitor needs about the replica it watches.
pub(crate) struct Monitor {
    pub runtime: Arc<dyn Runtime>,
    pub plan: Arc<ServicePlan>,
    pub index: u32,
    /// Where the replica listens (its `$PORT`), for HTTP and TCP probes.
    pub addr: SocketAddr,
    /// The replica's environment and directory, for `CMD` probes.
    pub env: BTreeMap<String, String>,
    pub working_dir: std::path::PathBuf,
    /// For a `log:` ready probe: the wait for a matching line, registered
    /// before the process was spawned so its first line counts.
    pub log_wait: Option<LogWait>,
    /// The replica whose mount namespace (its tmpfs) checks run in.
    pub mounts_of: Option<u32>,
    /// The replica's container, which `CMD` checks run in.
    pub container: Option<Box<crate::runtime::ContainerSpec>>,
    /// Where the verdicts go.
    pub view: watch::Sender<HealthView>,
    pub cancel: CancellationToken,
}

/// The ready probe's and the health check's verdicts, combined into the
/// replica's [`HealthView`].
struct Verdicts<'a> {
    view: &'a watch::Sender<HealthView>,
    ready_passed: AtomicBool,
    check: Mutex<Health>,
}

impl Verdicts<'_> {
    async fn publish(&self, message: Option<String>) {
        let passed = self.ready_passed.load(Ordering::SeqCst);
        let check = *self.check.lock().await;
        self.view.send_modify(|v| {
            v.ready = passed && check == Health::Healthy;
            v.health = match check {
                Health::Unhealthy => Health::Unhealthy,
                Health::Healthy if passed => Health::Healthy,
                _ => Health::Starting,
            };
            v.message = message;
        });
    }
}

impl Monitor {
    /// Runs until cancelled.
    pub async fn run(mut self) {
        let plan = self.plan.clone();
        let has_ready = plan.ready.is_some();
        let has_check = plan.healthcheck.is_some();
        if !has_ready && !has_check {
            self.view.send_replace(HealthView {
                health: Health::None,
                ready: true,
                message: None,
            });
            self.cancel.cancelled().await;
            return;
        }
        self.view.send_replace(HealthView {
            health: Health::Starting,
            ready: false,
            message: None,
        });
        let verdicts = Verdicts {
            view: &self.view,
            ready_passed: AtomicBool::new(!has_ready),
            check: Mutex::new(if has_check {
                Health::Starting
            } else {
                Health::Healthy
            }),
        };
        let logs = self.log_wait.take();
        // When the ready probe passes, the health check runs again at once
        // instead of waiting for its next tick: readiness is then known
        // within milliseconds of the service being up.
        let ready_now = tokio::sync::Notify::new();
        let ready_loop = async {
            if let Some(ready) = &plan.ready {
                self.wait_ready(ready, logs).await;
                verdicts.ready_passed.store(true, Ordering::SeqCst);
                ready_now.notify_one();
                verdicts.publish(None).await;
            }
        };
        let check_loop = async {
            if let Some(hc) = &plan.healthcheck {
                self.check_loop(hc, &verdicts, &ready_now).await;
            }
        };
        tokio::select! {
            _ = async { tokio::join!(ready_loop, check_loop) } => self.cancel.cancelled().await,
            () = self.cancel.cancelled() => {}
        }
    }

    /// Runs the health check at its intervals for ever, publishing each
    /// verdict; early on, also as soon as the ready probe passes.
    async fn check_loop(
        &self,
        hc: &berth_compose::HealthCheck,
        verdicts: &Verdicts<'_>,
        ready_now: &tokio::sync::Notify,
    ) {
        let spec = ProcessSpec {
            argv: hc.test.argv(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            label: format!("{}-{} healthcheck", self.plan.name, self.index),
            confinement: self.plan.confinement.clone(),
            identity: self.plan.identity.clone(),
            writable: self.plan.writable.clone(),
            mounts: Vec::new(),
            mounts_of: self.mounts_of,
            container: self.container.clone(),
        };
        let mut tally = Tally::new(hc);
        loop {
            let result = self
                .runtime
                .probe(&Probe::Command(Box::new(spec.clone())), hc.timeout.0)
                .await;
            match result {
                ProbeResult::Pass => {
                    tally.pass();
                    *verdicts.check.lock().await = Health::Healthy;
                    verdicts.publish(None).await;
                }
                ProbeResult::Fail(output) => {
                    if tally.fail() {
                        *verdicts.check.lock().await = Health::Unhealthy;
                        verdicts
                            .publish(Some(format!(
                                "health check failed {} times: {output}",
                                tally.failures
                            )))
                            .await;
                    } else {
                        verdicts
                            .publish(Some(format!("health check failed: {output}")))
                            .await;
                    }
                }
            }
            if tally.passed_once {
                tokio::time::sleep(hc.interval.0).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(tally.start_interval) => {}
                    () = ready_now.notified() => {}
                }
            }
        }
    }

    /// Polls the ready probe until it passes.
    async fn wait_ready(&self, ready: &berth_compose::Ready, log_wait: Option<LogWait>) {
        let probe = match &ready.probe {
            ReadyProbe::Log(_) => {
                let found = match log_wait {
                    Some(wait) => wait.await.is_ok(),
                    None => false,
                };
                if !found {
                    // The hub went away: the stack is stopping.
                    std::future::pending::<()>().await;
                }
                return;
            }
            ReadyProbe::Http(path) => Probe::Http {
                addr: self.addr,
                path: path.clone(),
            },
            ReadyProbe::Tcp => Probe::Tcp { addr: self.addr },
        };
        // Poll fast at first (most services are up within milliseconds),
        // then settle at the configured interval: 5 ms, 10 ms, 20 ms, ...
        let mut wait = Duration::from_millis(5).min(ready.interval.0);
        loop {
            if self.runtime.probe(&probe, ready.timeout.0).await == ProbeResult::Pass {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(ready.interval.0);
        }
    }
}

/// Docker's counting of health check failures, with berth's faster first
/// probes: failures count at most once per `interval` until the first
/// success (probing faster finds health sooner but must not declare a slow
/// starter unhealthy sooner), none count within `start_period` before it,
/// and `retries` counted failures in a row make the check unhealthy.
#[derive(Debug)]
struct Tally {
    started: Instant,
    start_period: Duration,
    start_interval: Duration,
    interval: Duration,
    retries: u32,
    passed_once: bool,
    failures: u32,
    last_counted: Instant,
}

impl Tally {
    fn new(hc: &berth_compose::HealthCheck) -> Tally {
        let now = Instant::now();
        Tally {
            started: now,
            start_period: hc.start_period.map_or(Duration::ZERO, |d| d.0),
            start_interval: hc.start_interval.map_or(START_INTERVAL, |d| d.0),
            interval: hc.interval.0,
            retries: hc.retries.max(1),
            passed_once: false,
            failures: 0,
            last_counted: now,
        }
    }

    fn pass(&mut self) {
        self.passed_once = true;
        self.failures = 0;
    }

    /// Counts a failure when it counts; whether the check is unhealthy now.
    fn fail(&mut self) -> bool {
        let grace = !self.passed_once && self.started.elapsed() < self.start_period;
        let due = self.passed_once || self.last_counted.elapsed() >= self.interval;
        if !grace && due {
            self.failures += 1;
            self.last_counted = Instant::now();
        }
        self.failures >= self.retries
    }
}
