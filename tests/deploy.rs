//! `berth up` on a running project: the stack is reconciled with the file,
//! under client load through the proxy, with no failed request.

use std::time::Duration;

use crate::support::{Load, REPLICA_SERVER, Test, eventually, http_get, listening, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

/// A proxied 3-replica service answering `V=<value> replica N pid P`,
/// and a plain service beside it. The proxy and web's port `declared`
/// listen on ports berth picks ([`proxy_addr`], [`listening`]).
fn stack(declared: u16, value: &str, extra: &str) -> String {
    format!(
        r#"
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {{path: /, service: web}}
services:
  web:
    command: [sh, -c, "exec python3 server.py"]
    environment: {{V: "{value}"}}
    ports: ["127.0.0.1::{declared}"]
    deploy: {{replicas: 3}}
    x-berth:
      ready: {{http: /}}
      deploy: {{timeout: 4s}}
  worker:
    command: [sleep, "120"]
{extra}"#
    )
}

/// web's declared port in [`stack`].
const DECLARED: u16 = 8000;

/// The replica server, answering with `$V` in front.
fn server() -> String {
    REPLICA_SERVER.replace(
        "body = (\"replica",
        "body = (os.environ.get(\"V\", \"\") + \" replica",
    )
}

/// `stack(…, value, "")` up and answering with `value`; `down` when dropped.
struct Running {
    t: Test,
    /// The proxy's address.
    addr: String,
}

impl Running {
    fn start(value: &str) -> Running {
        let t = Test::new()
            .file("server.py", &server())
            .compose(&stack(DECLARED, value, ""));
        t.run_args(["up", "-d", "--wait"]).success();
        let mut running = Running {
            t,
            addr: String::new(),
        };
        // (Down when dropped from here on, even if the proxy is not found.)
        running.addr = proxy_addr(&running.t);
        let answering = format!("{value} ");
        assert!(eventually(10 * SEC, || answers(&running.addr).starts_with(&answering)));
        running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.t.run_args(["down", "--timeout", "2"]);
    }
}

/// service -> pids of its replicas, from `ps`.
fn pids(t: &Test, service: &str) -> Vec<u64> {
    let ps = t.run_args(["ps", "--format", "json"]).json();
    ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == service)
        .flat_map(|s| s["replicas"].as_array().unwrap().clone())
        .filter_map(|r| r["pid"].as_u64())
        .collect()
}

