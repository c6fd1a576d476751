//! The edge proxy inside `berth up`, end to end: the demo stack in a real
//! browser, the native-quickstart stack, balancing, `/health`, `/metrics`,
//! and no failed request while replicas restart, scale or die.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::browser::Browser;
use crate::support::{Load, REPLICA_SERVER, Test, eventually, http_get, proxy_addr, shared_dir};

const SEC: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo API binary, built (debug) next to the berth under test.
pub fn demo_api() -> PathBuf {
    let berth = crate::support::berth_bin();
    let target_dir = berth.parent().and_then(Path::parent).unwrap();
    let demo = berth.with_file_name("demo-api");
    if !demo.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "demo-api", "--target-dir"])
            .arg(target_dir)
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success(), "building demo-api failed");
    }
    demo
}

/// The repository's demo stack with a private state directory, the debug
/// demo-api and ports berth picks: the proxy's ([`proxy_addr`] once it
/// runs), and api's 8000 published instead of exposed (an exposed port
/// binds 127.0.0.1:8000, which tests side by side would share).
fn demo_stack() -> Test {
    let demo = demo_api();
    let demo = demo.display();
    let t = Test::new();
    let state = t.dir().join("state");
    let t = t.file(
        "override.yaml",
        &format!(
            r#"
services:
  migrate:
    command: !override ["{demo}", "migrate"]
  api:
    command: !override ["{demo}"]
    expose: !reset []
    ports: ["127.0.0.1::8000"]
    stop_grace_period: 5s
    healthcheck:
      test: !override ["CMD", "{demo}", "healthcheck"]
x-berth:
  state_dir: {state}
  proxy:
    listen: !override ["127.0.0.1:0"]
"#,
            state = state.display()
        ),
    );
    let root = repo().join("compose.yaml");
    // COMPOSE_FILE, so that other verbs (`restart`, `down`) find the stack too.
    let files = format!("{}:override.yaml", root.display());
    t.env("COMPOSE_FILE", &files).args(["up", "--no-build"])
}

