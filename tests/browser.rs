//! A real browser for tests of web pages: headless Chromium driven through
//! chromedriver's W3C WebDriver API (plain JSON over HTTP). Both come from
//! Debian's `chromium` and `chromium-driver` packages, which `.ci/run`
//! installs; a missing browser fails the test rather than skipping it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A browser session; chromedriver and Chromium are killed when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // Read the head, then exactly Content-Length bytes (chromedriver may
    // keep the connection open).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let payload = match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        Some(n) => {
            let mut body = vec![0u8; n];
            s.read_exact(&mut body)?;
            String::from_utf8_lossy(&body).into_owned()
        }
        None => {
            let mut body = Vec::new();
            s.read_to_end(&mut body)?;
            let body = String::from_utf8_lossy(&body).into_owned();
            if head.contains("transfer-encoding: chunked") {
                dechunk(&body)
            } else {
                body
            }
        }
    };
    serde_json::from_str(&payload).map_err(|e| std::io::Error::other(format!("{e}: {payload}")))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n.min(tail.len())]);
        rest = tail.get(n + 2..).unwrap_or("");
    }
    out
}

/// The port chromedriver (started with `--port=0`) says it listens on:
/// "ChromeDriver was started successfully on port N." within 20 s. Its
/// stdout is read to the end meanwhile, so that it never blocks on it.
fn listening_port(driver: &mut Child) -> Option<u16> {
    use std::io::BufRead;
    let stdout = driver.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let port = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim().trim_end_matches('.').parse::<u16>().ok());
            if let Some(port) = port {
                let _ = tx.send(port);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).ok()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Browser {
        // Port 0: chromedriver binds a free port and says which.
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is required for the browser tests (Debian package chromium-driver; .ci/run installs it)");
        let port = match listening_port(&mut driver) {
            Some(port) => port,
            None => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not start");
            }
        };
        let profile = tempfile::tempdir().unwrap();
        // Pages on berth's development certificate (TLS tests) load as a
        // developer's browser loads them once told to trust it.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let reply = request(port, "POST", "/session", Some(&caps)).unwrap();
        let session = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {reply}"))
            .to_string();
        Browser {
            driver,
            port,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let reply = request(self.port, method, &path, body.as_ref()).unwrap();
        if reply["value"].get("error").is_some() {
            panic!("webdriver {method} {path}: {}", reply["value"]);
        }
        reply["value"].clone()
    }

    /// Opens a page.
    pub fn goto(&self, url: &str) {
        // Chromium abandons a load when the machine's interfaces change
        // (the Docker Engine adding a container's veth does), showing
        // ERR_NETWORK_CHANGED: that is the machine, not the page; load
        // it again.
        for _ in 0..5 {
            self.call("POST", "/url", Some(json!({ "url": url })));
            let page = self.js("return document.body ? document.body.innerText : ''");
            if !page.as_str().unwrap_or("").contains("ERR_NETWORK_CHANGED") {
                return;
            }
        }
        panic!("{url}: ERR_NETWORK_CHANGED five times in a row");
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Sets the window's outer size in CSS pixels.
    pub fn set_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Emulates `prefers-color-scheme: dark` (or light) through Chromium's
    /// DevTools protocol.
    pub fn prefer_dark(&self, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {"features": [{"name": "prefers-color-scheme", "value": value}]}
            })),
        );
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let data = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or(""))
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// On the demo app's page (`examples/demo-web`): adds an item through
    /// the form and waits until the list shows it.
    pub fn add_demo_item(&self, text: &str) {
        self.js(&format!(
            "document.querySelector('#new-item').value = {text:?};\
             document.querySelector('#add').click(); return true;"
        ));
        self.wait_for(
            &format!("[...document.querySelectorAll('#items li')].some(li => li.textContent.includes({text:?}))"),
            Duration::from_secs(10),
        );
    }

    /// On the demo app's page: sends `text` over its WebSocket once open
    /// and waits for the echo.
    pub fn echo_over_demo_websocket(&self, text: &str) {
        self.wait_for(
            "document.querySelector('#ws-status').dataset.state === 'open'",
            Duration::from_secs(10),
        );
        self.js(&format!(
            "document.querySelector('#ws-input').value = {text:?};\
             document.querySelector('#ws-send').click(); return true;"
        ));
        self.wait_for(
            &format!("document.querySelector('#ws-log').textContent.includes({text:?})"),
            Duration::from_secs(10),
        );
    }

    /// Polls a JavaScript expression until it is truthy; its value.
    pub fn wait_for(&self, expression: &str, timeout: Duration) -> Value {
        match self.poll(expression, timeout) {
            Ok(v) => v,
            Err(page) => panic!("`{expression}` stayed falsy; page: {page}"),
        }
    }

    /// Opens `url` and waits for `expression`, as `goto` then `wait_for`;
    /// a page left blank (nothing rendered: a load the Docker Engine's
    /// network changes abandoned once the document had started, which
    /// shows no error page) is loaded again, twice at most. A page that
    /// rendered anything and still fails `expression` fails at once.
    pub fn open_until(&self, url: &str, expression: &str, timeout: Duration) -> Value {
        for _ in 0..3 {
            self.goto(url);
            match self.poll(expression, timeout) {
                Ok(v) => return v,
                Err(page) if page.trim().is_empty() => continue,
                Err(page) => panic!("`{expression}` stayed falsy; page: {page}"),
            }
        }
        panic!("{url}: the page stayed blank in three loads");
    }

    /// The expression's value once truthy, or the page's text at the deadline.
    fn poll(&self, expression: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(&format!("return ({expression});"));
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                let page = self.js("return document.body ? document.body.innerText : ''");
                return Err(page.as_str().unwrap_or("").to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
