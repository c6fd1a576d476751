//! The dashboard (`x-berth.dashboard`) against a running stack: in real
//! Chromium (the replica table matches `berth ps`, a replica killed from
//! outside turns red and heals without a reload, a printed log line shows
//! within a second, the restart button restarts replica by replica with no
//! failed request, screenshots at 1280 px and 375 px), and over plain HTTP
//! (nothing without a login, login links that work once, CSRF, the stream
//! resumed with `Last-Event-ID` losing no line, a read-only dashboard
//! mounted on the proxy behind basic authentication).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::browser::Browser;
use crate::support::{Load, REPLICA_SERVER, Test, eventually, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

/// Prints the content of each `say.*` file that appears, then removes it.
const TALKER: &str = r#"
import glob, os, time
print("talker ready", flush=True)
while True:
    for f in sorted(glob.glob("say.*")):
        with open(f) as fh:
            text = fh.read()
        os.remove(f)
        print(text, flush=True)
    time.sleep(0.01)
"#;

const STACK: &str = r#"
services:
  web:
    command: ["python3", "server.py"]
    deploy: {replicas: 3}
    restart: always
    stop_grace_period: 3s
    environment:
      DB_PASSWORD: hunter2
      GREETING: hello
    x-berth:
      ready: {http: /}
  talker:
    command: ["python3", "talker.py"]
    restart: always
    depends_on:
      web: {condition: service_healthy}
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    routes:
      - {path: /, service: web}
  dashboard:
    listen: "127.0.0.1:0"
"#;

fn stack(extra: &str) -> Test {
    Test::new()
        .file("server.py", REPLICA_SERVER)
        .file("talker.py", TALKER)
        .compose(&format!("{STACK}{extra}"))
        .args(["up"])
}

/// Makes the talker print `text`.
fn say(t: &Test, name: &str, text: &str) {
    let tmp = t.dir().join(format!("tmp.{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, t.dir().join(format!("say.{name}"))).unwrap();
}

/// `berth dashboard --json`: its first URL and login link.
fn login(t: &Test) -> (String, String) {
    let run = t.run_args(["dashboard", "--json"]).success();
    let v = run.json();
    (
        v["urls"][0].as_str().unwrap().to_string(),
        v["login"][0].as_str().unwrap().to_string(),
    )
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.to_string(), format!("/{path}"))
}

/// One HTTP/1.1 exchange: (status, head, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(30 * SEC)).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(text.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// An open event stream; everything read so far, raw.
struct Stream {
    socket: TcpStream,
    seen: String,
}

impl Stream {
    fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.set_read_timeout(Some(SEC / 5)).unwrap();
        let mut text = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        socket.write_all(text.as_bytes()).unwrap();
        Stream {
            socket,
            seen: String::new(),
        }
    }

    /// Reads until `needle` has come, for at most `timeout`.
    fn until(&mut self, needle: &str, timeout: Duration) -> &str {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 65536];
        while !self.seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never came on the stream; got:\n{}",
                &self.seen[self.seen.len().saturating_sub(3000)..]
            );
            match self.socket.read(&mut buf) {
                Ok(0) => panic!("the stream ended before {needle:?}:\n{}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
        &self.seen
    }
}

/// The id of the last frame holding `needle`.
fn id_of(seen: &str, needle: &str) -> String {
    let at = seen.find(needle).unwrap();
    seen[..at]
        .rsplit("\nid: ")
        .next()
        .and_then(|rest| rest.lines().next())
        .unwrap()
        .to_string()
}

/// Where the test run keeps screenshots for review: `target/screenshots`.
pub fn screenshots() -> PathBuf {
    let berth = crate::support::berth_bin();
    berth
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("screenshots")
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

/// The replicas as `berth ps --format json` has them, and as the page's
/// table shows them: name, state, health, restarts, pid.
const TABLE: &str = "[...document.querySelectorAll('#replicas tr[data-replica]')].map(tr => [tr.dataset.replica, tr.dataset.state, tr.dataset.health, tr.querySelector('[data-field=restarts]').textContent, tr.querySelector('[data-field=pid]').textContent])";

fn ps_rows(t: &Test) -> serde_json::Value {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    let rows: Vec<serde_json::Value> = ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["replicas"].as_array().unwrap().clone())
        .map(|r| {
            serde_json::json!([
                r["name"],
                r["state"],
                r["health"],
                r["restarts"].to_string(),
                r["pid"].as_u64().map_or("–".to_string(), |p| p.to_string()),
            ])
        })
        .collect();
    serde_json::Value::Array(rows)
}

fn pid_of(t: &Test, replica: &str) -> u64 {
    let ps = t.run_args(["ps", "--format", "json"]).success().json();
    ps["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["replicas"].as_array().unwrap().clone())
        .find(|r| r["name"] == replica)
        .and_then(|r| r["pid"].as_u64())
        .unwrap()
}

#[test]
fn the_dashboard_shows_the_stack_live_and_restarts_it_without_a_failed_request() {
    let mut up = stack("").spawn();
    up.wait_for("stack is up", 60 * SEC);
    let t = &up.test;
    let proxy = proxy_addr(t);
    let (_, link) = login(t);
    let browser = Browser::start();
    browser.set_size(1280, 900);
    browser.goto(&link);
    browser.wait_for(
        "document.querySelectorAll('#replicas tr[data-replica]').length === 4",
        10 * SEC,
    );
    // The table is what `berth ps` says (polled: both move while the
    // stack settles).
    assert!(
        eventually(20 * SEC, || browser.js(&format!("return {TABLE};"))
            == ps_rows(t)),
        "the table {} never matched ps {}",
        browser.js(&format!("return {TABLE};")),
        ps_rows(t)
    );
    // The dependency graph has both services, the arrow talker <- web.
    browser.wait_for(
        "document.querySelectorAll('#graph .node').length === 2 && document.querySelectorAll('#graph path.edge').length === 1",
        5 * SEC,
    );
    // A secret's value is masked in the service's details.
    browser
        .js("document.querySelector('tr[data-service=web] button.linkish').click(); return true;");
    let detail = browser.wait_for(
        "!document.querySelector('#detail').hidden && document.querySelector('#detail').textContent",
        5 * SEC,
    );
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("GREETING=hello"), "{detail}");
    assert!(
        detail.contains("DB_PASSWORD=••••••") && !detail.contains("hunter2"),
        "{detail}"
    );
    browser.set_size(1280, 900);
    browser.screenshot(&screenshots().join("dashboard-1280.png"));

    // A replica killed from outside turns red, then healthy again, with no reload.
    browser.js(
        "window.sawRed = false; window.loads = performance.getEntriesByType('navigation').length;\
         new MutationObserver(() => { if (document.querySelector('#replicas tr[data-replica=\"web-2\"][data-condition=\"bad\"]')) window.sawRed = true; })\
           .observe(document.querySelector('#replicas tbody'), {childList: true, subtree: true}); return true;",
    );
    let old = pid_of(t, "web-2");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    browser.wait_for("window.sawRed", 10 * SEC);
    browser.wait_for(
        &format!("(() => {{ const tr = document.querySelector('#replicas tr[data-replica=\"web-2\"]'); return tr && tr.dataset.condition === 'ok' && tr.querySelector('[data-field=pid]').textContent !== '{old}'; }})()"),
        20 * SEC,
    );
    // The timeline has the transition.
    browser.wait_for(
        "document.querySelector('#events li.bad[data-replica=\"web-2\"]') !== null",
        5 * SEC,
    );

    // A line the talker prints shows in the logs view within a second.
    browser.js("location.hash = '#logs'; return true;");
    browser.wait_for("!document.querySelector('#view-logs').hidden", 5 * SEC);
    browser.js(
        "window.seenAt = 0; const log = document.querySelector('#log');\
         new MutationObserver(() => { if (!window.seenAt && log.textContent.includes('marker-from-the-talker')) window.seenAt = Date.now(); })\
           .observe(log, {childList: true, subtree: true}); return true;",
    );
    let printed = now_ms();
    say(t, "1", "marker-from-the-talker");
    let seen = browser
        .wait_for("window.seenAt", 10 * SEC)
        .as_f64()
        .unwrap();
    assert!(
        seen - printed < 1000.0,
        "the line took {} ms to show",
        seen - printed
    );

    // The restart button restarts web replica by replica: no failed request.
    browser.js("location.hash = '#stack'; return true;");
    let before: Vec<u64> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|r| pid_of(t, r))
        .collect();
    let load = Load::start(&proxy, 4);
    assert!(eventually(10 * SEC, || load.ok() > 10));
    browser.js("document.querySelector('button[data-action=restart][data-service=web]').click(); return true;");
    browser.wait_for("document.querySelector('#confirm').open", 5 * SEC);
    browser.js("document.querySelector('#confirm-ok').click(); return true;");
    browser.wait_for(
        "document.querySelector('#result').dataset.state === 'done'",
        90 * SEC,
    );
    let count = load.ok();
    assert!(eventually(10 * SEC, || load.ok() > count + 10));
    // The edge view counts the load's requests on the route, with its rate
    // and latency.
    browser.js("location.hash = '#edge'; return true;");
    browser.wait_for(
        "(() => { const tr = document.querySelector('#routes tr[data-route=\"/\"]'); return tr && Number(tr.children[6].textContent) > 0 && tr.children[5].textContent.endsWith('ms'); })()",
        10 * SEC,
    );
    browser.screenshot(&screenshots().join("dashboard-edge-1280.png"));
    load.finish_without_failures(40);
    browser.js("location.hash = '#logs'; return true;");
    browser.screenshot(&screenshots().join("dashboard-logs-1280.png"));
    for (r, old) in ["web-1", "web-2", "web-3"].iter().zip(before) {
        assert_ne!(pid_of(t, r), old, "{r} was not restarted");
    }
    assert_eq!(
        browser.js("return window.loads;"),
        browser.js("return performance.getEntriesByType('navigation').length;"),
        "the page reloaded"
    );

    // A phone's width: nothing wider than the screen; light and dark.
    browser.js("location.hash = '#stack'; return true;");
    browser.set_size(375, 812);
    browser.wait_for("window.innerWidth <= 400", 5 * SEC);
    let overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth;");
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than the phone: {overflow}"
    );
    browser.screenshot(&screenshots().join("dashboard-375.png"));
    browser.prefer_dark(true);
    browser.wait_for(
        "getComputedStyle(document.body).backgroundColor === 'rgb(13, 17, 23)'",
        5 * SEC,
    );
    browser.screenshot(&screenshots().join("dashboard-375-dark.png"));
    drop(browser);
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn nothing_without_a_login_and_the_stream_resumes_without_losing_a_line() {
    let mut up = stack("").spawn();
    up.wait_for("stack is up", 60 * SEC);
    let t = &up.test;
    let (url, link) = login(t);
    let (addr, _) = split(&url);
    // No login: the page, the stream, the API and actions answer 401.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/api/stream"),
        ("GET", "/api/v1/ps"),
        ("GET", "/api/model"),
        ("POST", "/api/v1/restart"),
    ] {
        let (status, head, _) = request(&addr, method, path, &[], "");
        assert_eq!(status, 401, "{method} {path}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
    }
    assert_eq!(
        request(&addr, "GET", "/?token=not-the-token", &[], "").0,
        401
    );
    // The login link: a session cookie, and the same URL without the token.
    let (_, path) = split(&link);
    let (status, head, _) = request(&addr, "GET", &path, &[], "");
    assert_eq!(status, 303, "{head}");
    assert!(head.contains("location: /\r\n"), "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: berth_session="))
        .unwrap();
    assert!(
        cookie_line.contains("httponly") && cookie_line.contains("samesite=strict"),
        "{cookie_line}"
    );
    // The link works once.
    assert_eq!(request(&addr, "GET", &path, &[], "").0, 401);
    // (The session id is lowercase hex, which the lowercased head keeps.)
    let session = cookie_line
        .trim_start_matches("set-cookie: ")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = [("Cookie", session.as_str())];
    let (status, head, body) = request(&addr, "GET", "/", &cookie, "");
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(body.contains("<script src=\"app.js\""), "{body}");
    // Actions need the session's CSRF token.
    let restart = r#"{"services":["talker"]}"#;
    assert_eq!(
        request(&addr, "POST", "/api/v1/restart", &cookie, restart).0,
        403
    );
    let (_, _, s) = request(&addr, "GET", "/api/session", &cookie, "");
    let csrf = serde_json::from_str::<serde_json::Value>(&s).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let with_csrf = [cookie[0], ("X-Berth-CSRF", csrf.as_str())];
    let (status, _, body) = request(&addr, "POST", "/api/v1/restart", &with_csrf, restart);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("talker"), "{body}");
    // The token works as a bearer (scripts); what the CLI keeps for itself
    // (down, exec, deploy) is not offered.
    let token = std::fs::read_to_string(t.dir().join(".berth/dashboard.token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let auth = [("Authorization", bearer.as_str())];
    let (status, _, ps) = request(&addr, "GET", "/api/v1/ps", &auth, "");
    assert_eq!(status, 200);
    assert!(ps.contains("\"talker-1\""), "{ps}");
    assert_eq!(request(&addr, "POST", "/api/v1/down", &auth, "{}").0, 404);
    assert_eq!(
        request(&addr, "GET", "/api/v1/exec?service=web", &auth, "").0,
        404
    );

    // The stream: a line, then a disconnect; lines printed meanwhile come
    // first when it resumes from the last id it had.
    let mut stream = Stream::open(&addr, "/api/stream", &auth);
    say(t, "1", "resume-one");
    let seen = stream.until("resume-one", 10 * SEC).to_string();
    let last = id_of(&seen, "resume-one");
    drop(stream);
    say(t, "2", "resume-two");
    assert!(eventually(10 * SEC, || !t.dir().join("say.2").exists()));
    say(t, "3", "resume-three");
    assert!(eventually(10 * SEC, || {
        t.run_args(["logs", "talker"])
            .stdout()
            .contains("resume-three")
    }));
    let resumed = [auth[0], ("Last-Event-ID", last.as_str())];
    let mut stream = Stream::open(&addr, "/api/stream", &resumed);
    let seen = stream.until("resume-three", 10 * SEC).to_string();
    assert!(seen.contains("resume-two"), "{seen}");
    assert!(!seen.contains("resume-one"), "sent again: {seen}");
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn a_read_only_dashboard_on_the_proxy_behind_basic_authentication() {
    let mut up = Test::new()
        .file("server.py", REPLICA_SERVER)
        .file("talker.py", TALKER)
        .file("pw", "open sesame\n")
        .compose(&STACK.replace(
            "  dashboard:\n    listen: \"127.0.0.1:0\"\n",
            "  dashboard:\n    path: /_berth\n    read_only: true\n    auth: {basic: {user: admin, password_file: ./pw}}\n",
        ))
        .args(["up"])
        .spawn();
    up.wait_for("stack is up", 60 * SEC);
    let t = &up.test;
    let proxy = proxy_addr(t);
    let run = t.run_args(["dashboard"]).success();
    let out = run.stdout();
    assert!(out.contains(&format!("http://{proxy}/_berth/")), "{out}");
    assert!(
        out.contains("log in as admin with the password in"),
        "{out}"
    );
    let (status, head, _) = request(&proxy, "GET", "/_berth", &[], "");
    assert_eq!(status, 303);
    assert!(head.contains("location: /_berth/"), "{head}");
    let (status, head, _) = request(&proxy, "GET", "/_berth/", &[], "");
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic"), "{head}");
    let wrong = [("Authorization", "Basic YWRtaW46d3Jvbmc=")]; // admin:wrong
    assert_eq!(request(&proxy, "GET", "/_berth/", &wrong, "").0, 401);
    let right = [("Authorization", "Basic YWRtaW46b3BlbiBzZXNhbWU=")]; // admin:open sesame
    let (status, head, body) = request(&proxy, "GET", "/_berth/", &right, "");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("path=/_berth/"), "{head}");
    let (status, _, ps) = request(&proxy, "GET", "/_berth/api/v1/ps", &right, "");
    assert_eq!(status, 200);
    assert!(ps.contains("\"web-3\""), "{ps}");
    let (status, _, body) = request(
        &proxy,
        "POST",
        "/_berth/api/v1/restart",
        &right,
        r#"{"services":["web"]}"#,
    );
    assert_eq!(status, 403);
    assert!(body.contains("read-only"), "{body}");
    // The stream passes through the proxy as it comes.
    let mut stream = Stream::open(&proxy, "/_berth/api/stream", &right);
    say(t, "1", "through-the-proxy");
    stream.until("through-the-proxy", 10 * SEC);
    assert_eq!(up.interrupt(), Some(130));
}

#[test]
fn an_exposed_dashboard_without_auth_and_a_taken_port_are_refused() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: [sleep, \"60\"]\nx-berth:\n  dashboard:\n    listen: \"0.0.0.0:8081\"\n",
    );
    t.run_args(["config", "-q"])
        .code(2)
        .stderr_has("compose.yaml:6")
        .stderr_has(
            "0.0.0.0:8081 is reachable from other machines and the dashboard has no `auth`",
        );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = Test::new().compose(&format!(
        "services:\n  web:\n    command: [sleep, \"60\"]\nx-berth:\n  dashboard:\n    listen: \"127.0.0.1:{port}\"\n"
    ));
    t.run_args(["up"])
        .code(1)
        .stderr_has(&format!("the dashboard cannot listen on 127.0.0.1:{port}"));
    t.run_args(["dashboard"]).code(1).stderr_has("not running");
}
