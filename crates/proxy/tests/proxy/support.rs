//! Test harness: a fake engine (`FakeStack`), real backend servers on
//! 127.0.0.1:0, the proxy on port 0, and small HTTP helpers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_compose::units::{ByteSize, Duration as Dur};
use berth_compose::xberth::{LoadBalancing, ProxySettings, ProxyTimeouts, Route, RouteTarget};
use berth_proxy::{CancellationToken, Proxy, StackView, Upstream, Upstreams};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub type TestBody = BoxBody<Bytes, Infallible>;

// ---------------------------------------------------------------- fake engine

#[derive(Default)]
pub struct FakeStack {
    sets: Mutex<HashMap<String, watch::Sender<Upstreams>>>,
    pub unhealthy: AtomicBool,
    pub logs: Mutex<Vec<String>>,
}

impl FakeStack {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeStack::default())
    }

    /// Publishes the ready replicas of `service`.
    pub fn set(&self, service: &str, replicas: &[&Backend]) {
        let set: Upstreams = replicas
            .iter()
            .map(|b| Upstream {
                replica: b.name.clone().into(),
                addr: b.addr,
            })
            .collect();
        self.set_raw(service, set);
    }

    pub fn set_raw(&self, service: &str, set: Upstreams) {
        let mut sets = self.sets.lock().unwrap();
        match sets.get(service) {
            Some(tx) => {
                tx.send_replace(set);
            }
            None => {
                sets.insert(service.to_string(), watch::channel(set).0);
            }
        }
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        let lines = self.logs.lock().unwrap();
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl StackView for FakeStack {
    fn upstreams(&self, service: &str, _port: Option<u16>) -> Option<watch::Receiver<Upstreams>> {
        self.sets
            .lock()
            .unwrap()
            .get(service)
            .map(watch::Sender::subscribe)
    }

    fn health(&self) -> (bool, serde_json::Value) {
        let ok = !self.unhealthy.load(Ordering::SeqCst);
        (
            ok,
            serde_json::json!({"healthy": ok, "services": {"api": {"replicas": 1}}}),
        )
    }

    fn encode_metrics(&self, out: &mut String) {
        out.push_str("# TYPE berth_service_restarts counter\nberth_service_restarts_total{service=\"api\"} 3\n");
    }

    fn access_log(&self, batch: berth_proxy::AccessLogBatch) {
        let lines = batch
            .lines()
            .map(|(_, line)| String::from_utf8(line.to_vec()).unwrap());
        self.logs.lock().unwrap().extend(lines);
    }
}

// ---------------------------------------------------------------- settings

pub fn service_route(path: &str, service: &str) -> Route {
    Route {
        path: path.into(),
        host: None,
        target: RouteTarget::Service {
            service: service.into(),
            port: None,
            strip_prefix: false,
            lb: LoadBalancing::RoundRobin,
        },
        max_body_size: None,
        timeout: None,
        policy: Default::default(),
    }
}

pub fn static_route(path: &str, root: PathBuf, spa: bool) -> Route {
    Route {
        path: path.into(),
        host: None,
        target: RouteTarget::Static {
            root,
            spa,
            index: "index.html".into(),
            env_js: Default::default(),
        },
        max_body_size: None,
        timeout: None,
        policy: Default::default(),
    }
}

pub fn settings(routes: Vec<Route>) -> ProxySettings {
    ProxySettings {
        listen: vec!["127.0.0.1:0".into()],
        routes,
        health_path: Some("/health".into()),
        metrics_path: Some("/metrics".into()),
        access_log: true,
        max_body_size: ByteSize(1024 * 1024),
        max_header_size: ByteSize(16 * 1024),
        timeouts: ProxyTimeouts::default(),
        ..ProxySettings::default()
    }
}

pub fn secs(s: f64) -> Dur {
    Dur(Duration::from_secs_f64(s))
}

// ---------------------------------------------------------------- proxy

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub proxy: Option<Proxy>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(p) = self.proxy.take() {
            tokio::time::timeout(Duration::from_secs(15), p.join())
                .await
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(settings: ProxySettings, view: Arc<FakeStack>) -> Running {
    let shutdown = CancellationToken::new();
    let proxy = berth_proxy::serve(settings, view, shutdown.clone())
        .await
        .unwrap();
    let addr = proxy.local_addrs()[0];
    Running {
        addr,
        shutdown,
        proxy: Some(proxy),
    }
}

// ---------------------------------------------------------------- client

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn send(req: Request<Full<Bytes>>) -> Answer {
    let response = client().request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Answer {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::default()).unwrap()).await
}

/// Writes raw bytes and reads the answer until the server closes or goes
/// quiet for 500 ms after answering (5 s at most).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 8192];
    loop {
        let wait = if out.is_empty() {
            deadline - tokio::time::Instant::now()
        } else {
            Duration::from_millis(500)
        };
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body from a raw
/// stream (5 s at most); `None` if the connection closed first.
pub async fn read_answer(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if out.len() >= end + 4 + length {
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
            }
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => return None,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no answer within 5 s")
}

/// Whether the peer closes `stream` within `limit` (sending nothing more).
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Err(_) => false,
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
    }
}

