//! The engine as the edge proxy sees it: ready replicas per service and
//! port, aggregated health, engine metrics, the access log, and in-flight
//! requests counted for draining.
//!
//! The proxy counts each request with the replica's counter in the
//! engine's [`Drain`] ([`StackView::replica_uses`]: asked once per replica,
//! then an atomic add and subtract per request); every replica a route
//! lists is a use too, so a replica being replaced is stopped only once the
//! proxy has let go of it.

use std::collections::HashMap;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use berth_engine::drain::{Drain, Listed};
use berth_engine::logs::LogHub;
use berth_engine::{ReplicaState, Stack};
use berth_proxy::{ReplicaUses, StackView, Upstream, Upstreams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The running stack, for the proxy.
pub struct EngineView {
    stack: Arc<Stack>,
    logs: LogHub,
    /// Ready replicas per (service, declared port; 0 = `$PORT`); a service
    /// or port a deploy added is followed once a route asks for it.
    channels: Mutex<HashMap<(String, u16), watch::Receiver<Upstreams>>>,
    /// The engine's runtime, where followers run.
    runtime: tokio::runtime::Handle,
    cancel: CancellationToken,
    /// The dashboard's loopback listener, when the proxy mounts it.
    dashboard: Option<watch::Sender<Upstreams>>,
}

impl EngineView {
    /// Follows every service's ready replicas for each of its ports until
    /// `cancel`. Must be called on the engine's runtime (it spawns the
    /// followers there).
    pub fn new(stack: Arc<Stack>, logs: LogHub, cancel: &CancellationToken) -> EngineView {
        let runtime = tokio::runtime::Handle::current();
        let mut channels = HashMap::new();
        for cell in stack.services() {
            let mut targets = cell.plan().targets.clone();
            if targets.is_empty() {
                targets.push(0);
            }
            for target in targets {
                let followed = follow(&cell, target, &stack.drain, cancel, &runtime);
                channels.insert((cell.name().to_string(), target), followed);
            }
        }
        EngineView {
            stack,
            logs,
            channels: Mutex::new(channels),
            runtime,
            cancel: cancel.clone(),
            dashboard: None,
        }
    }

    /// Routes to [`crate::dashboard::MOUNT_SERVICE`] go to `addr`.
    #[must_use]
    pub fn with_dashboard(mut self, addr: Option<SocketAddr>) -> EngineView {
        self.dashboard = addr.map(|addr| {
            watch::channel::<Upstreams>(Arc::from(vec![Upstream {
                replica: Arc::from("dashboard"),
                addr,
            }]))
            .0
        });
        self
    }
}

/// Labels of a replica's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    service: String,
    replica: String,
}

/// Labels of a service's replicas counted by state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    service: String,
    state: String,
}

impl EngineView {
    /// The engine's series, as they are now: a registry built per scrape.
    fn metrics(&self) -> Registry {
        let series = Series::default();
        let usage = berth_engine::runtime::native::all_group_stats();
        for cell in self.stack.services() {
            let service = cell.name().to_string();
            for r in cell.snapshot().iter() {
                series.replica(&service, r, usage.get(&r.pid.unwrap_or(0)));
            }
        }
        let logs = self.logs.stats();
        let lost = Counter::<u64>::default();
        lost.inc_by(logs.lost_lines);
        let failed_writes = Counter::<u64>::default();
        failed_writes.inc_by(logs.failed_writes);
        let mut registry = Registry::with_prefix("berth");
        series.register(&mut registry);
        registry.register(
            "log_lines_lost",
            "Log lines that could not be written to a file (a full disk...)",
            lost,
        );
        registry.register(
            "log_write_failures",
            "Log file writes that failed",
            failed_writes,
        );
        registry
    }
}

/// The replicas' series of one scrape.
#[derive(Default)]
struct Series {
    ready: Family<ReplicaLabels, Gauge>,
    healthy: Family<ReplicaLabels, Gauge>,
    restarts: Family<ReplicaLabels, Counter>,
    replicas: Family<StateLabels, Gauge>,
    memory: Family<ReplicaLabels, Gauge>,
    memory_limit: Family<ReplicaLabels, Gauge>,
    cpu: Family<ReplicaLabels, Counter<f64, AtomicU64>>,
    oom: Family<ReplicaLabels, Counter>,
}

impl Series {
    fn replica(
        &self,
        service: &str,
        r: &berth_engine::ReplicaStatus,
        usage: Option<&berth_engine::runtime::Stats>,
    ) {
        let labels = ReplicaLabels {
            service: service.to_string(),
            replica: r.index.to_string(),
        };
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.ready
            .get_or_create(&labels)
            .set(i64::from(r.ready && r.state == ReplicaState::Running));
        if r.health != berth_engine::Health::None {
            self.healthy
                .get_or_create(&labels)
                .set(i64::from(r.health == berth_engine::Health::Healthy));
        }
        self.restarts
            .get_or_create(&labels)
            .inc_by(u64::from(r.restarts));
        self.oom
            .get_or_create(&labels)
            .inc_by(u64::from(r.oom_kills));
        if let Some(s) = usage {
            self.memory.get_or_create(&labels).set(gauge(s.rss_bytes));
            self.cpu.get_or_create(&labels).inc_by(s.cpu_seconds);
            if let Some(l) = s.memory_limit {
                self.memory_limit.get_or_create(&labels).set(gauge(l));
            }
        }
        self.replicas
            .get_or_create(&StateLabels {
                service: service.to_string(),
                state: r.state.as_str().to_string(),
            })
            .inc();
    }

