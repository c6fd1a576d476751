//! berth-engine: runs a [`Project`](berth_compose::Project) as native
//! processes.
//!
//! Services start in dependency order, each replica gated on its
//! dependencies' conditions (`service_started`, `service_healthy`,
//! `service_completed_successfully`); replicas are health-checked, restarted
//! with backoff when they exit or turn unhealthy, and stopped in reverse
//! order with their stop signal and grace period. Every replica gets its own
//! port; berth listens on the declared ports and forwards to ready replicas.
//! State is published on watch channels ([`ServiceCell`]) that the proxy,
//! the control API and dependents follow.
//!
//! # Layout
//! - `plan`: Project -> what to run (argv, environment, ports, probes), with
//!   every native-runtime error found up front.
//! - `runtime/`: the OS behind the [`Runtime`] trait; native processes,
//!   Docker containers and the recording fake.
//! - `cgroup`: a cgroup per replica run: limits, usage, OOM kills, and
//!   killing all it started.
//! - `contain`, `guard`: nothing outlives berth, even `kill -9`: a PID
//!   namespace whose init dies with berth, else a guard process.
//! - `state`, `cell`: the replica state machine and the published snapshots.
//! - `error`: [`Error`], what starting a stack or operating on it fails with.
//! - `drain`: counted uses of replica addresses; waiting until nothing
//!   routes to a replica.
//! - `deps`: dependency conditions as awaited values.
//! - `health`: ready probes and health checks.
//! - `supervisor`: one replica's life, restarts and backoff.
//! - `forward`: TCP forwarding from declared ports to ready replicas.
//! - `forward_udp`: the same for a container service's `/udp` ports, a
//!   session per client.
//! - `stack`: the whole stack: start, stop, settle.
//! - `proc`: the machine's processes from `/proc`, signals.
//! - `limits`: enough open files for the stack.
//! - `private`: 0700 directories, 0600 files, no symlinks followed.
//! - `logs/`: the log pipeline (files, live subscribers, terminal).

pub mod cell;
pub mod cgroup;
pub mod confine;
pub mod contain;
pub mod deps;
pub mod drain;
mod error;
pub mod forward;
pub mod forward_udp;
pub mod guard;
mod health;
pub mod limits;
pub mod logs;
pub mod plan;
pub mod private;
pub mod proc;
pub mod runtime;
pub mod stack;
pub mod state;
mod supervisor;

pub use cell::{Event, ServiceCell, Snapshot};
pub use error::{Error, RollError};
pub use plan::{
    ContainerPlan, PlanError, ServicePlan, docker_problems, native_problems, plan, plan_with,
};
pub use runtime::{Exit, Runtime, native::NativeRuntime};
pub use stack::{Settled, Stack, UpOptions};
pub use state::{Failure, Health, ReplicaState, ReplicaStatus};

#[cfg(test)]
mod stack_tests;
