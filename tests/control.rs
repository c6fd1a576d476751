//! The control plane against real stacks: `up -d`, `ps`, `logs -f`,
//! `restart` and `scale` under load, `stop`/`start`, `exec`, `events`,
//! `down` from another terminal, stale sockets, socket permissions.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{Load, REPLICA_SERVER, Test, eventually, http_get, listening};

const SEC: Duration = Duration::from_secs(1);

/// `web` × `replicas`, its port 8000 published on a port berth picks
/// (see [`web_addr`]).
fn web_stack(replicas: u32) -> Test {
    Test::new().file("server.py", REPLICA_SERVER).compose(&format!(
        "services:\n  web:\n    command: [python3, server.py]\n    environment: {{DELAY_MS: \"20\"}}\n    ports: [\"127.0.0.1::8000\"]\n    deploy: {{replicas: {replicas}}}\n    x-berth:\n      ready: {{http: /}}\n"
    ))
}

/// Where the running stack of [`web_stack`] listens for web's port 8000.
fn web_addr(t: &Test) -> String {
    listening(t, "web", 8000)
}

fn pids(t: &Test) -> Vec<u64> {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    ps["services"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["pid"].as_u64())
        .collect()
}

#[test]
fn detached_up_then_ps_and_down_from_another_terminal() {
    let t = web_stack(2);
    let up = t.run_args(["up", "-d", "--wait"]).success();
    let _stack = crate::support::Detached { test: &t };
    let addr = web_addr(&t);
    assert!(
        up.stdout().contains("web              2/2 running"),
        "{}",
        up.stdout()
    );
    // The socket is private to the user who started the stack.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.dir().join(".berth/berth.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let table = t.run_args(["ps"]).success().stdout();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains(&format!("{addr}->")), "{table}");
    assert_eq!(table.matches("running   healthy").count(), 2, "{table}");
    let json = t.run_args(["ps", "--format", "json"]).success().json();
    assert_eq!(json["services"][0]["replicas"].as_array().unwrap().len(), 2);
    assert!(
        json["services"][0]["replicas"][0]["rss_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (status, _) = http_get(&addr, "/").unwrap();
    assert_eq!(status, 200);
    // A second up reconciles the running stack with the file: the same
    // file is nothing to do.
    t.run_args(["up", "-d"])
        .success()
        .stdout_has("nothing to do: the running stack matches the file");
    t.run_args(["down"]).success().stdout_has("stopped");
    assert!(http_get(&addr, "/").is_err());
    t.run_args(["ps"]).success().stderr_has("is not running");
}

#[test]
fn down_from_a_second_terminal_stops_a_foreground_up() {
    let t = Test::new().compose(
        "services:\n  a:\n    command: [sh, -c, \"trap 'echo a got TERM; exit 0' TERM; echo ready; while true; do sleep 0.05; done\"]\n",
    );
    let mut up = t.arg("up").spawn();
    // Its own line, once the trap is set.
    up.wait_for_output("a-1", "ready", 10 * SEC);
    up.test.run_args(["down"]).success();
    assert_eq!(up.wait_exit(10 * SEC), Some(0));
    assert!(up.seen.iter().any(|l| l.contains("a got TERM")));
}

#[test]
fn restart_of_three_replicas_under_load_loses_no_request() {
    let t = web_stack(3);
    let _stack = t.up_detached();
    let before = pids(&t);
    let load = Load::start(&web_addr(&t), 8);
    // Requests flowing before, during and after the restart.
    assert!(eventually(10 * SEC, || load.ok() >= 20));
    let restart = t.run_args(["restart", "web"]).success();
    assert_eq!(
        restart
            .stdout()
            .matches("restarted without downtime")
            .count(),
        3,
        "{}",
        restart.stdout()
    );
    let done = load.ok();
    assert!(eventually(10 * SEC, || load.ok() >= done + 20));
    load.finish_without_failures(50);
    let after = pids(&t);
    assert_eq!(after.len(), 3);
    assert!(
        before.iter().all(|p| !after.contains(p)),
        "{before:?} {after:?}"
    );
}

#[test]
fn scale_up_and_down_under_load_loses_no_request() {
    let t = web_stack(1);
    let _stack = t.up_detached();
    let load = Load::start(&web_addr(&t), 6);
    assert!(eventually(10 * SEC, || load.ok() >= 10));
    t.run_args(["scale", "web=4"])
        .success()
        .stdout_has("web: 4 replicas");
    assert!(eventually(10 * SEC, || pids(&t).len() == 4));
    let scaled = load.ok();
    assert!(eventually(10 * SEC, || load.ok() >= scaled + 10));
    // Scaled down while the new replicas may still be starting: those must
    // not join the load balancer on their way out.
    t.run_args(["scale", "web=1"]).success();
    let down = load.ok();
    assert!(eventually(10 * SEC, || load.ok() >= down + 10));
    load.finish_without_failures(1);
    assert_eq!(pids(&t).len(), 1);
    t.run_args(["down"]).success();
}

#[test]
fn logs_follow_survives_a_restart() {
    let t = Test::new().compose(
        "services:\n  talker:\n    command: [sh, -c, 'echo hello from $$$$; while true; do sleep 0.05; done']\n    x-berth:\n      ready: {log: hello}\n",
    );
    let _stack = t.up_detached();
    let mut follow = std::process::Command::new(crate::support::berth_bin())
        .args(["logs", "-f", "talker"])
        .current_dir(t.dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push(l);
        }
    });
    let hellos = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("hello from"))
            .count()
    };
    // Following before the restart, and still after it: the new process's
    // hello arrives on the same stream.
    assert!(
        eventually(10 * SEC, || hellos() == 1),
        "{:?}",
        lines.lock().unwrap()
    );
    t.run_args(["restart", "talker"]).success();
    assert!(
        eventually(10 * SEC, || hellos() >= 2),
        "{:?}",
        lines.lock().unwrap()
    );
    t.run_args(["down"]).success();
    let _ = follow.wait();
    let seen = lines.lock().unwrap().clone();
    assert!(
        seen.iter().any(|l| l.starts_with("talker-1  | hello from")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.contains("rolling: switched")),
        "{seen:?}"
    );
}

