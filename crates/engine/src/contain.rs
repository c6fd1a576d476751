//! Nothing outlives berth, by the kernel's own rule.
//!
//! On Linux with `CAP_SYS_ADMIN` (root), every process berth starts runs in
//! a PID namespace of its own, under a tiny init (the berth binary, like
//! Docker's `--init`):
//!
//! ```text
//! berth ── shim (berth __init, berth's child)       forwards signals, reports the exit
//!            └─ init (pid 1 of a new namespace)     reaps orphans, forwards signals
//!                 └─ the service (pid 2, its own process group)
//! ```
//!
//! The shim dies with berth (`PR_SET_PDEATHSIG`), the init dies with the
//! shim, and when the init of a PID namespace dies the kernel kills every
//! process in it: the service, its children, daemons that made sessions of
//! their own. So whatever kills berth — `kill -9` of berth and every helper
//! together included — nothing it started survives, and no helper process
//! has to stay alive for that. When the service exits, the init exits with
//! its status and whatever the service left behind goes with it, as with a
//! container.
//!
//! Without the privilege (or with `BERTH_PID_NAMESPACE=0`), processes run
//! directly, and the [guard](crate::guard) process, `PR_SET_PDEATHSIG` and
//! a record of every process group (for [`sweep`](crate::guard::sweep) by
//! the next berth command) do what they can.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The argument that turns the berth binary into the shim and init.
pub const INIT_ARG: &str = "__init";

/// Set to `0` to run services without a PID namespace of their own.
pub const PID_NAMESPACE_ENV: &str = "BERTH_PID_NAMESPACE";

/// The berth binary that shims every process, once namespaces work.
static SHIM: OnceLock<PathBuf> = OnceLock::new();

/// How this stack's processes are kept from outliving berth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Containment {
    /// Every process in a PID namespace of its own.
    PidNamespace,
    /// The guard process and a record of every process group; why the
    /// namespace could not be used.
    Guard(String),
}

impl Containment {
    /// One line for the log: how the stack is contained.
    pub fn describe(&self) -> String {
        match self {
            Containment::PidNamespace => {
                "each service runs in a PID namespace of its own: nothing outlives berth".into()
            }
            Containment::Guard(why) => format!(
                "no PID namespaces ({why}); a guard process stops the services if berth dies"
            ),
        }
    }
}

/// Sets up containment for every process this berth starts: PID
/// namespaces where the kernel allows (tried once, with `true`), else the
/// guard, recording process groups in `record`.
///
/// # Errors
/// When the guard is needed and cannot be started.
pub fn start(exe: &Path, record: &Path) -> io::Result<Containment> {
    let why = if std::env::var(PID_NAMESPACE_ENV).is_ok_and(|v| v == "0") {
        format!("{PID_NAMESPACE_ENV}=0")
    } else {
        match try_namespace(exe) {
            Ok(()) => {
                let _ = SHIM.set(exe.to_path_buf());
                return Ok(Containment::PidNamespace);
            }
            Err(e) => e.to_string(),
        }
    };
    crate::guard::start(exe, record)?;
    Ok(Containment::Guard(why))
}

/// The shim to run a program under, when namespaces are in use.
pub(crate) fn shim() -> Option<&'static Path> {
    SHIM.get().map(PathBuf::as_path)
}

