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
#[derive(Default)]
pub(crate) struct Prepared {
    /// `read_only`: the Landlock ruleset, created with its rules before the
    /// fork, enforced in the child.
    #[cfg(target_os = "linux")]
    landlock: Option<landlock::RulesetCreated>,
    limits: Vec<(Resource, libc::rlimit)>,
    /// uid, gid and supplementary groups to switch to.
    identity: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    no_new_privileges: bool,
    /// The capabilities kept (bit set), when `cap_drop`/`cap_add` say.
    capabilities: Option<u64>,
    /// The text to write to `/proc/self/oom_score_adj`.
    oom_score_adj: Option<Vec<u8>>,
    /// tmpfs mounts (directory, options), made in a new mount namespace.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    mounts: Vec<(std::ffi::CString, std::ffi::CString)>,
    /// The mount namespace to join first (`/proc/<pid>/ns/mnt`, open).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    namespace: Option<std::fs::File>,
}

/// A tmpfs mounted on a directory for one process run (and what it starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dir: std::path::PathBuf,
    /// The mount's options, as `mount -o` takes them.
    pub options: String,
}

impl Mount {
    /// A tmpfs of `size` bytes (the kernel's default if unset) whose root
    /// has `mode` (Docker's 1777 if unset) and belongs to `owner`.
    pub fn tmpfs(
        dir: std::path::PathBuf,
        size: Option<u64>,
        mode: Option<u32>,
        (uid, gid): (u32, u32),
    ) -> Mount {
        let mut options = format!("mode={:o},uid={uid},gid={gid}", mode.unwrap_or(0o1777));
        if let Some(size) = size {
            options.push_str(&format!(",size={size}"));
        }
        Mount { dir, options }
    }
}

