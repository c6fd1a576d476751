//! A running stack: every service's replicas, their forwarders, builds,
//! start in dependency order and stop in reverse.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use indexmap::IndexMap;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cell::{Event, ServiceCell, Snapshot};
pub use crate::drain::Drain;
use crate::drain::Listed;
use crate::error::{Error, RollError};
use crate::forward::{self, Backends};
use crate::logs::{LogHub, Source};
use crate::plan::ServicePlan;
use crate::runtime::{ProcessSpec, Runtime};
use crate::state::ReplicaState;
use crate::supervisor::{Command, Replica};

/// Options of `berth up`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Replica counts overriding the file (`--scale S=N`).
    pub scale: BTreeMap<String, u32>,
    /// Run `x-berth.build` steps (default true).
    pub build: bool,
}

/// How the stack ended up, for `up` to decide its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// A replica failed (could not start, a required dependency failed...).
    Failed(Vec<String>),
    /// Nothing runs or will run any more; whether every replica exited 0.
    Finished { success: bool },
}

struct ReplicaTask {
    stop: CancellationToken,
    handle: JoinHandle<()>,
    commands: mpsc::Sender<Command>,
}

/// A service's forwarders: their token and accept tasks.
type Forwarders = (CancellationToken, Vec<JoinHandle<()>>);

/// A started stack.
pub struct Stack {
    pub project: String,
    /// The services in start order; a deploy adds and removes some.
    cells: RwLock<IndexMap<String, Arc<ServiceCell>>>,
    runtime: Arc<dyn Runtime>,
    logs: LogHub,
    events: broadcast::Sender<Event>,
    tasks: Mutex<BTreeMap<(String, u32), ReplicaTask>>,
    /// The stack's lifetime: every replica's `stop` and the forwarders'
    /// token are its children.
    cancel: CancellationToken,
    /// Not a lifetime: once cancelled, stops skip their grace periods.
    force: CancellationToken,
    forwarders: CancellationToken,
    /// Each service's forwarders (a child of `forwarders`, and their tasks).
    service_forwarders: Mutex<BTreeMap<String, Forwarders>>,
    /// Uses of each replica address (routers listing it, connections and
    /// requests to it), for draining.
    pub drain: Arc<Drain>,
    /// The bound address of every forwarded declared port: (service, target, address).
    listening: Mutex<Vec<(String, u16, std::net::SocketAddr)>>,
    /// The same for the `/udp` ports berth relays.
    listening_udp: Mutex<Vec<(String, u16, std::net::SocketAddr)>>,
    /// Bumped whenever services are added or removed.
    generation: watch::Sender<u64>,
    /// Where containers reach native services (see [`Stack::forward_natives_on`]).
    gateway: Mutex<Gateway>,
}

/// The Docker host gateway, where each declared port of each native
/// service is forwarded too, so containers reach it at
/// `host.docker.internal:<port>`.
#[derive(Debug, Default)]
struct Gateway {
    addr: Option<std::net::IpAddr>,
    /// (service, declared port) forwarded there now.
    bound: std::collections::BTreeSet<(String, u16)>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Binds every declared port, runs the native builds, and starts every
    /// replica (each waits for its own dependencies). Everything the stack
    /// runs stops when `cancel` is cancelled; [`Stack::stop`] stops it in
    /// order.
    ///
    /// # Errors
    /// A port in use, a failing build or an uncreatable volume directory;
    /// nothing is left running then.
    pub async fn start(
        project: &str,
        plans: Vec<ServicePlan>,
        runtime: Arc<dyn Runtime>,
        logs: LogHub,
        options: &UpOptions,
        cancel: CancellationToken,
    ) -> Result<Arc<Stack>, Error> {
        // Ports first: a port in use should fail before minutes of building.
        let listeners = bind_ports(&plans).await?;
        create_volumes(&plans)?;
        if options.build {
            for plan in &plans {
                build(plan, runtime.as_ref(), &logs).await?;
            }
        }
        let (events, _) = broadcast::channel(4096);
        let cells = cells(plans, options, &events);
        let forwarders = cancel.child_token();
        let stack = Arc::new(Stack {
            project: project.to_string(),
            cells: RwLock::new(IndexMap::new()),
            runtime,
            logs,
            events,
            tasks: Mutex::new(BTreeMap::new()),
            cancel,
            force: CancellationToken::new(),
            forwarders,
            service_forwarders: Mutex::new(BTreeMap::new()),
            drain: Arc::default(),
            listening: Mutex::new(Vec::new()),
            listening_udp: Mutex::new(Vec::new()),
            generation: watch::Sender::new(0),
            gateway: Mutex::default(),
        });
        stack.add_cells(cells, listeners);
        Ok(stack)
    }

