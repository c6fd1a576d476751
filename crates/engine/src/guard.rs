//! Nothing outlives berth: the guard process.
//!
//! berth starts a small companion process (the berth binary itself, run as
//! `berth __guard`) in its own session, ignoring the signals a terminal or an
//! operator sends. berth tells it, over a pipe, the process group of every
//! process it starts and every group that is gone. When the pipe closes —
//! berth exited, however: a crash, `kill -9`, the OOM killer — the guard
//! kills every registered group, and every process still in one of their
//! sessions (processes that made their own group but not their own session),
//! then exits. Together with `PR_SET_PDEATHSIG` on each direct child this
//! leaves nothing behind within a fraction of a second.
//!
//! Processes that start a new session of their own (daemonizing with
//! `setsid`) escape; services should run in the foreground, as in a
//! container.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The argument that turns the berth binary into the guard.
pub const GUARD_ARG: &str = "__guard";

struct Link {
    pipe: ChildStdin,
    _child: Child,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

/// Starts the guard (once per process) by running `exe __guard`.
///
/// # Errors
/// When the guard cannot be started; berth should not start services then.
pub fn start(exe: &Path) -> std::io::Result<()> {
    let mut link = LINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if link.is_some() {
        return Ok(());
    }
    let mut child = Command::new(exe)
        .arg(GUARD_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pipe = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the guard has no stdin"))?;
    *link = Some(Link {
        pipe,
        _child: child,
    });
    Ok(())
}

fn send(line: &str) {
    let mut link = LINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(l) = link.as_mut() {
        // A dead guard cannot be helped here; the direct children still
        // have PR_SET_PDEATHSIG.
        let _ = l.pipe.write_all(line.as_bytes());
    }
}

/// Tells the guard about a new process group.
pub fn register(pgid: u32) {
    send(&format!("+{pgid}\n"));
}

/// Tells the guard a process group is gone.
pub fn unregister(pgid: u32) {
    send(&format!("-{pgid}\n"));
}

/// The guard's main loop (`berth __guard`); returns when berth is gone and
/// every registered group has been killed.
pub fn run() {
    #[cfg(unix)]
    {
        let _ = nix::unistd::setsid();
        use nix::sys::signal::{SigHandler, Signal, signal};
        for sig in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
            Signal::SIGPIPE,
        ] {
            // SAFETY-free: setting SIG_IGN installs no handler code.
            #[allow(unsafe_code)]
            // SAFETY: SIG_IGN runs no code of ours in signal context.
            let _ = unsafe { signal(sig, SigHandler::SigIgn) };
        }
    }
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if let Some(pgid) = line.strip_prefix('+').and_then(|p| p.parse().ok()) {
            groups.insert(pgid);
        } else if let Some(pgid) = line.strip_prefix('-').and_then(|p| p.parse::<u32>().ok()) {
            groups.remove(&pgid);
        }
    }
    kill_all(&groups);
}

fn kill_all(groups: &BTreeSet<u32>) {
    if groups.is_empty() {
        return;
    }
    for &g in groups {
        let _ = crate::runtime::native::killpg(g, libc::SIGKILL);
    }
    // Members that moved to another group of the same session.
    for (pid, stat) in crate::runtime::native::processes() {
        if groups.contains(&stat.session)
            && let Ok(pid) = i32::try_from(pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