/// Whether berth may mount file systems for the processes it starts (root
/// on Linux): tmpfs directories are then real tmpfs mounts.
pub fn can_mount() -> bool {
    cfg!(target_os = "linux")
        && nix::unistd::geteuid().is_root()
        && std::env::var("BERTH_TMPFS_MOUNT").map_or(true, |v| v != "0")
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
    pub(crate) fn new(
        c: &Confinement,
        identity: Option<&Identity>,
        writable: &[std::path::PathBuf],
        (mounts, mounts_of): (&[Mount], Option<u32>),
    ) -> Prepared {
        use std::os::unix::ffi::OsStrExt;
        let c_string = |b: &[u8]| std::ffi::CString::new(b).ok();
        let value = |v: Option<u64>| v.map_or(libc::RLIM_INFINITY, |v| v as libc::rlim_t);
        Prepared {
            #[cfg(target_os = "linux")]
            landlock: if c.read_only {
                read_only(writable)
            } else {
                None
            },
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
            identity: identity.map(|i| (i.uid, i.gid, i.groups.clone())),
            no_new_privileges: c.no_new_privileges,
            // A process of another user than root holds none to drop, and
            // cannot change its bounding set.
            capabilities: c.capabilities.filter(|_| nix::unistd::geteuid().is_root()),
            oom_score_adj: c.oom_score_adj.map(|n| n.to_string().into_bytes()),
            mounts: mounts
                .iter()
                .filter_map(|m| {
                    Some((
                        c_string(m.dir.as_os_str().as_bytes())?,
                        c_string(m.options.as_bytes())?,
                    ))
                })
                .collect(),
            namespace: mounts_of
                .and_then(|pid| std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok()),
        }
    }

    /// Applies it to the calling process.
    ///
    /// # Safety
    /// Only async-signal-safe system calls: fit for a forked child before
    /// exec (nothing is allocated or locked).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn apply(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        // SAFETY: plain system calls on C strings made before the fork.
        unsafe {
            self.mount()?;
        }
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
                // Before giving up root: lowering the score takes privilege.
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
        #[cfg(target_os = "linux")]
        if let Some(keep) = self.capabilities {
            // SAFETY: plain system calls.
            unsafe { bound(keep, self.identity.is_some())? };
        }
        if let Some((uid, gid, groups)) = &self.identity {
            // SAFETY: plain system calls; the group list was built before
            // the fork. Groups first, then the group, then the user: each
            // step needs the privilege the next one gives up.
            unsafe {
                #[cfg(target_os = "linux")]
                let set = libc::setgroups(groups.len(), groups.as_ptr());
                #[cfg(not(target_os = "linux"))]
                let set = libc::setgroups(groups.len() as libc::c_int, groups.as_ptr());
                if set < 0 || libc::setgid(*gid) < 0 || libc::setuid(*uid) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        #[cfg(target_os = "linux")]
        if let (Some(keep), Some(_)) = (self.capabilities, &self.identity) {
            // SAFETY: plain system calls.
            unsafe { raise(keep)? };
        }
        // Last: the ruleset's system calls need no privilege, and it sets
        // no-new-privileges itself.
        #[cfg(target_os = "linux")]
        if let Some(ruleset) = self.landlock.take() {
            ruleset
                .restrict_self()
                .map_err(|_| io::Error::from_raw_os_error(libc::EPERM))?;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: a plain system call.
        unsafe {
            if self.no_new_privileges && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl Prepared {
    /// Joins the mount namespace asked for, or makes one of its own with
    /// the tmpfs mounts (while still privileged).
    ///
    /// # Safety
    /// Async-signal-safe system calls only.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe fn mount(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: plain system calls; every pointer is to a C string that
        // lives as long as `self`.
        unsafe {
            if let Some(ns) = &self.namespace
                && libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) < 0
            {
                return Err(io::Error::last_os_error());
            }
            if self.mounts.is_empty() {
                return Ok(());
            }
            // Mounts made here stay here: private from the root down.
            if libc::unshare(libc::CLONE_NEWNS) < 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            for (dir, options) in &self.mounts {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    options.as_ptr().cast(),
                ) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// The Landlock ruleset of `read_only: true`: writing, creating and
/// removing anywhere is denied but under the service's writable volumes
/// and `/dev`; reading and executing stay as they are. `None` where the
/// kernel has no Landlock (`up` warns; see [`read_only_enforced`]).
#[cfg(target_os = "linux")]
fn read_only(writable: &[std::path::PathBuf]) -> Option<landlock::RulesetCreated> {
    use landlock::{
        ABI, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr,
    };
    let write = AccessFs::from_write(ABI::V1);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(write)
        .ok()?
        .create()
        .ok()?;
    let dev = std::path::PathBuf::from("/dev");
    for path in writable.iter().chain([&dev]) {
        // A bind mount's source that does not exist has nothing to allow.
        if let Ok(fd) = PathFd::new(path) {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, write)).ok()?;
        }
    }
    Some(ruleset)
}

/// Whether this kernel enforces `read_only` (Landlock).
pub fn read_only_enforced() -> bool {
    #[cfg(target_os = "linux")]
    {
        read_only(&[]).is_some()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Drops every capability not in `keep` from the bounding set, so no
/// process of the service can gain it; root keeps the rest across exec.
/// When the user is about to change, asks to keep the permitted set across
/// `setuid` (see [`raise`]).
///
/// # Safety
/// Only system calls.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
unsafe fn bound(keep: u64, switching_user: bool) -> io::Result<()> {
    for cap in 0..64u32 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: a plain system call; EINVAL past the kernel's last
        // capability ends the loop.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    // SAFETY: a plain system call.
    if switching_user && keep != 0 && unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// After `setuid` to a user: the kept capabilities as effective,
/// permitted, inheritable and ambient, so the program exec'd has them.
///
/// # Safety
/// Only system calls.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
unsafe fn raise(keep: u64) -> io::Result<()> {
    if keep == 0 {
        return Ok(());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| {
        let bits = (keep >> shift) as u32;
        Data {
            effective: bits,
            permitted: bits,
            inheritable: bits,
        }
    };
    let data = [half(0), half(32)];
    // SAFETY: capset with a version 3 header and its two data words.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    for cap in 0..64u64 {
        if keep & (1 << cap) == 0 {
            continue;
        }
        let raise = libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong;
        // SAFETY: a plain system call.
        if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, raise, cap, 0, 0) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                // Past the kernel's last capability.
                break;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Who a service's processes run as: `user` and `group_add`, resolved on
/// this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's own (as `initgroups` gives) and
    /// `group_add`.
    pub groups: Vec<u32>,
    /// From the user database, for `HOME` and `USER`.
    pub name: Option<String>,
    pub home: Option<std::path::PathBuf>,
}

/// Resolves `user: name|uid[:group|gid]` and `group_add` (names or gids).
///
/// # Errors
/// A user or group this machine does not know, said in words.
pub fn resolve(user: &str, group_add: &[String]) -> Result<Identity, String> {
    use nix::unistd::{Gid, Group, Uid, User};
    let (who, group) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let found = match who.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
        Err(_) => Some(
            User::from_name(who)
                .ok()
                .flatten()
                .ok_or_else(|| format!("user {who:?} does not exist on this machine"))?,
        ),
    };
    let uid = match &found {
        Some(u) => u.uid.as_raw(),
        None => who.parse::<u32>().unwrap_or_default(),
    };
    let group_id = |g: &str| -> Result<u32, String> {
        match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => Group::from_name(g)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
                .ok_or_else(|| format!("group {g:?} does not exist on this machine")),
        }
    };
    let gid = match group {
        Some(g) => group_id(g)?,
        None => found.as_ref().map_or(uid, |u| u.gid.as_raw()),
    };
    let mut groups = vec![gid];
    if let Some(u) = &found
        && let Ok(name) = std::ffi::CString::new(u.name.clone())
    {
        #[cfg(target_os = "linux")]
        if let Ok(own) = nix::unistd::getgrouplist(&name, Gid::from_raw(gid)) {
            groups.extend(own.iter().map(|g| g.as_raw()));
        }
        #[cfg(not(target_os = "linux"))]
        let _ = name;
    }
    for g in group_add {
        groups.push(group_id(g)?);
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity {
        uid,
        gid,
        groups,
        name: found.as_ref().map(|u| u.name.clone()),
        home: found.map(|u| u.dir),
    })
}