    /// Makes the cells part of the stack, forwards their listeners and
    /// starts their replicas.
    fn add_cells(
        &self,
        cells: IndexMap<String, Arc<ServiceCell>>,
        listeners: Vec<(String, u16, Listener)>,
    ) {
        self.cells
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(cells.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (service, target, listener) in listeners {
            if let Some(cell) = cells.get(&service) {
                self.forward(cell, target, listener);
            }
        }
        for cell in cells.values() {
            for r in cell.snapshot().iter() {
                self.spawn_replica(cell, r.index);
            }
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// From now on every declared port of every native service is
    /// forwarded from `gateway` too (the Docker host gateway, which
    /// containers know as `host.docker.internal`), also the ports a deploy
    /// re-binds and those of services it adds.
    pub fn forward_natives_on(&self, gateway: std::net::IpAddr) {
        self.gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .addr = Some(gateway);
        for cell in self.services() {
            for target in cell.plan().targets.clone() {
                self.forward_on_gateway(&cell, target);
            }
        }
    }

    /// Forwards a native service's declared port from the gateway, once.
    fn forward_on_gateway(&self, cell: &Arc<ServiceCell>, target: u16) {
        let service = cell.name().to_string();
        let addr = {
            let mut gateway = self.gateway.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(ip) = gateway.addr else { return };
            let native = cell.plan().container.is_none();
            if !native || target == 0 || !gateway.bound.insert((service.clone(), target)) {
                return;
            }
            std::net::SocketAddr::new(ip, target)
        };
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std);
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                self.say(
                    "berth",
                    format!("containers cannot reach {service} at host.docker.internal:{target}: {addr}: {e}"),
                );
                return;
            }
        };
        let mut forwarders = self
            .service_forwarders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = forwarders
            .entry(service)
            .or_insert_with(|| (self.forwarders.child_token(), Vec::new()));
        let backends = backends(cell, target, &self.drain, &entry.0);
        let task = forward::serve(listener, backends, self.drain.clone(), entry.0.clone());
        entry.1.push(task);
    }

    /// Forwards a declared port of a service to its ready replicas.
    fn forward(&self, cell: &Arc<ServiceCell>, target: u16, listener: Listener) {
        let tcp = matches!(listener, Listener::Tcp(_));
        self.forward_here(cell, target, listener);
        if tcp {
            self.forward_on_gateway(cell, target);
        }
    }

    fn forward_here(&self, cell: &Arc<ServiceCell>, target: u16, listener: Listener) {
        let service = cell.name().to_string();
        let mut forwarders = self
            .service_forwarders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = forwarders
            .entry(service.clone())
            .or_insert_with(|| (self.forwarders.child_token(), Vec::new()));
        let backends = backends(cell, target, &self.drain, &entry.0);
        let task = match listener {
            Listener::Tcp(listener) => {
                if let Ok(addr) = listener.local_addr() {
                    self.listening
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((service, target, addr));
                }
                forward::serve(listener, backends, self.drain.clone(), entry.0.clone())
            }
            Listener::Udp(socket) => {
                if let Ok(addr) = socket.local_addr() {
                    self.say(&service, format!("port {target}/udp listening on {addr}"));
                    self.listening_udp
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((service, target, addr));
                }
                crate::forward_udp::serve(socket, backends, entry.0.clone())
            }
        };
        entry.1.push(task);
    }

