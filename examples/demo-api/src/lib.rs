//! demo-api: the backend of berth's demo stack, integration tests and proxy
//! benchmarks.
//!
//! Several replicas of this server share one SQLite file (WAL mode, busy
//! timeout); `demo-api migrate` is the one-shot job that creates the schema.
//! See README.md for the endpoints and environment variables.

pub mod body;
pub mod db;
pub mod http;
pub mod store;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use db::{DbError, Item, migrate};

/// Response header naming the replica that answered (on every response).
pub const REPLICA_HEADER: HeaderName = HeaderName::from_static("x-demo-replica");

/// Default of `DEMO_DB` outside berth.
pub const DEFAULT_DB: &str = "./data/demo.sqlite";

/// The database file: `$DEMO_DB`; else `demo.sqlite` in the volume berth
/// mounts at `/data` (`$BERTH_VOLUME_DATA`); else [`DEFAULT_DB`].
pub fn db_path() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    var("DEMO_DB")
        .or_else(|| var("BERTH_VOLUME_DATA").map(|dir| format!("{dir}/demo.sqlite")))
        .unwrap_or_else(|| DEFAULT_DB.into())
}

/// Default of `DEMO_DRAIN_TIMEOUT_MS`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Port on `host`; 0 picks a free one.
    pub port: u16,
    /// `DEMO_HOST`, default 127.0.0.1 (0.0.0.0 in the container image,
    /// where the engine forwards to the container's own address).
    pub host: IpAddr,
    /// `BERTH_REPLICA`, default "1".
    pub replica: String,
    /// `BERTH_SERVICE`, default "demo-api".
    pub service: String,
    /// `DEMO_DB`, default `./data/demo.sqlite`.
    pub db_path: PathBuf,
    /// `DEMO_UNHEALTHY_FILE`: /health answers 503 while this file exists
    /// (`{replica}` in it is the replica's number).
    pub unhealthy_file: Option<PathBuf>,
    /// `DEMO_DRAIN_TIMEOUT_MS`: how long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// `DEMO_ACCESS_LOG=1`: one stderr line per request (off by default).
    pub access_log: bool,
}

impl Config {
    /// Defaults for everything but the port and the database.
    pub fn new(port: u16, db_path: impl Into<PathBuf>) -> Self {
        Self {
            port,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            replica: "1".to_owned(),
            service: "demo-api".to_owned(),
            db_path: db_path.into(),
            unhealthy_file: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            access_log: false,
        }
    }

    /// Reads the environment; `port` (from `--port`) wins over `PORT`.
    pub fn from_env(port: Option<u16>) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let port = match port {
            Some(port) => port,
            None => {
                let raw = var("PORT").ok_or("PORT is not set (set PORT or pass --port N)")?;
                parse_port(&raw).map_err(|e| format!("invalid PORT: {e}"))?
            }
        };
        let mut config = Self::new(port, db_path());
        if let Some(raw) = var("DEMO_HOST") {
            config.host = raw
                .trim()
                .parse()
                .map_err(|_| format!("invalid DEMO_HOST {raw:?}: an IP address"))?;
        }
        if let Some(replica) = var("BERTH_REPLICA") {
            config.replica = replica;
        }
        if let Some(service) = var("BERTH_SERVICE") {
            config.service = service;
        }
        // `{replica}` in the path stands for this replica's number, so one
        // setting can make a single replica of several unhealthy.
        config.unhealthy_file = var("DEMO_UNHEALTHY_FILE")
            .map(|f| PathBuf::from(f.replace("{replica}", &config.replica)));
        if let Some(raw) = var("DEMO_DRAIN_TIMEOUT_MS") {
            let ms: u64 = raw
                .trim()
                .parse()
                .map_err(|_| format!("invalid DEMO_DRAIN_TIMEOUT_MS {raw:?}"))?;
            config.drain_timeout = Duration::from_millis(ms);
        }
        config.access_log = var("DEMO_ACCESS_LOG").is_some_and(|v| v != "0" && v != "false");
        Ok(config)
    }
}

