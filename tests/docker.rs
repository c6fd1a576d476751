//! The Docker runtime against the real engine: containers gated on health,
//! supervised and load-balanced by berth, labelled like `docker compose`'s,
//! removed on `down`. The test image is built here, offline: `FROM
//! scratch` plus Debian's static busybox (a shell, `httpd`, `wget`);
//! `.ci/run` removes the images labelled `io.berth.test` afterwards.

use std::time::Duration;

use crate::support::{Load, Test, eventually, http_get, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

/// The test image, built once per machine (the engine caches it).
pub const IMAGE: &str = "berth-test-busybox:1";

/// Builds [`IMAGE`] from the machine's static busybox.
pub fn image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("busybox is required for the Docker tests (Debian package busybox-static; .ci/run installs it)");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nLABEL io.berth.test=1\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN [\"/bin/sh\", \"-c\", \"mkdir -p /www /tmp && echo hello-from-a-container > /www/index.html\"]\n",
        )
        .unwrap();
        let out = std::process::Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(dir.path())
            .output()
            .expect("the docker CLI builds the test image");
        assert!(
            out.status.success(),
            "building the test image failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

/// `docker <args>`'s output.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The project's containers, running or not, by name.
pub fn containers(project: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

pub fn project_of(t: &Test) -> String {
    t.dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase()
}

/// A web service of `replicas` containers serving a page, behind the proxy.
fn web_stack(replicas: u32) -> Test {
    Test::new().compose(&format!(
        r#"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["127.0.0.1::80"]
    deploy: {{replicas: {replicas}}}
    restart: on-failure
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      start_interval: 100ms
    stop_grace_period: 2s
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {{path: /, service: web}}
"#,
        image = image()
    ))
}

#[test]
fn a_health_gated_chain_of_three_containers_starts_in_order() {
    let t = Test::new().compose(&format!(
        r#"
services:
  a:
    image: {image}
    command: ["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 60"]
    healthcheck: {{test: ["CMD", "test", "-f", "/tmp/ok"], interval: 1s, start_interval: 100ms}}
  b:
    image: {image}
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 60"]
    depends_on: {{a: {{condition: service_healthy}}}}
    healthcheck: {{test: ["CMD", "test", "-f", "/tmp/ok"], interval: 1s, start_interval: 100ms}}
  c:
    image: {image}
    command: ["sh", "-c", "echo c is up; exec sleep 60"]
    depends_on: {{b: {{condition: service_healthy}}}}
"#,
        image = image()
    ));
    let mut up = t.arg("up").spawn();
    up.wait_for_output("c-1", "c is up", 60 * SEC);
    up.wait_for("c-1 started", 10 * SEC);
    let seen = up.drain().to_vec();
    let at = |needle: &str| {
        seen.iter()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {seen:?}"))
    };
    assert!(at("a-1 healthy") < at("b-1 started"), "{seen:?}");
    assert!(at("b-1 healthy") < at("c-1 started"), "{seen:?}");
    // Labelled as docker compose labels its containers.
    let project = project_of(&up.test);
    let labels = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"com.docker.compose.service\"}} {{index .Config.Labels \"com.docker.compose.container-number\"}} {{index .Config.Labels \"com.docker.compose.oneoff\"}} {{.HostConfig.RestartPolicy.Name}}",
        &format!("{project}-c-1"),
    ]);
    assert_eq!(labels.trim(), "c 1 False no", "{labels}");
}

#[test]
fn a_killed_container_is_restarted_with_no_failed_request_and_down_removes_all() {
    let t = web_stack(3);
    let _stack = t.up_detached();
    let project = project_of(&t);
    let addr = proxy_addr(&t);
    let (status, body) = http_get(&addr, "/").unwrap();
    assert_eq!((status, body.trim()), (200, "hello-from-a-container"));
    let load = Load::start(&addr, 4);
    docker(&["kill", &format!("{project}-web-2")]);
    // Restarted by berth (no Docker restart policy): a new container, ready.
    assert!(
        eventually(30 * SEC, || {
            let ps = t.run_args(["ps", "--format", "json"]).stdout();
            serde_json::from_str::<serde_json::Value>(&ps).is_ok_and(|ps| {
                ps["services"][0]["replicas"].as_array().is_some_and(|r| {
                    r.iter().all(|r| r["ready"] == true)
                        && r.iter().any(|r| r["restarts"].as_u64() >= Some(1))
                })
            })
        }),
        "web-2 was not restarted"
    );
    load.finish_without_failures(20);
    t.run_args(["down"]).success();
    assert_eq!(containers(&project), Vec::<String>::new());
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !networks.lines().any(|n| n == format!("{project}_default")),
        "{networks}"
    );
}