    /// Stops accepting on a service's declared ports (connections under way
    /// go on) and waits until their listeners are closed.
    async fn unforward(&self, service: &str) {
        let removed = self
            .service_forwarders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(service);
        if let Some((cancel, tasks)) = removed {
            cancel.cancel();
            for task in tasks {
                let _ = task.await;
            }
        }
        for listening in [&self.listening, &self.listening_udp] {
            listening
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(s, _, _)| s != service);
        }
        self.gateway
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bound
            .retain(|(s, _)| s != service);
    }

    /// Re-binds the declared ports of a service a deploy changed: the old
    /// listeners close first (connections through them go on), then the
    /// new ones forward to the same replicas.
    ///
    /// # Errors
    /// A new port that cannot be bound.
    async fn rebind(&self, cell: &Arc<ServiceCell>, plan: &ServicePlan) -> Result<(), Error> {
        self.unforward(cell.name()).await;
        for (_, target, listener) in bind_ports(std::slice::from_ref(plan)).await? {
            self.forward(cell, target, listener);
        }
        Ok(())
    }

    /// Adds services to the running stack (a deploy): binds their ports,
    /// creates their volumes, runs their builds, then starts them (each
    /// waits for its own dependencies).
    ///
    /// # Errors
    /// A port in use, a failing build or an uncreatable volume directory;
    /// nothing of these services runs then.
    pub async fn add(&self, plans: Vec<ServicePlan>, build_them: bool) -> Result<(), Error> {
        let listeners = bind_ports(&plans).await?;
        create_volumes(&plans)?;
        if build_them {
            for plan in &plans {
                build(plan, self.runtime.as_ref(), &self.logs).await?;
            }
        }
        let cells = cells(plans, &UpOptions::default(), &self.events);
        self.add_cells(cells, listeners);
        Ok(())
    }

    /// Stops a service and forgets it (a deploy of a file without it):
    /// its replicas stop with their grace periods, its forwarders close.
    ///
    /// # Errors
    /// [`Error::UnknownService`].
    pub async fn remove(&self, service: &str) -> Result<(), Error> {
        self.stop_service(service).await?;
        self.unforward(service).await;
        self.cells
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .shift_remove(service);
        self.generation.send_modify(|g| *g += 1);
        Ok(())
    }

    /// Replaces what a service runs (a deploy of a changed file): each
    /// running replica is rolled onto `plan` in turn, its new process
    /// ready before the old one is drained and stopped. When a new process
    /// is not ready within `deadline`, the rollout stops and the replicas
    /// already replaced are rolled back; the service keeps its old plan.
    /// Replicas that were not running start again with the new plan.
    ///
    /// # Errors
    /// [`Error::UnknownService`], or [`Error::Roll`] for the replica whose
    /// new process did not become ready (after the rollback).
    pub async fn replace(
        &self,
        service: &str,
        plan: ServicePlan,
        deadline: Duration,
    ) -> Result<Vec<String>, Error> {
        let cell = self.cell(service)?;
        let old = cell.plan();
        let new = Arc::new(plan);
        if old.bind == berth_compose::Bind::Direct {
            self.stop_service(service).await?;
            cell.set_plan(new);
            self.start_service(service)?;
            return Ok(vec![format!(
                "{service}: replaced in place (bind: direct cannot run two processes at once)"
            )]);
        }
        let mut done = Vec::new();
        let mut rolled: Vec<(String, mpsc::Sender<Command>)> = Vec::new();
        let mut idle: Vec<u32> = Vec::new();
        for r in cell.snapshot().iter() {
            let Some(tx) = self.commands_if_running(service, r) else {
                idle.push(r.index);
                continue;
            };
            let name = r.name();
            if let Err(reason) = roll(&tx, Some(new.clone()), Some(deadline)).await {
                let mut failed = vec![format!("{name}: {reason}")];
                for (back, tx) in rolled.iter().rev() {
                    failed.push(match roll(tx, Some(old.clone()), None).await {
                        Ok(()) => format!("{back}: rolled back"),
                        Err(e) => format!("{back}: rollback failed: {e}"),
                    });
                }
                self.say(service, failed.join("; "));
                return Err(Error::Roll {
                    replica: name,
                    reason,
                });
            }
            done.push(format!("{name}: replaced without downtime"));
            rolled.push((name, tx));
        }
        let listen_changed = old.listen != new.listen;
        cell.set_plan(new.clone());
        if listen_changed {
            self.rebind(&cell, &new).await?;
            done.push(format!("{service}: declared ports re-bound"));
        }
        for index in idle {
            for t in self.take_tasks(service, Some(&[index])) {
                t.stop.cancel();
                let _ = t.handle.await;
            }
            cell.update(index, |s| {
                s.state = ReplicaState::Waiting;
                s.message = None;
            });
            self.spawn_replica(&cell, index);
            done.push(format!(
                "{service}-{index}: started with the new configuration"
            ));
        }
        Ok(done)
    }

    /// Runs a service's `x-berth.build` (a deploy, before replacing it).
    ///
    /// # Errors
    /// The build failed or could not run.
    pub async fn build(&self, plan: &ServicePlan) -> Result<(), Error> {
        build(plan, self.runtime.as_ref(), &self.logs).await
    }

    /// A line in the stack's log stream, from berth, about a service.
    fn say(&self, service: &str, message: String) {
        self.logs.system(service, 0, message);
    }

    /// The command channel of a replica whose task runs a running process.
    fn commands_if_running(
        &self,
        service: &str,
        r: &crate::state::ReplicaStatus,
    ) -> Option<mpsc::Sender<Command>> {
        if r.state != ReplicaState::Running {
            return None;
        }
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .get(&(service.to_string(), r.index))
            .filter(|t| !t.handle.is_finished())
            .map(|t| t.commands.clone())
    }

    fn spawn_replica(&self, cell: &Arc<ServiceCell>, index: u32) {
        let plan = cell.plan();
        let deps = {
            let cells = self.cells.read().unwrap_or_else(PoisonError::into_inner);
            plan.depends_on
                .iter()
                .filter_map(|d| cells.get(&d.service).map(|c| (d.clone(), c.subscribe())))
                .collect()
        };
        let stop = self.cancel.child_token();
        let (commands_tx, commands) = mpsc::channel(4);
        let drain = self.drain.clone();
        let replica = Replica {
            cell: cell.clone(),
            plan,
            index,
            runtime: self.runtime.clone(),
            logs: self.logs.clone(),
            deps,
            stop: stop.clone(),
            force: self.force.clone(),
            commands,
            drain: Some(drain),
            was_ready: false,
            started: 0,
        };
        let handle = tokio::spawn(replica.run());
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (cell.name().to_string(), index),
                ReplicaTask {
                    stop,
                    handle,
                    commands: commands_tx,
                },
            );
    }

    fn take_tasks(&self, service: &str, indexes: Option<&[u32]>) -> Vec<ReplicaTask> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let keys: Vec<(String, u32)> = tasks
            .keys()
            .filter(|(s, i)| s == service && indexes.is_none_or(|ix| ix.contains(i)))
            .cloned()
            .collect();
        keys.iter().filter_map(|k| tasks.remove(k)).collect()
    }

    fn cell(&self, service: &str) -> Result<Arc<ServiceCell>, Error> {
        self.service(service).ok_or_else(|| Error::UnknownService {
            service: service.to_string(),
        })
    }

    /// Stops a service's replicas (they stay listed, as stopped).
    ///
    /// # Errors
    /// [`Error::UnknownService`].
    pub async fn stop_service(&self, service: &str) -> Result<(), Error> {
        self.cell(service)?;
        let tasks = self.take_tasks(service, None);
        for t in &tasks {
            t.stop.cancel();
        }
        for t in tasks {
            let _ = t.handle.await;
        }
        Ok(())
    }

    /// Starts the replicas of a service that are not running.
    ///
    /// # Errors
    /// [`Error::UnknownService`].
    pub fn start_service(&self, service: &str) -> Result<(), Error> {
        let cell = self.cell(service)?.clone();
        let running: Vec<u32> = {
            let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            tasks
                .iter()
                .filter(|((s, _), t)| s == service && !t.handle.is_finished())
                .map(|((_, i), _)| *i)
                .collect()
        };
        for r in cell.snapshot().iter() {
            if !running.contains(&r.index) {
                self.take_tasks(service, Some(&[r.index]));
                cell.update(r.index, |s| {
                    s.state = ReplicaState::Waiting;
                    s.message = None;
                });
                self.spawn_replica(&cell, r.index);
            }
        }
        Ok(())
    }

    /// Restarts a service replica by replica: each new process must be
    /// ready before the old one leaves and is drained (`bind: direct`
    /// services restart in place). Returns what happened, one line each.
    ///
    /// # Errors
    /// [`Error::UnknownService`], or [`Error::Roll`] for the first replica
    /// whose new process did not become ready (the old one keeps serving).
    pub async fn restart(&self, service: &str) -> Result<Vec<String>, Error> {
        let mut done = self.restart_one(service).await?;
        // Services declaring `depends_on: {<service>: {restart: true}}` follow.
        let mut queue: Vec<String> = self.dependents_to_restart(service);
        let mut seen: Vec<String> = vec![service.to_string()];
        while let Some(next) = queue.pop() {
            if seen.contains(&next) {
                continue;
            }
            seen.push(next.clone());
            done.push(format!(
                "{next}: restarting because it depends on {service} with restart: true"
            ));
            done.extend(self.restart_one(&next).await?);
            queue.extend(self.dependents_to_restart(&next));
        }
        Ok(done)
    }

    fn dependents_to_restart(&self, service: &str) -> Vec<String> {
        self.services()
            .into_iter()
            .filter(|c| {
                c.plan()
                    .depends_on
                    .iter()
                    .any(|d| d.service == service && d.restart)
            })
            .map(|c| c.name().to_string())
            .collect()
    }

    async fn restart_one(&self, service: &str) -> Result<Vec<String>, Error> {
        let cell = self.cell(service)?;
        if cell.plan().bind == berth_compose::Bind::Direct {
            self.stop_service(service).await?;
            self.start_service(service)?;
            return Ok(vec![format!(
                "{service}: restarted in place (bind: direct cannot run two processes at once)"
            )]);
        }
        let mut done = Vec::new();
        for r in cell.snapshot().iter() {
            let name = r.name();
            match self.commands_if_running(service, r) {
                Some(tx) => {
                    roll(&tx, None, None).await.map_err(|reason| Error::Roll {
                        replica: name.clone(),
                        reason,
                    })?;
                    done.push(format!("{name}: restarted without downtime"));
                }
                None => {
                    // Not running (starting, restarting, exited, failed):
                    // end whatever its task is doing, then start it again.
                    for t in self.take_tasks(service, Some(&[r.index])) {
                        t.stop.cancel();
                        let _ = t.handle.await;
                    }
                    cell.update(r.index, |s| {
                        s.state = ReplicaState::Waiting;
                        s.message = None;
                    });
                    self.spawn_replica(&cell, r.index);
                    done.push(format!("{name}: started"));
                }
            }
        }
        Ok(done)
    }

    /// Changes the number of replicas; new ones start at once, removed ones
    /// (the highest numbers) leave the load balancer, drain and stop.
    ///
    /// # Errors
    /// [`Error::UnknownService`], or [`Error::DirectScale`] for more than
    /// one replica of a `bind: direct` service.
    pub async fn scale(&self, service: &str, replicas: u32) -> Result<(), Error> {
        let cell = self.cell(service)?;
        if cell.plan().bind == berth_compose::Bind::Direct && replicas > 1 {
            return Err(Error::DirectScale {
                service: service.to_string(),
            });
        }
        let mut current: Vec<u32> = cell.snapshot().iter().map(|r| r.index).collect();
        current.sort_unstable();
        let count = u32::try_from(current.len()).unwrap_or(u32::MAX);
        if replicas > count {
            for _ in count..replicas {
                let index = cell.add_replica();
                self.spawn_replica(&cell, index);
            }
            return Ok(());
        }
        let doomed: Vec<u32> = current.split_off(replicas as usize);
        // Out of the load balancer first, then drained, then stopped.
        for i in &doomed {
            cell.update(*i, |r| {
                r.leaving = true;
                r.ready = false;
            });
        }
        let addrs: Vec<std::net::SocketAddr> = cell
            .snapshot()
            .iter()
            .filter(|r| doomed.contains(&r.index))
            .flat_map(|r| {
                r.ports
                    .values()
                    .map(|p| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, *p)))
                    .collect::<Vec<_>>()
            })
            .collect();
        self.drain.wait_idle(&addrs, cell.plan().stop_grace).await;
        let tasks = self.take_tasks(service, Some(&doomed));
        for t in &tasks {
            t.stop.cancel();
        }
        for t in tasks {
            let _ = t.handle.await;
        }
        for i in doomed {
            cell.remove_replica(i);
        }
        Ok(())
    }

    /// The services in start order.
    pub fn services(&self) -> Vec<Arc<ServiceCell>> {
        self.cells
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Where each forwarded declared port listens: (service, target, address).
    pub fn listening(&self) -> Vec<(String, u16, std::net::SocketAddr)> {
        self.listening
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Where each relayed `/udp` port listens: (service, target, address).
    pub fn listening_udp(&self) -> Vec<(String, u16, std::net::SocketAddr)> {
        self.listening_udp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The longest `stop_grace_period` of the stack's services: how long
    /// whatever fronts it (the proxy) may take to finish what is in flight.
    pub fn grace(&self) -> Duration {
        self.services()
            .iter()
            .map(|c| c.plan().stop_grace)
            .max()
            .unwrap_or(crate::plan::DEFAULT_STOP_GRACE)
    }

    pub fn service(&self, name: &str) -> Option<Arc<ServiceCell>> {
        self.cells
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// State and health changes as they happen.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn logs(&self) -> &LogHub {
        &self.logs
    }

    /// Stops everything in reverse dependency order, each replica with its
    /// stop signal and grace period; forwarders last, then whatever else
    /// hangs off the stack's token.
    pub async fn stop(&self) {
        let order: Vec<String> = self
            .services()
            .iter()
            .rev()
            .map(|c| c.name().to_string())
            .collect();
        for service in order {
            let tasks: Vec<ReplicaTask> = {
                let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
                let keys: Vec<(String, u32)> = tasks
                    .keys()
                    .filter(|(s, _)| *s == service)
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| tasks.remove(k)).collect()
            };
            for t in &tasks {
                t.stop.cancel();
            }
            for t in tasks {
                let _ = t.handle.await;
            }
        }
        self.forwarders.cancel();
        self.cancel.cancel();
    }

    /// Skips every remaining grace period (the second Ctrl-C).
    pub fn force(&self) {
        self.force.cancel();
    }

    /// Waits until every replica is ready (or, for one-shot jobs, exited 0);
    /// returns a one-line summary per service.
    pub async fn all_up(&self) -> Vec<String> {
        let mut followed = self.follow_all();
        loop {
            let mut done = true;
            let mut summary = Vec::new();
            for rx in &mut followed.receivers {
                let snap = rx.borrow_and_update().clone();
                let Some(first) = snap.first() else { continue };
                let ready = snap
                    .iter()
                    .filter(|r| r.ready && r.state == ReplicaState::Running)
                    .count();
                let completed = snap
                    .iter()
                    .filter(|r| {
                        r.state == ReplicaState::Exited
                            && r.exit.is_some_and(crate::runtime::Exit::success)
                    })
                    .count();
                if ready + completed < snap.len() {
                    done = false;
                }
                summary.push(if completed == snap.len() {
                    format!("{} completed", first.service)
                } else {
                    format!("{} {ready}/{} ready", first.service, snap.len())
                });
            }
            if done {
                return summary;
            }
            if !self.next_change(&mut followed).await {
                return Vec::new();
            }
        }
    }

    /// The snapshots of every service, followed.
    fn follow_all(&self) -> Followed {
        let generation = *self.generation.borrow();
        Followed {
            generation,
            receivers: self.services().iter().map(|c| c.subscribe()).collect(),
        }
    }

    /// Waits until a service's snapshot changes, or the services do (a
    /// deploy added or removed one: then all are followed again). False
    /// once the stack has no services left.
    async fn next_change(&self, followed: &mut Followed) -> bool {
        let mut generation = self.generation.subscribe();
        if *generation.borrow_and_update() == followed.generation {
            let changes = followed
                .receivers
                .iter_mut()
                .map(|rx| Box::pin(rx.changed()));
            tokio::select! {
                (Ok(()), _, _) = futures_select_all(changes) => return true,
                // A service went away (its snapshot's sender with it), or came.
                _ = generation.changed() => {}
                else => {}
            }
        }
        *followed = self.follow_all();
        !followed.receivers.is_empty()
    }

    /// Waits until a replica fails, or every replica has exited by itself.
    pub async fn settled(&self) -> Settled {
        let mut followed = self.follow_all();
        // After a first failure, give replicas that are still starting a
        // moment to fail too, so one run reports every broken service.
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let mut failures = Vec::new();
            let mut all_done = true;
            let mut success = true;
            let mut starting = false;
            for rx in &mut followed.receivers {
                for r in rx.borrow_and_update().iter() {
                    match r.state {
                        ReplicaState::Failed => {
                            failures.push(format!(
                                "{}: {}",
                                r.name(),
                                r.message.as_deref().unwrap_or("failed")
                            ));
                        }
                        ReplicaState::Exited => {
                            success &= r.exit.is_some_and(crate::runtime::Exit::success)
                        }
                        ReplicaState::Created | ReplicaState::Starting => {
                            starting = true;
                            all_done = false;
                        }
                        // Stopped on request (`berth stop`) may be started
                        // again: the stack is not finished.
                        _ => all_done = false,
                    }
                }
            }
            if !failures.is_empty() {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if !starting || since.elapsed() >= Duration::from_secs(1) {
                    return Settled::Failed(failures);
                }
                let _ = tokio::time::timeout(
                    Duration::from_millis(50),
                    futures_select_all(
                        followed
                            .receivers
                            .iter_mut()
                            .map(|rx| Box::pin(rx.changed())),
                    ),
                )
                .await;
                continue;
            }
            if all_done {
                return Settled::Finished { success };
            }
            if !self.next_change(&mut followed).await {
                return Settled::Finished { success: false };
            }
        }
    }
}

