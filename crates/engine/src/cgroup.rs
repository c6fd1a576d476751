//! cgroups: every replica in a cgroup of its own, under one for the
//! project, the way systemd confines a service.
//!
//! ```text
//! <hierarchy>/<berth's own cgroup>/berth/<project>.<dir>/<service>-<replica>.<berth>.<run>
//! ```
//!
//! (`<dir>` a hash of the state directory: a project name is only unique
//! within its directory, as berth's lock is.)
//!
//! A replica's cgroup carries its limits (memory, memory+swap, CPU quota
//! and weight, processes), counts what it and everything it started use,
//! says whether the OOM killer struck, and is how berth kills all of it —
//! daemons that made sessions of their own included — when it stops.
//!
//! Both layouts the kernel offers work:
//! - **v2** (unified): one hierarchy; controllers are enabled down the
//!   tree through `cgroup.subtree_control`. berth nests under the cgroup it
//!   runs in, so a delegated subtree (non-root) works; if that cgroup
//!   holds berth alone, berth moves itself into a `supervisor` leaf first
//!   (the kernel allows no processes beside enabled controllers).
//! - **v1**: one hierarchy per controller (`memory`, `cpu`, `cpuacct`,
//!   `pids`), each with a directory for the replica.
//!
//! Detection reads `/proc/self/mountinfo` and `/proc/self/cgroup`; the
//! version with the controllers wins (a hybrid machine's empty unified
//! hierarchy is not used), `BERTH_CGROUP=v1|v2|off` decides instead.
//! Whatever the machine cannot do is listed ([`Cgroups::unenforceable`])
//! so that `config` and `up` can name the limit, the service and the reason.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use berth_compose::{Limits, SwapLimit};

/// Set to `v1`, `v2` or `off` to choose instead of detecting.
pub const CGROUP_ENV: &str = "BERTH_CGROUP";

/// A controller berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    Memory,
    Cpu,
    /// v1 only: CPU accounting (v2 counts in the `cpu` files always).
    CpuAcct,
    Pids,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::CpuAcct => "cpuacct",
            Controller::Pids => "pids",
        }
    }
}

/// Which layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One hierarchy: the project's directory in it and what it controls.
#[derive(Debug, Clone)]
struct Hierarchy {
    dir: PathBuf,
    controllers: Vec<Controller>,
}

/// The project's cgroups.
#[derive(Debug)]
pub struct Cgroups {
    version: Version,
    /// v2: one; v1: one per mounted controller berth uses.
    hierarchies: Vec<Hierarchy>,
    /// Controllers that are not available, and why.
    missing: Vec<(Controller, String)>,
}

/// Replicas' cgroups by the pid of their first process, for `ps` and
/// `/metrics`.
static LIVE: Mutex<Option<HashMap<u32, Arc<ReplicaCgroup>>>> = Mutex::new(None);

/// Cgroup names are made unique per process run with this.
static RUNS: AtomicU64 = AtomicU64::new(0);

fn live() -> std::sync::MutexGuard<'static, Option<HashMap<u32, Arc<ReplicaCgroup>>>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a replica's cgroup says about it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Memory in use (without the page cache it may drop), bytes.
    pub memory_bytes: u64,
    /// CPU seconds used, by everything in it.
    pub cpu_seconds: Option<f64>,
    /// Times the OOM killer killed a process in it.
    pub oom_kills: u64,
    /// Its memory limit.
    pub memory_limit: Option<u64>,
}

impl Cgroups {
    /// The project's cgroups on this machine, created, with what a crashed
    /// run left in them killed. `Err` says why there are none.
    ///
    /// # Errors
    /// Why cgroups cannot be used (none mounted, not writable, turned off).
    pub fn detect(project: &str, state_dir: &Path) -> Result<Cgroups, String> {
        // Projects of one name in two directories are two stacks.
        let project = &format!(
            "{project}.{:08x}",
            fnv1a(state_dir.as_os_str().as_encoded_bytes())
        );
        let (mounts, version) = here()?;
        let cgroups = match version {
            Version::V1 => Self::v1(&mounts, project)?,
            Version::V2 => Self::v2(&mounts, project)?,
        };
        Ok(cgroups)
    }

