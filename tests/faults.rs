//! Faults a tired operator or an attacker would cause, repeated: replicas
//! that turn unhealthy again and again under load, berth and its helpers
//! SIGKILLed together, stacks stopped while they start. Each test is named
//! after the promise it checks.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::support::{
    Detached, Load, REPLICA_SERVER, Test, alive, eventually, listening, proxy_addr,
};

const SEC: Duration = Duration::from_secs(1);

/// `web` × `replicas` behind its port 8000 (published on a port berth
/// picks: [`listening`]); a replica turns unhealthy while the file
/// `sick.<replica>` exists, and each new process deletes its own.
fn self_healing_stack(replicas: u32) -> Test {
    Test::new()
        .file("server.py", REPLICA_SERVER)
        .compose(&format!(
            r#"
services:
  web:
    command: ["sh", "-c", "rm -f sick.$$BERTH_REPLICA; exec python3 server.py"]
    ports: ["127.0.0.1::8000"]
    deploy: {{replicas: {replicas}}}
    restart: always
    stop_grace_period: 5s
    healthcheck:
      test: ["CMD-SHELL", "test ! -f sick.$$BERTH_REPLICA"]
      interval: 200ms
      start_interval: 50ms
      retries: 2
    x-berth:
      ready: {{http: /}}
"#
        ))
}

/// `ps --format json`'s replica rows of the first service.
fn replicas(t: &Test) -> Vec<serde_json::Value> {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    ps["services"][0]["replicas"].as_array().unwrap().clone()
}

/// Makes replica `index` unhealthy and waits until it is back: running,
/// healthy, ready, with a new pid and one more restart.
fn one_unhealthy_episode(t: &Test, index: usize) {
    let before = replicas(t)[index - 1].clone();
    let (old_pid, old_restarts) = (before["pid"].as_u64(), before["restarts"].as_u64().unwrap());
    std::fs::write(t.dir().join(format!("sick.{index}")), "").unwrap();
    let mut last = serde_json::Value::Null;
    let back = eventually(30 * SEC, || {
        last = replicas(t)[index - 1].clone();
        last["state"] == "running"
            && last["health"] == "healthy"
            && last["ready"] == true
            && last["pid"].as_u64() != old_pid
            && last["restarts"].as_u64() == Some(old_restarts + 1)
    });
    assert!(back, "web-{index} did not come back: {last}");
}

#[test]
fn a_replica_restarted_for_being_unhealthy_rejoins_every_time() {
    let t = self_healing_stack(2);
    let _stack = t.up_detached();
    for _ in 0..3 {
        one_unhealthy_episode(&t, 2);
    }
    // Traffic reaches the healed replica again through the forwarder.
    let addr = listening(&t, "web", 8000);
    assert!(eventually(10 * SEC, || {
        crate::support::http_get(&addr, "/").is_ok_and(|(_, body)| body.starts_with("replica 2"))
    }));
}

#[test]
fn up_wait_returns_when_a_replica_heals_during_start_up() {
    // The first process of each replica is unhealthy; the second is fine.
    let t = Test::new().file("server.py", REPLICA_SERVER).compose(
        r#"
services:
  web:
    command: ["sh", "-c", "if [ -f once.$$BERTH_REPLICA ]; then touch ok.$$BERTH_REPLICA; fi; touch once.$$BERTH_REPLICA; exec python3 server.py"]
    ports: ["127.0.0.1::8000"]
    restart: on-failure
    healthcheck:
      test: ["CMD-SHELL", "test -f ok.$$BERTH_REPLICA"]
      interval: 200ms
      start_interval: 50ms
      retries: 2
  app:
    command: ["sleep", "60"]
    depends_on: {web: {condition: service_healthy}, job: {condition: service_completed_successfully}}
  job:
    command: ["true"]
    depends_on: {web: {condition: service_healthy}}
"#,
    );
    let up = t.run_args(["up", "-d", "--wait"]);
    let _stack = Detached { test: &t };
    // The dependent waited for the healed replica instead of failing; a
    // one-shot that did its work is said so.
    up.success()
        .stdout_has("web              1/1 running")
        .stdout_has("app              1/1 running")
        .stdout_has("job              completed");
    let r = &replicas(&t)[0];
    assert_eq!(r["restarts"], 1, "{r}");
    assert_eq!(r["health"], "healthy", "{r}");
}

