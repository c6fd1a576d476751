//! The reference stack (`examples/reference/compose.yaml`) end to end, on
//! real parts, natively and as containers: PostgreSQL and Redis (Debian's,
//! or images made of Debian's packages by `examples/reference/images.sh`),
//! three demo-api replicas using both, the SPA over HTTPS with the
//! self-signed certificate in real Chromium, the WebSocket, a backup and a
//! restore, a killed and an unhealthy replica under load, and nothing left
//! after.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::psql;
use crate::browser::Browser;
use crate::docker::{containers, docker, project_of};
use crate::support::{Load, Running, Test, eventually, http_get, proxy_addr, proxy_tls_addr};

const SEC: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port nothing listens on now, for a service's declared port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The edge and state settings every run of the test changes: a private
/// state directory, ports berth picks, plain HTTP for the load (the test's
/// client has no TLS; the browser and curl use HTTPS).
fn private_edge(state: &Path) -> String {
    format!(
        r#"x-berth:
  state_dir: {state}
  proxy:
    listen: !override ["127.0.0.1:0"]
    listen_tls: !override ["127.0.0.1:0"]
    redirect_http: false
"#,
        state = state.display()
    )
}

/// The reference stack run natively with the debug demo-api, and
/// DEMO_UNHEALTHY_FILE for each replica in the test's directory.
fn native_stack() -> Test {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new();
    // The API runs as `nobody`: its binary and the files the test drops
    // for it must be reachable by another user, wherever the checkout is.
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo = t.dir().join("demo-api");
    std::fs::copy(crate::proxy::demo_api(), &demo).unwrap();
    let demo = demo.display();
    let unhealthy = t.dir().join("unhealthy.{replica}");
    let edge = private_edge(&t.dir().join("state"));
    let t = t.file(
        "override.yaml",
        &format!(
            r#"
services:
  migrate:
    command: !override ["{demo}", "migrate"]
  api:
    command: !override ["{demo}"]
    stop_grace_period: 5s
    environment:
      DEMO_UNHEALTHY_FILE: "{unhealthy}"
    healthcheck:
      test: !override ["CMD", "{demo}", "healthcheck"]
      interval: 1s
      retries: 2
{edge}"#,
            unhealthy = unhealthy.display(),
        ),
    );
    with_file_and_ports(t).args(["up", "--no-build"])
}

/// The repository's file under the test's override, and declared ports of
/// PostgreSQL and Redis no other test uses.
fn with_file_and_ports(t: Test) -> Test {
    let root = repo().join("examples/reference/compose.yaml");
    let files = format!("{}:override.yaml", root.display());
    t.env("COMPOSE_FILE", &files)
        .env("DB_PORT", &free_port().to_string())
        .env("REDIS_PORT", &free_port().to_string())
}

/// The reference stack's three images, made by `examples/reference/images.sh`
/// (with the static demo-api the Docker demo test builds); removed when
/// dropped.
struct ReferenceImages(String);

impl ReferenceImages {
    fn build(prefix: &str) -> ReferenceImages {
        let out = std::process::Command::new("bash")
            .arg(repo().join("examples/reference/images.sh"))
            .arg(prefix)
            .env("DEMO_API", crate::docker_demo::static_demo_api())
            .env("LABEL", "io.berth.test=1")
            .output()
            .unwrap();
        let images = ReferenceImages(prefix.to_string());
        assert!(
            out.status.success(),
            "images.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        images
    }

    fn name(&self, image: &str) -> String {
        format!("{}-{image}", self.0)
    }
}

impl Drop for ReferenceImages {
    fn drop(&mut self) {
        for image in ["postgres", "redis", "api"] {
            docker(&["image", "rm", "-f", &self.name(image)]);
        }
    }
}

/// The reference stack as containers (`up --runtime docker`, the
/// variables of `docker.env`): a project name of its own, the test's
/// images, the unhealthy files in a directory mounted read-only, and the
/// API's port published on a port berth picks rather than exposed (an
/// exposed port binds 127.0.0.1:8000, which stacks side by side share).
fn docker_stack() -> (Test, ReferenceImages) {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new();
    let project = project_of(&t);
    let tag: String = project
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let images = ReferenceImages::build(&format!("berth-test-reference-{tag}"));
    let health = t.dir().join("health");
    std::fs::create_dir(&health).unwrap();
    std::fs::set_permissions(&health, std::fs::Permissions::from_mode(0o755)).unwrap();
    let edge = private_edge(&t.dir().join("state"));
    let t = t.file(
        "override.yaml",
        &format!(
            r#"
name: {project}
services:
  db-init:
    image: {postgres}
  db:
    image: {postgres}
  redis:
    image: {redis}
  migrate:
    image: {api}
  api:
    image: {api}
    expose: !reset []
    ports: ["127.0.0.1::8000"]
    volumes: ["{health}:/run/health:ro"]
    stop_grace_period: 5s
    environment:
      DEMO_UNHEALTHY_FILE: /run/health/unhealthy.{{replica}}
    healthcheck:
      interval: 1s
      retries: 2
{edge}"#,
            postgres = images.name("postgres"),
            redis = images.name("redis"),
            api = images.name("api"),
            health = health.display(),
        ),
    );
    let mut t = with_file_and_ports(t);
    let env = std::fs::read_to_string(repo().join("examples/reference/docker.env")).unwrap();
    for line in env
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (k, v) = line.split_once('=').unwrap();
        t = t.env(k, v);
    }
    (t.args(["up", "--runtime", "docker"]), images)
}

