//! Applying a service's [`Confinement`] to its processes: resource limits,
//! no new privileges and the OOM score, set in the child between fork and
//! exec. Everything is prepared before the fork; what runs in the child
//! only makes system calls.

use std::io;

use berth_compose::Confinement;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// A confinement ready to apply in a forked child.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    limits: Vec<(Resource, libc::rlimit)>,
    no_new_privileges: bool,
    /// The text to write to `/proc/self/oom_score_adj`.
    oom_score_adj: Option<Vec<u8>>,
}

/// The system's resource for a `ulimits` name (`None`: not on this system).
fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "stack" => libc::RLIMIT_STACK,
        #[cfg(target_os = "linux")]
        "locks" => libc::RLIMIT_LOCKS,
        #[cfg(target_os = "linux")]
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        #[cfg(target_os = "linux")]
        "nice" => libc::RLIMIT_NICE,
        #[cfg(target_os = "linux")]
        "rtprio" => libc::RLIMIT_RTPRIO,
        #[cfg(target_os = "linux")]
        "rttime" => libc::RLIMIT_RTTIME,
        #[cfg(target_os = "linux")]
        "sigpending" => libc::RLIMIT_SIGPENDING,
        _ => return None,
    })
}

impl Prepared {
    pub(crate) fn new(c: &Confinement) -> Prepared {
        let value = |v: Option<u64>| v.map_or(libc::RLIM_INFINITY, |v| v as libc::rlim_t);
        Prepared {
            limits: c
                .ulimits
                .iter()
                .filter_map(|u| {
                    let limit = libc::rlimit {
                        rlim_cur: value(u.soft),
                        rlim_max: value(u.hard),
                    };
                    resource(u.name).map(|r| (r, limit))
                })
                .collect(),
            no_new_privileges: c.no_new_privileges,
            oom_score_adj: c.oom_score_adj.map(|n| n.to_string().into_bytes()),
        }
    }

    /// Applies it to the calling process.
    ///
    /// # Safety
    /// Only async-signal-safe system calls: fit for a forked child before
    /// exec (nothing is allocated or locked).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn apply(&self) -> io::Result<()> {
        for (resource, limit) in &self.limits {
            // SAFETY: a plain system call on memory this process owns.
            if unsafe { libc::setrlimit(*resource, limit) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain system calls; the path is a static C string and
            // the text was formatted before the fork.
            unsafe {
                if self.no_new_privileges && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
                {
                    return Err(io::Error::last_os_error());
                }
                if let Some(text) = &self.oom_score_adj {
                    let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let written = libc::write(fd, text.as_ptr().cast(), text.len());
                    let error = io::Error::last_os_error();
                    libc::close(fd);
                    if written < 0 {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }
}
