//! cgroups: memory, CPU and process limits enforced by the kernel, the OOM
//! killer's work reported, and nothing a replica started — daemons in
//! sessions of their own included — outliving it. Real processes, real
//! cgroups (v1 on CI's machines; the v2 code path on their unified
//! hierarchy, and over a stand-in filesystem in the engine's unit tests).
//!
//! Creating cgroups takes root (or a delegated v2 subtree); CI runs as
//! root, elsewhere the tests that need it say so and return.

use std::time::Duration;

use crate::support::{Test, alive, eventually, http_get, proxy_addr, ps_until};

const SEC: Duration = Duration::from_secs(1);

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("not root: berth cannot create cgroups here; CI runs as root");
    false
}

/// The replica `name` in a `ps --format json` answer.
fn replica<'a>(ps: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    ps["services"]
        .as_array()?
        .iter()
        .flat_map(|s| s["replicas"].as_array().into_iter().flatten())
        .find(|r| r["name"] == name)
}

#[test]
fn a_child_over_its_memory_limit_is_oom_killed_reported_and_restarted() {
    if !root() {
        return;
    }
    let t = Test::new().compose(
        r#"
services:
  hog:
    command: ["python3", "-c", "import time; print('allocating', flush=True); b = b'x' * (200 << 20); print('survived', flush=True); time.sleep(60)"]
    mem_limit: 100m
    restart: on-failure
  small:
    command: [sleep, "60"]
    deploy: {resources: {limits: {memory: 64M}}}
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    metrics_path: /metrics
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for(
        "hog-1 killed: out of memory (limit 100 MiB); restarting",
        20 * SEC,
    );
    // Restarted by its policy, and killed again.
    up.wait_for(
        "hog-1 killed: out of memory (limit 100 MiB); restarting in 200ms",
        30 * SEC,
    );
    assert_eq!(up.count("survived"), 0);
    let ps = ps_until(
        &up.test,
        "an OOM kill and the other replica's memory",
        |ps| {
            replica(ps, "hog-1").is_some_and(|r| r["oom_kills"].as_u64() >= Some(2))
                && replica(ps, "small-1").is_some_and(|r| r["rss_bytes"].as_u64().is_some())
        },
    );
    let hog = replica(&ps, "hog-1").unwrap();
    assert!(hog["restarts"].as_u64() >= Some(2), "{hog}");
    // The limit beside what it uses.
    let small = replica(&ps, "small-1").unwrap();
    assert_eq!(small["memory_limit"].as_u64(), Some(64 << 20), "{small}");
    let table = up.test.run_args(["ps"]).success().stdout();
    assert!(table.contains(" / 64.0 MiB"), "{table}");
    let (status, metrics) = http_get(&proxy_addr(&up.test), "/metrics").unwrap();
    assert_eq!(status, 200);
    let oom_line = metrics
        .lines()
        .find(|l| l.starts_with("berth_replica_oom_kills_total{service=\"hog\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    let kills: u64 = oom_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(kills >= 2, "{oom_line}");
    assert!(
        metrics
            .contains("berth_replica_memory_limit_bytes{service=\"small\",replica=\"1\"} 67108864"),
        "{metrics}"
    );
    // `berth events` says why it is restarting: the next kill is within
    // its backoff (800 ms by now, doubling).
    let event = next_event(&up.test, |e| {
        e["service"] == "hog" && e["state"] == "restarting"
    });
    assert_eq!(
        event["exit"], "killed: out of memory (limit 100 MiB)",
        "{event}"
    );
}

/// The first `berth events --json` line for which `is` holds, within 30 s.
fn next_event(t: &Test, is: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let (mut events, rx) = crate::support::events_json(t);
    let deadline = std::time::Instant::now() + 30 * SEC;
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) if is(&event) => break event,
            Ok(_) => {}
            Err(_) => panic!("no such event within 30 s"),
        }
    };
    let _ = events.kill();
    let _ = events.wait();
    found
}