/// Parses a TCP port number (0 allowed: pick a free port).
pub fn parse_port(raw: &str) -> Result<u16, String> {
    raw.trim()
        .parse::<u16>()
        .map_err(|_| format!("{raw:?} is not a port number (0-65535)"))
}

/// Shared state of one server process.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    /// The items: SQLite, or PostgreSQL with `DATABASE_URL`.
    pub store: store::Store,
    /// The Redis counter of items added, with `REDIS_URL`.
    pub counter: Option<store::Counter>,
    pub replica: Arc<str>,
    replica_header: Option<HeaderValue>,
    health_ok: Bytes,
    health_unhealthy: Bytes,
    whoami: Bytes,
    /// Flips to true when shutdown starts (WebSocket sessions close).
    shutdown: watch::Sender<bool>,
    /// Number of live WebSocket sessions.
    ws_sessions: watch::Sender<usize>,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Db(DbError),
    Redis(String),
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Redis(e) => write!(f, "{e}"),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound server, not yet accepting.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    app: Arc<App>,
}

impl Server {
    /// Checks the database schema and binds `host:port`.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let store = match store::postgres_url() {
            Some(url) => {
                store::Store::Postgres(store::Postgres::open(&url).await.map_err(StartError::Db)?)
            }
            None => {
                let path = config.db_path.clone();
                let db = tokio::task::spawn_blocking(move || db::Db::open(&path))
                    .await
                    .map_err(|e| StartError::Db(DbError::Task(e.to_string())))?
                    .map_err(StartError::Db)?;
                store::Store::Sqlite(Arc::new(db))
            }
        };
        let counter = store::Counter::from_env()
            .await
            .map_err(StartError::Redis)?;
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Bind(addr, e))?;
        let replica: Arc<str> = Arc::from(config.replica.as_str());
        let to_bytes = |value: serde_json::Value| Bytes::from(value.to_string());
        let app = App {
            replica_header: HeaderValue::from_str(&config.replica).ok(),
            health_ok: to_bytes(serde_json::json!({ "status": "ok", "replica": &*replica })),
            health_unhealthy: to_bytes(
                serde_json::json!({ "status": "unhealthy", "replica": &*replica }),
            ),
            whoami: to_bytes(serde_json::json!({
                "service": &config.service,
                "replica": &*replica,
                "pid": std::process::id(),
            })),
            replica,
            store,
            counter,
            config,
            shutdown: watch::Sender::new(false),
            ws_sessions: watch::Sender::new(0),
        };
        Ok(Self {
            listener,
            app: Arc::new(app),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish (at most `drain_timeout`), closes WebSockets and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Self { listener, app } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(true);
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        let app = Arc::clone(&app);
                        let service = service_fn(move |req| {
                            let app = Arc::clone(&app);
                            async move {
                                if app.config.access_log {
                                    Ok::<_, Infallible>(logged(app, req).await)
                                } else {
                                    Ok(http::handle(app, req).await)
                                }
                            }
                        });
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            // Errors here are client-side (reset, bad request): not ours to log.
                            let _ = conn.await;
                        });
                    }
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        eprintln!("demo-api: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        app.shutdown.send_replace(true);
        let mut sessions = app.ws_sessions.subscribe();
        let drained = tokio::time::timeout(app.config.drain_timeout, async {
            graceful.shutdown().await;
            let _ = sessions.wait_for(|n| *n == 0).await;
        })
        .await;
        if drained.is_err() {
            eprintln!(
                "demo-api: drain timeout ({} ms) reached, dropping the remaining connections",
                app.config.drain_timeout.as_millis()
            );
        }
    }
}

async fn logged(
    app: Arc<App>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<body::Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let replica = Arc::clone(&app.replica);
    let resp = http::handle(app, req).await;
    eprintln!(
        "demo-api[{replica}] {method} {uri} {} {:.1}ms",
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}