#[test]
fn twenty_unhealthy_episodes_under_load_fail_no_request() {
    let t = self_healing_stack(3);
    let _stack = t.up_detached();
    let load = Load::start(&listening(&t, "web", 8000), 4);
    for episode in 0..20 {
        one_unhealthy_episode(&t, episode % 3 + 1);
    }
    load.finish_without_failures(100);
}

#[test]
fn a_stack_stopped_while_it_starts_is_not_reported_up() {
    // `berth down` while `up -d --wait` waits for a slow dependency.
    let t = Test::new().compose(
        r#"
services:
  slow:
    command: ["sleep", "60"]
    healthcheck:
      test: ["CMD", "false"]
      interval: 10s
      start_interval: 10s
  app:
    command: ["sleep", "60"]
    depends_on: {slow: {condition: service_healthy}}
"#,
    );
    let mut up = t.command();
    up.args(["up", "-d", "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let up = up.spawn().unwrap();
    let _stack = Detached { test: &t };
    // The stack answers (a stack that is not running has no services).
    assert!(eventually(10 * SEC, || {
        t.run_args(["ps", "--format", "json"]).json()["services"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    }));
    t.run_args(["down"]).success().stdout_has("stopped");
    let out = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("is up"));
    // "web-1 was stopped before the stack was up", or, when the stack
    // process is already gone, "the stack stopped".
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[test]
fn up_detached_fails_when_a_service_cannot_be_executed() {
    // An environment too large for exec(2): E2BIG.
    let big = "x".repeat(200_000);
    let t = Test::new().file(".env", &format!("BIG={big}\n")).compose(
        r#"
services:
  ok:
    command: ["sleep", "60"]
  huge:
    command: ["sleep", "60"]
    environment:
      A: "${BIG}"
"#,
    );
    let up = t.run_args(["up", "-d"]);
    let _stack = Detached { test: &t };
    up.code(1)
        .stderr_has("huge-1")
        .stderr_has("Argument list too long")
        // "the stack stops", or "the stack stopped" when its process won.
        .stderr_has("the stack stop");
}

/// `(pid, ppid, session, command line)` of every live process.
fn process_table() -> Vec<(u32, u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        let (Some(ppid), Some(sid)) = (
            f.get(1).and_then(|s| s.parse().ok()),
            f.get(3).and_then(|s| s.parse().ok()),
        ) else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, ppid, sid, cmd));
    }
    out
}

/// Every process berth started, directly or not: its descendants, and
/// whatever shares a session with one of them (orphans included).
pub fn stack_processes(berth: u32) -> Vec<(u32, String)> {
    let table = process_table();
    let mut found: Vec<u32> = vec![berth];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(table.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    let berth_session = table.iter().find(|p| p.0 == berth).map(|p| p.2);
    let sessions: Vec<u32> = table
        .iter()
        .filter(|p| found.contains(&p.0) && Some(p.2) != berth_session)
        .map(|p| p.2)
        .collect();
    table
        .into_iter()
        .filter(|p| p.0 != berth && (found.contains(&p.0) || sessions.contains(&p.2)))
        .map(|p| (p.0, p.3))
        .collect()
}

/// A stack whose replicas leave grandchildren, orphans and (with
/// `daemons`) a process in a session of its own.
fn tree_stack(daemons: bool) -> Test {
    let daemon = if daemons { "setsid sleep 301 & " } else { "" };
    Test::new().compose(&format!(
        "services:\n  tree:\n    command: [\"sh\", \"-c\", \"sleep 300 & (sleep 300 &); {daemon}echo up; wait\"]\n    deploy: {{replicas: 2}}\n"
    ))
}

/// Kills berth and every helper berth process (guard, shims, inits) at
/// once; returns what was running before. berth is frozen first, so that
/// it can neither notice a helper die nor close the guard's pipe before
/// the helpers are gone: the worst case, all of them dead together.
fn kill_berth_and_helpers(berth: u32) -> Vec<(u32, String)> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(berth as i32), Signal::SIGSTOP);
    let before = stack_processes(berth);
    for p in before.iter().filter(|p| p.1.contains(" __")) {
        let _ = kill(Pid::from_raw(p.0 as i32), Signal::SIGKILL);
    }
    let _ = kill(Pid::from_raw(berth as i32), Signal::SIGKILL);
    before
}

