//! berth's own resource limits: enough open files for the stack it runs.

use crate::error::Error;
use crate::plan::ServicePlan;

/// Descriptors berth holds per replica: its two output pipes and its log
/// file (measured: 10,000 one-replica services ran out of 20,000 files at
/// about the 8,000th).
pub const FILES_PER_REPLICA: u64 = 3;

/// Descriptors berth needs besides the replicas'.
pub const FILES_BASE: u64 = 256;

/// Says whether the stack can have the open files it needs and, with
/// `raise`, raises berth's soft limit to its hard limit when the stack
/// needs more than the soft one allows. Processes berth starts get the
/// original soft limit back.
///
/// # Errors
/// [`Error::OpenFiles`] when even the hard limit is too low for the
/// replicas asked for, [`Error::RaiseOpenFiles`] when raising the soft one fails.
pub fn ensure_open_files(plans: &[ServicePlan], raise: bool) -> Result<(), Error> {
    let replicas: u64 = plans.iter().map(|p| u64::from(p.replicas)).sum();
    let listeners: u64 = plans.iter().map(|p| p.listen.len() as u64).sum();
    let needed = FILES_BASE + replicas * FILES_PER_REPLICA + listeners;
    check(needed, replicas, raise)
}

#[cfg(unix)]
fn check(needed: u64, replicas: u64, raise: bool) -> Result<(), Error> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Ok(());
    };
    if needed <= soft {
        return Ok(());
    }
    if needed <= hard {
        if !raise {
            return Ok(());
        }
        let _ = ORIGINAL.set(soft);
        return setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|source| {
            Error::RaiseOpenFiles {
                replicas,
                needed,
                soft,
                source,
            }
        });
    }
    Err(Error::OpenFiles {
        replicas,
        needed,
        hard,
    })
}

#[cfg(not(unix))]
fn check(_: u64, _: u64, _: bool) -> Result<(), Error> {
    Ok(())
}

/// The soft limit berth started with, when it raised it.
static ORIGINAL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// `(soft, hard)` limits of open files to give back to a child, when
/// berth raised its own soft limit.
pub fn original_open_files() -> Option<(u64, u64)> {
    let soft = ORIGINAL.get().copied()?;
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    Some((soft, hard))
}
