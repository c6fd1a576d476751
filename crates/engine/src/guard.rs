//! Nothing outlives berth, where no PID namespace can be had (see
//! [`contain`](crate::contain)): the guard process.
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
//! A guard that dies is replaced at once and told every group again. The
//! groups are also recorded in a file, so that when berth and the guard
//! are killed together, the next berth command kills what is left
//! ([`sweep`]). Processes that start a new session of their own
//! (daemonizing with `setsid`) escape the guard; services should run in the
//! foreground, as in a container.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// The argument that turns the berth binary into the guard.
pub const GUARD_ARG: &str = "__guard";

/// What berth knows of its guard and the groups it registered.
struct Link {
    exe: PathBuf,
    pipe: Option<ChildStdin>,
    /// Registered process groups and their leaders' start times.
    groups: BTreeMap<u32, u64>,
    /// The record of groups for [`sweep`], appended to as they come and go.
    record: Option<std::fs::File>,
    record_path: PathBuf,
    /// Lines in the record, to compact it now and then.
    record_lines: usize,
    /// The project's cgroup directories: everything in them is killed too.
    cgroups: Vec<PathBuf>,
    /// The project whose containers are removed too.
    docker: Option<String>,
}

static LINK: Mutex<Option<Link>> = Mutex::new(None);

fn link() -> std::sync::MutexGuard<'static, Option<Link>> {
    LINK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the guard (once per process) by running `exe __guard`, and
/// records every registered process group in `record`. A guard that dies
/// is noticed and replaced at once, and told every group again.
///
/// # Errors
/// When the guard or the record cannot be started; berth should not start
/// services then.
pub fn start(exe: &Path, record: &Path) -> std::io::Result<()> {
    let mut link = link();
    if link.is_some() {
        return Ok(());
    }
    let file = open_record(record, true)?;
    let child = spawn_guard(exe)?;
    *link = Some(Link {
        exe: exe.to_path_buf(),
        pipe: None,
        groups: BTreeMap::new(),
        record: Some(file),
        record_path: record.to_path_buf(),
        record_lines: 0,
        cgroups: Vec::new(),
        docker: None,
    });
    drop(link);
    watch(child);
    Ok(())
}

