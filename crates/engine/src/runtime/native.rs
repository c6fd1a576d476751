//! The native runtime: replicas are plain processes.
//!
//! Each process starts in a new session (so a new process group, with no
//! controlling terminal), with `PR_SET_PDEATHSIG(SIGKILL)` on Linux, and is
//! registered with the [guard](crate::guard) so that nothing it starts
//! outlives berth. Signals go to the whole process group. When the leader
//! exits, what is left of its group is killed, as a container's would be.
//!
//! Spawning must happen on a tokio worker thread (never inside
//! `spawn_blocking`): `PR_SET_PDEATHSIG` fires when the *thread* that forked
//! exits, and worker threads live as long as the runtime.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use std::sync::Arc;

use super::{
    BoxFuture, Exit, Pipe, Probe, ProbeResult, Process, ProcessSpec, Runtime, SpawnError, Stats,
};
use crate::cgroup::{Cgroups, ReplicaCgroup};
use crate::guard;
pub use crate::proc::{ProcStat, kill, killpg, processes, read_stat};

/// Processes on this machine.
#[derive(Debug, Default, Clone)]
pub struct NativeRuntime {
    /// The project's cgroups: each replica run gets one of its own.
    cgroups: Option<Arc<Cgroups>>,
}

impl NativeRuntime {
    /// Replicas run in cgroups of their own under `cgroups`.
    pub fn with_cgroups(cgroups: Arc<Cgroups>) -> Self {
        NativeRuntime {
            cgroups: Some(cgroups),
        }
    }
}

impl NativeRuntime {
    fn spawn_now(&self, spec: &ProcessSpec) -> Result<Box<dyn Process>, SpawnError> {
        let cgroup = match &self.cgroups {
            Some(c) => Some(Arc::new(
                c.replica(&spec.label, &spec.confinement.limits)
                    .map_err(|e| SpawnError::Other {
                        program: spec.argv.first().cloned().unwrap_or_default(),
                        reason: format!("cannot set up its cgroup: {e}"),
                    })?,
            )),
            None => None,
        };
        spawn(spec, cgroup).map(|p| Box::new(p) as Box<dyn Process>)
    }
}

impl Runtime for NativeRuntime {
    fn spawn<'a>(
        &'a self,
        spec: &'a ProcessSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, SpawnError>> {
        // Now, on this worker thread (see the module's note on
        // PR_SET_PDEATHSIG), not when the future is polled.
        Box::pin(std::future::ready(self.spawn_now(spec)))
    }

    fn probe(&self, probe: &Probe, timeout: Duration) -> BoxFuture<'static, ProbeResult> {
        let probe = probe.clone();
        Box::pin(async move {
            match probe {
                Probe::Command(spec) => command_probe(&spec, timeout).await,
                Probe::Http { addr, path } => http_probe(addr, &path, timeout).await,
                Probe::Tcp { addr } => {
                    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await
                    {
                        Ok(Ok(_)) => ProbeResult::Pass,
                        Ok(Err(e)) => ProbeResult::Fail(format!("connect {addr}: {e}")),
                        Err(_) => ProbeResult::Fail(format!(
                            "connect {addr}: timed out after {timeout:?}"
                        )),
                    }
                }
            }
        })
    }
}

/// Finds the program the way a shell would, with the child's `PATH`, so a
/// missing or non-executable program is one clear error before any fork.
fn resolve_program(spec: &ProcessSpec) -> Result<PathBuf, SpawnError> {
    let program = spec.argv.first().ok_or(SpawnError::Empty)?;
    if program.is_empty() {
        return Err(SpawnError::Empty);
    }
    let check = |p: &Path| -> Result<PathBuf, SpawnError> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p.to_path_buf()),
            Ok(_) => Err(SpawnError::PermissionDenied {
                program: p.display().to_string(),
            }),
            Err(_) => Err(SpawnError::NotFound {
                program: p.display().to_string(),
            }),
        }
    };
    if program.contains('/') {
        let p = Path::new(program);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            spec.working_dir.join(p)
        };
        return check(&full);
    }
    let path = spec
        .env
        .get("PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", String::as_str);
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        match check(&candidate) {
            Ok(p) => return Ok(p),
            Err(e @ SpawnError::PermissionDenied { .. }) => denied = denied.or(Some(e)),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| SpawnError::NotFound {
        program: program.clone(),
    }))
}