#[test]
fn the_demo_stack_works_in_a_real_browser() {
    let mut up = demo_stack().spawn();
    up.wait_for("stack is up", 60 * SEC);
    let proxy = proxy_addr(&up.test);
    let browser = Browser::start();
    browser.goto(&format!("http://{proxy}/"));
    // The page reads /env-config.js, lists the items the migration seeded,
    // says which replica answered, and opens the WebSocket.
    browser.wait_for(
        "window._env_ && window._env_.API_BASE_URL === '/api'",
        10 * SEC,
    );
    browser.wait_for(
        "document.querySelectorAll('#items li').length >= 3",
        10 * SEC,
    );
    let replica = browser.wait_for("/replica [0-9]/.test(document.querySelector('#replica').textContent) && document.querySelector('#replica').textContent", 10 * SEC);
    assert!(replica.as_str().unwrap().contains("replica"), "{replica}");
    browser.wait_for(
        "document.querySelector('#ws-status').dataset.state === 'open'",
        10 * SEC,
    );
    let hello = browser.wait_for("document.querySelector('#ws-hello').textContent.includes('replica') && document.querySelector('#ws-hello').textContent", 10 * SEC);
    assert!(hello.as_str().unwrap().contains("replica"), "{hello}");
    // Add an item through the form: a POST through the proxy to a replica.
    browser.add_demo_item("written by the browser test");
    // Echo through the WebSocket.
    browser.echo_over_demo_websocket("ping through berth");
    // All of it under the static route's default Content-Security-Policy.
    browser.js(
        "fetch('/').then(r => window.csp = r.headers.get('content-security-policy') || 'none');\
         return true;",
    );
    let csp = browser.wait_for("window.csp", 10 * SEC);
    assert!(csp.as_str().unwrap().contains("script-src 'self'"), "{csp}");
    // A deep link is answered by the SPA fallback and renders the About view.
    browser.goto(&format!("http://{proxy}/about"));
    browser.wait_for("!document.querySelector('#view-about').hidden", 10 * SEC);
    // A missing asset is a 404, not the index page.
    assert_eq!(
        http_get(&proxy, "/assets/missing.1234abcd.js").unwrap().0,
        404
    );
    drop(browser);
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn the_demo_api_is_balanced_and_its_websocket_echoes_through_the_proxy() {
    let mut up = demo_stack().spawn();
    up.wait_for("stack is up", 60 * SEC);
    let proxy = proxy_addr(&up.test);
    let mut replicas = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (status, body) = http_get(&proxy, "/api/whoami").unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        replicas.insert(v["replica"].as_str().unwrap().to_string());
    }
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    // The access log is berth's `proxy` source: a JSON line per request
    // (batched per worker, so within a moment), and nothing else.
    let access = || up.test.run_args(["logs", "proxy"]).success().stdout();
    assert!(
        eventually(5 * SEC, || access()
            .matches("\"path\":\"/api/whoami\"")
            .count()
            >= 30),
        "{}",
        access()
    );
    assert!(
        access().lines().all(|l| l.starts_with("proxy")),
        "{}",
        access()
    );
    up.test
        .run_args(["logs", "nosuch"])
        .code(2)
        .stderr_has("no such service: nosuch (the file's: migrate, api; berth's own lines: berth, proxy, backup)");
    // /health and /metrics from the proxy itself.
    let (status, body) = http_get(&proxy, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["services"]["api"]["replicas"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (_, metrics) = http_get(&proxy, "/metrics").unwrap();
    // Whole lines: a series and its exact value.
    let has = |line: &str| metrics.lines().any(|l| l == line);
    assert!(
        has("berth_replica_ready{service=\"api\",replica=\"2\"} 1"),
        "{metrics}"
    );
    assert!(
        has("berth_replica_restarts_total{service=\"api\",replica=\"1\"} 0"),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    // A WebSocket handshake and an echo, by hand.
    let echo = websocket_echo(&proxy, "/ws", "hello through the edge");
    assert!(echo.iter().any(|m| m.contains("replica")), "{echo:?}");
    assert!(
        echo.iter().any(|m| m == "hello through the edge"),
        "{echo:?}"
    );
    // The access log is in the stream.
    assert!(eventually(5 * SEC, || up.count("\"path\":\"/api/whoami\"") >= 30));
    assert_eq!(up.interrupt(), Some(130));
}

/// A minimal WebSocket client: handshake, one text frame, the first two text
/// frames read back (the replica's hello and the echo).
fn websocket_echo(addr: &str, path: &str, text: &str) -> Vec<String> {
    let mut ws = WebSocket::open(addr, path);
    ws.send_text(text);
    let mut got = Vec::new();
    while got.len() < 2 {
        match ws.read_frame() {
            Some((1, data)) => got.push(String::from_utf8_lossy(&data).into_owned()),
            Some(_) => {}
            None => break,
        }
    }
    got
}

/// The client side of a WebSocket, by hand: enough to test the proxy.
struct WebSocket(std::net::TcpStream);

impl WebSocket {
    fn open(addr: &str, path: &str) -> WebSocket {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(5 * SEC)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        WebSocket(s)
    }

    /// Sends a masked text frame (short payloads only).
    fn send_text(&mut self, text: &str) {
        use std::io::Write;
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    /// The next frame's opcode and payload; `None` once the connection ends.
    fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use std::io::Read;
        let mut h = [0u8; 2];
        self.0.read_exact(&mut h).ok()?;
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.0.read_exact(&mut l).ok()?;
                usize::from(u16::from_be_bytes(l))
            }
            len => usize::from(len),
        };
        let mut data = vec![0u8; len];
        self.0.read_exact(&mut data).ok()?;
        Some((h[0] & 0x0f, data))
    }

    /// The next text frame's payload.
    fn read_text(&mut self) -> Option<String> {
        loop {
            match self.read_frame()? {
                (1, data) => return Some(String::from_utf8_lossy(&data).into_owned()),
                (8, _) => return None,
                _ => {}
            }
        }
    }
}

#[test]
fn a_websocket_keeps_its_replica_through_a_rolling_restart_for_the_grace_period() {
    let t = demo_stack();
    t.run_args(["up", "-d", "--wait", "--no-build"]).success();
    let _stack = crate::support::Detached { test: &t };
    let proxy = proxy_addr(&t);
    let mut ws = WebSocket::open(&proxy, "/ws");
    let hello = ws.read_text().unwrap();
    assert!(hello.contains("replica"), "{hello}");
    ws.send_text("before");
    assert_eq!(ws.read_text().as_deref(), Some("before"));

    let api_pids = || -> Vec<u64> {
        let ps = t.run_args(["ps", "--format", "json"]).success().json();
        let services = ps["services"].as_array().unwrap();
        let api = services.iter().find(|s| s["name"] == "api").unwrap();
        let replicas = api["replicas"].as_array().unwrap();
        replicas.iter().filter_map(|r| r["pid"].as_u64()).collect()
    };
    let old = api_pids();
    assert_eq!(old.len(), 3, "{old:?}");
    let restarted = std::time::Instant::now();
    t.run_args(["restart", "api"])
        .success()
        .stdout_has("restarted without downtime");
    // New processes serve new requests, and once the proxy has let go of the
    // old ones (three answers in a row from new ones), the old one this
    // WebSocket is on is draining: it keeps the session until
    // stop_grace_period (5 s) ends.
    let mut fresh = 0;
    let mut answered = Vec::new();
    assert!(
        eventually(5 * SEC, || {
            let (status, body) = http_get(&proxy, "/api/whoami").unwrap();
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let pid = v["pid"].as_u64().unwrap();
            answered.push(pid);
            fresh = if old.contains(&pid) { 0 } else { fresh + 1 };
            fresh >= 3
        }),
        "old {old:?}, answered by {answered:?}"
    );
    ws.send_text("during the drain");
    assert_eq!(ws.read_text().as_deref(), Some("during the drain"));
    // Then the old replica is stopped and closes the session: Close 1001.
    ws.0.set_read_timeout(Some(10 * SEC)).unwrap();
    let close = loop {
        match ws.read_frame() {
            Some((8, data)) => break data,
            Some(_) => {}
            None => panic!("the connection ended without a Close frame"),
        }
    };
    assert_eq!(&close[..2], &1001u16.to_be_bytes(), "{close:?}");
    let after = restarted.elapsed();
    assert!(after >= 4 * SEC && after < 9 * SEC, "{after:?}");
}

#[test]
fn native_quickstart_is_served_through_the_proxy() {
    let t = Test::new();
    crate::up::copy_dir(&shared_dir().join("stacks/native-quickstart"), t.dir());
    // Ports berth picks instead of the stack's fixed ones (api's exposed
    // 8000 binds 127.0.0.1:8000 too).
    let t = t.file(
        "compose.override.yaml",
        "services:\n  api:\n    expose: !reset []\n    ports: [\"127.0.0.1::8000\"]\nx-berth:\n  proxy:\n    listen: !override [\"127.0.0.1:0\"]\n",
    );
    let mut up = t.arg("up").spawn();
    up.wait_for("stack is up", 30 * SEC);
    let proxy = proxy_addr(&up.test);
    let (status, page) = http_get(&proxy, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    let (status, env) = http_get(&proxy, "/env-config.js").unwrap();
    assert_eq!(
        (status, env.trim()),
        (200, "window._env_ = {\"API_BASE_URL\":\"/api\"};")
    );
    let mut replicas = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (status, body) = http_get(&proxy, "/api/whoami").unwrap();
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        replicas.insert(v["replica"].as_str().unwrap().to_string());
    }
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    // SPA fallback for client-side routes, 404 for missing assets.
    assert_eq!(http_get(&proxy, "/some/client/route").unwrap().0, 200);
    assert_eq!(http_get(&proxy, "/assets/nope.js").unwrap().0, 404);
    assert_eq!(up.interrupt(), Some(130));
}

/// The replica server dies at once on SIGTERM, so only draining keeps
/// requests from failing. The proxy listens on a port berth picks
/// ([`proxy_addr`]).
fn proxied_stack(replicas: u32) -> Test {
    Test::new().file("server.py", REPLICA_SERVER).compose(&format!(
        "services:\n  web:\n    command: [python3, server.py]\n    environment: {{DELAY_MS: \"10\"}}\n    deploy: {{replicas: {replicas}}}\n    restart: always\n    x-berth:\n      ready: {{http: /}}\nx-berth:\n  proxy:\n    listen: [\"127.0.0.1:0\"]\n    access_log: false\n    routes:\n      - {{path: /, service: web}}\n"
    ))
}

#[test]
fn a_rolling_restart_through_the_proxy_loses_no_request() {
    let t = proxied_stack(3);
    let _stack = t.up_detached();
    let proxy = proxy_addr(&t);
    let load = Load::start(&proxy, 8);
    // Requests flowing before, during and after each change.
    let flowing = |more: usize| {
        let from = load.ok();
        assert!(
            eventually(10 * SEC, || load.ok() >= from + more),
            "requests stopped at {}",
            load.ok()
        );
    };
    flowing(20);
    t.run_args(["restart", "web"]).success();
    t.run_args(["scale", "web=5"]).success();
    flowing(20);
    t.run_args(["scale", "web=2"]).success();
    flowing(20);
    load.finish_without_failures(60);
}

#[test]
fn a_replica_killed_under_load_loses_no_request() {
    let t = proxied_stack(3);
    let _stack = t.up_detached();
    let proxy = proxy_addr(&t);
    let load = Load::start(&proxy, 8);
    assert!(eventually(10 * SEC, || load.ok() >= 20));
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    let victim = &ps["services"][0]["replicas"][1];
    assert_eq!(victim["index"], 2, "{victim}");
    let pid = victim["pid"].as_u64().unwrap() as i32;
    // It dies with requests in flight: replica 2 holds what it gets until
    // then, and those must be answered by another one.
    let (hang, stuck) = (t.dir().join("hang.2"), t.dir().join("stuck.2"));
    std::fs::write(&hang, "").unwrap();
    assert!(
        eventually(10 * SEC, || stuck.exists()),
        "replica 2 got no request"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::remove_file(&hang).unwrap();
    // Under load all along: the killed replica comes back (restart: always)
    // and rejoins when ready.
    assert!(eventually(10 * SEC, || {
        let ps = t.run_args(["ps", "--format", "json"]).success().json();
        let r = &ps["services"][0]["replicas"][1];
        r["ready"] == true && r["restarts"] == 1
    }));
    let back = load.ok();
    assert!(eventually(10 * SEC, || load.ok() >= back + 20));
    load.finish_without_failures(40);
    let mut seen = std::collections::BTreeSet::new();
    assert!(eventually(5 * SEC, || {
        if let Ok((200, body)) = http_get(&proxy, "/") {
            seen.insert(body);
        }
        seen.len() == 3
    }));
}

#[test]
fn a_proxy_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = Test::new().compose(&format!(
        "services:\n  a:\n    command: [sleep, '60']\nx-berth:\n  proxy:\n    listen: [\"127.0.0.1:{port}\"]\n"
    ));
    let mut up = t.arg("up").spawn();
    assert_eq!(up.wait_exit(15 * SEC), Some(1));
    assert!(
        up.stderr().contains(&format!(
            "the proxy cannot start: cannot listen on 127.0.0.1:{port}"
        )),
        "{}",
        up.stderr()
    );
}