fn open_record(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(truncate)
        .append(!truncate)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn spawn_guard(exe: &Path) -> std::io::Result<Child> {
    Command::new(exe)
        .arg(GUARD_ARG)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Hands the guard's pipe to the link and waits for the guard on a thread
/// of its own; if it dies, a new one takes over every group.
fn watch(mut child: Child) {
    let pipe = child.stdin.take();
    {
        let mut link = link();
        let Some(l) = link.as_mut() else { return };
        l.pipe = pipe;
        if let Some(p) = l.pipe.as_mut() {
            let all: String = l
                .groups
                .keys()
                .map(|g| format!("+{g}\n"))
                .chain(l.cgroups.iter().map(|c| format!("c{}\n", c.display())))
                .chain(l.docker.iter().map(|p| format!("d{p}\n")))
                .collect();
            let _ = p.write_all(all.as_bytes());
        }
    }
    let _ = std::thread::Builder::new()
        .name("berth-guard-watch".into())
        .spawn(move || {
            let status = child.wait();
            let exe = {
                let mut link = link();
                let Some(l) = link.as_mut() else { return };
                l.pipe = None;
                l.exe.clone()
            };
            tracing::warn!(?status, "the guard process ended; starting a new one");
            match spawn_guard(&exe) {
                Ok(child) => watch(child),
                Err(e) => tracing::error!("cannot restart the guard process: {e}"),
            }
        });
}

fn change(line: &str, update: impl FnOnce(&mut Link)) {
    let mut link = link();
    let Some(l) = link.as_mut() else { return };
    update(l);
    if let Some(p) = l.pipe.as_mut() {
        // A dead guard is replaced by its watcher, which resends every group.
        let _ = p.write_all(line.as_bytes());
    }
    if l.record_lines > 4 * l.groups.len() + 256 {
        // Compact: the live groups only.
        let tmp = l.record_path.with_extension("tmp");
        let text: String = l
            .groups
            .iter()
            .map(|(g, t)| format!("+{g} {t}\n"))
            .collect();
        if std::fs::write(&tmp, &text).is_ok() && std::fs::rename(&tmp, &l.record_path).is_ok() {
            l.record = open_record(&l.record_path, false).ok();
            l.record_lines = l.groups.len();
            return;
        }
    }
    if let Some(f) = l.record.as_mut() {
        let _ = f.write_all(line.as_bytes());
        l.record_lines += 1;
    }
}

/// Tells the guard about a new process group.
pub fn register(pgid: u32) {
    let started = crate::proc::read_stat(pgid).map_or(0, |s| s.start_time);
    change(&format!("+{pgid} {started}\n"), |l| {
        l.groups.insert(pgid, started);
    });
}

/// Tells the guard about a cgroup of the project: when berth dies,
/// everything in it and below it is killed (daemons in sessions of their
/// own included). Without a guard (PID namespaces in use) nothing happens.
pub fn register_cgroup(dir: &Path) {
    let line = format!("c{}\n", dir.display());
    let mut link = link();
    let Some(l) = link.as_mut() else { return };
    l.cgroups.push(dir.to_path_buf());
    if let Some(p) = l.pipe.as_mut() {
        let _ = p.write_all(line.as_bytes());
    }
}

/// Tells the guard that the project's containers are to be removed if
/// berth dies (`Some`), or no longer (`None`: berth removed them itself,
/// and a later run's must not be touched).
pub fn register_docker(project: Option<&str>) {
    let line = match project {
        Some(p) => format!("d{p}\n"),
        None => "d-\n".to_string(),
    };
    let mut link = link();
    let Some(l) = link.as_mut() else { return };
    l.docker = project.map(str::to_string);
    if let Some(p) = l.pipe.as_mut() {
        let _ = p.write_all(line.as_bytes());
    }
}

/// Tells the guard a process group is gone.
pub fn unregister(pgid: u32) {
    change(&format!("-{pgid}\n"), |l| {
        l.groups.remove(&pgid);
    });
}

/// A process a crashed berth run left behind, killed by [`sweep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub pid: u32,
    /// Its command line.
    pub command: String,
}

/// Kills what a crashed run left of the process groups in `record` (and
/// their sessions), removes the record, and says what was killed. Call it
/// only when no berth runs the project. A group whose number now belongs to
/// a process started at another time is not touched.
pub fn sweep(record: &Path) -> Vec<Leftover> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Vec::new();
    };
    let mut groups: BTreeMap<u32, u64> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('+') {
            let mut f = rest.split_whitespace();
            if let (Some(Ok(g)), Some(Ok(t))) = (f.next().map(str::parse), f.next().map(str::parse))
            {
                groups.insert(g, t);
            }
        } else if let Some(g) = line.strip_prefix('-').and_then(|g| g.trim().parse().ok()) {
            groups.remove(&g);
        }
    }
    let _ = std::fs::remove_file(record);
    // A number reused by an unrelated process since is not ours.
    groups.retain(|g, t| crate::proc::read_stat(*g).is_none_or(|s| s.start_time == *t));
    let mut killed = Vec::new();
    for (pid, stat) in crate::proc::processes() {
        if !(groups.contains_key(&stat.pgrp) || groups.contains_key(&stat.session)) {
            continue;
        }
        // Read before the kill: a dead process has no command line.
        let command = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        if let Ok(p) = i32::try_from(pid)
            && nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        {
            killed.push(Leftover { pid, command });
        }
    }
    killed
}

/// The guard's main loop (`berth __guard`); returns when berth is gone and
/// every registered group has been killed, with the project whose
/// containers are to be removed too (see [`register_docker`]).
pub fn run() -> Option<String> {
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
    let mut cgroups: BTreeSet<PathBuf> = BTreeSet::new();
    let mut docker: Option<String> = None;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let group = |p: &str| {
            p.split_whitespace()
                .next()
                .and_then(|g| g.parse::<u32>().ok())
        };
        if let Some(pgid) = line.strip_prefix('+').and_then(group) {
            groups.insert(pgid);
        } else if let Some(pgid) = line.strip_prefix('-').and_then(group) {
            groups.remove(&pgid);
        } else if let Some(dir) = line.strip_prefix('c') {
            cgroups.insert(PathBuf::from(dir));
        } else if let Some(project) = line.strip_prefix('d') {
            docker = (project != "-").then(|| project.to_string());
        }
    }
    kill_all(&groups);
    for dir in &cgroups {
        crate::cgroup::kill_everything_in(dir);
    }
    docker
}

fn kill_all(groups: &BTreeSet<u32>) {
    if groups.is_empty() {
        return;
    }
    for &g in groups {
        let _ = crate::proc::killpg(g, libc::SIGKILL);
    }
    // Members that moved to another group of the same session.
    for (pid, stat) in crate::proc::processes() {
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