/// Every service's snapshot receiver, as of a generation of the services.
struct Followed {
    generation: u64,
    receivers: Vec<watch::Receiver<Snapshot>>,
}

/// The ready replicas of a service for one declared port, kept current;
/// every replica listed is in use for `drain` while it is.
fn backends(
    cell: &Arc<ServiceCell>,
    target: u16,
    drain: &Arc<Drain>,
    cancel: &CancellationToken,
) -> watch::Receiver<Backends> {
    let mut rx = cell.subscribe();
    let compute = move |snap: &Snapshot| -> Backends {
        snap.iter()
            .filter(|r| r.ready && r.state == ReplicaState::Running)
            .filter_map(|r| r.ports.get(&target))
            .map(|p| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, *p)))
            .collect()
    };
    let first = compute(&rx.borrow_and_update());
    let mut listed = Listed::new(drain.clone());
    listed.update(first.iter().copied());
    let (tx, out) = watch::channel(first);
    let cancel = cancel.clone();
    tokio::spawn(async move {
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
            listed.update(next.iter().copied());
        }
    });
    out
}

/// Asks a replica's task for a rolling restart and waits for the outcome.
async fn roll(
    task: &mpsc::Sender<Command>,
    to: Option<Arc<ServicePlan>>,
    deadline: Option<Duration>,
) -> Result<(), RollError> {
    let (reply, answer) = oneshot::channel();
    task.send(Command::Roll {
        to,
        deadline,
        reply,
    })
    .await
    .map_err(|_| RollError::Gone)?;
    answer.await.map_err(|_| RollError::Gone)?
}