fn redis_counter(t: &Test) -> String {
    t.run_args([
        "exec",
        "redis",
        "--",
        "sh",
        "-c",
        "redis-cli -p \"$PORT\" get demo:items_added",
    ])
    .success()
    .stdout()
    .trim()
    .to_string()
}

fn pid_of(t: &Test, replica: &str) -> Option<u64> {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    ps["services"]
        .as_array()?
        .iter()
        .flat_map(|s| s["replicas"].as_array().cloned().unwrap_or_default())
        .find(|r| r["name"] == replica)
        .and_then(|r| r["pid"].as_u64())
}

/// Processes whose command line mentions `dir` (the stack's state and
/// volumes are under it).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&needle) && pid != std::process::id()).then(|| format!("{pid} {cmd}"))
        })
        .collect()
}

/// Everything a user does with the running stack, whatever runs it;
/// `health` is where the replicas look for their unhealthy files.
fn end_to_end(up: &mut Running, screenshot: &str, health: &Path) {
    up.wait_for("stack is up", 180 * SEC);
    let t = &up.test;
    let plain = proxy_addr(t);
    let (status, body) = http_get(&plain, "/api/counter").unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"items_added\":0}"));
    in_the_browser(t, screenshot);
    // The item is in PostgreSQL; Redis counted it.
    assert_eq!(
        psql(
            t,
            "SELECT count(*) FROM items WHERE text = 'added in the reference test'"
        ),
        "1"
    );
    assert_eq!(redis_counter(t), "1");
    let (_, body) = http_get(&plain, "/api/counter").unwrap();
    assert_eq!(body, "{\"items_added\":1}");
    backup_wipe_restore(t);
    replicas_killed_and_unhealthy_under_load(t, health);
    // Faster than the rate limit: refused with 429, not passed on.
    let refused = (0..300)
        .filter(|_| http_get(&plain, "/api/items?limit=1").is_ok_and(|(s, _)| s == 429))
        .count();
    assert!(refused > 0, "no request over the rate limit was refused");
}

/// The SPA over HTTPS in a real browser: the migration's items from
/// PostgreSQL, one more added through the form, the WebSocket echoing;
/// then the dashboard under the proxy, with every replica, screenshotted.
fn in_the_browser(t: &Test, screenshot: &str) {
    let browser = Browser::start();
    browser.open_until(
        &format!("https://{}/", proxy_tls_addr(t)),
        "document.querySelectorAll('#items li').length >= 3",
        20 * SEC,
    );
    browser.add_demo_item("added in the reference test");
    browser.echo_over_demo_websocket("echo through the edge");
    let login = t.run_args(["dashboard", "--json"]).success().json();
    let link = login["login"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("https://"))
        .unwrap()
        .to_string();
    browser.set_size(1280, 1000);
    browser.open_until(
        &link,
        "document.querySelectorAll('#replicas tr[data-replica][data-condition=ok]').length === 5",
        20 * SEC,
    );
    browser.screenshot(&crate::dashboard::screenshots().join(screenshot));
}

