//! The engine as the edge proxy sees it: ready replicas per service and
//! port, aggregated health, engine metrics, the access log, and in-flight
//! requests counted for draining.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use berth_engine::logs::LogHub;
use berth_engine::{ReplicaState, Stack, forward::Active};
use berth_proxy::{StackView, Upstream, Upstreams};
use tokio::sync::watch;

/// The running stack, for the proxy.
pub struct EngineView {
    stack: Arc<Stack>,
    logs: LogHub,
    /// Ready replicas per (service, declared port; 0 = `$PORT`).
    channels: HashMap<(String, u16), watch::Receiver<Upstreams>>,
    /// Requests in flight per replica address.
    active: Arc<Active>,
}

impl EngineView {
    /// Follows every service's ready replicas for each of its ports. Must be
    /// called on the engine's runtime (it spawns the followers there).
    pub fn new(stack: Arc<Stack>, logs: LogHub) -> EngineView {
        let mut channels = HashMap::new();
        for cell in stack.services() {
            let mut targets = cell.plan.targets.clone();
            if targets.is_empty() {
                targets.push(0);
            }
            for target in targets {
                channels.insert((cell.name().to_string(), target), follow(cell, target));
            }
        }
        let active: Arc<Active> = Arc::default();
        let counted = active.clone();
        // In use by the proxy while a route lists it or a request to it runs.
        let listed: Vec<watch::Receiver<Upstreams>> = channels.values().cloned().collect();
        stack.drain.add(Arc::new(move |addr| {
            counted.count(addr)
                + listed
                    .iter()
                    .filter(|rx| rx.borrow().iter().any(|u| u.addr == addr))
                    .count()
        }));
        EngineView {
            stack,
            logs,
            channels,
            active,
        }
    }
}

/// A watch of the service's ready replicas for one port.
fn follow(cell: &Arc<berth_engine::ServiceCell>, target: u16) -> watch::Receiver<Upstreams> {
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
    let (tx, out) = watch::channel(compute(&rx.borrow_and_update()));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let next = compute(&rx.borrow_and_update());
            tx.send_if_modified(|cur| {
                if *cur == next {
                    false
                } else {
                    *cur = next;
                    true
                }
            });
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
        let cell = self.stack.service(service)?;
        let target = port
            .or_else(|| cell.plan.targets.first().copied())
            .unwrap_or(0);
        self.channels.get(&(service.to_string(), target)).cloned()
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
        let cells: Vec<_> = self
            .stack
            .services()
            .map(|c| (c.name().to_string(), c.snapshot()))
            .collect();
        let _ = writeln!(
            out,
            "# HELP berth_replica_ready 1 when the replica takes traffic."
        );
        let _ = writeln!(out, "# TYPE berth_replica_ready gauge");
        for (service, snap) in &cells {
            for r in snap.iter() {
                let _ = writeln!(
                    out,
                    "berth_replica_ready{{service=\"{service}\",replica=\"{}\"}} {}",
                    r.index,
                    u8::from(r.ready && r.state == ReplicaState::Running)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP berth_replica_healthy 1 healthy, 0 unhealthy or starting (replicas with a health check)."
        );
        let _ = writeln!(out, "# TYPE berth_replica_healthy gauge");
        for (service, snap) in &cells {
            for r in snap
                .iter()
                .filter(|r| r.health != berth_engine::Health::None)
            {
                let _ = writeln!(
                    out,
                    "berth_replica_healthy{{service=\"{service}\",replica=\"{}\"}} {}",
                    r.index,
                    u8::from(r.health == berth_engine::Health::Healthy)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP berth_replica_restarts Restarts of the replica since the stack started."
        );
        let _ = writeln!(out, "# TYPE berth_replica_restarts counter");
        for (service, snap) in &cells {
            for r in snap.iter() {
                let _ = writeln!(
                    out,
                    "berth_replica_restarts_total{{service=\"{service}\",replica=\"{}\"}} {}",
                    r.index, r.restarts
                );
            }
        }
        let logs = self.logs.stats();
        let _ = writeln!(
            out,
            "# HELP berth_log_lines_lost Log lines that could not be written to a file (a full disk...).\n# TYPE berth_log_lines_lost counter\nberth_log_lines_lost_total {}",
            logs.lost_lines
        );
        let _ = writeln!(
            out,
            "# HELP berth_log_write_failures Log file writes that failed.\n# TYPE berth_log_write_failures counter\nberth_log_write_failures_total {}",
            logs.failed_writes
        );
        let _ = writeln!(
            out,
            "# HELP berth_service_replicas Replicas of the service, by state."
        );
        let _ = writeln!(out, "# TYPE berth_service_replicas gauge");
        for (service, snap) in &cells {
            let mut by_state: std::collections::BTreeMap<String, usize> =
                std::collections::BTreeMap::new();
            for r in snap.iter() {
                *by_state.entry(r.state.as_str().to_string()).or_default() += 1;
            }
            for (state, n) in by_state {
                let _ = writeln!(
                    out,
                    "berth_service_replicas{{service=\"{service}\",state=\"{state}\"}} {n}"
                );
            }
        }
    }

    fn access_log(&self, line: String) {
        self.logs.system("proxy", 0, line);
    }

    fn request_started(&self, addr: SocketAddr) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        Some(Box::new(self.active.enter(addr)))
    }
}