fn services(t: &Test) -> Vec<String> {
    let ps = t.run_args(["ps", "--format", "json"]).json();
    ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn answers(addr: &str) -> String {
    http_get(addr, "/").map(|r| r.1).unwrap_or_default()
}

#[test]
fn a_changed_environment_replaces_only_its_service_under_load() {
    let stack_up = Running::start("one");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let (web_before, worker_before) = (pids(t, "web"), pids(t, "worker"));
    assert_eq!(web_before.len(), 3);

    // The same file: nothing to do, nothing touched.
    t.run_args(["up"])
        .success()
        .stdout_has("nothing to do: the running stack matches the file");
    t.run_args(["diff"]).success().stdout_has("nothing to do");

    std::fs::write(t.dir().join("compose.yaml"), stack(DECLARED, "two", "")).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("web: replace (environment changed)\nworker: keep\n");
    assert_eq!(pids(t, "web"), web_before, "a dry run touched web");

    let load = Load::start(&addr, 4);
    assert!(eventually(10 * SEC, || load.ok() > 20));
    t.run_args(["up"])
        .success()
        .stdout_has("web-1: replaced without downtime")
        .stdout_has("web-3: replaced without downtime");
    assert!(eventually(10 * SEC, || load.ok() > 60));
    load.finish_without_failures(60);

    let web_after = pids(t, "web");
    assert_eq!(web_after.len(), 3);
    assert!(
        web_after.iter().all(|p| !web_before.contains(p)),
        "{web_before:?} {web_after:?}"
    );
    assert_eq!(
        pids(t, "worker"),
        worker_before,
        "the unchanged service was touched"
    );
    for _ in 0..6 {
        assert!(answers(&addr).starts_with("two "), "{}", answers(&addr));
    }
    let log = std::fs::read_to_string(t.dir().join(".berth/deploys.log")).unwrap();
    assert!(log.contains("\"outcome\":\"done\""), "{log}");
    assert!(log.contains("web: replace (environment changed)"), "{log}");
}

#[test]
fn a_version_that_never_turns_ready_is_rolled_back_and_the_old_one_keeps_answering() {
    let stack_up = Running::start("good");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let before = pids(t, "web");

    // The new version listens nowhere: its ready probe never passes.
    let broken = stack(DECLARED, "bad", "").replace(
        "command: [sh, -c, \"exec python3 server.py\"]",
        "command: [sh, -c, \"echo starting; exec sleep 120\"]",
    );
    std::fs::write(t.dir().join("compose.yaml"), broken).unwrap();
    let load = Load::start(&addr, 4);
    assert!(eventually(10 * SEC, || load.ok() > 20));
    t.run_args(["up"])
        .code(1)
        .stdout_has("web: rolled back, the old version keeps serving")
        .stdout_has("was not ready within 4s")
        .stderr_has("the deploy of web failed and was rolled back");
    load.finish_without_failures(20);
    assert_eq!(pids(t, "web"), before, "the old replicas were replaced");
    assert!(answers(&addr).starts_with("good "));
    // Still the old version for the next deploy: the change is still to do.
    t.run_args(["diff"])
        .success()
        .stdout_has("web: replace (command, environment changed)");
    let log = std::fs::read_to_string(t.dir().join(".berth/deploys.log")).unwrap();
    assert!(log.contains("\"outcome\":\"rolled back\""), "{log}");
}

#[test]
fn services_are_added_scaled_and_removed_from_the_file_without_touching_the_rest() {
    let stack_up = Running::start("one");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let web_before = pids(t, "web");
    let load = Load::start(&addr, 4);
    // Requests flowing before the changes (on a fast machine the changes
    // are over before 20 requests otherwise).
    assert!(eventually(10 * SEC, || load.ok() >= 20));

    // A new service starts; the rest keep their processes.
    let added = stack(DECLARED, "one", "  cache:\n    command: [sleep, \"121\"]\n");
    std::fs::write(t.dir().join("compose.yaml"), &added).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("web: keep\nworker: keep\ncache: start (1 replicas)\n");
    t.run_args(["up"]).success().stdout_has("cache: started");
    assert!(eventually(10 * SEC, || pids(t, "cache").len() == 1));
    assert_eq!(pids(t, "web"), web_before);

    // Scaled through the file: web 3 -> 2, the remaining two untouched.
    let scaled = added.replace("replicas: 3", "replicas: 2");
    std::fs::write(t.dir().join("compose.yaml"), &scaled).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("web: scale 3 -> 2\nworker: keep\ncache: keep\n");
    t.run_args(["up"])
        .success()
        .stdout_has("web: scaled 3 -> 2");
    assert_eq!(pids(t, "web"), web_before[..2].to_vec());

    // worker leaves the file: listed as an orphan, stopped on request.
    let without_worker = scaled.replace("  worker:\n    command: [sleep, \"120\"]\n", "");
    std::fs::write(t.dir().join("compose.yaml"), &without_worker).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("warning: service worker is no longer in the file and keeps running");
    assert!(services(t).contains(&"worker".to_string()));
    t.run_args(["up", "--dry-run", "--remove-orphans"])
        .success()
        .stdout_has("worker: stop (1 replicas)");
    t.run_args(["up", "--remove-orphans"])
        .success()
        .stdout_has("worker: stopped and removed");
    assert!(!services(t).contains(&"worker".to_string()));
    assert_eq!(pids(t, "web"), web_before[..2].to_vec());
    // And after them.
    let done = load.ok();
    assert!(eventually(10 * SEC, || load.ok() >= done + 20));
    load.finish_without_failures(40);
    // The stack keeps running after a service left it.
    t.run_args(["up"]).success().stdout_has("nothing to do");
    // It keeps its runtime too: another one is refused, not ignored.
    t.run_args(["up", "--runtime", "docker"])
        .code(1)
        .stderr_has("the stack runs each service in its own runtime")
        .stderr_has("`berth down` then `berth up --runtime docker`");
    t.run_args(["up", "--runtime", "auto"])
        .success()
        .stdout_has("nothing to do");
}

#[test]
fn a_new_service_and_its_route_are_started_then_routed_live_under_load() {
    let stack_up = Running::start("one");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let web_before = pids(t, "web");
    let (status, _) = http_get(&addr, "/api/x").unwrap();
    assert_eq!(status, 200, "/ routes everything to web before");

    let api = "  api:\n    command: [python3, server.py]\n    environment: {V: api}\n    ports: [\"127.0.0.1::8001\"]\n    x-berth: {ready: {http: /}}\n";
    let routed = stack(DECLARED, "one", api).replace(
        "      - {path: /, service: web}\n",
        "      - {path: /, service: web}\n      - {path: /api, service: api}\n",
    );
    std::fs::write(t.dir().join("compose.yaml"), &routed).unwrap();
    t.run_args(["up", "--dry-run"]).success().stdout_is(
        "web: keep\nworker: keep\napi: start (1 replicas)\nproxy: routes changed (applied live)\n",
    );
    let load = Load::start(&addr, 4);
    assert!(eventually(10 * SEC, || load.ok() > 20));
    t.run_args(["up"])
        .success()
        .stdout_has("api: started\nproxy: routes swapped in");
    let (status, body) = http_get(&addr, "/api/x").unwrap();
    assert_eq!((status, body.starts_with("api ")), (200, true), "{body}");
    assert!(answers(&addr).starts_with("one "));
    load.finish_without_failures(20);
    assert_eq!(pids(t, "web"), web_before, "web was touched");
    t.run_args(["up"]).success().stdout_has("nothing to do");

    // A route change alone swaps the table; the services stay as they are.
    let moved = routed.replace("{path: /api, service: api}", "{path: /v2, service: api}");
    std::fs::write(t.dir().join("compose.yaml"), &moved).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("proxy: routes swapped in");
    assert!(http_get(&addr, "/v2/x").unwrap().1.starts_with("api "));
    assert!(answers(&addr).starts_with("one "));
    assert_eq!(pids(t, "web"), web_before);
}

#[test]
fn a_failing_build_aborts_the_deploy_before_anything_is_replaced() {
    let stack_up = Running::start("one");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let before = pids(t, "web");
    let broken_build = stack(DECLARED, "two", "").replace(
        "      deploy: {timeout: 4s}\n",
        "      deploy: {timeout: 4s}\n      build: \"echo compiling v2; exit 3\"\n",
    );
    std::fs::write(t.dir().join("compose.yaml"), broken_build).unwrap();
    t.run_args(["up"])
        .code(1)
        .stderr_has("build of service web failed");
    assert_eq!(pids(t, "web"), before, "replaced despite the failed build");
    assert!(answers(&addr).starts_with("one "));
    let logs = t.run_args(["logs", "web"]).stdout();
    assert!(logs.contains("compiling v2"), "{logs}");
}

#[test]
fn a_changed_declared_port_is_rebound_and_routed_again() {
    let stack_up = Running::start("one");
    let (t, addr) = (&stack_up.t, stack_up.addr.clone());
    let old = listening(t, "web", DECLARED);
    assert!(answers(&old).starts_with("one "));
    let moved = DECLARED + 1;
    std::fs::write(t.dir().join("compose.yaml"), stack(moved, "one", "")).unwrap();
    t.run_args(["up"])
        .success()
        .stdout_has("web: declared ports re-bound\nproxy: routes swapped in");
    let new = listening(t, "web", moved);
    assert!(answers(&new).starts_with("one "), "{}", answers(&new));
    assert!(http_get(&old, "/").is_err(), "the old port still answers");
    assert!(answers(&addr).starts_with("one "));
}