fn spawn(
    spec: &ProcessSpec,
    cgroup: Option<Arc<ReplicaCgroup>>,
) -> Result<NativeProcess, SpawnError> {
    // Opened here, written in the child: it moves itself in before exec.
    let join = match &cgroup {
        Some(c) => c.join_files().map_err(|e| SpawnError::Other {
            program: spec.argv.first().cloned().unwrap_or_default(),
            reason: format!("cannot join its cgroup: {e}"),
        })?,
        None => Vec::new(),
    };
    if !spec.working_dir.is_dir() {
        return Err(SpawnError::NoWorkingDir {
            dir: spec.working_dir.clone(),
        });
    }
    let program = resolve_program(spec)?;
    let shim = crate::contain::shim();
    let mut cmd = match shim {
        // berth __init PROGRAM ARGV0 ARGS… (see crate::contain)
        Some(exe) => {
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg(crate::contain::INIT_ARG)
                .arg(&program)
                .args(&spec.argv);
            crate::contain::enter_namespace(cmd.as_std_mut());
            cmd
        }
        None => {
            let mut cmd = tokio::process::Command::new(&program);
            cmd.arg0(&spec.argv[0]).args(&spec.argv[1..]);
            cmd
        }
    };
    cmd.env_clear()
        .envs(&spec.env)
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    new_session(
        &mut cmd,
        join.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect(),
        crate::confine::Prepared::new(
            &spec.confinement,
            spec.identity.as_ref(),
            &spec.writable,
            (&spec.mounts, spec.mounts_of),
        ),
    );
    let child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => SpawnError::NotFound {
            program: program.display().to_string(),
        },
        io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied {
            program: program.display().to_string(),
        },
        _ => SpawnError::Other {
            program: program.display().to_string(),
            reason: e.to_string(),
        },
    })?;
    drop(join);
    tracked(child, &program, shim.is_some(), cgroup)
}

/// A spawned child, registered with the guard (and its cgroup listed for
/// `ps`).
fn tracked(
    mut child: tokio::process::Child,
    program: &Path,
    shimmed: bool,
    cgroup: Option<Arc<ReplicaCgroup>>,
) -> Result<NativeProcess, SpawnError> {
    let pid = child.id().ok_or_else(|| SpawnError::Other {
        program: program.display().to_string(),
        reason: "the process ended before it could be tracked".into(),
    })?;
    guard::register(pid);
    if let Some(c) = &cgroup {
        c.publish(pid);
    }
    let output = match (child.stdout.take(), child.stderr.take()) {
        (Some(o), Some(e)) => Some((Box::new(o) as Pipe, Box::new(e) as Pipe)),
        _ => None,
    };
    Ok(NativeProcess {
        child,
        pid,
        output,
        exited: false,
        shimmed,
        cgroup,
    })
}

/// In the child, between fork and exec: a new session, death with the
/// parent, and the service's confinement.
#[allow(unsafe_code)]
fn new_session(
    cmd: &mut tokio::process::Command,
    join: Vec<std::os::fd::RawFd>,
    mut confinement: crate::confine::Prepared,
) {
    let parent = std::process::id();
    // berth may have raised its own limit of open files for a large stack;
    // services get the one berth was started with.
    let files = crate::limits::original_open_files().map(|(soft, hard)| libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    });
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (setsid, setrlimit, prctl,
    // open, write, close, getppid, kill); it allocates nothing and takes no
    // locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(limit) = files.as_ref() {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
            // Into its cgroup while still berth's user (writing `0` moves
            // the writer).
            for fd in &join {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            confinement.apply()?;
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), libc::SIGKILL);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
}