/// A backup (with the pg_dump), the data wiped, the restore brings it back.
fn backup_wipe_restore(t: &Test) {
    let made = t.run_args(["backup", "--json"]).success();
    let archive = made.json()["archive"].as_str().unwrap().to_string();
    assert_eq!(
        made.json()["dumps"][0]["service"],
        "db",
        "{}",
        made.stdout()
    );
    psql(t, "DELETE FROM items");
    assert_eq!(psql(t, "SELECT count(*) FROM items"), "0");
    t.run_args(["restore", &archive, "db"]).success();
    assert!(
        eventually(30 * SEC, || {
            t.run_args(["exec", "db", "--", "sh", "-c", "psql -h 127.0.0.1 -p \"$PORT\" -U app -tAc \"SELECT count(*) FROM items WHERE text = 'added in the reference test'\" postgres"])
                .stdout()
                .trim()
                == "1"
        }),
        "the item did not come back"
    );
}

/// Under load on the API (one client, within the route's rate limit of
/// 50/s): a replica killed, another turned unhealthy; no request fails,
/// both come back.
fn replicas_killed_and_unhealthy_under_load(t: &Test, health: &Path) {
    let load = Load::start_path(&proxy_addr(t), "/api/items?limit=1", 1);
    assert!(
        eventually(30 * SEC, || load.ok() > 20),
        "the API does not answer after the restore"
    );
    let killed = pid_of(t, "api-1").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::write(health.join("unhealthy.2"), "").unwrap();
    let sick = pid_of(t, "api-2").unwrap();
    assert!(
        eventually(60 * SEC, || {
            pid_of(t, "api-1").is_some_and(|p| p != killed)
                && pid_of(t, "api-2").is_some_and(|p| p != sick)
        }),
        "api-1 and api-2 were not both replaced:\n{}\n{}",
        t.run_args(["ps"]).stdout(),
        t.run_args(["logs", "api"]).stdout()
    );
    let said = t.run_args(["logs", "api"]).stdout();
    assert!(
        said.lines()
            .any(|l| l.starts_with("api-2") && l.contains("unhealthy (")),
        "{said}"
    );
    std::fs::remove_file(health.join("unhealthy.2")).unwrap();
    let ok = load.ok();
    assert!(eventually(30 * SEC, || load.ok() > ok + 20));
    load.finish_without_failures(50);
}

#[test]
fn the_reference_stack_runs_natively_end_to_end() {
    let mut up = native_stack().spawn();
    let dir = up.test.dir().to_path_buf();
    end_to_end(&mut up, "reference-dashboard.png", &dir);
    // Stopped: nothing of it is left.
    assert_eq!(up.interrupt(), Some(130));
    assert!(
        eventually(10 * SEC, || processes_under(&dir).is_empty()),
        "left running: {:?}",
        processes_under(&dir)
    );
}

/// What the engine holds of the project, by kind (`container`, `network`,
/// `volume`).
fn engine_objects(kind: &str, project: &str) -> Vec<String> {
    docker(&[
        kind,
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Removes the project's volumes however the test ends (a passing test
/// removes them itself, with `down -v`).
struct VolumesGo(String);

impl Drop for VolumesGo {
    fn drop(&mut self) {
        for volume in engine_objects("volume", &self.0) {
            docker(&["volume", "rm", "-f", &volume]);
        }
    }
}

#[test]
fn the_reference_stack_runs_in_docker_end_to_end() {
    let (t, _images) = docker_stack();
    let project = project_of(&t);
    let _volumes = VolumesGo(project.clone());
    let mut up = t.spawn();
    let health = up.test.dir().join("health");
    end_to_end(&mut up, "reference-dashboard-docker.png", &health);
    // Containers, not processes: the engine runs every service (a
    // replaced replica's container is `<name>.<run>`).
    let names = containers(&project);
    for service in ["db", "redis", "api"] {
        let name = format!("{project}-{service}-1");
        assert!(
            names
                .iter()
                .any(|n| n == &name || n.starts_with(&format!("{name}."))),
            "no {name}: {names:?}"
        );
    }
    assert_eq!(up.interrupt(), Some(130));
    // Stopped: no container or network is left; `down -v` takes the
    // volumes.
    assert!(
        eventually(10 * SEC, || containers(&project).is_empty()
            && engine_objects("network", &project).is_empty()),
        "left: {:?} {:?}",
        containers(&project),
        engine_objects("network", &project)
    );
    assert_eq!(engine_objects("volume", &project).len(), 2);
    up.test.run_args(["down", "-v"]).success();
    assert_eq!(engine_objects("volume", &project), Vec::<String>::new());
}