/// Where berth takes a service's traffic for one declared port.
enum Listener {
    Tcp(tokio::net::TcpListener),
    /// A published `/udp` port of a container service.
    Udp(tokio::net::UdpSocket),
}

/// Opens the listener of every declared port; every port that cannot be
/// bound is named.
async fn bind_ports(plans: &[ServicePlan]) -> Result<Vec<(String, u16, Listener)>, Error> {
    let mut listeners = Vec::new();
    let mut bind_errors = Vec::new();
    for plan in plans {
        for l in &plan.listen {
            match forward::bind(l.addr, &plan.name).await {
                Ok(listener) => {
                    listeners.push((plan.name.clone(), l.target, Listener::Tcp(listener)));
                }
                Err(e) => bind_errors.push(e),
            }
        }
        for l in &plan.udp {
            match crate::forward_udp::bind(l.addr, &plan.name).await {
                Ok(socket) => listeners.push((plan.name.clone(), l.target, Listener::Udp(socket))),
                Err(e) => bind_errors.push(e),
            }
        }
    }
    if bind_errors.is_empty() {
        Ok(listeners)
    } else {
        Err(Error::Bind(bind_errors))
    }
}

/// Creates the directories of the services' volumes.
/// Creates the directories of the services' volumes. One that a service
/// running as another user creates is that user's, and the directories
/// above it in the state directory (`volumes/`, the private state
/// directory itself) let others pass through, not list (0701, as Docker's
/// own data directory).
fn create_volumes(plans: &[ServicePlan]) -> Result<(), Error> {
    let me = nix::unistd::geteuid().as_raw();
    for plan in plans {
        for dir in &plan.volume_dirs {
            let error = |source| Error::Volume {
                path: dir.clone(),
                source,
            };
            let existed = dir.is_dir();
            std::fs::create_dir_all(dir).map_err(error)?;
            let Some(who) = plan.identity.as_ref().filter(|w| w.uid != me) else {
                continue;
            };
            if !existed {
                std::os::unix::fs::chown(dir, Some(who.uid), Some(who.gid)).map_err(error)?;
            }
            for above in dir.ancestors().skip(1).take(2) {
                crate::private::passable(above).map_err(error)?;
            }
        }
    }
    Ok(())
}