    /// v1: a directory per controller hierarchy.
    fn v1(mounts: &Mounts, project: &str) -> Result<Cgroups, String> {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        let mut missing = Vec::new();
        for c in [
            Controller::Memory,
            Controller::Cpu,
            Controller::CpuAcct,
            Controller::Pids,
        ] {
            let Some((base, controllers)) = mounts.v1_for(c) else {
                missing.push((c, format!("no cgroup v1 {} hierarchy is mounted", c.name())));
                continue;
            };
            if let Some(h) = hierarchies.iter_mut().find(|h| h.dir.starts_with(&base)) {
                if !h.controllers.contains(&c) {
                    h.controllers.push(c);
                }
                continue;
            }
            let dir = base.join("berth").join(project);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => hierarchies.push(Hierarchy {
                    dir,
                    controllers: controllers
                        .into_iter()
                        .filter(|c| WANTED.contains(c))
                        .collect(),
                }),
                Err(e) => missing.push((c, format!("cannot create {}: {e}", dir.display()))),
            }
        }
        if hierarchies.is_empty() {
            return Err(missing
                .first()
                .map_or_else(|| "no cgroup v1 hierarchy".into(), |m| m.1.clone()));
        }
        Ok(Cgroups {
            version: Version::V1,
            hierarchies,
            missing,
        })
    }

    /// v2: the unified hierarchy, controllers enabled down to the project.
    fn v2(mounts: &Mounts, project: &str) -> Result<Cgroups, String> {
        let (mount, own) = mounts
            .v2
            .clone()
            .ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_string())?;
        let base = mount.join(own.trim_start_matches('/'));
        let available = read_words(&base.join("cgroup.controllers"));
        let mut wanted: Vec<Controller> = [Controller::Memory, Controller::Cpu, Controller::Pids]
            .into_iter()
            .filter(|c| available.iter().any(|a| a == c.name()))
            .collect();
        let mut missing: Vec<(Controller, String)> = [Controller::Memory, Controller::Cpu, Controller::Pids]
            .into_iter()
            .filter(|c| !wanted.contains(c))
            .map(|c| {
                (
                    c,
                    format!(
                        "the {} controller is not available in {} (a hybrid machine keeps it in cgroup v1, or it is not delegated)",
                        c.name(),
                        base.display()
                    ),
                )
            })
            .collect();
        let berth = base.join("berth");
        let dir = berth.join(project);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if !wanted.is_empty()
            && let Err(why) = enable_down(&base, &[&berth, &dir], &wanted, own == "/")
        {
            missing.extend(wanted.drain(..).map(|c| (c, why.clone())));
        }
        Ok(Cgroups {
            version: Version::V2,
            hierarchies: vec![Hierarchy {
                dir,
                controllers: wanted,
            }],
            missing,
        })
    }

    /// The project's directory in each hierarchy (for the guard).
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.hierarchies.iter().map(|h| h.dir.as_path())
    }

    /// The layout in use (v1 or v2).
    pub fn version(&self) -> Version {
        self.version
    }

    /// One line for the log: where the project's cgroups are.
    pub fn describe(&self) -> String {
        let v = match self.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        };
        let dirs: Vec<String> = self
            .hierarchies
            .iter()
            .map(|h| h.dir.display().to_string())
            .collect();
        format!(
            "each replica runs in a cgroup of its own (cgroup {v}, under {})",
            dirs.join(", ")
        )
    }

    fn controls(&self, c: Controller) -> bool {
        self.hierarchies.iter().any(|h| h.controllers.contains(&c))
    }

    fn why_not(&self, c: Controller) -> String {
        self.missing
            .iter()
            .find(|m| m.0 == c)
            .map_or_else(|| format!("no {} controller", c.name()), |m| m.1.clone())
    }

    /// The limits in `limits` these cgroups cannot enforce: (field, why).
    pub fn unenforceable(&self, limits: &Limits) -> Vec<(&'static str, String)> {
        unenforceable(limits, |c| {
            if self.controls(c) {
                None
            } else {
                Some(self.why_not(c))
            }
        })
    }

    /// A fresh cgroup for one run of a replica, `label` naming it
    /// (`api-2`), with `limits` written.
    ///
    /// # Errors
    /// When a directory cannot be created or a limit not written.
    pub fn replica(&self, label: &str, limits: &Limits) -> io::Result<ReplicaCgroup> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.{}.{run}", sanitize(label), std::process::id());
        let mut dirs = Vec::new();
        for h in &self.hierarchies {
            let dir = h.dir.join(&name);
            std::fs::create_dir(&dir)?;
            dirs.push(Hierarchy {
                dir,
                controllers: h.controllers.clone(),
            });
        }
        let cgroup = ReplicaCgroup {
            version: self.version,
            dirs,
            memory_limit: limits.memory.filter(|_| self.controls(Controller::Memory)),
        };
        if let Err(e) = cgroup.write_limits(limits) {
            cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Kills what a crashed berth run left in the project's cgroups and
    /// removes their directories; how many processes were killed.
    pub fn sweep(&self) -> usize {
        let mut killed = 0;
        for h in &self.hierarchies {
            let Ok(entries) = std::fs::read_dir(&h.dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    killed += kill_tree(&entry.path());
                    let _ = remove_tree(&entry.path());
                }
            }
        }
        killed
    }
}

