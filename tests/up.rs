//! `berth up` with real processes: ordering, health, restarts, stop,
//! no survivors, port forwarding, logs, and every error a user will meet.

use std::time::Duration;

use crate::support::{REPLICA_SERVER, Test, alive, eventually, http_get, listening, shared_dir};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn dependencies_start_in_order_under_every_condition() {
    let t = Test::new().compose(
        r#"
services:
  db:
    command: ["sh", "-c", "sleep 0.3; touch db.ready; echo db up; exec sleep 60"]
    healthcheck:
      test: ["CMD", "test", "-f", "db.ready"]
      start_interval: 100ms
  migrate:
    command: ["sh", "-c", "test -f db.ready && echo migrated > migrate.done"]
    depends_on:
      db: {condition: service_healthy}
  api:
    command: ["sh", "-c", "test -f migrate.done && echo api saw the migration; exec sleep 60"]
    depends_on:
      migrate: {condition: service_completed_successfully}
  web:
    command: ["sh", "-c", "echo web started; exec sleep 60"]
    depends_on: [api]
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("api saw the migration", 10 * SEC);
    up.wait_for("web started", 10 * SEC);
    let lines = up.drain().to_vec();
    let pos = |s: &str| lines.iter().position(|l| l.contains(s)).unwrap();
    assert!(pos("db up") < pos("api saw the migration"));
    assert!(pos("api saw the migration") < pos("web started") || pos("web started") > pos("db up"));
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn a_failing_dependency_stops_the_stack_and_exits_1_naming_both() {
    let t = Test::new().compose(
        r#"
services:
  migrate:
    command: ["sh", "-c", "echo migration broke >&2; exit 3"]
  api:
    command: ["sleep", "60"]
    depends_on:
      migrate: {condition: service_completed_successfully}
  other:
    command: ["sleep", "60"]
"#,
    );
    let mut up = t.arg("up").spawn();
    let code = up.wait_exit(15 * SEC);
    assert_eq!(code, Some(1), "{}", up.stderr());
    assert!(
        up.stderr()
            .contains("api-1: not started: dependency migrate failed (exited with code 3)"),
        "{}",
        up.stderr()
    );
    assert!(up.seen.iter().any(|l| l.contains("migration broke")));
    assert!(
        up.seen
            .iter()
            .any(|l| l.starts_with("other-1") && l.contains("stopped")),
        "{:?}",
        up.seen
    );
}

#[test]
fn a_replica_that_crashes_is_restarted_with_backoff() {
    let t = Test::new().compose(
        r#"
services:
  crashy:
    command: ["sh", "-c", "echo crashy says hi; sleep 0.2; exit 1"]
    restart: on-failure:3
"#,
    );
    let mut up = t.arg("up").spawn();
    let code = up.wait_exit(20 * SEC);
    assert_eq!(up.count("crashy says hi"), 4, "{:?}", up.seen);
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("exited with code 1; restarting in 100ms"))
    );
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("exited with code 1; restarting in 400ms"))
    );
    assert_eq!(code, Some(1));
}

#[test]
fn an_unhealthy_replica_is_restarted() {
    let t = Test::new().compose(
        r#"
services:
  sick:
    command: ["sh", "-c", "echo run; touch ok.$$BERTH_REPLICA; sleep 0.5; rm -f ok.$$BERTH_REPLICA; exec sleep 60"]
    healthcheck:
      test: ["CMD-SHELL", "test -f ok.$$BERTH_REPLICA"]
      interval: 200ms
      start_interval: 100ms
      retries: 2
    restart: always
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("restarting it", 10 * SEC);
    // Started again after the unhealthy one was stopped.
    assert!(
        eventually(5 * SEC, || up.count("| run") >= 2),
        "{:?}",
        up.seen
    );
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn stop_is_graceful_then_forced_after_the_grace_period() {
    let t = Test::new().compose(
        r#"
services:
  polite:
    command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"]
  stubborn:
    command: ["sh", "-c", "trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 0.1; done"]
    stop_grace_period: 1s
"#,
    );
    let mut up = t.arg("up").spawn();
    // Each says ready once its trap is set.
    up.wait_for_output("polite-1", "ready", 10 * SEC);
    up.wait_for_output("stubborn-1", "ready", 10 * SEC);
    let start = std::time::Instant::now();
    assert_eq!(up.interrupt(), Some(130));
    let took = start.elapsed();
    assert!(
        up.seen.iter().any(|l| l.contains("got TERM")),
        "{:?}",
        up.seen
    );
    assert!(
        up.seen.iter().any(|l| l.contains("ignoring TERM")),
        "{:?}",
        up.seen
    );
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("did not stop within 1s; killing it")),
        "{:?}",
        up.seen
    );
    assert!(
        took >= Duration::from_millis(900) && took < 8 * SEC,
        "{took:?}"
    );
}

