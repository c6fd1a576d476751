//! One running stack per project: an exclusive lock on
//! `<state_dir>/berth.pid`, holding berth's pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::Failure;

/// Held while the stack runs; released when dropped (or when berth dies).
#[derive(Debug)]
pub struct Lock {
    file: Flock<File>,
}

/// Names the lock's descriptor for a detached child that takes it over.
pub const LOCK_FD: &str = "BERTH_LOCK_FD";

impl Lock {
    /// Hands the lock to the child `cmd` starts: it inherits the locked
    /// descriptor (an flock belongs to the open file, not the process), so
    /// no other `up` can slip in between this process and the child.
    pub fn hand_to(&self, cmd: &mut std::process::Command) -> Result<(), Failure> {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let flags = nix::fcntl::fcntl(&*self.file, nix::fcntl::FcntlArg::F_GETFD)
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot hand over the lock: {e}")))?;
        let mut flags = nix::fcntl::FdFlag::from_bits_truncate(flags);
        flags.remove(nix::fcntl::FdFlag::FD_CLOEXEC);
        nix::fcntl::fcntl(&*self.file, nix::fcntl::FcntlArg::F_SETFD(flags))
            .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot hand over the lock: {e}")))?;
        cmd.env(LOCK_FD, fd.to_string());
        Ok(())
    }
}

/// The lock a detaching parent handed over (see [`Lock::hand_to`]), with
/// this process's pid written in; `None` when there is none.
pub fn take_over() -> Option<Lock> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(LOCK_FD).ok()?.parse().ok()?;
    // SAFETY: the parent set LOCK_FD to a descriptor it left open across
    // exec for this process alone; nothing else here owns it.
    #[allow(unsafe_code)]
    let file = unsafe { File::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // Already locked by the parent: this only makes it ours to hold.
    let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()?;
    write_pid(&mut file, std::process::id());
    Some(Lock { file })
}

impl Lock {
    /// Names `pid` as the holder (the detached child, once started).
    pub fn name_holder(&mut self, pid: u32) {
        write_pid(&mut self.file, pid);
    }
}

fn write_pid(file: &mut File, pid: u32) {
    // Written before the old content is cut, so that a reader never sees
    // an empty file.
    let pid = format!("{pid}\n");
    let _ = file.rewind();
    let _ = file.write_all(pid.as_bytes());
    let _ = file.set_len(pid.len() as u64);
}

/// Where the guard records process groups (see `berth_engine::guard::sweep`).
pub fn groups_record(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("berth.groups")
}

fn open(state_dir: &Path) -> Result<File, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join("berth.pid");
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot open {}: {e}", path.display())))
}

/// Takes the project's lock, or says who holds it. With the lock taken,
/// kills what a crashed run left behind, saying so.
pub fn acquire(state_dir: &Path, project: &str) -> Result<Lock, Failure> {
    match Flock::lock(open(state_dir)?, FlockArg::LockExclusiveNonblock) {
        Ok(mut file) => {
            write_pid(&mut file, std::process::id());
            sweep(state_dir);
            Ok(Lock { file })
        }
        Err((mut file, _)) => {
            // The winner writes its pid right after locking: a file that is
            // still empty is read again, briefly.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut pid = String::new();
            while pid.trim().is_empty() && std::time::Instant::now() < deadline {
                pid.clear();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut pid);
                if pid.trim().is_empty() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            let pid = match pid.trim() {
                "" => "unknown".to_string(),
                p => p.to_string(),
            };
            Err(Failure::Usage(format!(
                "project {project} is already running (pid {pid}) and still starting; run `berth up` again once it is up to apply changes, or stop it with `berth down`"
            )))
        }
    }
}

/// When no berth runs the project, kills what a crashed run left behind.
pub fn sweep_if_stopped(state_dir: &Path) {
    let Ok(file) = open(state_dir) else { return };
    if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        sweep(state_dir);
        drop(lock);
    }
}

/// Waits until no process holds the project's lock, at most `within`. The
/// stack's process lets go of it last thing (the kernel, if it dies), and
/// the kernel wakes a blocked `flock` the moment it does: no polling. The
/// wait runs on a thread of its own so that it can be bounded; the shared
/// lock it then gets is let go of at once.
pub fn wait_released(state_dir: &Path, within: std::time::Duration) {
    let Ok(file) = open(state_dir) else { return };
    let (done, released) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = Flock::lock(file, FlockArg::LockShared);
        let _ = done.send(());
    });
    let _ = released.recv_timeout(within);
}

fn sweep(state_dir: &Path) {
    let left = berth_engine::guard::sweep(&groups_record(state_dir));
    if left.is_empty() {
        return;
    }
    let list: Vec<String> = left
        .iter()
        .map(|l| format!("{} ({})", l.pid, l.command))
        .collect();
    eprintln!(
        "berth: removed {} process(es) left by a crashed berth run: {}",
        left.len(),
        list.join(", ")
    );
}