#[test]
fn a_rolling_restart_of_three_containers_fails_no_request() {
    let t = web_stack(3);
    let _stack = t.up_detached();
    let addr = proxy_addr(&t);
    let load = Load::start(&addr, 4);
    t.run_args(["restart", "web"]).success();
    load.finish_without_failures(20);
    // Three new containers, each beside the one it replaced for a moment.
    let project = project_of(&t);
    assert!(
        eventually(10 * SEC, || containers(&project).len() == 3),
        "the old containers stay: {:?}",
        containers(&project)
    );
    let names = containers(&project);
    assert!(names.iter().all(|n| n.contains('.')), "{names:?}");
}

#[test]
fn a_native_service_reaches_a_container_at_its_published_port() {
    // The native client waits for the address berth bound for web (the
    // test hands it over in a file), then fetches the container's page.
    let t = Test::new().compose(&format!(
        r#"
services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "8000", "-h", "/www"]
    ports: ["127.0.0.1::8000"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/"], interval: 1s, start_interval: 100ms}}
  client:
    command: ["python3", "-c", "import os, time, urllib.request\nwhile not os.path.exists('web.addr'): time.sleep(0.05)\nprint(urllib.request.urlopen('http://' + open('web.addr').read().strip()).read().decode().strip(), flush=True)"]
    depends_on: {{web: {{condition: service_healthy}}}}
"#,
        image = image()
    ));
    let mut up = t.arg("up").spawn();
    let addr = crate::support::listening(&up.test, "web", 8000);
    std::fs::write(up.test.dir().join("web.addr"), &addr).unwrap();
    up.wait_for_output("client-1", "hello-from-a-container", 60 * SEC);
}

#[test]
fn config_names_each_services_runtime_and_up_without_an_engine_says_what_to_do() {
    let file = format!(
        "services:\n  db:\n    image: {IMAGE}\n  app:\n    command: [sleep, '60']\n  tool:\n    image: {IMAGE}\n    command: [sleep, '60']\n    x-berth: {{runtime: native}}\n"
    );
    Test::new()
        .compose(&file)
        .args(["config", "--runtimes"])
        .run()
        .success()
        .stdout_is("db docker\napp native\ntool native\n");
    Test::new()
        .compose(&file)
        .args(["config", "--runtimes", "--runtime", "native"])
        .run()
        .success()
        .stdout_is("db native\napp native\ntool native\n");
    Test::new()
        .compose(&file)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("up")
        .run()
        .code(2)
        .stderr_has("db run as Docker containers, but cannot reach the Docker Engine at unix:///nonexistent/docker.sock")
        .stderr_has("`x-berth.runtime: native`");
}

