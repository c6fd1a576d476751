//! The fluent test builder: a temporary project directory, files in it,
//! and the berth binary run against it.
//!
//! ```ignore
//! Test::new()
//!     .compose("services: {web: {command: [sleep, '1']}}")
//!     .args(["config", "--services"])
//!     .run()
//!     .success()
//!     .stdout_is("web\n");
//! ```

#![allow(dead_code)] // not every test module uses every helper

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The berth binary under test.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// `shared/` beside the repository (conformance vectors, stacks).
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_SHARED_DIR") {
        return PathBuf::from(d);
    }
    for c in [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
        PathBuf::from("/work/shared"),
    ] {
        if c.is_dir() {
            return c.canonicalize().unwrap_or(c);
        }
    }
    panic!("shared/ not found; set BERTH_SHARED_DIR")
}

/// A test project: a temporary directory and a command line to run in it.
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    stdin: Option<String>,
}

impl Test {
    pub fn new() -> Self {
        Test {
            dir: tempfile::Builder::new()
                .prefix("berth-test-")
                .tempdir()
                .unwrap(),
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
        }
    }

    /// The project directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `compose.yaml`.
    pub fn compose(self, text: &str) -> Self {
        self.file("compose.yaml", text)
    }

    /// Writes a file (parent directories created).
    pub fn file(self, name: &str, text: &str) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Runs in this subdirectory of the project instead of its root.
    pub fn cwd(mut self, sub: &str) -> Self {
        let p = self.dir.path().join(sub);
        std::fs::create_dir_all(&p).unwrap();
        self.cwd = Some(p);
        self
    }

    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// The command, ready to run or spawn.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.args(&self.args)
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs berth with other arguments in the same project, to completion.
    pub fn run_args<I: IntoIterator<Item = S>, S: Into<String>>(&self, args: I) -> Run {
        let mut cmd = Command::new(berth_bin());
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        cmd.args(&args)
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Run {
            output: cmd.output().unwrap(),
            args,
        }
    }

    /// Runs berth to completion.
    pub fn run(&self) -> Run {
        let mut cmd = self.command();
        let output = if let Some(input) = &self.stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        };
        Run {
            output,
            args: self.args.clone(),
        }
    }
}

/// A finished run, with assertions that print everything on failure.
pub struct Run {
    pub output: Output,
    args: Vec<String>,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "berth {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }

    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.output.status.code(), Some(code), "{}", self.describe());
        self
    }

    pub fn success(self) -> Self {
        self.code(0)
    }

    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn stdout_is(self, want: &str) -> Self {
        assert_eq!(self.stdout(), want, "{}", self.describe());
        self
    }

    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn stderr_lacks(self, needle: &str) -> Self {
        assert!(
            !self.stderr().contains(needle),
            "stderr has {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", self.describe()))
    }
}