impl Drop for Cgroups {
    /// The project's directories go when its last replica has (a
    /// directory still in use stays, for the next run to sweep).
    fn drop(&mut self) {
        for h in &self.hierarchies {
            let _ = std::fs::remove_dir(&h.dir);
        }
    }
}

/// What the cgroups on this machine would allow, found without creating
/// anything (for `config`, and for `up` before it takes the project).
#[derive(Debug)]
pub struct Preview {
    /// `Err`: no cgroups at all, and why.
    missing: Result<Vec<(Controller, String)>, String>,
}

impl Preview {
    /// Looks at the mounted hierarchies and whether berth may write there.
    pub fn of_this_machine() -> Preview {
        Preview {
            missing: preview_missing(),
        }
    }

    /// The limits in `limits` that cannot be enforced here: (field, why).
    pub fn unenforceable(&self, limits: &Limits) -> Vec<(&'static str, String)> {
        match &self.missing {
            Err(why) => all_unenforceable(limits, why),
            Ok(missing) => unenforceable(limits, |c| {
                missing.iter().find(|m| m.0 == c).map(|m| m.1.clone())
            }),
        }
    }
}

/// The hierarchies mounted here and the version to use: the one with the
/// controllers, or what `BERTH_CGROUP` says.
fn here() -> Result<(Mounts, Version), String> {
    let choice = std::env::var(CGROUP_ENV).unwrap_or_default();
    if choice == "off" || choice == "0" {
        return Err(format!("{CGROUP_ENV}={choice}"));
    }
    if !cfg!(target_os = "linux") {
        return Err("cgroups are Linux only".into());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let mounts = Mounts::parse(&mountinfo, &own);
    let version = match choice.as_str() {
        "v1" => Version::V1,
        "v2" => Version::V2,
        "" if !mounts.v2_controllers().is_empty() || mounts.v1.is_empty() => Version::V2,
        "" => Version::V1,
        other => return Err(format!("{CGROUP_ENV}={other} is not one of v1, v2, off")),
    };
    match version {
        Version::V1 if mounts.v1.is_empty() => Err("no cgroup v1 hierarchy is mounted".into()),
        Version::V2 if mounts.v2.is_none() => Err("no cgroup v2 hierarchy is mounted".into()),
        _ => Ok((mounts, version)),
    }
}

fn preview_missing() -> Result<Vec<(Controller, String)>, String> {
    let (mounts, version) = here()?;
    let writable = |dir: &Path| {
        nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).map_err(|e| {
            format!(
                "{} is not writable ({e}): run berth as root, or in a delegated cgroup v2 subtree",
                dir.display()
            )
        })
    };
    let three = [Controller::Memory, Controller::Cpu, Controller::Pids];
    if version == Version::V2 {
        let (mount, own) = mounts
            .v2
            .clone()
            .ok_or_else(|| "no cgroup hierarchy is mounted".to_string())?;
        let base = mount.join(own.trim_start_matches('/'));
        writable(&base)?;
        let available = mounts.v2_controllers();
        return Ok(three
            .into_iter()
            .filter(|c| !available.iter().any(|a| a == c.name()))
            .map(|c| {
                (
                    c,
                    format!(
                        "the {} controller is not available in {} (a hybrid machine keeps it in cgroup v1, or it is not delegated)",
                        c.name(),
                        base.display()
                    ),
                )
            })
            .collect());
    }
    let mut missing = Vec::new();
    for c in three {
        match mounts.v1_for(c) {
            None => missing.push((c, format!("no cgroup v1 {} hierarchy is mounted", c.name()))),
            Some((base, _)) => {
                if let Err(why) = writable(&base) {
                    missing.push((c, why));
                }
            }
        }
    }
    Ok(missing)
}