#[test]
fn docker_compose_sees_the_containers_and_none_outlives_a_sigkill_of_berth() {
    // A file docker-compose 1.x itself accepts, run from the same directory.
    let t = Test::new().compose(&format!(
        "services:\n  web:\n    image: {image}\n    command: [\"sleep\", \"300\"]\n    deploy: {{replicas: 2}}\n",
        image = image()
    ));
    let project = project_of(&t);
    let mut up = t.arg("up").spawn();
    up.wait_for("stack is up", 60 * SEC);
    let out = std::process::Command::new("docker-compose")
        .args(["-p", &project, "ps"])
        .current_dir(up.test.dir())
        .output()
        .expect("docker-compose runs (Debian package docker-compose; .ci/run installs it)");
    let listed = String::from_utf8_lossy(&out.stdout);
    for n in 1..=2 {
        assert!(
            listed.contains(&format!("{project}-web-{n} ")),
            "docker-compose ps:\n{listed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    up.signal(libc::SIGKILL);
    let _ = up.wait_exit(5 * SEC);
    assert!(
        eventually(5 * SEC, || containers(&project).is_empty()),
        "left after berth's SIGKILL: {:?}",
        containers(&project)
    );
}

#[test]
fn what_the_file_says_of_a_container_is_what_it_gets() {
    let t = Test::new()
        .file("data/.keep", "")
        .compose(&format!(
            r#"
services:
  c:
    image: {image}
    command: ["sh", "-c", "grep CapEff /proc/self/status; echo nofile=$$(ulimit -n); touch /x 2>/dev/null || echo root=read-only; touch /run/x && echo tmpfs=ok; echo mem=$$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null); echo pids=$$(cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null); echo hello > /data/hello && echo bind=ok; touch /cache/x && echo volume=ok; grep -c db.example /etc/hosts; echo init=$$(cat /proc/1/comm); echo user=$$(id -u)"]
    restart: "no"
    read_only: true
    tmpfs: ["/run:size=1m"]
    cap_drop: [ALL]
    mem_limit: 100m
    pids_limit: 32
    ulimits: {{nofile: 256}}
    init: true
    user: "0"
    extra_hosts: ["db.example:10.1.2.3"]
    volumes: ["./data:/data", "cache:/cache"]
volumes:
  cache: {{}}
"#,
            image = image()
        ));
    let mut up = t.arg("up").spawn();
    up.wait_for("c-1 exited", 60 * SEC);
    up.assert_printed(
        "c-1",
        &[
            "CapEff: 0000000000000000",
            "nofile=256",
            "root=read-only",
            "tmpfs=ok",
            "mem=104857600",
            "pids=32",
            "bind=ok",
            "volume=ok",
            "1",
            "init=docker-init",
            "user=0",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(up.test.dir().join("data/hello")).unwrap(),
        "hello\n"
    );
    let project = project_of(&up.test);
    let _ = up.wait_exit(10 * SEC);
    // The named volume is the engine's, labelled as docker compose labels
    // its own; `down -v` removes it.
    let volume = format!("{project}_cache");
    let labels = docker(&[
        "volume",
        "inspect",
        "--format",
        "{{index .Labels \"com.docker.compose.project\"}} {{index .Labels \"com.docker.compose.volume\"}}",
        &volume,
    ]);
    assert_eq!(labels.trim(), format!("{project} cache"));
    up.test
        .run_args(["down", "-v"])
        .success()
        .stdout_has(&format!("volume {volume}: removed (Docker)"));
    assert!(!docker(&["volume", "ls", "-q"]).lines().any(|v| v == volume));
}

#[test]
fn an_image_is_built_from_its_context_with_its_args_and_a_broken_one_stops_up() {
    let base = image();
    let t = Test::new()
        .file(
            "app/Dockerfile",
            &format!(
                "FROM {base} AS first\nARG GREETING=unset\nCOPY . /ctx\nRUN echo \"built with $GREETING from\" $(ls /ctx) > /built\nFROM first AS final\nLABEL io.berth.test=1\nCMD [\"cat\", \"/built\"]\n"
            ),
        )
        // What .dockerignore leaves out never reaches the builder.
        .file("app/.dockerignore", "secret.env\ncache/\n")
        .file("app/secret.env", "TOKEN=1\n")
        .file("app/cache/big.bin", "x")
        .file("app/kept.txt", "kept\n")
        .compose(
            "services:\n  app:\n    build:\n      context: ./app\n      args: {GREETING: hello}\n      target: final\n    restart: \"no\"\n",
        );
    let project = project_of(&t);
    let mut up = t.arg("up").spawn();
    up.wait_for_output(
        "app-1",
        "built with hello from Dockerfile kept.txt",
        120 * SEC,
    );
    // The builder's output is in the log stream, under the service.
    assert!(
        up.seen
            .iter()
            .any(|l| l.starts_with("app ") && l.contains("building image")),
        "{:?}",
        up.seen
    );
    let _ = up.wait_exit(10 * SEC);
    docker(&["image", "rm", "-f", &format!("{project}-app")]);

    Test::new()
        .file("app/Dockerfile", &format!("FROM {base}\nRUN false\n"))
        .compose("services:\n  app:\n    build: ./app\n")
        .arg("up")
        .run()
        .code(1)
        .stderr_has("the image build of service app failed: The command '/bin/sh -c false' returned a non-zero code: 1");
}

#[test]
fn exec_runs_in_the_replicas_container_with_stdin_and_the_exit_code() {
    let t = Test::new().compose(&format!(
        "services:\n  web:\n    image: {image}\n    command: [\"sleep\", \"300\"]\n    deploy: {{replicas: 2}}\n    environment: {{GREETING: hi}}\n",
        image = image()
    ));
    let _stack = t.up_detached();
    // In the container, with the file's environment and the replica's number.
    t.run_args([
        "exec",
        "web",
        "--replica",
        "2",
        "--",
        "sh",
        "-c",
        "echo $GREETING from $BERTH_REPLICA; exit 3",
    ])
    .code(3)
    .stdout_is("hi from 2\n");
    let mut cat = std::process::Command::new(crate::support::berth_bin())
        .args(["exec", "web", "--", "cat"])
        .current_dir(t.dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut cat.stdin.take().unwrap(), b"piped in\n").unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped in\n");
}

#[test]
fn a_container_reaches_a_native_service_at_host_docker_internal() {
    let t = Test::new()
        .file("server.py", crate::support::REPLICA_SERVER)
        .compose(&format!(
            r#"
services:
  api:
    command: ["python3", "server.py"]
    ports: ["127.0.0.1::18765"]
    x-berth: {{ready: {{tcp: true}}}}
  client:
    image: {image}
    command: ["sh", "-c", "wget -q -O - http://host.docker.internal:18765/ && echo; sleep 60"]
    depends_on: {{api: {{condition: service_healthy}}}}
"#,
            image = image()
        ));
    let mut up = t.arg("up").spawn();
    // What the native replica answers: "replica 1 pid N".
    up.wait_for("client-1  | replica 1 pid ", 60 * SEC);
}

#[test]
fn a_changed_container_service_is_deployed_without_a_failed_request() {
    let file = |greeting: &str| {
        format!(
            r#"
services:
  web:
    image: {image}
    command: ["sh", "-c", "echo $$GREETING > /tmp/index.html && exec httpd -f -p 80 -h /tmp"]
    environment: {{GREETING: {greeting}}}
    # httpd as pid 1 would ignore SIGTERM: docker-init passes it on.
    init: true
    ports: ["127.0.0.1::80"]
    deploy: {{replicas: 2}}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      start_interval: 100ms
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {{path: /, service: web}}
"#,
            image = image()
        )
    };
    let t = Test::new().compose(&file("one"));
    let _stack = t.up_detached();
    let addr = proxy_addr(&t);
    assert_eq!(http_get(&addr, "/").unwrap().1.trim(), "one");
    std::fs::write(t.dir().join("compose.yaml"), file("two")).unwrap();
    t.run_args(["up", "--dry-run"])
        .success()
        .stdout_is("web: replace (environment changed)\n");
    let load = Load::start(&addr, 4);
    t.run_args(["up"])
        .success()
        .stdout_has("web-1: replaced without downtime")
        .stdout_has("web-2: replaced without downtime");
    load.finish_without_failures(20);
    for _ in 0..4 {
        assert_eq!(http_get(&addr, "/").unwrap().1.trim(), "two");
    }
    let project = project_of(&t);
    assert!(
        eventually(10 * SEC, || containers(&project).len() == 2),
        "{:?}",
        containers(&project)
    );
}

#[test]
fn an_external_volume_that_does_not_exist_stops_up_before_anything_starts() {
    let t = Test::new().compose(&format!(
        "services:\n  db:\n    image: {image}\n    command: [\"sleep\", \"60\"]\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n    external: true\n    name: berth-test-no-such-volume\n",
        image = image()
    ));
    let project = project_of(&t);
    t.arg("up")
        .run()
        .code(1)
        .stderr_has("external volume berth-test-no-such-volume does not exist: create it (docker volume create berth-test-no-such-volume)");
    assert_eq!(containers(&project), Vec::<String>::new());
}
