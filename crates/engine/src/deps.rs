//! Waiting on dependencies: a `depends_on` condition evaluated against the
//! dependency's published snapshot, awaited as a value (no polling).

use berth_compose::Condition;
use tokio::sync::watch;

use crate::cell::Snapshot;
use crate::state::{Failure, Health, ReplicaState};

/// Where a dependency stands for a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Waiting,
    Satisfied,
    /// It will not get there; why.
    Failed(String),
}

/// Evaluates a condition on a service's replicas.
pub fn verdict(condition: Condition, replicas: &[crate::state::ReplicaStatus]) -> Verdict {
    if replicas.is_empty() {
        // Scaled to zero: nothing to wait for.
        return Verdict::Satisfied;
    }
    for r in replicas {
        match r.state {
            ReplicaState::Failed => {
                let why = match &r.failure {
                    Some(Failure::Dependency { .. }) => "it was not started".to_string(),
                    Some(f) => f.to_string(),
                    None => "failed".to_string(),
                };
                return Verdict::Failed(why);
            }
            ReplicaState::Stopped | ReplicaState::Stopping => {
                return Verdict::Failed("was stopped".into());
            }
            ReplicaState::Exited => {
                let exit = r
                    .exit
                    .map_or_else(|| "exited".to_string(), |e| e.to_string());
                let ok_exit = r.exit.is_some_and(crate::runtime::Exit::success);
                match condition {
                    Condition::ServiceCompletedSuccessfully if ok_exit => {}
                    Condition::ServiceStarted if r.has_started => {}
                    _ => return Verdict::Failed(exit),
                }
            }
            _ => {}
        }
    }
    let all = |f: &dyn Fn(&crate::state::ReplicaStatus) -> bool| replicas.iter().all(f);
    match condition {
        Condition::ServiceStarted => {
            if all(&|r| r.has_started) {
                Verdict::Satisfied
            } else {
                Verdict::Waiting
            }
        }
        Condition::ServiceHealthy => {
            if let Some(r) = replicas
                .iter()
                .find(|r| r.health == Health::Unhealthy && r.state == ReplicaState::Running)
            {
                return Verdict::Failed(format!(
                    "replica {} is unhealthy{}",
                    r.index,
                    r.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
            if all(&|r| r.ready && r.state == ReplicaState::Running) {
                Verdict::Satisfied
            } else {
                Verdict::Waiting
            }
        }
        Condition::ServiceCompletedSuccessfully => {
            if all(&|r| {
                r.state == ReplicaState::Exited && r.exit.is_some_and(crate::runtime::Exit::success)
            }) {
                Verdict::Satisfied
            } else {
                Verdict::Waiting
            }
        }
    }
}

/// Waits until a condition is satisfied or cannot be.
pub async fn wait(condition: Condition, mut rx: watch::Receiver<Snapshot>) -> Verdict {
    loop {
        let v = verdict(condition, &rx.borrow_and_update());
        if v != Verdict::Waiting {
            return v;
        }
        if rx.changed().await.is_err() {
            return Verdict::Failed("the stack is shutting down".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Exit;
    use crate::state::ReplicaStatus;

    fn replica(state: ReplicaState) -> ReplicaStatus {
        let mut r = ReplicaStatus::new("db", 1);
        r.state = state;
        r
    }

    #[test]
    fn conditions() {
        let mut running = replica(ReplicaState::Running);
        running.has_started = true;
        assert_eq!(
            verdict(Condition::ServiceStarted, &[running.clone()]),
            Verdict::Satisfied
        );
        assert_eq!(
            verdict(Condition::ServiceHealthy, &[running.clone()]),
            Verdict::Waiting
        );
        running.ready = true;
        assert_eq!(
            verdict(Condition::ServiceHealthy, &[running.clone()]),
            Verdict::Satisfied
        );
        // Every replica must be ready.
        assert_eq!(
            verdict(
                Condition::ServiceHealthy,
                &[running.clone(), replica(ReplicaState::Starting)]
            ),
            Verdict::Waiting
        );
        let mut done = replica(ReplicaState::Exited);
        done.has_started = true;
        done.exit = Some(Exit::Code(0));
        assert_eq!(
            verdict(Condition::ServiceCompletedSuccessfully, &[done.clone()]),
            Verdict::Satisfied
        );
        done.exit = Some(Exit::Code(3));
        assert_eq!(
            verdict(Condition::ServiceCompletedSuccessfully, &[done.clone()]),
            Verdict::Failed("exited with code 3".into())
        );
        // A restarting replica is still on its way.
        assert_eq!(
            verdict(
                Condition::ServiceCompletedSuccessfully,
                &[replica(ReplicaState::Restarting)]
            ),
            Verdict::Waiting
        );
        let mut failed = replica(ReplicaState::Failed);
        failed.failure = Some(Failure::Start {
            reason: "command not found: x".into(),
        });
        assert_eq!(
            verdict(Condition::ServiceStarted, &[failed.clone()]),
            Verdict::Failed("command not found: x".into())
        );
        // Blocked by its own dependency: said as such, from the typed reason.
        failed.failure = Some(Failure::Dependency {
            service: "db".into(),
            reason: "exited with code 1".into(),
        });
        assert_eq!(
            verdict(Condition::ServiceStarted, &[failed]),
            Verdict::Failed("it was not started".into())
        );
        let mut sick = running.clone();
        sick.ready = false;
        sick.health = Health::Unhealthy;
        assert!(matches!(
            verdict(Condition::ServiceHealthy, &[sick]),
            Verdict::Failed(_)
        ));
    }
}
