//! `berth up -d`: the same `berth up`, re-executed in its own session with
//! its output in `<state_dir>/berth.log`; this process returns once the
//! stack answers on its socket (with `--wait`: once every service is
//! healthy, or exits 1 when one failed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_compose::Project;

use super::Failure;
use crate::api::{Ps, client::Client};

/// How long a detached start may take (builds included) before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(900);

pub fn run(project: &Project, wait: bool) -> Result<(), Failure> {
    let state_dir = &project.settings.state_dir;
    // Say so now if the project already runs; the child takes the lock itself.
    drop(super::lock::acquire(state_dir, &project.name)?);
    let log_path = state_dir.join("berth.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let log_err = log.try_clone().context("cannot duplicate the log file")?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "-d" && a != "--detach" && a != "--wait")
        .collect();
    let exe = std::env::current_exe().context("cannot find the berth executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .env(super::up::detached_marker(), "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    new_session(&mut cmd);
    let mut child = cmd.spawn().context("cannot start the detached berth")?;
    let client = Client::new(state_dir, &project.name);
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .context("cannot watch the detached berth")?
        {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(Failure::Runtime(anyhow::anyhow!(
                "the stack stopped ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail.join("\n")
            )));
        }
        if let Ok(Ok(ps)) = super::block_on_raw(client.get::<Ps>("/v1/ps")) {
            match verdict(&ps) {
                Verdict::Failed(why) if wait => {
                    return Err(Failure::Runtime(anyhow::anyhow!(
                        "{why}; the stack keeps running: see `berth ps` and `berth logs`"
                    )));
                }
                Verdict::Up if wait => {
                    summary(&ps, &log_path);
                    return Ok(());
                }
                _ if !wait => {
                    summary(&ps, &log_path);
                    return Ok(());
                }
                _ => {}
            }
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(Failure::Runtime(anyhow::anyhow!(
                "the stack did not come up within {}; it keeps trying: see {}",
                humantime::format_duration(START_TIMEOUT),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

enum Verdict {
    Up,
    Waiting,
    Failed(String),
}

fn verdict(ps: &Ps) -> Verdict {
    let mut waiting = false;
    for s in &ps.services {
        for r in &s.replicas {
            match r.state.as_str() {
                "failed" => {
                    return Verdict::Failed(format!(
                        "{} failed: {}",
                        r.name,
                        r.message.as_deref().unwrap_or("see its logs")
                    ));
                }
                "exited" if r.exit.as_deref() != Some("exited with code 0") => {
                    return Verdict::Failed(format!(
                        "{} {}",
                        r.name,
                        r.exit.as_deref().unwrap_or("exited")
                    ));
                }
                "exited" | "stopped" => {}
                "running" if r.ready => {}
                "running" if r.health == "unhealthy" => {
                    return Verdict::Failed(format!(
                        "{} is unhealthy: {}",
                        r.name,
                        r.message.as_deref().unwrap_or("see its logs")
                    ));
                }
                _ => waiting = true,
            }
        }
    }
    if waiting {
        Verdict::Waiting
    } else {
        Verdict::Up
    }
}

fn summary(ps: &Ps, log: &std::path::Path) {
    let mut out = format!("project {} is up (pid {})\n", ps.project, ps.pid);
    for s in &ps.services {
        let running = s.replicas.iter().filter(|r| r.state == "running").count();
        out.push_str(&format!(
            "  {:<16} {running}/{} running\n",
            s.name,
            s.replicas.len()
        ));
    }
    for a in &ps.proxy {
        out.push_str(&format!("proxy: http://{a}\n"));
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