    fn register(self, registry: &mut Registry) {
        registry.register(
            "replica_ready",
            "1 when the replica takes traffic",
            self.ready,
        );
        registry.register(
            "replica_healthy",
            "1 healthy, 0 unhealthy or starting (replicas with a health check)",
            self.healthy,
        );
        registry.register(
            "replica_restarts",
            "Restarts of the replica since the stack started",
            self.restarts,
        );
        registry.register(
            "replica_oom_kills",
            "Runs of the replica the OOM killer ended (its cgroup's memory limit)",
            self.oom,
        );
        registry.register(
            "replica_memory_bytes",
            "Memory the replica's current run uses (its cgroup's charge, or its processes' resident sets)",
            self.memory,
        );
        registry.register(
            "replica_memory_limit_bytes",
            "The memory limit the replica's cgroup enforces",
            self.memory_limit,
        );
        registry.register(
            "replica_cpu_seconds",
            "CPU time of the replica's current run and everything it started",
            self.cpu,
        );
        registry.register(
            "service_replicas",
            "Replicas of the service, by state",
            self.replicas,
        );
    }
}

/// The ready replicas of a service for one port, kept current until
/// `cancel`; each listed replica is in use for `drain` while it is.
fn follow(
    cell: &Arc<berth_engine::ServiceCell>,
    target: u16,
    drain: &Arc<Drain>,
    cancel: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) -> watch::Receiver<Upstreams> {
    let compute = move |snap: &berth_engine::Snapshot| -> Upstreams {
        snap.iter()
            .filter(|r| r.ready && r.state == ReplicaState::Running)
            .filter_map(|r| {
                r.ports.get(&target).map(|p| Upstream {
                    replica: Arc::from(r.name()),
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, *p)),
                })
            })
            .collect()
    };
    let mut rx = cell.subscribe();
    let first = compute(&rx.borrow_and_update());
    let mut listed = Listed::new(drain.clone());
    listed.update(first.iter().map(|u| u.addr));
    let (tx, out) = watch::channel(first);
    let cancel = cancel.clone();
    runtime.spawn(async move {
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = cancel.cancelled() => return,
            }
            let next = compute(&rx.borrow_and_update());
            // Published first, let go of second (see `Listed::update`).
            tx.send_if_modified(|cur| {
                if *cur == next {
                    false
                } else {
                    *cur = next.clone();
                    true
                }
            });
            listed.update(next.iter().map(|u| u.addr));
            if tx.is_closed() {
                return;
            }
        }
    });
    out
}

/// Whether a replica counts as fine for `/health`: taking traffic, or a
/// one-shot job that completed.
fn fine(r: &berth_engine::ReplicaStatus) -> bool {
    (r.state == ReplicaState::Running && r.ready)
        || (r.state == ReplicaState::Exited && r.exit.is_some_and(berth_engine::Exit::success))
}

impl StackView for EngineView {
    fn upstreams(&self, service: &str, port: Option<u16>) -> Option<watch::Receiver<Upstreams>> {
        if service == crate::dashboard::MOUNT_SERVICE {
            return self.dashboard.as_ref().map(watch::Sender::subscribe);
        }
        let cell = self.stack.service(service)?;
        let target = port
            .or_else(|| cell.plan().targets.first().copied())
            .unwrap_or(0);
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (service.to_string(), target);
        if let Some(rx) = channels.get(&key).filter(|rx| rx.has_changed().is_ok()) {
            return Some(rx.clone());
        }
        let rx = follow(
            &cell,
            target,
            &self.stack.drain,
            &self.cancel,
            &self.runtime,
        );
        channels.insert(key, rx.clone());
        Some(rx)
    }

    fn health(&self) -> (bool, serde_json::Value) {
        let mut all = true;
        let mut services = serde_json::Map::new();
        for cell in self.stack.services() {
            let snap = cell.snapshot();
            let ok = snap.iter().all(fine);
            all &= ok;
            let replicas: Vec<serde_json::Value> = snap
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name(),
                        "state": r.state,
                        "health": r.health,
                        "ready": r.ready,
                        "restarts": r.restarts,
                        "message": r.message,
                    })
                })
                .collect();
            services.insert(
                cell.name().to_string(),
                serde_json::json!({ "healthy": ok, "replicas": replicas }),
            );
        }
        let body = serde_json::json!({
            "status": if all { "ok" } else { "degraded" },
            "project": self.stack.project,
            "services": services,
        });
        (all, body)
    }

    fn encode_metrics(&self, out: &mut String) {
        let registry = self.metrics();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &registry);
    }

    fn access_log(&self, batch: berth_proxy::AccessLogBatch) {
        // A file writer first started from here runs on the engine's
        // runtime, not on the proxy worker's, which ends before the last batch.
        let _engine = self.runtime.enter();
        self.logs.system_lines("proxy", 0, batch.lines());
    }

    fn replica_uses(&self, addr: SocketAddr) -> Option<Arc<dyn ReplicaUses>> {
        Some(Arc::new(EngineUses(self.stack.drain.uses(addr))))
    }
}

/// A replica's counter in the engine's [`Drain`], as the proxy counts with it.
#[derive(Debug)]
struct EngineUses(Arc<berth_engine::drain::Uses>);

impl ReplicaUses for EngineUses {
    fn enter(&self) {
        self.0.add();
    }

    fn leave(&self) {
        self.0.leave();
    }
}
