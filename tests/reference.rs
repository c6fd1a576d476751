//! The reference stack (`examples/reference/compose.yaml`) end to end,
//! natively, on real parts: Debian's PostgreSQL and Redis, three demo-api
//! replicas using both, the SPA over HTTPS with the self-signed
//! certificate in real Chromium, the WebSocket, a backup and a restore, a
//! killed and an unhealthy replica under load, and nothing left after.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::psql;
use crate::browser::Browser;
use crate::support::{Load, Test, eventually, http_get, proxy_addr, proxy_tls_addr};

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

/// The reference stack with the debug demo-api, ports berth picks (and
/// declared ports no other test uses), a private state directory, and
/// DEMO_UNHEALTHY_FILE for each replica.
fn reference_stack() -> Test {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new();
    // The API runs as `nobody`: its binary and the files the test drops
    // for it must be reachable by another user, wherever the checkout is.
    std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo = t.dir().join("demo-api");
    std::fs::copy(crate::proxy::demo_api(), &demo).unwrap();
    let demo = demo.display();
    let state = t.dir().join("state");
    let unhealthy = t.dir().join("unhealthy.{replica}");
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
x-berth:
  state_dir: {state}
  proxy:
    listen: !override ["127.0.0.1:0"]
    listen_tls: !override ["127.0.0.1:0"]
    # The load below is plain HTTP (the test's client has no TLS); the
    # browser and curl use HTTPS.
    redirect_http: false
"#,
            unhealthy = unhealthy.display(),
            state = state.display()
        ),
    );
    let root = repo().join("examples/reference/compose.yaml");
    let files = format!("{}:override.yaml", root.display());
    t.env("COMPOSE_FILE", &files)
        .env("DB_PORT", &free_port().to_string())
        .env("REDIS_PORT", &free_port().to_string())
        .args(["up", "--no-build"])
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

#[test]
fn the_reference_stack_runs_natively_end_to_end() {
    let mut up = reference_stack().spawn();
    up.wait_for("stack is up", 120 * SEC);
    let t = &up.test;
    let plain = proxy_addr(t);
    let tls = proxy_tls_addr(t);
    let (status, body) = http_get(&plain, "/api/counter").unwrap();
    assert_eq!((status, body.as_str()), (200, "{\"items_added\":0}"));

    // The SPA over HTTPS in a real browser: the migration's items from
    // PostgreSQL, one more added through the form, the WebSocket echoing.
    let browser = Browser::start();
    browser.goto(&format!("https://{tls}/"));
    browser.wait_for(
        "document.querySelectorAll('#items li').length >= 3",
        20 * SEC,
    );
    browser.add_demo_item("added in the reference test");
    browser.echo_over_demo_websocket("echo through the edge");
    // The dashboard under the proxy, over HTTPS, with every replica.
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
    browser.goto(&link);
    browser.wait_for(
        "document.querySelectorAll('#replicas tr[data-replica][data-condition=ok]').length === 5",
        20 * SEC,
    );
    browser.screenshot(&crate::dashboard::screenshots().join("reference-dashboard.png"));
    drop(browser);
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

    // A backup (with the pg_dump), the data wiped, the restore brings it back.
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

    // Under load on the API (one client, within the route's rate limit of
    // 50/s): a replica killed, another turned unhealthy; no request fails,
    // both come back.
    let load = Load::start_path(&plain, "/api/items?limit=1", 1);
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
    std::fs::write(t.dir().join("unhealthy.2"), "").unwrap();
    let sick = pid_of(t, "api-2").unwrap();
    assert!(eventually(60 * SEC, || {
        pid_of(t, "api-1").is_some_and(|p| p != killed)
            && pid_of(t, "api-2").is_some_and(|p| p != sick)
    }));
    let said = t.run_args(["logs", "api"]).stdout();
    assert!(
        said.lines()
            .any(|l| l.starts_with("api-2") && l.contains("unhealthy (")),
        "{said}"
    );
    std::fs::remove_file(t.dir().join("unhealthy.2")).unwrap();
    let ok = load.ok();
    assert!(eventually(30 * SEC, || load.ok() > ok + 20));
    load.finish_without_failures(50);
    // Faster than the rate limit: refused with 429, not passed on.
    let refused = (0..300)
        .filter(|_| http_get(&plain, "/api/items?limit=1").is_ok_and(|(s, _)| s == 429))
        .count();
    assert!(refused > 0, "no request over the rate limit was refused");

    // Stopped: nothing of it is left.
    let dir = t.dir().to_path_buf();
    assert_eq!(up.interrupt(), Some(130));
    assert!(
        eventually(10 * SEC, || processes_under(&dir).is_empty()),
        "left running: {:?}",
        processes_under(&dir)
    );
}