/// A running (or finished) native process.
pub struct NativeProcess {
    child: tokio::process::Child,
    pid: u32,
    output: Option<(Pipe, Pipe)>,
    exited: bool,
    /// Runs under berth's shim and init, which pass signals on to the
    /// service's group: signal the shim alone, or the service would get
    /// each signal twice.
    shimmed: bool,
    /// Its cgroup, when the project has them: limits, usage, OOM kills,
    /// and everything it started.
    cgroup: Option<Arc<ReplicaCgroup>>,
}

impl std::fmt::Debug for NativeProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeProcess")
            .field("pid", &self.pid)
            .field("exited", &self.exited)
            .finish()
    }
}

impl Drop for NativeProcess {
    /// A process whose handle is dropped unawaited (a cancelled start, a
    /// panicking task) is killed with its group rather than left behind.
    fn drop(&mut self) {
        if !self.exited {
            let _ = killpg(self.pid, libc::SIGKILL);
            guard::unregister(self.pid);
        }
        if let Some(cgroup) = self.cgroup.take() {
            ReplicaCgroup::unpublish(self.pid);
            cgroup.kill();
            if !cgroup.remove() {
                // Its processes take a moment to go; never block here.
                let _ = std::thread::Builder::new()
                    .name("berth-cgroup-end".into())
                    .spawn(move || {
                        crate::cgroup::kill_everything_in_replica(&cgroup);
                    });
            }
        }
    }
}

impl Process for NativeProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn signal(&self, signal: i32) -> io::Result<()> {
        if self.shimmed && signal != libc::SIGKILL {
            return kill(self.pid, signal);
        }
        if signal == libc::SIGKILL
            && let Some(c) = &self.cgroup
        {
            c.kill();
        }
        killpg(self.pid, signal)
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<Exit>> {
        Box::pin(async move {
            let status = self.child.wait().await?;
            if !self.exited {
                self.exited = true;
                // What the leader left behind in its group goes with it.
                let _ = killpg(self.pid, libc::SIGKILL);
                guard::unregister(self.pid);
            }
            let mut exit = match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            };
            if let Some(cgroup) = self.cgroup.take() {
                ReplicaCgroup::unpublish(self.pid);
                // A run that failed with the OOM killer in its cgroup
                // died of it, whichever of its processes was chosen.
                if !exit.success() && cgroup.usage().oom_kills > 0 {
                    exit = Exit::OutOfMemory {
                        limit: cgroup.memory_limit(),
                    };
                }
                // Everything it started goes with it, daemons included.
                cgroup.end(Duration::from_secs(2)).await;
            }
            Ok(exit)
        })
    }

    fn take_output(&mut self) -> Option<(Pipe, Pipe)> {
        self.output.take()
    }

    fn stats(&self) -> Option<Stats> {
        let mut stats = group_stats(self.pid)?;
        if let Some(c) = &self.cgroup {
            cgroup_usage(&mut stats, c.usage());
        }
        Some(stats)
    }
}

/// The CPU time and memory `stat` stands for.
fn usage(stat: &ProcStat) -> Stats {
    let sysconf = |v, default| nix::unistd::sysconf(v).ok().flatten().unwrap_or(default);
    let ticks = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100) as f64;
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096) as u64;
    Stats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        rss_bytes: stat.rss_pages * page,
        ..Stats::default()
    }
}

/// CPU and memory of every session, from one pass over `/proc` (for `ps`
/// over many replicas). Each replica's first process leads a session of
/// its own, so this counts all it started, whatever groups they made.
/// berth's own shim and init (see [`crate::contain`]) are left out: what
/// `ps` shows is the service's.
pub fn all_group_stats() -> std::collections::HashMap<u32, Stats> {
    let mut out: std::collections::HashMap<u32, Stats> = std::collections::HashMap::new();
    let shim = crate::contain::shim().and_then(|p| p.canonicalize().ok());
    let is_shim = |pid: u32, stat: &ProcStat| {
        // The shim leads the session; the init is its child.
        shim.is_some()
            && (pid == stat.session || stat.ppid == stat.session)
            && std::fs::read_link(format!("/proc/{pid}/exe")).ok() == shim
    };
    for (pid, stat) in processes() {
        if is_shim(pid, &stat) {
            continue;
        }
        let u = usage(&stat);
        let s = out.entry(stat.session).or_default();
        s.cpu_seconds += u.cpu_seconds;
        s.rss_bytes += u.rss_bytes;
    }
    // A replica with a cgroup: what the kernel charges it, daemons in
    // sessions of their own included, and its limit.
    for (pid, stats) in &mut out {
        if let Some(u) = crate::cgroup::usage_of(*pid) {
            cgroup_usage(stats, u);
        }
    }
    out
}

