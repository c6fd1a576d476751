//! The engine's error: what starting a stack or operating on a running one
//! can fail with, one variant per case so that callers (the control API,
//! the command line) decide by variant, never by message.
//!
//! Messages are one line for the user. A variant carrying an OS or spawn
//! error keeps it as its `source` and does not repeat it: print the chain
//! (`{:#}` with anyhow, or [`Error::chain`]).

use std::path::PathBuf;

use crate::forward::BindError;
use crate::runtime::{Exit, SpawnError};
use crate::state::Failure;

/// Why a stack could not start, or an operation on it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stack runs no service of that name.
    #[error("no such service: {service}")]
    UnknownService { service: String },
    /// More than one replica asked of a `bind: direct` service.
    #[error("{service} uses bind: direct and runs one replica at most")]
    DirectScale { service: String },
    /// A rolling restart of one replica did not happen; its old process
    /// keeps serving unless it was stopped.
    #[error("{replica} not restarted")]
    Roll {
        replica: String,
        #[source]
        reason: RollError,
    },
    /// Declared ports that could not be bound, each naming its service.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Bind(Vec<BindError>),
    /// A service's `x-berth.build` step ended with an error.
    #[error("build of service {service} failed ({exit}); see its output above")]
    Build { service: String, exit: Exit },
    /// A service's `x-berth.build` step could not be started.
    #[error("build of service {service} could not start")]
    BuildSpawn {
        service: String,
        #[source]
        source: SpawnError,
    },
    /// berth lost track of a service's `x-berth.build` step.
    #[error("build of service {service}: waiting for it failed")]
    BuildWait {
        service: String,
        #[source]
        source: std::io::Error,
    },
    /// A volume directory could not be created.
    #[error("cannot create {}", path.display())]
    Volume {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Even the hard limit of open files is too low for the stack.
    #[error(
        "{replicas} replicas need about {needed} open files, but the limit is {hard} (`ulimit -Hn`); raise it, or run fewer replicas"
    )]
    OpenFiles {
        replicas: u64,
        needed: u64,
        hard: u64,
    },
    /// The soft limit of open files is too low and could not be raised.
    #[error(
        "{replicas} replicas need about {needed} open files; the limit is {soft} and raising it failed"
    )]
    RaiseOpenFiles {
        replicas: u64,
        needed: u64,
        soft: u64,
        #[source]
        source: nix::errno::Errno,
    },
}

impl Error {
    /// The message with every source after it, `: `-separated: the whole
    /// story on one line, for a reader that only gets text (the API).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

/// Why a rolling restart of one replica did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    /// `bind: direct` replicas cannot run two processes at once.
    #[error("bind: direct replicas restart in place")]
    Direct,
    /// The new process could not be started (program, port…).
    #[error("{0}")]
    Spawn(Failure),
    /// The new process ended before it was ready.
    #[error("the new process {0} before it was ready")]
    NotReady(Exit),
    /// berth lost track of the new process before it was ready.
    #[error("berth lost track of the new process before it was ready")]
    Lost(#[source] std::io::Error),
    /// Its health monitor ended before the new process was ready.
    #[error("the new process stopped being monitored")]
    Unmonitored,
    /// The replica was stopped while the new process was starting.
    #[error("the replica was stopped")]
    Stopped,
    /// The replica's task had already ended (the stack is stopping).
    #[error("the replica task is gone")]
    Gone,
    /// The new process was not ready within the deploy's deadline.
    #[error("the new process was not ready within {}s{}", waited.as_secs(), last.as_deref().map(|m| format!(" (last probe: {m})")).unwrap_or_default())]
    Deadline {
        waited: std::time::Duration,
        /// The last probe's output.
        last: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_cause_once() {
        let e = Error::Volume {
            path: "/data/db".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.to_string(), "cannot create /data/db");
        assert_eq!(e.chain(), "cannot create /data/db: permission denied");
        let e = Error::Roll {
            replica: "api-2".into(),
            reason: RollError::NotReady(Exit::Code(3)),
        };
        assert_eq!(
            e.chain(),
            "api-2 not restarted: the new process exited with code 3 before it was ready"
        );
    }
}