/// A berth running in the background (e.g. `up`), killed when dropped.
pub struct Running {
    /// Keeps the project directory alive while berth runs.
    pub test: Test,
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Test {
    /// Starts berth in the background, stdout read line by line.
    pub fn spawn(self) -> Running {
        use std::io::BufRead;
        let mut child = self
            .command()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let err = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err2 = err.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut e = err2.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        Running {
            test: self,
            child,
            lines: rx,
            seen: Vec::new(),
            stderr: err,
        }
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: std::time::Duration) -> String {
        self.wait_for_line(
            &format!("a line containing {needle:?}"),
            |l| l.contains(needle),
            timeout,
        )
    }

    /// Waits for `replica` (e.g. `web-1`) itself to print `text` (a line
    /// `web-1  | text`, not one of berth's own lines about it).
    pub fn wait_for_output(
        &mut self,
        replica: &str,
        text: &str,
        timeout: std::time::Duration,
    ) -> String {
        let (lead, tail) = (format!("{replica} "), format!(" | {text}"));
        self.wait_for_line(
            &format!("{replica} printing {text:?}"),
            |l| l.starts_with(&lead) && l.ends_with(&tail),
            timeout,
        )
    }

    /// Waits for a stdout line (`what`) for which `is` holds; returns it.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        is: impl Fn(&str) -> bool,
        timeout: std::time::Duration,
    ) -> String {
        if let Some(l) = self.seen.iter().find(|l| is(l)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if is(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {timeout:?}\n--- stdout so far\n{}\n--- stderr\n{}",
                    self.seen.join("\n"),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Collects stdout lines that arrived so far.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// What a replica (`c-1`) printed so far, each line's whitespace
    /// squeezed (the log prefix pads names to one width).
    pub fn output_of(&mut self, replica: &str) -> Vec<String> {
        let prefix = format!("{replica} ");
        self.drain()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|l| l.split_once('|'))
            .map(|(_, text)| text.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// Asserts that the replica printed each of `lines` (whitespace
    /// squeezed, as [`Running::output_of`] gives them).
    pub fn assert_printed(&mut self, replica: &str, lines: &[&str]) {
        let printed = self.output_of(replica);
        for want in lines {
            assert!(
                printed.iter().any(|l| l == want),
                "{replica} did not print {want:?}: {printed:?}"
            );
        }
    }

    /// Count of lines seen so far containing `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.drain().iter().filter(|l| l.contains(needle)).count()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY-free: nix wraps kill(2).
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::try_from(sig).unwrap(),
        );
    }

    /// Waits for berth to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain();
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "berth did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.drain().join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Ctrl-C, then waits for the exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        self.signal(libc::SIGINT);
        self.wait_exit(std::time::Duration::from_secs(20))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Graceful first, so the services are cleaned up by berth itself.
            self.signal(libc::SIGINT);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `berth ps --format json` of the project's running stack, polled until
/// `has` holds (a foreground `up` may still be starting), for at most 30 s;
/// `what` names what was looked for when it never comes.
pub fn ps_until(
    t: &Test,
    what: &str,
    has: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let timeout = std::time::Duration::from_secs(30);
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let run = t.run_args(["ps", "--format", "json"]);
        if run.output.status.success()
            && let Ok(ps) = serde_json::from_str::<serde_json::Value>(&run.stdout())
            && has(&ps)
        {
            return ps;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`berth ps` reported no {what} within {timeout:?}\n{}",
            run.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Where the stack's edge proxy listens (its first address), as `ps`
/// reports it: with `x-berth.proxy.listen: ["127.0.0.1:0"]`, the port berth
/// bound itself.
pub fn proxy_addr(t: &Test) -> String {
    proxy_listener(t, "http://")
}

/// Where the stack's edge proxy listens with TLS (its first `listen_tls`).
pub fn proxy_tls_addr(t: &Test) -> String {
    proxy_listener(t, "https://")
}

fn proxy_listener(t: &Test, scheme: &str) -> String {
    let first = |ps: &serde_json::Value| {
        ps["proxy"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str()?.strip_prefix(scheme))
            .next()
            .map(str::to_string)
    };
    let ps = ps_until(t, "proxy address", |ps| first(ps).is_some());
    let addr = first(&ps).unwrap();
    assert!(!addr.ends_with(":0"), "port 0 reported as bound: {ps}");
    addr
}

/// Where berth listens for `service`'s declared port `declared`, as `ps`
/// reports it: with `ports: ["127.0.0.1::<declared>"]`, the port berth
/// bound itself.
pub fn listening(t: &Test, service: &str, declared: u16) -> String {
    let key = declared.to_string();
    let find = |ps: &serde_json::Value| {
        ps["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == service)?["listening"][&key]
            .as_str()
            .map(str::to_string)
    };
    let ps = ps_until(
        t,
        &format!("address for {service}'s port {declared}"),
        |ps| find(ps).is_some(),
    );
    let addr = find(&ps).unwrap();
    assert!(!addr.ends_with(":0"), "port 0 reported as bound: {ps}");
    addr
}

/// A minimal HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_get_within(addr, path, std::time::Duration::from_secs(5))
}

/// [`http_get`] waiting at most `wait` for the answer.
pub fn http_get_within(
    addr: &str,
    path: &str,
    wait: std::time::Duration,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(wait))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls until `f` is true.
pub fn eventually(timeout: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    f()
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// A stack started with `up -d`; `down` when dropped, even if the test failed.
pub struct Detached<'a> {
    pub test: &'a Test,
}

impl Test {
    /// `berth up -d --wait` (must succeed); the stack goes down with the guard.
    pub fn up_detached(&self) -> Detached<'_> {
        self.run_args(["up", "-d", "--wait"]).success();
        Detached { test: self }
    }
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.test.run_args(["down", "--timeout", "2"]);
    }
}

/// A threaded HTTP/1.1 server on `$PORT` answering `replica N pid P`, after
/// `$DELAY_MS` (default 0) so that restarts catch requests in flight. While
/// a file `hang.N` exists in its directory, replica N hangs every request
/// (and marks that it did in `stuck.N`): a replica that stopped answering.
pub const REPLICA_SERVER: &str = r#"
import http.server, os, time
DELAY = int(os.environ.get("DELAY_MS", "0")) / 1000
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(DELAY)
        replica = os.environ["BERTH_REPLICA"]
        if os.path.exists("hang." + replica):
            open("stuck." + replica, "w").close()
        while os.path.exists("hang." + replica):
            time.sleep(0.05)
        body = ("replica %s pid %d" % (replica, os.getpid())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print("serving on", os.environ["PORT"], flush=True)
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default (5) drops connections under load
    daemon_threads = True
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// The pause between one load client's requests: at most 50 a second each.
const PACE: std::time::Duration = std::time::Duration::from_millis(20);

/// Clients sending `GET /` to an address in a loop until finished.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    failed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: &str, clients: usize) -> Load {
        Load::start_path(addr, "/", clients)
    }

    /// Clients sending `GET path` to `addr` in a loop until finished.
    pub fn start_path(addr: &str, path: &str, clients: usize) -> Load {
        use std::sync::atomic::Ordering;
        let load = Load {
            stop: Default::default(),
            ok: Default::default(),
            failed: Default::default(),
            threads: Vec::new(),
        };
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed, addr, path) = (
                    load.stop.clone(),
                    load.ok.clone(),
                    load.failed.clone(),
                    addr.to_string(),
                    path.to_string(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        // A slow answer on a loaded test machine is not a
                        // failed one: errors and non-200 answers are.
                        match http_get_within(&addr, &path, std::time::Duration::from_secs(20)) {
                            Ok((200, _)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => failed.lock().unwrap().push(format!("{other:?}")),
                        }
                        // Paced: each request is a new connection, and an
                        // unpaced loop runs the machine out of ephemeral
                        // ports (TIME_WAIT) when tests run side by side.
                        std::thread::sleep(PACE);
                    }
                })
            })
            .collect();
        Load { threads, ..load }
    }

    /// Requests answered 200 so far.
    pub fn ok(&self) -> usize {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops the clients and asserts that none of at least `min_ok`
    /// requests failed.
    pub fn finish_without_failures(self, min_ok: usize) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let ok = self.ok.load(Ordering::Relaxed);
        let failed = self.failed.lock().unwrap();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {:?}",
            failed.len(),
            ok + failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(ok >= min_ok, "only {ok} requests");
    }
}

/// `berth events --json` of the project's running stack: the process, and
/// its events as they come (a line that is not JSON fails the test).
pub fn events_json(
    t: &Test,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<serde_json::Value>,
) {
    use std::io::BufRead;
    let mut events = Command::new(berth_bin())
        .args(["events", "--json"])
        .current_dir(t.dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = events.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let event =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    (events, rx)
}

/// The newest PostgreSQL server's `bin` directory (`.ci/run` installs it).
pub fn postgres_bin() -> std::path::PathBuf {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|b| b.join("postgres").is_file());
    found.sort();
    found
        .pop()
        .expect("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
}