fn cgroup_usage(stats: &mut Stats, u: crate::cgroup::Usage) {
    stats.rss_bytes = u.memory_bytes;
    if let Some(cpu) = u.cpu_seconds {
        stats.cpu_seconds = cpu;
    }
    stats.memory_limit = u.memory_limit;
    stats.oom_kills = u.oom_kills;
}

/// CPU and memory of every process in the session `pgid` leads.
pub fn group_stats(pgid: u32) -> Option<Stats> {
    all_group_stats().remove(&pgid)
}

async fn command_probe(spec: &ProcessSpec, timeout: Duration) -> ProbeResult {
    let mut process = match spawn(spec, None) {
        Ok(p) => p,
        Err(e) => return ProbeResult::Fail(e.to_string()),
    };
    let (out, err) = match process.take_output() {
        Some(pipes) => pipes,
        None => return ProbeResult::Fail("no output pipes".into()),
    };
    let collect = async move {
        let mut buf = Vec::new();
        let mut out = out;
        let mut err = err;
        let mut a = Vec::new();
        let mut b = Vec::new();
        let _ = tokio::join!(out.read_to_end(&mut a), err.read_to_end(&mut b));
        buf.extend(a);
        buf.extend(b);
        buf
    };
    let run = async {
        let (output, status) = tokio::join!(collect, process.wait());
        (output, status)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((output, Ok(exit))) => {
            if exit.success() {
                ProbeResult::Pass
            } else {
                ProbeResult::Fail(describe_failure(exit, &output))
            }
        }
        Ok((_, Err(e))) => ProbeResult::Fail(format!("waiting for the probe: {e}")),
        Err(_) => {
            let _ = killpg(process.pid, libc::SIGKILL);
            let _ = process.child.wait().await;
            guard::unregister(process.pid);
            ProbeResult::Fail(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ))
        }
    }
}

fn describe_failure(exit: Exit, output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
    if tail.is_empty() {
        exit.to_string()
    } else {
        let tail: String = tail.chars().take(300).collect();
        format!("{exit}: {tail}")
    }
}

