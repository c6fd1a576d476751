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
    _file: Flock<File>,
}

/// Takes the project's lock, or says who holds it.
pub fn acquire(state_dir: &Path, project: &str) -> Result<Lock, Failure> {
    let path = state_dir.join("berth.pid");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot open {}: {e}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut file) => {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = writeln!(file, "{}", std::process::id());
            Ok(Lock { _file: file })
        }
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            Err(Failure::Usage(format!(
                "project {project} is already running (pid {}); stop it with `berth down`",
                pid.trim()
            )))
        }
    }
}