fn survivors(before: &[(u32, String)]) -> Vec<(u32, String)> {
    before.iter().filter(|p| alive(p.0)).cloned().collect()
}

/// `berth up` in the foreground, its output discarded, and whether at
/// least `n` of its processes' command lines started with `prefix` within
/// 10 s.
fn up_until(t: &Test, prefix: &str, n: usize) -> (std::process::Child, bool) {
    let mut up = t.command();
    up.arg("up")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let up = up.spawn().unwrap();
    let berth = up.id();
    let ready = eventually(10 * SEC, || {
        stack_processes(berth)
            .iter()
            .filter(|p| p.1.starts_with(prefix))
            .count()
            >= n
    });
    (up, ready)
}

#[test]
fn nothing_survives_berth_and_its_helpers_killed_together_ten_times() {
    let t = tree_stack(true);
    for round in 0..10 {
        // Two replicas: sh, two sleeps and a daemon each, at least.
        let (mut up, ready) = up_until(&t, "sleep 30", 6);
        let berth = up.id();
        assert!(
            ready,
            "round {round}: the stack did not start: {:?}",
            stack_processes(berth)
        );
        let before = kill_berth_and_helpers(berth);
        let _ = up.wait();
        assert!(
            eventually(2 * SEC, || survivors(&before).is_empty()),
            "round {round}: survivors {:?}",
            survivors(&before)
        );
    }
}

#[test]
fn without_namespaces_the_next_command_removes_what_a_crash_left() {
    let t = tree_stack(false).env("BERTH_PID_NAMESPACE", "0");
    let (mut up, ready) = up_until(&t, "sleep 300", 4);
    let berth = up.id();
    assert!(ready, "the stack did not start");
    // A guard that dies alone is replaced.
    let guard = |b| {
        stack_processes(b)
            .into_iter()
            .find(|p| p.1.contains("__guard"))
            .map(|p| p.0)
    };
    let first = guard(berth).expect("a guard process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(5 * SEC, || guard(berth).is_some_and(|g| g != first)),
        "the guard was not replaced"
    );
    // berth and the guard killed together leave the grandchildren.
    let before = kill_berth_and_helpers(berth);
    let _ = up.wait();
    let left = survivors(&before);
    assert!(!left.is_empty(), "expected leftovers without namespaces");
    // The next command finds them, removes them and says so.
    let ps = t.run_args(["ps"]);
    assert!(
        ps.stderr().contains("left by a crashed berth run"),
        "{}",
        ps.stderr()
    );
    assert!(
        eventually(2 * SEC, || survivors(&left).is_empty()),
        "still there: {:?}",
        survivors(&left)
    );
    // Said once: the record is gone.
    assert!(!t.run_args(["ps"]).stderr().contains("crashed"));
}

