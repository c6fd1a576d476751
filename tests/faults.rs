//! Faults a tired operator or an attacker would cause, repeated: replicas
//! that turn unhealthy again and again under load, berth and its helpers
//! SIGKILLed together, stacks stopped while they start. Each test is named
//! after the promise it checks.

use std::time::Duration;

use crate::support::{Detached, Load, REPLICA_SERVER, Test, eventually, free_port};

const SEC: Duration = Duration::from_secs(1);

/// `web` × `replicas` behind port `port`; a replica turns unhealthy while
/// the file `sick.<replica>` exists, and each new process deletes its own.
fn self_healing_stack(port: u16, replicas: u32) -> Test {
    Test::new()
        .file("server.py", REPLICA_SERVER)
        .compose(&format!(
            r#"
services:
  web:
    command: ["sh", "-c", "rm -f sick.$$BERTH_REPLICA; exec python3 server.py"]
    expose: ["{port}"]
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
    let port = free_port();
    let t = self_healing_stack(port, 2);
    let _stack = t.up_detached();
    for _ in 0..3 {
        one_unhealthy_episode(&t, 2);
    }
    // Traffic reaches the healed replica again through the forwarder.
    let addr = format!("127.0.0.1:{port}");
    assert!(eventually(10 * SEC, || {
        crate::support::http_get(&addr, "/").is_ok_and(|(_, body)| body.starts_with("replica 2"))
    }));
}

#[test]
fn up_wait_returns_when_a_replica_heals_during_start_up() {
    // The first process of each replica is unhealthy; the second is fine.
    let port = free_port();
    let t = Test::new().file("server.py", REPLICA_SERVER).compose(&format!(
        r#"
services:
  web:
    command: ["sh", "-c", "if [ -f once.$$BERTH_REPLICA ]; then touch ok.$$BERTH_REPLICA; fi; touch once.$$BERTH_REPLICA; exec python3 server.py"]
    expose: ["{port}"]
    restart: on-failure
    healthcheck:
      test: ["CMD-SHELL", "test -f ok.$$BERTH_REPLICA"]
      interval: 200ms
      start_interval: 50ms
      retries: 2
"#
    ));
    let up = t.run_args(["up", "-d", "--wait"]);
    let _stack = Detached { test: &t };
    up.success().stdout_has("web              1/1 running");
    let r = &replicas(&t)[0];
    assert_eq!(r["restarts"], 1, "{r}");
    assert_eq!(r["health"], "healthy", "{r}");
}

#[test]
fn twenty_unhealthy_episodes_under_load_fail_no_request() {
    let port = free_port();
    let t = self_healing_stack(port, 3);
    let _stack = t.up_detached();
    let load = Load::start(&format!("127.0.0.1:{port}"), 4);
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
    assert!(eventually(10 * SEC, || t
        .run_args(["ps"])
        .output
        .status
        .success()));
    t.run_args(["down"]).success();
    let out = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("is up"));
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
        .stderr_has("Argument list too long");
}