#[test]
fn stop_and_start_a_service_of_a_running_stack() {
    let t = web_stack(1);
    let _stack = t.up_detached();
    let addr = web_addr(&t);
    t.run_args(["stop", "web"])
        .success()
        .stdout_has("web: stopped");
    let ps = t
        .run_args(["ps", "-a", "--format", "json"])
        .success()
        .json();
    assert_eq!(ps["services"][0]["replicas"][0]["state"], "stopped");
    t.run_args(["start", "web"]).success();
    assert!(eventually(10 * SEC, || matches!(
        http_get(&addr, "/"),
        Ok((200, _))
    )));
    t.run_args(["down"]).success();
}

#[test]
fn exec_runs_with_the_replica_environment_and_passes_the_exit_code() {
    let t = web_stack(2).file(".env", "MODE=prod\n");
    std::fs::write(
        t.dir().join("compose.yaml"),
        "services:\n  web:\n    command: [python3, server.py]\n    environment: [MODE]\n    ports: [\"127.0.0.1::8000\"]\n    deploy: {replicas: 2}\n    x-berth:\n      ready: {http: /}\n",
    )
    .unwrap();
    let _stack = t.up_detached();
    let run = t
        .run_args([
            "exec",
            "web",
            "--replica",
            "2",
            "--",
            "sh",
            "-c",
            "echo $MODE $BERTH_REPLICA $PORT; pwd; exit 7",
        ])
        .code(7);
    let out = run.stdout();
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    assert!(first.starts_with("prod 2 "), "{out}");
    assert_eq!(
        lines.next().unwrap(),
        t.dir().canonicalize().unwrap().to_str().unwrap()
    );
    t.run_args(["exec", "nope", "--", "true"])
        .code(1)
        .stderr_has("no such service: nope");
    t.run_args(["down"]).success();
}

#[test]
fn events_report_transitions_as_they_happen() {
    let t = web_stack(1);
    let _stack = t.up_detached();
    let (mut events, rx) = crate::support::events_json(&t);
    // The stream says nothing until something changes: a second replica
    // comes and goes until one of its changes arrives, and the stream is
    // known to be live.
    let deadline = std::time::Instant::now() + 30 * SEC;
    loop {
        t.run_args(["scale", "web=2"]).success();
        t.run_args(["scale", "web=1"]).success();
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(500)) {
            assert_eq!(event["replica"], 2, "{event}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event from the stream"
        );
    }
    t.run_args(["stop", "web"]).success();
    // web-1's changes, in order, as they happen.
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("stopped") {
        let event = rx
            .recv_timeout(10 * SEC)
            .unwrap_or_else(|_| panic!("web-1 did not report stopped: {states:?}"));
        if event["service"] == "web" && event["replica"] == 1 {
            states.push(event["state"].as_str().unwrap().to_string());
        }
    }
    // (A health change while stopping repeats the state.)
    states.dedup();
    assert_eq!(states, ["stopping", "stopped"]);
    // The stream ends with the stack.
    t.run_args(["down"]).success();
    assert!(
        eventually(10 * SEC, || events.try_wait().unwrap().is_some()),
        "berth events still runs after down"
    );
}

#[test]
fn a_stale_socket_after_sigkill_of_a_detached_berth_is_replaced() {
    let t = web_stack(1);
    let _stack = t.up_detached();
    let addr = web_addr(&t);
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    let berth_pid = ps["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(berth_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The guard cleans up the services; the socket file stays behind.
    assert!(eventually(5 * SEC, || http_get(&addr, "/").is_err()));
    assert!(t.dir().join(".berth/berth.sock").exists());
    t.run_args(["ps"]).success().stderr_has("is not running");
    let _stack = t.up_detached();
    assert_eq!(http_get(&web_addr(&t), "/").unwrap().0, 200);
    t.run_args(["down"]).success();
}

#[test]
fn verbs_without_a_running_stack_say_so() {
    let t = web_stack(1);
    t.run_args(["restart"]).code(1).stderr_has("is not running");
    t.run_args(["down"]).success().stdout_has("is not running");
}

#[test]
fn exec_on_a_service_without_ports_sees_the_same_port_as_its_process() {
    // Regression: exec set PORT_0 and no PORT for such a service.
    let t = Test::new().compose(
        "services:\n  worker:\n    command: [\"sh\", \"-c\", \"echo port=$$PORT; exec sleep 60\"]\n",
    );
    let _stack = t.up_detached();
    let log =
        || std::fs::read_to_string(t.dir().join(".berth/logs/worker-1.log")).unwrap_or_default();
    assert!(eventually(5 * SEC, || log().contains("port=")));
    let logged = log();
    let own = logged
        .split("port=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = t
        .run_args([
            "exec",
            "worker",
            "--",
            "sh",
            "-c",
            "echo $PORT; env | grep -c '^PORT_0=' || true",
        ])
        .success()
        .stdout();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(own.as_str()), "{out}");
    assert_eq!(lines.next(), Some("0"), "{out}");
}
