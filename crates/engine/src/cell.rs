//! One service's live state: the status of each replica, published on a
//! watch channel as one snapshot. Dependents, the port forwarder, the proxy
//! and `ps` all read that snapshot; nothing polls a shared map.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};

use crate::plan::ServicePlan;
use crate::state::{Health, ReplicaState, ReplicaStatus};

/// The replicas of a service, as last published.
pub type Snapshot = Arc<[ReplicaStatus]>;

/// A state or health change, for `berth events` and the log stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event {
    #[serde(serialize_with = "ts")]
    pub ts: SystemTime,
    pub service: String,
    pub replica: u32,
    pub state: ReplicaState,
    pub health: Health,
    pub ready: bool,
    pub message: Option<String>,
    /// How its last run ended, when it is restarting or exited
    /// (`exited with code 3`, `killed: out of memory (limit 100 MiB)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
}

fn ts<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
}

/// A service's plan and replica statuses.
#[derive(Debug)]
pub struct ServiceCell {
    name: String,
    /// What its replicas run; a deploy swaps it once every replica runs
    /// the new one.
    plan: std::sync::RwLock<Arc<ServicePlan>>,
    replicas: Mutex<Vec<ReplicaStatus>>,
    snapshot: watch::Sender<Snapshot>,
    events: broadcast::Sender<Event>,
}

impl ServiceCell {
    pub fn new(plan: Arc<ServicePlan>, replicas: u32, events: broadcast::Sender<Event>) -> Self {
        let list: Vec<ReplicaStatus> = (1..=replicas)
            .map(|i| ReplicaStatus::new(&plan.name, i))
            .collect();
        let (snapshot, _) = watch::channel(Arc::from(list.clone()));
        ServiceCell {
            name: plan.name.clone(),
            plan: std::sync::RwLock::new(plan),
            replicas: Mutex::new(list),
            snapshot,
            events,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the service runs now.
    pub fn plan(&self) -> Arc<ServicePlan> {
        self.plan
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `plan` what the service runs (replicas started from now on
    /// run it; running ones are rolled onto it by the stack).
    pub fn set_plan(&self, plan: Arc<ServicePlan>) {
        *self.plan.write().unwrap_or_else(PoisonError::into_inner) = plan;
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Follows the snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.subscribe()
    }

    /// Changes one replica's status and publishes the snapshot. A state
    /// change the state machine does not allow is refused (and logged), so a
    /// late update from a finished task cannot resurrect a stopped replica.
    pub fn update(&self, index: u32, change: impl FnOnce(&mut ReplicaStatus)) -> bool {
        let mut replicas = self.replicas.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = replicas.iter_mut().find(|r| r.index == index) else {
            return false;
        };
        let mut next = slot.clone();
        change(&mut next);
        if !slot.state.can_become(next.state) {
            tracing::warn!(
                service = %self.name, replica = index,
                "refused state change {:?} -> {:?}", slot.state, next.state
            );
            return false;
        }
        let notable =
            slot.state != next.state || slot.health != next.health || slot.ready != next.ready;
        *slot = next.clone();
        self.snapshot.send_replace(Arc::from(replicas.clone()));
        drop(replicas);
        if notable {
            let _ = self.events.send(Event {
                ts: SystemTime::now(),
                service: next.service.clone(),
                replica: next.index,
                state: next.state,
                health: next.health,
                ready: next.ready,
                message: next.message.clone(),
                exit: next
                    .exit
                    .filter(|_| {
                        matches!(next.state, ReplicaState::Restarting | ReplicaState::Exited)
                    })
                    .map(|e| e.to_string()),
            });
        }
        true
    }

    /// One replica's status.
    pub fn replica(&self, index: u32) -> Option<ReplicaStatus> {
        self.replicas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|r| r.index == index)
            .cloned()
    }

    /// Adds a replica slot (scaling up); returns its index.
    pub fn add_replica(&self) -> u32 {
        let mut replicas = self.replicas.lock().unwrap_or_else(PoisonError::into_inner);
        let index = replicas.iter().map(|r| r.index).max().unwrap_or(0) + 1;
        replicas.push(ReplicaStatus::new(&self.name, index));
        self.snapshot.send_replace(Arc::from(replicas.clone()));
        index
    }

    /// Removes a replica slot (after it stopped).
    pub fn remove_replica(&self, index: u32) {
        let mut replicas = self.replicas.lock().unwrap_or_else(PoisonError::into_inner);
        replicas.retain(|r| r.index != index);
        self.snapshot.send_replace(Arc::from(replicas.clone()));
    }
}