#[test]
fn half_a_cpu_holds_a_busy_loop_to_half_a_core() {
    if !root() {
        return;
    }
    // The loop runs 5 s of wall time and says how much CPU it got.
    let t = Test::new().compose(
        r#"
services:
  spin:
    command: ["python3", "-c", "import os, time\nend = time.time() + 5\nwhile time.time() < end: pass\nt = os.times()\nprint('cpu=%.2f' % (t.user + t.system), flush=True)"]
    cpus: "0.5"
    restart: "no"
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("spin-1 exited", 30 * SEC);
    let out = up.output_of("spin-1");
    let cpu: f64 = out
        .iter()
        .find_map(|l| l.strip_prefix("cpu="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    // At most 55 % of one core over the 5 s; and it did run.
    assert!(cpu <= 2.75, "the loop used {cpu} s of CPU in 5 s");
    assert!(cpu >= 1.0, "the loop barely ran: {cpu} s");
}

#[test]
fn pids_limit_makes_the_fork_past_it_fail() {
    if !root() {
        return;
    }
    // Forks until the kernel refuses (at most 60), then reports.
    let t = Test::new().compose(
        r#"
services:
  forker:
    command: ["python3", "-c", "import os, signal, time\nkids = []\nerr = 'none'\nfor i in range(60):\n    try:\n        pid = os.fork()\n    except OSError as e:\n        err = e.strerror\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    kids.append(pid)\nprint('forked=%d error=%s' % (len(kids), err), flush=True)\nfor k in kids:\n    os.kill(k, signal.SIGKILL)"]
    pids_limit: 32
    restart: "no"
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("forker-1 exited", 30 * SEC);
    let out = up.output_of("forker-1");
    let line = out
        .iter()
        .find(|l| l.starts_with("forked="))
        .unwrap_or_else(|| panic!("{out:?}"));
    let forked: u32 = line["forked=".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // 32 tasks in all: the program, berth's shim and init take three.
    assert!(
        line.ends_with("error=Resource temporarily unavailable"),
        "{line}"
    );
    assert!((28..32).contains(&forked), "{line}");
}

/// A service whose one process starts a daemon in a session of its own
/// and says the daemon's pid.
const DAEMON: &str = r#"
services:
  tree:
    command: ["sh", "-c", "setsid sh -c 'echo daemon=$$$$; exec sleep 301' & wait; sleep 300"]
"#;

fn daemon_pid(up: &mut crate::support::Running) -> u32 {
    up.wait_for("tree-1  | daemon=", 10 * SEC);
    up.output_of("tree-1")
        .iter()
        .find_map(|l| l.strip_prefix("daemon="))
        .and_then(|p| p.parse().ok())
        .expect("the daemon's pid")
}

#[test]
fn a_setsid_daemon_is_gone_after_down_and_after_sigkill_of_berth() {
    if !root() {
        return;
    }
    // Without PID namespaces, only the cgroup holds the daemon.
    let daemon_stack = || {
        Test::new()
            .compose(DAEMON)
            .env("BERTH_PID_NAMESPACE", "0")
            .arg("up")
    };
    let mut up = daemon_stack().spawn();
    let daemon = daemon_pid(&mut up);
    assert!(alive(daemon));
    up.test.run_args(["down"]).success();
    assert!(
        eventually(5 * SEC, || !alive(daemon)),
        "the daemon {daemon} survived down"
    );
    let _ = up.wait_exit(10 * SEC);

    let mut up = daemon_stack().spawn();
    let daemon = daemon_pid(&mut up);
    up.signal(libc::SIGKILL);
    let _ = up.wait_exit(5 * SEC);
    assert!(
        eventually(5 * SEC, || !alive(daemon)),
        "the daemon {daemon} survived berth's SIGKILL"
    );
}

#[test]
fn the_v2_code_path_joins_kills_and_names_what_it_cannot_enforce() {
    if !root() {
        return;
    }
    let Some(unified) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|p| std::path::Path::new(&format!("{p}/cgroup.controllers")).exists())
    else {
        eprintln!("no cgroup v2 hierarchy is mounted here");
        return;
    };
    let controllers = std::fs::read_to_string(format!("{unified}/cgroup.controllers")).unwrap();
    let t = Test::new()
        .compose(&format!("{DAEMON}    mem_limit: 100m\n"))
        .env("BERTH_CGROUP", "v2")
        .env("BERTH_PID_NAMESPACE", "0");
    let mut up = t.arg("up").spawn();
    let daemon = daemon_pid(&mut up);
    // The daemon is in the replica's cgroup in the unified hierarchy.
    let own = std::fs::read_to_string(format!("/proc/{daemon}/cgroup")).unwrap();
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("{own}"));
    let project = up
        .test
        .dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    assert!(
        path.contains(&format!("/berth/{project}.")) && path.contains("/tree-1."),
        "{path}"
    );
    if controllers.split_whitespace().any(|c| c == "memory") {
        let max = std::fs::read_to_string(format!("{unified}{path}/memory.max")).unwrap();
        assert_eq!(max.trim(), "104857600");
    } else {
        // A hybrid machine: the limit is named as not enforced, and why.
        assert!(
            up.stderr()
                .contains("services.tree: memory limit is not enforced: the memory controller is not available"),
            "{}",
            up.stderr()
        );
    }
    up.test.run_args(["down"]).success();
    assert!(
        eventually(5 * SEC, || !alive(daemon)),
        "the daemon {daemon} survived down"
    );
    let _ = up.wait_exit(10 * SEC);
    assert!(
        std::fs::read_dir(format!("{unified}/berth"))
            .unwrap()
            .flatten()
            .all(|e| !e
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{project}."))),
        "the project's cgroup is left behind"
    );
}

#[test]
fn strict_makes_a_limit_that_cannot_be_enforced_an_error() {
    let file =
        "services:\n  api:\n    command: [sleep, '60']\n    mem_limit: 100m\n    pids_limit: 10\n";
    let strict = format!("{file}x-berth:\n  strict: true\n");
    for args in [&["config", "-q"][..], &["up"][..]] {
        Test::new()
            .compose(&strict)
            .env("BERTH_CGROUP", "off")
            .args(args.iter().copied())
            .run()
            .code(2)
            .stderr_has("services.api: memory limit is not enforced: BERTH_CGROUP=off")
            .stderr_has("services.api: pids_limit is not enforced: BERTH_CGROUP=off")
            .stderr_has("x-berth.strict is true");
    }
    // Without strict: a warning, and the file is fine.
    Test::new()
        .compose(file)
        .env("BERTH_CGROUP", "off")
        .args(["config", "-q"])
        .run()
        .success()
        .stderr_has("berth: warning: services.api: memory limit is not enforced: BERTH_CGROUP=off");
}

#[test]
fn bad_limits_are_errors_at_their_line() {
    Test::new()
        .compose(
            "services:\n  c:\n    command: [sleep, '1']\n    mem_limit: 1k\n    cpus: lots\n    pids_limit: many\n    cpu_shares: 1\n  d:\n    command: [sleep, '1']\n    mem_limit: 100m\n    deploy:\n      resources:\n        limits: {memory: 200m}\n  e:\n    command: [sleep, '1']\n    mem_limit: 100m\n    memswap_limit: 50m\n",
        )
        .env("BERTH_CGROUP", "off")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("services.c.mem_limit: 1 KiB is below the 6 MiB a process needs to start\n --> compose.yaml:4:16")
        .stderr_has("services.c.cpus: \"lots\" is not a number of CPUs\n --> compose.yaml:5:11")
        .stderr_has("services.c.pids_limit: \"many\" is not a number of processes\n --> compose.yaml:6:17")
        .stderr_has("services.c.cpu_shares: \"1\" is not a CPU weight from 2 to 262144\n --> compose.yaml:7:17")
        .stderr_has("services.d.deploy.resources.limits.memory: 200m differs from mem_limit: 100m\n  --> compose.yaml:13:26")
        .stderr_has("services.e.memswap_limit: 50m is below mem_limit; it counts memory and swap together\n  --> compose.yaml:17:20");
}