#[test]
fn another_user_can_read_neither_logs_nor_volumes() {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new().compose(
        r#"
services:
  app:
    command: ["sh", "-c", "echo the secret is 42; echo 42 > $$BERTH_VOLUME_DATA/secret; exec sleep 60"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    );
    let _stack = t.up_detached();
    let state = t.dir().join(".berth");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert!(eventually(5 * SEC, || {
        std::fs::read_to_string(state.join("logs/app-1.log")).is_ok_and(|l| l.contains("secret"))
    }));
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("logs")), 0o700);
    for f in ["logs/app-1.log", "berth.log", "berth.pid"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    // Another user, in the same (readable) project directory.
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = t
            .command()
            .arg("ps")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("permission denied"), "{stderr}");
        assert!(!stderr.contains("not running"), "{stderr}");
        let cat = std::process::Command::new("cat")
            .arg(state.join("logs/app-1.log"))
            .uid(65534)
            .output()
            .unwrap();
        assert!(!cat.status.success(), "another user read the log");
    }
}

#[test]
fn concurrent_detached_ups_one_wins_the_other_says_who() {
    let t = Test::new().compose("services:\n  app:\n    command: [sleep, '60']\n");
    let spawn = || {
        let mut c = t.command();
        c.args(["up", "-d"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let _stack = Detached { test: &t };
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    // One starts the stack. The other either finds it starting (exit 2,
    // below) or, if it came late, up and reconciles it: nothing to do.
    let won: Vec<_> = outs
        .iter()
        .filter(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("nothing to do")
        })
        .collect();
    let lost: Vec<_> = outs.iter().filter(|o| !o.status.success()).collect();
    let late = outs.len() - won.len() - lost.len();
    assert_eq!(won.len(), 1, "{outs:?}");
    if late == 1 {
        return;
    }
    assert_eq!(lost.len(), 1, "{outs:?}");
    let pid = std::fs::read_to_string(t.dir().join(".berth/berth.pid")).unwrap();
    assert!(String::from_utf8_lossy(&won[0].stdout).contains(&format!("(pid {})", pid.trim())));
    // The loser says so with a pid (the stack's, or the `up -d` starting
    // it), never a blank one, and shows no log excerpt of the winner's.
    let said = String::from_utf8_lossy(&lost[0].stderr);
    assert_eq!(lost[0].status.code(), Some(2), "{said}");
    let named = said
        .split("already running (pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse::<u32>().ok());
    assert!(named.is_some(), "{said}");
    assert!(!said.contains("last lines"), "{said}");
}

#[test]
fn a_full_port_range_is_valid_compose_but_refused_natively_at_once() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: [sleep, '60']\n    ports: [\"1-65535:1-65535\"]\n",
    );
    t.run_args(["config", "-q"]).success();
    t.run_args(["up"])
        .code(2)
        .stderr_has("65535 ports declared")
        .stderr_has("at most 1024 per service");
}

#[test]
fn log_lines_lost_on_a_full_disk_show_in_ps_events_and_metrics() {
    // The state directory on a tiny filesystem of its own (root only).
    let t = Test::new().compose(
        r#"
x-berth:
  state_dir: ./state
  proxy:
    listen: ["127.0.0.1:0"]
    metrics_path: /metrics
services:
  chatty:
    command: ["sh", "-c", "while [ ! -f go ]; do sleep 0.05; done; i=0; while [ $$i -lt 20000 ]; do echo line $$i padded to be long enough to fill the disk quickly; i=$$((i+1)); done; exec sleep 60"]
  tick:
    command: ["sleep", "60"]
"#,
    );
    let state = t.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test mounts a tmpfs: run it as root (CI does)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(state.clone());
    let stack = t.up_detached();
    let proxy = proxy_addr(&t);
    let mut events = t
        .command()
        .args(["events", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // `events` is subscribed once it reports a change; then the flood starts.
    let deadline = std::time::Instant::now() + 20 * SEC;
    let mut subscribed = false;
    while !subscribed {
        t.run_args(["stop", "tick"]).success();
        t.run_args(["start", "tick"]).success();
        subscribed = rx.recv_timeout(SEC).is_ok_and(|l| l.contains("tick"));
        assert!(
            std::time::Instant::now() < deadline,
            "events reported nothing"
        );
    }
    std::fs::write(t.dir().join("go"), "").unwrap();
    let event = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).expect("no log_lines_lost event");
        if line.contains("log_lines_lost") {
            break line;
        }
    };
    assert!(event.contains("could not be written"), "{event}");
    let _ = events.kill();
    let _ = events.wait();
    let mut lost = 0;
    assert!(eventually(20 * SEC, || {
        lost = t.run_args(["ps", "--format", "json"]).json()["log_lines_lost"]
            .as_u64()
            .unwrap_or(0);
        lost > 0
    }));
    t.run_args(["ps"])
        .success()
        .stderr_has("log lines could not be written");
    let (status, metrics) = crate::support::http_get(&proxy, "/metrics").unwrap();
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("berth_log_lines_lost_total"))
        .unwrap_or("");
    let n: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "{line:?}");
    drop(stack);
}