/// Runs `true` through the shim in a new namespace.
fn try_namespace(exe: &Path) -> io::Result<()> {
    if !cfg!(target_os = "linux") {
        return Err(io::Error::other("PID namespaces are Linux only"));
    }
    let truth = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| io::Error::other("no `true` to try them with"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([INIT_ARG, truth, "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    enter_namespace(&mut cmd);
    let status = cmd.spawn()?.wait()?;
    if status.success() {
        Ok(())
    } else if status.code() == Some(EXIT_UNSHARE) {
        Err(io::Error::other(
            "not permitted: run berth as root for them",
        ))
    } else {
        Err(io::Error::other(format!("the init failed ({status})")))
    }
}

/// The shim's exit code when `unshare` is refused.
const EXIT_UNSHARE: i32 = 125;

/// Makes the child's children start in a new PID namespace (in the child,
/// between fork and exec).
pub(crate) fn enter_namespace(cmd: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: unshare is a plain system call, async-signal-safe; the
        // closure allocates nothing and takes no locks.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                if libc::unshare(libc::CLONE_NEWPID) < 0 {
                    libc::_exit(EXIT_UNSHARE);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// `berth __init PROGRAM ARGV0 ARGS…`: the shim. Its children start in the
/// namespace berth made for it (see [`enter_namespace`]). Never returns.
pub fn init_main(args: &[std::ffi::OsString]) -> ! {
    #[cfg(target_os = "linux")]
    linux::shim(args);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = args;
        std::process::exit(EXIT_UNSHARE)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::OsString;
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;

    use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Pid, fork};

    /// Exit code when the program cannot be run at all.
    const EXIT_EXEC: i32 = 127;

    /// Signals that are passed on (everything catchable but SIGCHLD and
    /// the ones a fault raises).
    fn forwarded() -> SigSet {
        let mut set = SigSet::all();
        for s in [
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGILL,
            Signal::SIGFPE,
            Signal::SIGTRAP,
            Signal::SIGSYS,
        ] {
            set.remove(s);
        }
        set
    }

    /// Dies with the shim. The shim is outside this namespace (getppid
    /// says 0), so whether it died before prctl took effect is read from
    /// `alive`, a pipe whose other end only the shim holds.
    fn die_with_parent(alive: std::io::PipeReader) {
        use std::os::fd::AsFd;
        #[allow(unsafe_code)]
        // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
        let _ = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        let mut fds = [nix::poll::PollFd::new(
            alive.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        // Readable means end of file: the shim is gone.
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0) {
            std::process::exit(EXIT_EXEC);
        }
    }

    /// Waits for signals (all blocked, taken with sigwait): forwards the
    /// catchable ones to `target` (a pid, or a group when negative) and
    /// reaps children on SIGCHLD until `child` ended; its status.
    fn supervise(child: Pid, target: Pid) -> WaitStatus {
        let set = forwarded();
        loop {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(status @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _)))
                        if p == child =>
                    {
                        return status;
                    }
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(_) => {}
                    Err(nix::errno::Errno::ECHILD) => {
                        return WaitStatus::Exited(child, EXIT_EXEC);
                    }
                    Err(_) => break,
                }
            }
            match set.wait() {
                Ok(Signal::SIGCHLD) | Err(_) => {}
                Ok(sig) => {
                    let _ = kill(target, sig);
                }
            }
        }
    }

    pub(super) fn shim(args: &[OsString]) -> ! {
        let (Some(program), Some(argv0)) = (args.first(), args.get(1)) else {
            eprintln!("berth __init: usage: berth __init PROGRAM ARGV0 [ARGS…]");
            std::process::exit(2)
        };
        let set = forwarded();
        let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
        // The init tells the shim how the service ended, exactly.
        let (mut report_rx, report_tx) = match std::io::pipe() {
            Ok(p) => p,
            Err(_) => std::process::exit(EXIT_EXEC),
        };
        let (alive_rx, alive_tx) = match std::io::pipe() {
            Ok(p) => p,
            Err(_) => std::process::exit(EXIT_EXEC),
        };
        // SAFETY: this process is single-threaded (no thread was started),
        // so the child may run any code.
        #[allow(unsafe_code)]
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(report_rx);
                drop(alive_tx);
                die_with_parent(alive_rx);
                init(program, argv0, &args[2..], report_tx)
            }
            Ok(ForkResult::Parent { child }) => {
                drop(report_tx);
                drop(alive_rx);
                // Held until the shim exits.
                let _alive = alive_tx;
                let status = supervise(child, child);
                let mut report = String::new();
                let _ = report_rx.read_to_string(&mut report);
                mirror(&report, status)
            }
            Err(_) => std::process::exit(EXIT_EXEC),
        }
    }

    /// pid 1 of the namespace: runs the service in a process group of its
    /// own, forwards signals to that group, reaps every orphan, and exits
    /// once the service has (the kernel then kills what is left).
    fn init(
        program: &OsString,
        argv0: &OsString,
        args: &[OsString],
        mut report: std::io::PipeWriter,
    ) -> ! {
        let mut cmd = std::process::Command::new(program);
        cmd.arg0(argv0).args(args).process_group(0);
        // SAFETY: sigprocmask is async-signal-safe; the closure allocates
        // nothing. The service must not inherit the shim's blocked signals.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                    .map_err(std::io::Error::from)
            });
        }
        let spawned = cmd.spawn();
        let child = match spawned {
            Ok(c) => Pid::from_raw(i32::try_from(c.id()).unwrap_or(i32::MAX)),
            Err(e) => {
                eprintln!("berth: cannot run {}: {e}", program.to_string_lossy());
                std::process::exit(EXIT_EXEC);
            }
        };
        let status = supervise(child, Pid::from_raw(-child.as_raw()));
        let line = match status {
            WaitStatus::Signaled(_, sig, _) => format!("signal {}", sig as i32),
            WaitStatus::Exited(_, code) => format!("code {code}"),
            _ => format!("code {EXIT_EXEC}"),
        };
        let _ = report.write_all(line.as_bytes());
        std::process::exit(0)
    }

    /// Ends the shim the way the service ended.
    fn mirror(report: &str, init: WaitStatus) -> ! {
        if let Some(sig) = report
            .strip_prefix("signal ")
            .and_then(|s| s.parse::<i32>().ok())
            && let Ok(sig) = Signal::try_from(sig)
        {
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&forwarded()), None);
            // SAFETY: restoring the default action runs no code of ours.
            #[allow(unsafe_code)]
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
            let _ = kill(nix::unistd::getpid(), sig);
            // A signal whose default is to be ignored: say so as a code.
            std::process::exit(128 + sig as i32);
        }
        if let Some(code) = report
            .strip_prefix("code ")
            .and_then(|s| s.parse::<i32>().ok())
        {
            std::process::exit(code);
        }
        match init {
            WaitStatus::Signaled(_, sig, _) => std::process::exit(128 + sig as i32),
            _ => std::process::exit(EXIT_EXEC),
        }
    }
}