#[test]
fn a_second_interrupt_skips_the_grace_period() {
    let t = Test::new().compose(
        "services:\n  stubborn:\n    command: [\"sh\", \"-c\", \"trap '' TERM; echo ready; while true; do sleep 0.1; done\"]\n    stop_grace_period: 30s\n",
    );
    let mut up = t.arg("up").spawn();
    // Its own line, once it ignores TERM (berth's "stack is up: stubborn 1/1
    // ready" comes first, when TERM still ends it).
    up.wait_for_output("stubborn-1", "ready", 10 * SEC);
    let start = std::time::Instant::now();
    up.signal(libc::SIGINT);
    // The first one is being handled: a graceful stop, 30 s at most.
    up.wait_for("stopping (press Ctrl-C again to force)", 10 * SEC);
    up.signal(libc::SIGINT);
    assert_eq!(up.wait_exit(10 * SEC), Some(130));
    assert!(start.elapsed() < 5 * SEC);
}

#[test]
fn nothing_survives_a_sigkill_of_berth_grandchildren_included() {
    let t = Test::new().compose(
        r#"
services:
  tree:
    command: ["sh", "-c", "sleep 300 & (sleep 300 &); setsid sleep 301 & echo up; wait"]
    deploy: {replicas: 2}
"#,
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("tree-1  | up", 10 * SEC);
    up.wait_for("tree-2  | up", 10 * SEC);
    let berth = up.pid();
    assert!(
        eventually(2 * SEC, || crate::faults::stack_processes(berth)
            .iter()
            .filter(|p| p.1.starts_with("sleep 30"))
            .count()
            >= 6),
        "{:?}",
        crate::faults::stack_processes(berth)
    );
    let before = crate::faults::stack_processes(berth);
    up.signal(libc::SIGKILL);
    let _ = up.wait_exit(5 * SEC);
    let left = || {
        before
            .iter()
            .filter(|p| alive(p.0))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(2 * SEC, || left().is_empty()),
        "survivors: {:?}",
        left()
    );
}

#[test]
fn declared_ports_forward_to_every_ready_replica() {
    // Published on a port berth picks (an exposed port would bind
    // 127.0.0.1:<declared>, a number tests side by side would share).
    let t = Test::new().file("server.py", REPLICA_SERVER).compose(
        r#"
services:
  web:
    command: ["python3", "server.py"]
    ports: ["127.0.0.1::8000"]
    deploy: {replicas: 3}
    x-berth:
      ready: {http: /}
"#,
    );
    let mut up = t.arg("up").spawn();
    for i in 1..=3 {
        up.wait_for(&format!("web-{i}  | serving on"), 15 * SEC);
    }
    let addr = listening(&up.test, "web", 8000);
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        eventually(10 * SEC, || {
            if let Ok((200, body)) = http_get(&addr, "/") {
                seen.insert(body);
            }
            seen.len() == 3
        }),
        "{seen:?}"
    );
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn a_port_in_use_is_a_clear_error_naming_port_and_service() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = Test::new().compose(&format!(
        "services:\n  db:\n    command: [sleep, '60']\n    ports: [\"127.0.0.1:{port}:5432\"]\n"
    ));
    let mut up = t.arg("up").spawn();
    assert_eq!(up.wait_exit(10 * SEC), Some(1));
    assert!(
        up.stderr().contains(&format!(
            "cannot listen on 127.0.0.1:{port} for service db: the port is already in use"
        )),
        "{}",
        up.stderr()
    );
}

#[test]
fn missing_programs_and_directories_are_one_clear_line() {
    let t = Test::new()
        .file("script.sh", "#!/bin/sh\necho hi\n")
        .compose(
            "services:\n  a:\n    command: [./bin/nope]\n  b:\n    command: [./script.sh]\n  c:\n    command: [sleep, '1']\n    working_dir: ./missing-dir\n",
        );
    let mut up = t.arg("up").spawn();
    assert_eq!(up.wait_exit(10 * SEC), Some(1));
    let err = up.stderr();
    assert!(
        err.contains("a-1: cannot start a-1: command not found:") && err.contains("bin/nope"),
        "{err}"
    );
    assert!(
        err.contains("b-1: cannot start b-1: permission denied:")
            && err.contains("script.sh is not executable"),
        "{err}"
    );
    assert!(
        err.contains("c-1: cannot start c-1: working directory")
            && err.contains("missing-dir does not exist"),
        "{err}"
    );
}

#[test]
fn services_that_cannot_run_natively_are_refused_before_anything_starts() {
    Test::new()
        .compose("services:\n  db:\n    image: postgres:16\n")
        .args(["up", "--runtime", "native"])
        .run()
        .code(2)
        .stderr_has("service db: no command to run natively (image postgres:16 is not run by the native runtime)");
}

