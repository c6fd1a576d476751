//! `berth up -d`: the same `berth up`, re-executed in its own session with
//! its output in `<state_dir>/berth.log`; this process returns once the
//! stack answers on its socket (with `--wait`: once every service is
//! healthy, or exits 1 when one failed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_compose::Project;

use super::Failure;
use crate::api::{Ps, client::Client};

/// Set in the environment of the detached child (`berth up` run again).
pub const DETACHED: &str = "BERTH_DETACHED";

/// How long a detached start may take (builds included) before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(900);

pub fn run(project: &Project, wait: bool) -> Result<(), Failure> {
    let state_dir = &project.settings.state_dir;
    // Held from here on and handed to the child: a concurrent `up` loses
    // here, before it touches the log.
    let mut lock = super::lock::acquire(state_dir, &project.name)?;
    let log_path = state_dir.join("berth.log");
    let log = berth_engine::private::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let log_err = log.try_clone().context("cannot duplicate the log file")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "-d" && a != "--detach" && a != "--wait")
        .collect();
    let exe = std::env::current_exe().context("cannot find the berth executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .env(DETACHED, "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    new_session(&mut cmd);
    lock.hand_to(&mut cmd)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Spawned on the runtime, so that its exit is an event to await.
        let mut child = tokio::process::Command::from(cmd)
            .spawn()
            .context("cannot start the detached berth")?;
        lock.name_holder(child.id().unwrap_or(0));
        // Not dropped: dropping unlocks (LOCK_UN) the open file the child
        // now shares. The descriptor closes when this process exits.
        std::mem::forget(lock);
        let client = Client::new(state_dir, &project.name);
        follow_start(&mut child, &client, wait, &log_path).await
    })
}

/// How long a failure may take to stop the stack (its dependents fail,
/// and the stack gives replicas still starting a second to fail too).
const FAILURE_SETTLES: Duration = Duration::from_secs(3);

/// How often a detached start asks the stack how far it is.
const POLL: Duration = Duration::from_millis(50);

/// Follows a detached start until the stack is up, fails, or its process
/// exits. The exit is awaited; how far the start is, is asked of `ps`
/// every [`POLL`] until [`START_TIMEOUT`] (its socket does not exist yet
/// at first, so there is nothing to subscribe to).
async fn follow_start(
    child: &mut tokio::process::Child,
    client: &Client,
    wait: bool,
    log_path: &Path,
) -> Result<(), Failure> {
    let started = Instant::now();
    loop {
        let next = tokio::time::Instant::now() + POLL;
        let ps = tokio::select! {
            status = child.wait() => return Err(stopped(status, log_path)),
            ps = client.get::<Ps>("/v1/ps") => ps.ok(),
        };
        if let Some(ps) = ps {
            match verdict(&ps, wait) {
                Verdict::Failed(why) => {
                    // Replicas that depend on it fail in turn and stop the
                    // stack; say which happened, not what might.
                    let stops = tokio::time::timeout(FAILURE_SETTLES, child.wait()).await;
                    return Err(Failure::Runtime(if stops.is_ok() {
                        anyhow::anyhow!("{why}; the stack stopped: see {}", log_path.display())
                    } else {
                        anyhow::anyhow!(
                            "{why}; the stack keeps running: see `berth ps` and `berth logs`"
                        )
                    }));
                }
                Verdict::Broken(why) => {
                    return Err(Failure::Runtime(anyhow::anyhow!(
                        "{why}; the stack stops: see {}",
                        log_path.display()
                    )));
                }
                Verdict::Stopped(why) => {
                    return Err(Failure::Runtime(anyhow::anyhow!(
                        "{why} before the stack was up"
                    )));
                }
                Verdict::Up => {
                    summary(&ps, log_path);
                    return Ok(());
                }
                Verdict::Waiting => {}
            }
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "the stack did not come up within {}; it keeps trying: see {}",
                humantime::format_duration(START_TIMEOUT),
                log_path.display()
            )));
        }
        tokio::select! {
            status = child.wait() => return Err(stopped(status, log_path)),
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// The detached berth exited before the stack was up: how, and the last
/// lines it wrote.
fn stopped(status: std::io::Result<std::process::ExitStatus>, log_path: &Path) -> Failure {
    let status = match status.context("cannot watch the detached berth") {
        Ok(status) => status,
        Err(e) => return Failure::Runtime(e),
    };
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Failure::Runtime(anyhow::anyhow!(
        "the stack stopped ({status}); last lines of {}:\n{}",
        log_path.display(),
        tail.join("\n")
    ))
}

/// Where a detached start stands, from `ps`.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Every replica started (with `--wait`: and is ready), or completed.
    Up,
    Waiting,
    /// A replica failed: the stack keeps running.
    Failed(String),
    /// A replica could not run at all: the stack stops, as `berth up` does.
    Broken(String),
    /// The stack was stopped (`berth down`) while it was starting.
    Stopped(String),
}