/// A cell per service, with its replica count (`--scale` wins).
fn cells(
    plans: Vec<ServicePlan>,
    options: &UpOptions,
    events: &broadcast::Sender<Event>,
) -> IndexMap<String, Arc<ServiceCell>> {
    let mut cells = IndexMap::new();
    for plan in plans {
        let replicas = options
            .scale
            .get(&plan.name)
            .copied()
            .unwrap_or(plan.replicas);
        let cell = Arc::new(ServiceCell::new(Arc::new(plan), replicas, events.clone()));
        cells.insert(cell.name().to_string(), cell);
    }
    cells
}

/// Runs a service's `x-berth.build`, its output in the log stream.
async fn build(plan: &ServicePlan, runtime: &dyn Runtime, logs: &LogHub) -> Result<(), Error> {
    let Some(cmd) = &plan.build else {
        return Ok(());
    };
    let argv = match cmd {
        berth_compose::BuildCommand::Shell(s) => {
            vec!["/bin/sh".to_string(), "-c".to_string(), s.clone()]
        }
        berth_compose::BuildCommand::Argv(v) => v.clone(),
    };
    logs.system(&plan.name, 0, format!("building: {}", argv.join(" ")));
    let spec = ProcessSpec {
        argv,
        env: plan.env.clone(),
        working_dir: plan.working_dir.clone(),
        label: format!("{} build", plan.name),
        confinement: berth_compose::Confinement::default(),
        identity: None,
        writable: Vec::new(),
        mounts: Vec::new(),
        mounts_of: None,
        container: None,
    };
    let service = || plan.name.clone();
    let mut process = runtime
        .spawn(&spec)
        .await
        .map_err(|source| Error::BuildSpawn {
            service: service(),
            source,
        })?;
    let output = process.take_output().map(|(out, err)| {
        logs.attach(
            Source {
                service: Arc::from(plan.name.as_str()),
                replica: 0,
                max_size: plan.log_rotation.max_size,
                max_files: plan.log_rotation.max_files,
            },
            out,
            err,
        )
    });
    let exit = process.wait().await.map_err(|source| Error::BuildWait {
        service: service(),
        source,
    })?;
    if let Some(t) = output {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if exit.success() {
        logs.system(&plan.name, 0, "build done");
        Ok(())
    } else {
        Err(Error::Build {
            service: service(),
            exit,
        })
    }
}

/// Waits for the first of several futures (a tiny `select_all`).
async fn futures_select_all<F, T>(futures: impl IntoIterator<Item = F>) -> (T, usize, ())
where
    F: std::future::Future<Output = T> + Unpin,
{
    let mut futures: Vec<F> = futures.into_iter().collect();
    std::future::poll_fn(move |cx| {
        for (i, f) in futures.iter_mut().enumerate() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready((v, i, ()));
            }
        }
        std::task::Poll::Pending
    })
    .await
}