#[test]
fn a_failing_build_stops_up_with_its_output() {
    let t = Test::new().compose(
        "services:\n  app:\n    command: [sleep, '60']\n    x-berth:\n      build: \"echo compiling; echo 'error: it broke' >&2; exit 2\"\n",
    );
    let mut up = t.arg("up").spawn();
    assert_eq!(up.wait_exit(10 * SEC), Some(1));
    assert!(
        up.seen.iter().any(|l| l.contains("error: it broke")),
        "{:?}",
        up.seen
    );
    assert!(
        up.stderr()
            .contains("build of service app failed (exited with code 2)"),
        "{}",
        up.stderr()
    );
}

#[test]
fn one_shot_stacks_finish_with_exit_0() {
    let t = Test::new().compose("services:\n  job:\n    command: [sh, -c, 'echo done']\n");
    let mut up = t.arg("up").spawn();
    assert_eq!(up.wait_exit(10 * SEC), Some(0));
    assert!(
        up.seen
            .iter()
            .any(|l| l.contains("job-1") && l.contains("done"))
    );
}

#[test]
fn a_second_up_on_a_running_project_reconciles_it_and_one_on_a_starting_project_exits_2() {
    let t = Test::new().compose(
        "services:\n  a:\n    command: [sh, -c, 'echo ready; exec sleep 60']\n    x-berth: {ready: {log: ready}}\n  slow:\n    command: [sleep, '60']\n    depends_on: {a: {condition: service_healthy}}\n",
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("ready", 10 * SEC);
    let deadline = std::time::Instant::now() + 10 * SEC;
    loop {
        let second = up.test.run_args(["up"]);
        match second.output.status.code() {
            // Locked, and its control API not serving yet.
            Some(2) => assert!(
                second.stderr().contains("is already running (pid ")
                    && second.stderr().contains("still starting"),
                "{}",
                second.stderr()
            ),
            Some(0) => {
                assert!(
                    second.stdout().contains("nothing to do"),
                    "{}",
                    second.stdout()
                );
                break;
            }
            other => panic!("{other:?}: {}", second.stderr()),
        }
        assert!(std::time::Instant::now() < deadline, "never reconciled");
    }
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn environment_ports_and_volumes_reach_the_process() {
    let t = Test::new().file(".env", "GREETING=hello\n").compose(
        r#"
services:
  env:
    command: ["sh", "-c", "echo \"G=$$GREETING S=$$BERTH_SERVICE R=$$BERTH_REPLICA P=$$BERTH_PROJECT port=$$PORT data=$$BERTH_VOLUME_DATA\"; test -d \"$$BERTH_VOLUME_DATA\" && echo volume-exists"]
    environment:
      GREETING: ${GREETING}
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    );
    let mut up = t.args(["-p", "envtest", "up"]).spawn();
    let line = up.wait_for("G=", 10 * SEC);
    assert!(line.contains("G=hello S=env R=1 P=envtest port="), "{line}");
    assert!(line.contains(".berth/volumes/envtest_data"), "{line}");
    up.wait_for("volume-exists", 5 * SEC);
    assert_eq!(up.wait_exit(10 * SEC), Some(0));
}

#[test]
fn native_quickstart_runs_migration_then_two_healthy_api_replicas() {
    // The stack directory is read-only and fixes its ports; run a copy with
    // ports berth picks through an override file: api's 8000 published
    // instead of exposed (which binds 127.0.0.1:8000), and the proxy's
    // listen list replaced (a plain list would be added to the stack's 8088).
    let src = shared_dir().join("stacks/native-quickstart");
    let t = Test::new();
    copy_dir(&src, t.dir());

    let t = t.file(
        "compose.override.yaml",
        "services:\n  api:\n    expose: !reset []\n    ports: [\"127.0.0.1::8000\"]\nx-berth:\n  proxy:\n    listen: !override [\"127.0.0.1:0\"]\n",
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("migration done", 20 * SEC);
    up.wait_for("migrate-1", 5 * SEC);
    let addr = listening(&up.test, "api", 8000);
    let mut replicas = std::collections::BTreeSet::new();
    assert!(
        eventually(20 * SEC, || {
            if let Ok((200, body)) = http_get(&addr, "/api/whoami") {
                replicas.insert(
                    body.split("\"replica\": \"")
                        .nth(1)
                        .unwrap_or("")
                        .chars()
                        .next(),
                );
            }
            replicas.len() == 2
        }),
        "{replicas:?} {:?}",
        up.drain()
    );
    let (status, body) = http_get(&addr, "/api/items").unwrap();
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert_eq!(up.interrupt(), Some(130));
}

pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
            let mut perm = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dest, perm).unwrap();
        }
    }
}