/// Restarts during start-up after which a replica counts as crash-looping.
const CRASH_LOOP: u32 = 3;

/// The truth about a start: `up -d` is up once every replica runs (or a
/// one-shot job completed), as `docker compose up -d`; `--wait` also needs
/// every replica ready. A failure, a non-zero exit, a crash loop, or an
/// unhealthy replica its policy will not restart is never "up".
fn verdict(ps: &Ps, wait: bool) -> Verdict {
    use berth_engine::{Health, ReplicaState as S};
    let mut waiting = false;
    // A failure outranks a stop: a replica that cannot run may take the
    // rest of the stack down with it, and the failure is what to report.
    let mut stopped = None;
    for s in &ps.services {
        for r in &s.replicas {
            let why = || r.message.as_deref().unwrap_or("see its logs").to_string();
            let exit = || r.exit.as_deref().unwrap_or("exited").to_string();
            let completed = r.exit.as_deref() == Some("exited with code 0");
            match r.state {
                S::Failed => return Verdict::Broken(format!("{} failed: {}", r.name, why())),
                S::Exited if !completed => {
                    return Verdict::Failed(format!("{} {}", r.name, exit()));
                }
                S::Exited => {}
                S::Stopped => {
                    stopped.get_or_insert_with(|| format!("{} was stopped", r.name));
                }
                S::Restarting if r.restarts >= CRASH_LOOP => {
                    return Verdict::Failed(format!(
                        "{} keeps failing ({} restarts, last {})",
                        r.name,
                        r.restarts,
                        r.exit.as_deref().unwrap_or("unhealthy")
                    ));
                }
                S::Running if r.health == Health::Unhealthy && !s.self_heals => {
                    return Verdict::Failed(format!("{} is unhealthy: {}", r.name, why()));
                }
                S::Running if r.ready || !wait => {}
                _ => waiting = true,
            }
        }
    }
    if let Some(why) = stopped {
        Verdict::Stopped(why)
    } else if waiting {
        Verdict::Waiting
    } else {
        Verdict::Up
    }
}

fn summary(ps: &Ps, log: &std::path::Path) {
    let mut out = format!("project {} is up (pid {})\n", ps.project, ps.pid);
    for s in &ps.services {
        let running = s
            .replicas
            .iter()
            .filter(|r| r.state == berth_engine::ReplicaState::Running)
            .count();
        // A one-shot job that did its work is not "0/1 running".
        let completed = !s.replicas.is_empty()
            && s.replicas.iter().all(|r| {
                r.state == berth_engine::ReplicaState::Exited
                    && r.exit.as_deref() == Some("exited with code 0")
            });
        let how = if completed {
            "completed".to_string()
        } else {
            format!("{running}/{} running", s.replicas.len())
        };
        out.push_str(&format!("  {:<16} {how}\n", s.name));
    }
    for a in &ps.proxy {
        out.push_str(&format!("proxy: {a}\n"));
    }
    out.push_str(&format!(
        "logs: berth logs -f (also in {})\n",
        log.display()
    ));
    let _ = super::print_stdout(&out);
}