/// Whether `text` has this whole line (a series and its exact value: not
/// `... 1` matching `... 19`).
pub fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// Polls `done` until it holds, failing the test after 5 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- backends

/// A real HTTP/1.1 server; aborting it drops every connection (like SIGKILL).
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted.
    pub conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn backend(name: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    backend_on(name, listener)
}

pub fn backend_on(name: &str, listener: TcpListener) -> Backend {
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (n, h, c) = (Arc::<str>::from(name), hits.clone(), conns.clone());
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let (n, h) = (n.clone(), h.clone());
            conns.spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, n.clone(), h.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    Backend {
        name: name.into(),
        addr,
        hits,
        conns,
        task,
    }
}

/// A replica that refuses connections, like one whose process died: its
/// port stays bound (not listening) for as long as it lives, so nothing
/// else can take the port meanwhile.
pub fn refusing_backend(name: &str) -> Backend {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _bound = socket;
        std::future::pending::<()>().await;
    });
    Backend {
        name: name.into(),
        addr,
        hits: Arc::default(),
        conns: Arc::default(),
        task,
    }
}

/// A replica that accepts connections and reads requests but never answers
/// (a deadlocked process); `hits` counts the request heads it received.
pub async fn hung_backend(name: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (h, c) = (hits.clone(), conns.clone());
    let task = tokio::spawn(async move {
        let mut open = JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let h = h.clone();
            open.spawn(async move {
                let (mut seen, mut heads) = (Vec::new(), 0);
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let now = seen.windows(4).filter(|w| *w == b"\r\n\r\n").count();
                    h.fetch_add(now - heads, Ordering::SeqCst);
                    heads = now;
                }
            });
            while open.try_join_next().is_some() {}
        }
    });
    Backend {
        name: name.into(),
        addr,
        hits,
        conns,
        task,
    }
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok())?
    })
}

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn handle(
    mut req: Request<Incoming>,
    name: Arc<str>,
    hits: Arc<AtomicUsize>,
) -> Result<Response<TestBody>, std::io::Error> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let leaf = path.rsplit('/').next().unwrap_or("").to_string();
    let response = match leaf.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_millis(query(&req, "ms").unwrap_or(1000))).await;
            reply(200, "text/plain", format!("slept {name}"))
        }
        "big" => reply(200, "text/plain", "berth ".repeat(1000)),
        "stream" | "chunks" => {
            let n = query(&req, "n").unwrap_or(5);
            let ms = query(&req, "ms").unwrap_or(100);
            let sse = leaf == "stream";
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            tokio::spawn(async move {
                for i in 0..n {
                    let chunk = if sse {
                        format!("data: event {i}\n\n")
                    } else {
                        format!("chunk {i} {}\n", "x".repeat(2000))
                    };
                    if tx.send(Ok(Frame::data(chunk.into()))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            });
            let body = StreamBody::new(tokio_stream_from(rx));
            Response::builder()
                .header(
                    "content-type",
                    if sse {
                        "text/event-stream"
                    } else {
                        "text/plain"
                    },
                )
                .body(BodyExt::boxed(body))
                .unwrap()
        }
        "hangup" => {
            // Reads the request, then dies without answering.
            let _ = req.body_mut().collect().await;
            return Err(std::io::Error::other("backend hangs up"));
        }
        "ws" => return Ok(websocket(req)),
        _ => {
            let method = req.method().to_string();
            let version = format!("{:?}", req.version());
            let uri = req.uri().to_string();
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            let json = serde_json::json!({
                "replica": &*name, "method": method, "uri": uri, "version": version,
                "headers": headers, "body_length": body,
            });
            let mut r = reply(200, "application/json", json.to_string());
            r.headers_mut().insert("x-replica", name.parse().unwrap());
            r.headers_mut()
                .insert("keep-alive", "timeout=5".parse().unwrap());
            r.headers_mut()
                .insert("connection", "x-hop".parse().unwrap());
            r.headers_mut().insert("x-hop", "1".parse().unwrap());
            r
        }
    };
    Ok(response)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn websocket(mut req: Request<Incoming>) -> Response<TestBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return reply(426, "text/plain", "upgrade required");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    return;
                }
            } else if msg.is_close() {
                return;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(Full::default().boxed())
        .unwrap()
}