/// Controllers berth writes to.
const WANTED: [Controller; 4] = [
    Controller::Memory,
    Controller::Cpu,
    Controller::CpuAcct,
    Controller::Pids,
];

/// The limits that need a controller `missing` says is absent.
fn unenforceable(
    limits: &Limits,
    missing: impl Fn(Controller) -> Option<String>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut need = |set: bool, field: &'static str, c: Controller| {
        if set && let Some(why) = missing(c) {
            out.push((field, why));
        }
    };
    need(limits.memory.is_some(), "memory limit", Controller::Memory);
    need(
        limits.memory_swap.is_some(),
        "memswap_limit",
        Controller::Memory,
    );
    need(limits.cpu_millis.is_some(), "cpus", Controller::Cpu);
    need(limits.cpu_shares.is_some(), "cpu_shares", Controller::Cpu);
    need(limits.pids.is_some(), "pids_limit", Controller::Pids);
    out
}

/// Why no limit can be enforced at all: every set limit, with `why`.
pub fn all_unenforceable(limits: &Limits, why: &str) -> Vec<(&'static str, String)> {
    unenforceable(limits, |_| Some(why.to_string()))
}

/// Enables `controllers` in `base` (where berth runs) and each of `dirs`
/// below it, so that the replicas' cgroups get them. `base` may hold
/// processes (berth itself): unless it is the root, berth moves itself
/// into a leaf first, which works when berth is alone there.
fn enable_down(
    base: &Path,
    dirs: &[&Path],
    controllers: &[Controller],
    root: bool,
) -> Result<(), String> {
    let line: String = controllers
        .iter()
        .map(|c| format!("+{} ", c.name()))
        .collect();
    let line = line.trim_end();
    let enable = |dir: &Path| std::fs::write(dir.join("cgroup.subtree_control"), line);
    if let Err(e) = enable(base) {
        if root || e.raw_os_error() != Some(libc::EBUSY) {
            return Err(format!("cannot enable {line} in {}: {e}", base.display()));
        }
        let others: Vec<String> = read_words(&base.join("cgroup.procs"))
            .into_iter()
            .filter(|p| *p != std::process::id().to_string())
            .collect();
        if !others.is_empty() {
            return Err(format!(
                "{} holds other processes ({}), so its controllers cannot be passed down; start berth in a cgroup of its own (systemd-run --scope -p Delegate=yes)",
                base.display(),
                others.join(", ")
            ));
        }
        let leaf = base.join("supervisor");
        std::fs::create_dir_all(&leaf)
            .and_then(|()| std::fs::write(leaf.join("cgroup.procs"), "0"))
            .and_then(|()| enable(base))
            .map_err(|e| {
                format!(
                    "cannot move berth into {} to enable {line}: {e}",
                    leaf.display()
                )
            })?;
    }
    for dir in dirs {
        enable(dir).map_err(|e| format!("cannot enable {line} in {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// One run of a replica's cgroup (a directory per hierarchy).
#[derive(Debug)]
pub struct ReplicaCgroup {
    version: Version,
    dirs: Vec<Hierarchy>,
    memory_limit: Option<u64>,
}

impl ReplicaCgroup {
    fn dir_for(&self, c: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|h| h.controllers.contains(&c))
            .map(|h| h.dir.as_path())
    }

    fn write(&self, c: Controller, file: &str, value: &str) -> io::Result<()> {
        let Some(dir) = self.dir_for(c) else {
            return Ok(());
        };
        std::fs::write(dir.join(file), value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot write {value} to {}: {e}", dir.join(file).display()),
            )
        })
    }

    fn write_limits(&self, limits: &Limits) -> io::Result<()> {
        const PERIOD: u64 = 100_000;
        let quota = limits.cpu_millis.map(|m| (m * PERIOD / 1000).max(1000));
        match self.version {
            Version::V1 => {
                if let Some(m) = limits.memory {
                    self.write(Controller::Memory, "memory.limit_in_bytes", &m.to_string())?;
                    // Docker's rule: swap as large as memory unless said.
                    let swap = match limits.memory_swap {
                        Some(SwapLimit::Unlimited) => "-1".to_string(),
                        Some(SwapLimit::Bytes(b)) => b.to_string(),
                        None => m.saturating_mul(2).to_string(),
                    };
                    self.write_if_present(
                        Controller::Memory,
                        "memory.memsw.limit_in_bytes",
                        &swap,
                    )?;
                }
                if let Some(q) = quota {
                    self.write(Controller::Cpu, "cpu.cfs_period_us", &PERIOD.to_string())?;
                    self.write(Controller::Cpu, "cpu.cfs_quota_us", &q.to_string())?;
                }
                if let Some(s) = limits.cpu_shares {
                    self.write(Controller::Cpu, "cpu.shares", &s.to_string())?;
                }
            }
            Version::V2 => {
                if let Some(m) = limits.memory {
                    self.write(Controller::Memory, "memory.max", &m.to_string())?;
                    let swap = match limits.memory_swap {
                        Some(SwapLimit::Unlimited) => "max".to_string(),
                        Some(SwapLimit::Bytes(b)) => b.saturating_sub(m).to_string(),
                        None => m.to_string(),
                    };
                    self.write_if_present(Controller::Memory, "memory.swap.max", &swap)?;
                }
                if let Some(q) = quota {
                    self.write(Controller::Cpu, "cpu.max", &format!("{q} {PERIOD}"))?;
                }
                if let Some(s) = limits.cpu_shares {
                    self.write(
                        Controller::Cpu,
                        "cpu.weight",
                        &shares_to_weight(s).to_string(),
                    )?;
                }
            }
        }
        if let Some(p) = limits.pids {
            self.write(Controller::Pids, "pids.max", &p.to_string())?;
        }
        Ok(())
    }

    /// Swap files exist only where the kernel accounts swap.
    fn write_if_present(&self, c: Controller, file: &str, value: &str) -> io::Result<()> {
        match self.dir_for(c) {
            Some(dir) if dir.join(file).exists() => self.write(c, file, value),
            _ => Ok(()),
        }
    }

    /// `cgroup.procs` of each hierarchy, open for writing: the child
    /// writes `0` to each between fork and exec to move itself in.
    ///
    /// # Errors
    /// When a file cannot be opened.
    pub fn join_files(&self) -> io::Result<Vec<std::fs::File>> {
        self.dirs
            .iter()
            .map(|h| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(h.dir.join("cgroup.procs"))
            })
            .collect()
    }

    /// Every process in it.
    pub fn pids(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .dirs
            .iter()
            .flat_map(|h| read_words(&h.dir.join("cgroup.procs")))
            .filter_map(|p| p.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Kills every process in it (`cgroup.kill` where the kernel has it);
    /// how many were signalled.
    pub fn kill(&self) -> usize {
        self.dirs.iter().map(|h| kill_tree(&h.dir)).sum()
    }

    /// Removes its directories (once empty); `false` if one remains.
    pub fn remove(&self) -> bool {
        let mut all = true;
        for h in &self.dirs {
            all &= remove_tree(&h.dir).is_ok();
        }
        all
    }

    /// Kills what is in it and removes it, waiting up to `within` for the
    /// processes to be gone.
    pub async fn end(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            self.kill();
            if self.remove() || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// What it uses now, and how often the OOM killer struck.
    pub fn usage(&self) -> Usage {
        let mut u = Usage {
            memory_limit: self.memory_limit,
            ..Usage::default()
        };
        match self.version {
            Version::V1 => {
                if let Some(dir) = self.dir_for(Controller::Memory) {
                    let used = read_number(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
                    let stat = read_keyed(&dir.join("memory.stat"));
                    let cache = stat.get("total_inactive_file").copied().unwrap_or(0);
                    u.memory_bytes = used.saturating_sub(cache);
                    u.oom_kills = read_keyed(&dir.join("memory.oom_control"))
                        .get("oom_kill")
                        .copied()
                        .unwrap_or(0);
                }
                if let Some(dir) = self.dir_for(Controller::CpuAcct) {
                    u.cpu_seconds =
                        read_number(&dir.join("cpuacct.usage")).map(|ns| ns as f64 / 1e9);
                }
            }
            Version::V2 => {
                let Some(dir) = self.dirs.first().map(|h| h.dir.as_path()) else {
                    return u;
                };
                let used = read_number(&dir.join("memory.current")).unwrap_or(0);
                let stat = read_keyed(&dir.join("memory.stat"));
                u.memory_bytes =
                    used.saturating_sub(stat.get("inactive_file").copied().unwrap_or(0));
                u.oom_kills = read_keyed(&dir.join("memory.events"))
                    .get("oom_kill")
                    .copied()
                    .unwrap_or(0);
                u.cpu_seconds = read_keyed(&dir.join("cpu.stat"))
                    .get("usage_usec")
                    .map(|us| *us as f64 / 1e6);
            }
        }
        u
    }

    /// Its memory limit, if one is enforced.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// Listed for [`usage_of`] under the pid of its first process.
    pub fn publish(self: &Arc<Self>, pid: u32) {
        live()
            .get_or_insert_with(HashMap::new)
            .insert(pid, self.clone());
    }

    /// No longer listed under `pid`.
    pub fn unpublish(pid: u32) {
        if let Some(map) = live().as_mut() {
            map.remove(&pid);
        }
    }
}

/// What the cgroup of the replica whose first process is `pid` says.
pub fn usage_of(pid: u32) -> Option<Usage> {
    let cgroup = live().as_ref()?.get(&pid)?.clone();
    Some(cgroup.usage())
}

/// FNV-1a, 32 bits: a short, stable name for a directory.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Docker's `cpu_shares` (2–262144) as a v2 `cpu.weight` (1–10000), the
/// conversion runc uses.
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// A label as a directory name.
fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Kills every process in the cgroup `dir` and below it, until none is
/// left or a second has passed (the guard, when berth is gone).
pub fn kill_everything_in(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while kill_tree(dir) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Kills what is left of a replica's cgroup and removes it, blocking for
/// a second at most (off the async runtime).
pub fn kill_everything_in_replica(cgroup: &ReplicaCgroup) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        cgroup.kill();
        if cgroup.remove() || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Kills every process in `dir` and the cgroups below it; how many.
fn kill_tree(dir: &Path) -> usize {
    // cgroup.kill (v2, Linux 5.14+) takes the whole subtree at once,
    // forks in flight included.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let mut killed = 0;
    for pid in read_words(&dir.join("cgroup.procs")) {
        if let Ok(pid) = pid.parse::<u32>()
            && crate::proc::kill(pid, libc::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                killed += kill_tree(&entry.path());
            }
        }
    }
    killed
}

/// Removes a cgroup directory and those below it (cgroup directories are
/// removed with `rmdir`, their files go with them).
fn remove_tree(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines.
fn read_keyed(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroup hierarchies mounted here, and berth's place in each.
#[derive(Debug, Default)]
struct Mounts {
    /// The unified mount and berth's path in it.
    v2: Option<(PathBuf, String)>,
    /// v1 mounts: where, the controllers it carries, berth's path in it.
    v1: Vec<(PathBuf, Vec<String>, String)>,
}

impl Mounts {
    /// From `/proc/self/mountinfo` and `/proc/self/cgroup`.
    fn parse(mountinfo: &str, own: &str) -> Mounts {
        let mut paths: HashMap<String, String> = HashMap::new();
        let mut v2_path = None;
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if controllers.is_empty() {
                v2_path = Some(path.to_string());
            }
            for c in controllers.split(',') {
                paths.insert(c.to_string(), path.to_string());
            }
        }
        let mut out = Mounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rest: Vec<&str> = right.split(' ').collect();
            let (Some(root), Some(point), Some(fstype)) =
                (fields.get(3), fields.get(4), rest.first())
            else {
                continue;
            };
            // A bind mount of a subtree: berth's path is relative to it.
            let relative = |path: &str| -> Option<String> {
                if *root == "/" {
                    Some(path.to_string())
                } else {
                    path.strip_prefix(root)
                        .map(|p| if p.is_empty() { "/".into() } else { p.into() })
                }
            };
            match *fstype {
                "cgroup2" => {
                    if out.v2.is_none()
                        && let Some(p) = v2_path.as_deref().and_then(relative)
                    {
                        out.v2 = Some((PathBuf::from(unescape(point)), p));
                    }
                }
                "cgroup" => {
                    let options = rest.get(2).copied().unwrap_or_default();
                    let controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| WANTED.iter().any(|c| c.name() == *o))
                        .map(str::to_string)
                        .collect();
                    let Some(first) = controllers.first() else {
                        continue;
                    };
                    if let Some(p) = paths.get(first).and_then(|p| relative(p)) {
                        out.v1
                            .push((PathBuf::from(unescape(point)), controllers, p));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Controllers the unified hierarchy offers berth.
    fn v2_controllers(&self) -> Vec<String> {
        let Some((mount, own)) = &self.v2 else {
            return Vec::new();
        };
        read_words(
            &mount
                .join(own.trim_start_matches('/'))
                .join("cgroup.controllers"),
        )
        .into_iter()
        .filter(|c| ["memory", "cpu", "pids"].contains(&c.as_str()))
        .collect()
    }

    /// The directory berth is in, in the v1 hierarchy that carries `c`,
    /// and every controller of that hierarchy.
    fn v1_for(&self, c: Controller) -> Option<(PathBuf, Vec<Controller>)> {
        let (mount, controllers, own) = self
            .v1
            .iter()
            .find(|(_, cs, _)| cs.iter().any(|n| n == c.name()))?;
        let all = WANTED
            .into_iter()
            .filter(|w| controllers.iter().any(|n| n == w.name()))
            .collect();
        Some((mount.join(own.trim_start_matches('/')), all))
    }
}

/// Mount points escape spaces and the like as `\040`.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(char::from(n));
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