/// The child gets a session of its own: no terminal hang-up reaches it.
#[allow(unsafe_code)]
fn new_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the closure runs between fork and
    // exec and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ReplicaRow, ServiceRow};

    fn ps(self_heals: bool, rows: &[(&str, &str, bool, u32, Option<&str>)]) -> Ps {
        let replicas = rows
            .iter()
            .enumerate()
            .map(|(i, (state, health, ready, restarts, exit))| ReplicaRow {
                name: format!("web-{}", i + 1),
                index: i as u32 + 1,
                state: serde_json::from_value(serde_json::json!(state)).unwrap(),
                health: serde_json::from_value(serde_json::json!(health)).unwrap(),
                ready: *ready,
                pid: None,
                ports: Default::default(),
                restarts: *restarts,
                started_at: None,
                uptime_seconds: None,
                exit: exit.map(str::to_string),
                cpu_seconds: None,
                rss_bytes: None,
                memory_limit: None,
                oom_kills: 0,
                message: None,
                failure: None,
            })
            .collect();
        Ps {
            ts: None,
            project: "p".into(),
            pid: 1,
            started_at: String::new(),
            proxy: vec![],
            services: vec![ServiceRow {
                name: "web".into(),
                listening: Default::default(),
                listening_udp: Default::default(),
                self_heals,
                replicas,
            }],
            log_lines_lost: 0,
            certificates: vec![],
        }
    }

    #[test]
    fn a_stack_stopped_while_starting_is_not_up() {
        // Regression: `up -d --wait` said "is up" after `berth down`.
        let p = ps(true, &[("stopped", "starting", false, 0, None)]);
        assert!(matches!(verdict(&p, true), Verdict::Stopped(_)));
        assert!(matches!(verdict(&p, false), Verdict::Stopped(_)));
    }

    #[test]
    fn up_without_wait_waits_for_every_replica_to_run() {
        // Regression: `up -d` said "is up" before a replica that could not
        // even be executed had failed.
        let starting = ps(
            true,
            &[
                ("running", "starting", false, 0, None),
                ("starting", "none", false, 0, None),
            ],
        );
        assert_eq!(verdict(&starting, false), Verdict::Waiting);
        let failed = ps(
            true,
            &[
                ("running", "none", false, 0, None),
                ("failed", "none", false, 0, None),
            ],
        );
        assert!(matches!(verdict(&failed, false), Verdict::Broken(_)));
        // A failure outranks the stops it causes, in whatever order.
        let failed = ps(
            true,
            &[
                ("stopped", "none", false, 0, None),
                ("failed", "none", false, 0, None),
            ],
        );
        assert!(
            matches!(verdict(&failed, false), Verdict::Broken(ref m) if m.starts_with("web-2"))
        );
        let running = ps(true, &[("running", "starting", false, 0, None)]);
        assert_eq!(verdict(&running, false), Verdict::Up);
        assert_eq!(verdict(&running, true), Verdict::Waiting);
    }

    #[test]
    fn unhealthy_waits_when_it_will_be_restarted_and_fails_when_not() {
        let p = ps(true, &[("running", "unhealthy", false, 0, None)]);
        assert_eq!(verdict(&p, true), Verdict::Waiting);
        let p = ps(false, &[("running", "unhealthy", false, 0, None)]);
        assert!(matches!(verdict(&p, true), Verdict::Failed(_)));
        let p = ps(
            true,
            &[(
                "restarting",
                "starting",
                false,
                3,
                Some("exited with code 1"),
            )],
        );
        assert!(matches!(verdict(&p, true), Verdict::Failed(ref m) if m.contains("keeps failing")));
        let p = ps(
            true,
            &[("exited", "none", false, 0, Some("exited with code 0"))],
        );
        assert_eq!(verdict(&p, true), Verdict::Up);
        let p = ps(
            true,
            &[("exited", "none", false, 0, Some("exited with code 2"))],
        );
        assert_eq!(
            verdict(&p, false),
            Verdict::Failed("web-1 exited with code 2".into())
        );
    }
}