async fn http_probe(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> ProbeResult {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::USER_AGENT, "berth-probe")
            .header(hyper::header::CONNECTION, "close")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("not an HTTP answer: {e}"))?;
        Ok::<u16, String>(response.status().as_u16())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(code)) if (200..400).contains(&code) => ProbeResult::Pass,
        Ok(Ok(code)) => ProbeResult::Fail(format!("GET {path} answered {code}")),
        Ok(Err(e)) => ProbeResult::Fail(format!("GET http://{addr}{path}: {e}")),
        Err(_) => ProbeResult::Fail(format!(
            "GET http://{addr}{path}: timed out after {}",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokio::io::AsyncWriteExt;

    fn spec(argv: &[&str], dir: &Path) -> ProcessSpec {
        ProcessSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::from([("PATH".to_string(), "/usr/bin:/bin".to_string())]),
            working_dir: dir.to_path_buf(),
            label: "t".into(),
            confinement: berth_compose::Confinement::default(),
            identity: None,
            writable: Vec::new(),
            mounts: Vec::new(),
            mounts_of: None,
            container: None,
        }
    }

    #[test]
    fn missing_and_non_executable_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve_program(&spec(&["no-such-program-xyz"], dir.path())).unwrap_err();
        assert_eq!(
            e,
            SpawnError::NotFound {
                program: "no-such-program-xyz".into()
            }
        );
        let script = dir.path().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = resolve_program(&spec(&["./script.sh"], dir.path())).unwrap_err();
        assert!(matches!(e, SpawnError::PermissionDenied { .. }), "{e:?}");
        let e = spawn(&spec(&["true"], &dir.path().join("missing")), None).unwrap_err();
        assert!(matches!(e, SpawnError::NoWorkingDir { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn processes_get_their_own_session_and_group_signals_reach_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        // A grandchild that notes the SIGTERM it gets, and a leader that
        // waits for it before dying of its own: the leader's exit takes
        // the rest of the group with it (SIGKILL), so only a signal sent to
        // the whole group gets there first.
        let script = "trap 'wait; trap - TERM; kill -TERM $$' TERM; \
            (trap 'echo got TERM > grandchild; exit 0' TERM; touch started; \
            while :; do sleep 0.05; done) & wait";
        let mut p = spawn(&spec(&["sh", "-c", script], dir.path()), None).unwrap();
        let pid = p.pid();
        let stat = read_stat(pid).unwrap();
        assert_eq!(stat.pgrp, pid);
        assert_eq!(stat.session, pid);
        until("the grandchild started", || {
            dir.path().join("started").exists()
        })
        .await;
        p.signal(libc::SIGTERM).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(5), p.wait())
            .await
            .expect("the leader still waits for its grandchild after 5 s")
            .unwrap();
        assert_eq!(exit, Exit::Signal(libc::SIGTERM));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("grandchild")).ok(),
            Some("got TERM\n".to_string())
        );
        let group = || {
            crate::proc::processes()
                .filter(|(_, s)| s.pgrp == pid)
                .count()
        };
        until("the group is empty", || group() == 0).await;
        assert!(group_stats(pid).is_none(), "the session must be empty");
    }

    /// Polls `done` every 10 ms until it holds; fails the test after 5 s.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn command_probes_pass_fail_and_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let rt = NativeRuntime::default();
        let t = Duration::from_secs(2);
        assert_eq!(
            rt.probe(&Probe::Command(Box::new(spec(&["true"], dir.path()))), t)
                .await,
            ProbeResult::Pass
        );
        let r = rt
            .probe(
                &Probe::Command(Box::new(spec(
                    &["sh", "-c", "echo nope >&2; exit 3"],
                    dir.path(),
                ))),
                t,
            )
            .await;
        assert_eq!(r, ProbeResult::Fail("exited with code 3: nope".into()));
        let start = std::time::Instant::now();
        let r = rt
            .probe(
                &Probe::Command(Box::new(spec(&["sleep", "10"], dir.path()))),
                Duration::from_millis(200),
            )
            .await;
        assert!(
            matches!(r, ProbeResult::Fail(ref m) if m.contains("timed out")),
            "{r:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                n += 1;
                let status = if n == 1 {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let rt = NativeRuntime::default();
        let t = Duration::from_secs(1);
        let http = Probe::Http {
            addr,
            path: "/health".into(),
        };
        assert_eq!(rt.probe(&http, t).await, ProbeResult::Pass);
        assert_eq!(
            rt.probe(&http, t).await,
            ProbeResult::Fail("GET /health answered 503".into())
        );
        assert_eq!(rt.probe(&Probe::Tcp { addr }, t).await, ProbeResult::Pass);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(matches!(
            rt.probe(&Probe::Tcp { addr: closed }, t).await,
            ProbeResult::Fail(_)
        ));
    }

    #[tokio::test]
    async fn an_http_probe_on_something_else_says_so() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"+OK redis here\r\n").await;
            }
        });
        let probe = Probe::Http {
            addr,
            path: "/health".into(),
        };
        let r = NativeRuntime::default()
            .probe(&probe, Duration::from_secs(2))
            .await;
        assert!(
            matches!(&r, ProbeResult::Fail(m) if m.contains("not an HTTP answer")),
            "{r:?}"
        );
    }
}