#[test]
fn five_hung_replica_incidents_under_get_load_fail_no_request() {
    // The proxy and web's port listen on ports berth picks: a number in the
    // file (an exposed 8000 binds 127.0.0.1:8000) collides with the same
    // test run by another checkout at the same time.
    let t = Test::new().file("server.py", REPLICA_SERVER).compose(
        r#"
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    timeouts: {response: 2s}
    routes:
      - {path: /, service: web}
services:
  web:
    command: [python3, server.py]
    ports: ["127.0.0.1::8000"]
    deploy: {replicas: 2}
    x-berth:
      ready: {tcp: true}
"#,
    );
    let _stack = t.up_detached();
    let addr = proxy_addr(&t);
    assert!(eventually(10 * SEC, || crate::support::http_get(
        &addr, "/"
    )
    .is_ok_and(|r| r.0 == 200)));
    let load = Load::start(&addr, 4);
    for incident in 0..5 {
        let replica = incident % 2 + 1;
        let (mark, stuck) = (
            t.dir().join(format!("hang.{replica}")),
            t.dir().join(format!("stuck.{replica}")),
        );
        std::fs::write(&mark, "").unwrap();
        // A request met the hung replica; then more go on succeeding.
        assert!(
            eventually(10 * SEC, || stuck.exists()),
            "incident {incident}: no request reached web-{replica}"
        );
        let ok = load.ok();
        assert!(
            eventually(10 * SEC, || load.ok() > ok + 20),
            "incident {incident}: requests stopped succeeding"
        );
        std::fs::remove_file(&mark).unwrap();
        std::fs::remove_file(&stuck).unwrap();
    }
    load.finish_without_failures(50);
}

/// `berth ARGS` under `ulimit LIMIT` (e.g. `-n 200`, `-Sn 200`).
fn under_ulimit(t: &Test, limit: &str, args: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit {limit} && exec {} {args}",
            crate::support::berth_bin().display()
        ))
        .current_dir(t.dir())
        .env("NO_COLOR", "1");
    cmd
}

fn many_replicas(n: u32) -> Test {
    Test::new().compose(&format!(
        "services:\n  app:\n    command: [\"sh\", \"-c\", \"echo files $$(ulimit -n); exec sleep 60\"]\n    deploy: {{replicas: {n}}}\n"
    ))
}

#[test]
fn a_stack_needing_more_open_files_than_allowed_is_refused_up_front() {
    let t = many_replicas(100);
    let out = under_ulimit(&t, "-n 200", "up").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("100 replicas need about"), "{stderr}");
    assert!(stderr.contains("the limit is 200"), "{stderr}");
    assert!(
        !t.dir().join(".berth/logs/app-1.log").exists(),
        "something started"
    );
}

#[test]
fn berth_raises_its_own_open_files_limit_and_services_keep_theirs() {
    let t = many_replicas(100);
    let out = under_ulimit(&t, "-Sn 200 && ulimit -Hn 4096", "up -d --wait")
        .output()
        .unwrap();
    let _stack = Detached { test: &t };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = |i: u32| {
        std::fs::read_to_string(t.dir().join(format!(".berth/logs/app-{i}.log")))
            .unwrap_or_default()
    };
    assert!(eventually(10 * SEC, || log(100).contains("files ")));
    assert!(log(1).contains("files 200"), "{}", log(1));
}
