//! What a replica is doing, as an explicit state machine, and what the
//! engine publishes about it.
//!
//! Transitions are checked ([`ReplicaState::can_become`]); `ps` and the
//! control API serialize these types as they are.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::runtime::Exit;

/// The life of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Known, not started yet.
    Created,
    /// Waiting for its dependencies.
    Waiting,
    /// Being spawned.
    Starting,
    /// The process runs.
    Running,
    /// The process ended and will not be restarted (policy, or stopped).
    Exited,
    /// The process ended (or was unhealthy) and will be started again after a backoff.
    Restarting,
    /// Being stopped (stop signal sent, grace period running).
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Cannot run: the command is missing, a dependency failed...
    Failed,
}

impl ReplicaState {
    /// Whether the state machine allows going from `self` to `next`.
    pub fn can_become(self, next: ReplicaState) -> bool {
        use ReplicaState::*;
        if self == next {
            return true;
        }
        match (self, next) {
            (_, Stopping | Stopped | Failed) => !matches!(self, Stopped),
            (Created, Waiting | Starting) => true,
            (Waiting, Starting) => true,
            (Starting, Running) => true,
            (Running, Exited | Restarting) => true,
            (Exited, Starting | Restarting) => true,
            (Restarting, Starting) => true,
            // Unhealthy, stopped, and then out of restarts.
            (Restarting, Exited) => true,
            // Stopped because it turned unhealthy (or exited while
            // stopping), then restarted by its policy.
            (Stopping, Exited | Restarting) => true,
            (Stopped | Exited | Failed, Waiting) => true,
            _ => false,
        }
    }

    /// The name `ps`, the API and `events` use: `running`, `restarting`…
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Created => "created",
            ReplicaState::Waiting => "waiting",
            ReplicaState::Starting => "starting",
            ReplicaState::Running => "running",
            ReplicaState::Exited => "exited",
            ReplicaState::Restarting => "restarting",
            ReplicaState::Stopping => "stopping",
            ReplicaState::Stopped => "stopped",
            ReplicaState::Failed => "failed",
        }
    }

    /// Whether a process may be running in this state.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReplicaState::Starting | ReplicaState::Running | ReplicaState::Stopping
        )
    }
}

/// The outcome of health checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No `healthcheck` and no `x-berth.ready`.
    None,
    /// Probes run, none has passed yet.
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// The name `ps`, the API and `events` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::None => "none",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Why a replica failed: it cannot run, and is not tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// A required dependency failed, so it was never started.
    Dependency { service: String, reason: String },
    /// Its process could not be started (program, directory, environment,
    /// port).
    Start { reason: String },
    /// berth lost track of its process.
    Wait { reason: String },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Dependency { service, reason } => {
                write!(f, "not started: dependency {service} failed ({reason})")
            }
            Failure::Start { reason } | Failure::Wait { reason } => f.write_str(reason),
        }
    }
}

/// Everything published about one replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaStatus {
    pub service: String,
    /// 1-based.
    pub index: u32,
    pub state: ReplicaState,
    pub health: Health,
    /// Receives traffic: running, ready probe passed, health check passing.
    pub ready: bool,
    pub pid: Option<u32>,
    /// Declared container port -> the port this replica listens on.
    pub ports: BTreeMap<u16, u16>,
    pub restarts: u32,
    /// Runs the OOM killer ended.
    pub oom_kills: u32,
    #[serde(with = "system_time_opt")]
    pub started_at: Option<SystemTime>,
    /// How the last run ended.
    #[serde(serialize_with = "exit_ser")]
    pub exit: Option<Exit>,
    /// Ever reached `Running` (for `service_started`).
    pub has_started: bool,
    /// Being scaled away: it takes no new traffic, whatever its probes say.
    pub leaving: bool,
    /// Why it failed, or what the last failing probe said.
    pub message: Option<String>,
    /// Why it failed, when it did.
    pub failure: Option<Failure>,
}

impl ReplicaStatus {
    pub fn new(service: &str, index: u32) -> Self {
        ReplicaStatus {
            service: service.to_string(),
            index,
            state: ReplicaState::Created,
            health: Health::None,
            ready: false,
            pid: None,
            ports: BTreeMap::new(),
            restarts: 0,
            oom_kills: 0,
            started_at: None,
            exit: None,
            has_started: false,
            leaving: false,
            message: None,
            failure: None,
        }
    }

    /// `api-2`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.index)
    }
}

fn exit_ser<S: serde::Serializer>(exit: &Option<Exit>, s: S) -> Result<S::Ok, S::Error> {
    match exit {
        None => s.serialize_none(),
        Some(Exit::Code(c)) => s.serialize_str(&format!("code {c}")),
        Some(Exit::Signal(n)) => s.serialize_str(&format!("signal {n}")),
        Some(Exit::OutOfMemory { .. }) => s.serialize_str("out of memory"),
    }
}

mod system_time_opt {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            None => s.serialize_none(),
            Some(t) => s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaState::*;

    /// Every step of `life` is a transition the state machine allows.
    fn assert_legal(life: &[super::ReplicaState]) {
        for pair in life.windows(2) {
            assert!(
                pair[0].can_become(pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn the_state_machine_allows_the_normal_life_and_nothing_else() {
        let life = [
            Created, Waiting, Starting, Running, Restarting, Starting, Running, Stopping, Stopped,
        ];
        assert_legal(&life);
        assert!(!Created.can_become(Running));
        assert!(!Stopped.can_become(Running));
        assert!(!Stopped.can_become(Failed));
        assert!(Running.can_become(Failed));
        assert!(Exited.can_become(Starting));
        assert!(!Restarting.can_become(Running));
    }

    #[test]
    fn a_health_triggered_restart_is_a_legal_life() {
        // Regression: Stopping -> Restarting was refused, so a replica
        // restarted for being unhealthy stayed `stopping` for good.
        let life = [
            Running, Stopping, Restarting, Starting, Running, Stopping, Restarting,
        ];
        assert_legal(&life);
    }
}
