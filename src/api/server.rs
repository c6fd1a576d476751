//! The control API server, inside `berth up`.

use std::convert::Infallible;
use std::path::Path;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ApiError, Down, ExecTarget, Ps, ReplicaRow, Report, Scale, ServiceRow, Services};

pub use super::state::{Body, Dashboard, DownRequest, State, ndjson};

/// The running control API.
#[derive(Debug)]
pub struct ApiServer {
    path: std::path::PathBuf,
    cancel: CancellationToken,
    connections: TaskTracker,
}

impl ApiServer {
    /// Stops accepting, lets every request in flight be answered (streams
    /// end) within `grace`, and removes the socket.
    pub async fn shutdown(self, grace: std::time::Duration) {
        self.cancel.cancel();
        self.connections.close();
        let _ = tokio::time::timeout(grace, self.connections.wait()).await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket (mode 0600; any old socket is stale: the caller holds
/// the project lock) and serves until [`ApiServer::shutdown`]; `state`'s
/// `shutdown` token is the server's.
///
/// # Errors
/// The socket cannot be created.
pub async fn serve(path: &Path, state: Arc<State>) -> std::io::Result<ApiServer> {
    let cancel = state.shutdown.clone();
    let connections = TaskTracker::new();
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(path);
    // Bind under a temporary name and rename once private, so the socket is
    // never reachable with looser permissions.
    let tmp = path.with_extension("sock.tmp");
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    let server = ApiServer {
        path: path.to_path_buf(),
        cancel: cancel.clone(),
        connections: connections.clone(),
    };
    let tracker = connections.clone();
    tracker.spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = cancel.cancelled() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (state, cancel) = (state.clone(), cancel.clone());
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(req, state).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = cancel.cancelled() => {
                        // Answers what is in flight (a `down` reply), then closes.
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
    Ok(server)
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &ApiError {
            error: message.into(),
        },
    )
}

/// The status of an engine error, by what went wrong (never by message).
fn status(e: &berth_engine::Error) -> StatusCode {
    use berth_engine::{Error as E, RollError};
    match e {
        E::UnknownService { .. } => StatusCode::NOT_FOUND,
        // The replica's task ended: the stack is stopping.
        E::Roll {
            reason: RollError::Gone,
            ..
        } => StatusCode::SERVICE_UNAVAILABLE,
        E::DirectScale { .. } | E::Roll { .. } => StatusCode::CONFLICT,
        // Start-up errors: a running stack does not meet them.
        E::Bind(_)
        | E::Build { .. }
        | E::BuildSpawn { .. }
        | E::BuildWait { .. }
        | E::Volume { .. }
        | E::OpenFiles { .. }
        | E::RaiseOpenFiles { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An engine error as a reply: its status, and the message with its causes.
fn engine_error(e: &berth_engine::Error) -> Response<Body> {
    error(status(e), e.chain())
}

async fn body<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    Ok(required_body::<Option<T>>(req).await?.unwrap_or_default())
}

/// A JSON body; an empty one is `null`.
async fn required_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?
        .to_bytes();
    let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
    serde_json::from_slice(text)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Answers one control request (the dashboard sends its own here too).
pub async fn handle(req: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/v1/ps") => json(StatusCode::OK, &ps(&state)),
        (Method::GET, "/v1/events") => events(&state),
        (Method::GET, "/v1/logs") => super::logs::serve(&state, &query(&req)),
        (Method::GET, "/v1/exec") => exec_target(&state, &query(&req)),
        (Method::POST, "/v1/restart") => match body::<Services>(req).await {
            Ok(s) => restart(&state, s).await,
            Err(r) => r,
        },
        (Method::POST, "/v1/stop") => match body::<Services>(req).await {
            Ok(s) => stop(&state, s).await,
            Err(r) => r,
        },
        (Method::POST, "/v1/start") => match body::<Services>(req).await {
            Ok(s) => start(&state, s),
            Err(r) => r,
        },
        (Method::POST, "/v1/deploy") => match required_body::<super::Deploy>(req).await {
            Ok(d) => match super::deploy::deploy(&state, &d).await {
                Ok(report) => json(StatusCode::OK, &report),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            },
            Err(r) => r,
        },
        (Method::POST, "/v1/dashboard/login") => dashboard_login(&state),
        (Method::POST, "/v1/scale") => match body::<Scale>(req).await {
            Ok(s) => scale(&state, s).await,
            Err(r) => r,
        },
        (Method::POST, "/v1/down") => match body::<Down>(req).await {
            Ok(d) => {
                let (reply, answer) = oneshot::channel();
                if state.down.send((d, reply)).await.is_err() {
                    return error(StatusCode::CONFLICT, "the stack is already stopping");
                }
                match answer.await {
                    Ok(report) => json(StatusCode::OK, &report),
                    Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "stopping failed"),
                }
            }
            Err(r) => r,
        },
        (_, p) if p.starts_with("/v1/") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} {p} is not supported", req.method()),
        ),
        (_, p) => error(
            StatusCode::NOT_FOUND,
            format!("unknown path {p}; this berth speaks /v1"),
        ),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The `ps` view of the stack.
pub fn ps(state: &State) -> Ps {
    let now = SystemTime::now();
    let stats = berth_engine::runtime::native::all_group_stats();
    let services = state
        .stack
        .services()
        .iter()
        .map(|cell| {
            let of_service = |all: Vec<(String, u16, std::net::SocketAddr)>| {
                all.iter()
                    .filter(|(s, _, _)| s == cell.name())
                    .map(|(_, t, a)| (*t, a.to_string()))
                    .collect()
            };
            let listening = of_service(state.stack.listening());
            let listening_udp = of_service(state.stack.listening_udp());
            let replicas = cell
                .snapshot()
                .iter()
                .map(|r| {
                    let stats = r.pid.and_then(|p| stats.get(&p).copied());
                    ReplicaRow {
                        name: r.name(),
                        index: r.index,
                        state: r.state,
                        health: r.health,
                        ready: r.ready,
                        pid: r.pid,
                        ports: r.ports.clone(),
                        restarts: r.restarts,
                        started_at: r.started_at.map(rfc3339),
                        uptime_seconds: r
                            .started_at
                            .filter(|_| r.pid.is_some())
                            .and_then(|t| now.duration_since(t).ok())
                            .map(|d| d.as_secs()),
                        exit: r.exit.map(|e| e.to_string()),
                        cpu_seconds: stats.map(|s| s.cpu_seconds),
                        rss_bytes: stats.map(|s| s.rss_bytes),
                        memory_limit: stats.and_then(|s| s.memory_limit),
                        oom_kills: r.oom_kills,
                        message: r.message.clone(),
                        failure: r.failure.clone(),
                    }
                })
                .collect();
            ServiceRow {
                name: cell.name().to_string(),
                listening,
                listening_udp,
                self_heals: cell.plan().restart != berth_compose::RestartPolicy::No,
                replicas,
            }
        })
        .collect();
    Ps {
        ts: Some(rfc3339(now)),
        project: state.project.clone(),
        pid: std::process::id(),
        started_at: rfc3339(state.started_at),
        proxy: state
            .proxy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        services,
        log_lines_lost: state.logs.stats().lost_lines,
        certificates: state
            .routes
            .as_ref()
            .map(|routes| {
                routes
                    .certificates()
                    .into_iter()
                    .map(certificate_row)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn certificate_row(c: berth_proxy::CertificateStatus) -> super::CertificateRow {
    super::CertificateRow {
        source: c.source,
        names: c.names,
        not_after: c.not_after.map(rfc3339),
        acme: c.acme.map(|a| super::AcmeRow {
            directory: a.directory,
            challenge: a.challenge,
            orders: a.orders,
            failures: a.failures,
            last_error: a.last_error,
            next_attempt: a.next_attempt.map(rfc3339),
        }),
    }
}

/// Replica state changes, and log lines lost (a full disk) as
/// `{"ts","kind":"log_lines_lost","lost","message"}`.
fn events(state: &State) -> Response<Body> {
    let mut events = state.stack.events();
    let mut deploys = state.deploys.subscribe();
    let mut lost = state.logs.lost_lines();
    lost.mark_unchanged();
    let (tx, rx) = mpsc::channel(256);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            let json = tokio::select! {
                () = shutdown.cancelled() => return,
                e = events.recv() => match e {
                    Ok(e) => serde_json::to_vec(&e).unwrap_or_default(),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                d = deploys.recv() => match d {
                    Ok(d) => serde_json::to_vec(&d).unwrap_or_default(),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                changed = lost.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let n = *lost.borrow_and_update();
                    serde_json::to_vec(&serde_json::json!({
                        "ts": rfc3339(SystemTime::now()),
                        "kind": "log_lines_lost",
                        "lost": n,
                        "message": format!("{n} log lines could not be written to their files (a full disk?)"),
                    }))
                    .unwrap_or_default()
                }
            };
            let mut line = json;
            line.push(b'\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
        }
    });
    ndjson(rx, state.shutdown.clone())
}

/// A one-time login link for `berth dashboard`.
fn dashboard_login(state: &State) -> Response<Body> {
    let Some(dashboard) = state.dashboard.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "this stack has no dashboard: add `x-berth.dashboard` (e.g. `listen: \"127.0.0.1:8081\"`) and run `berth up` again",
        );
    };
    let proxy = state
        .proxy
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match dashboard.login(&proxy) {
        Ok(login) => json(StatusCode::OK, &login),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The named services (all when none), or which one does not exist.
fn targets(state: &State, services: &[String]) -> Result<Vec<String>, berth_engine::Error> {
    if services.is_empty() {
        return Ok(state
            .stack
            .services()
            .iter()
            .map(|c| c.name().to_string())
            .collect());
    }
    for s in services {
        if state.stack.service(s).is_none() {
            return Err(berth_engine::Error::UnknownService { service: s.clone() });
        }
    }
    Ok(services.to_vec())
}

async fn restart(state: &State, s: Services) -> Response<Body> {
    let services = match targets(state, &s.services) {
        Ok(t) => t,
        Err(e) => return engine_error(&e),
    };
    let mut lines = Vec::new();
    for service in services {
        match state.stack.restart(&service).await {
            Ok(mut l) => lines.append(&mut l),
            Err(e) => {
                // What was restarted before, then what failed.
                lines.push(e.chain());
                return error(status(&e), lines.join("\n"));
            }
        }
    }
    json(StatusCode::OK, &Report { lines })
}

async fn stop(state: &State, s: Services) -> Response<Body> {
    let services = match targets(state, &s.services) {
        Ok(t) => t,
        Err(e) => return engine_error(&e),
    };
    let mut lines = Vec::new();
    // Dependents first.
    for service in services.iter().rev() {
        if let Err(e) = state.stack.stop_service(service).await {
            return engine_error(&e);
        }
        lines.push(format!("{service}: stopped"));
    }
    json(StatusCode::OK, &Report { lines })
}

fn start(state: &State, s: Services) -> Response<Body> {
    let services = match targets(state, &s.services) {
        Ok(t) => t,
        Err(e) => return engine_error(&e),
    };
    let mut lines = Vec::new();
    for service in services {
        if let Err(e) = state.stack.start_service(&service) {
            return engine_error(&e);
        }
        lines.push(format!("{service}: starting"));
    }
    json(StatusCode::OK, &Report { lines })
}

async fn scale(state: &State, s: Scale) -> Response<Body> {
    let mut lines = Vec::new();
    for (service, n) in s.scale {
        if let Err(e) = state.stack.scale(&service, n).await {
            return engine_error(&e);
        }
        lines.push(format!(
            "{service}: {n} replica{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    json(StatusCode::OK, &Report { lines })
}

fn exec_target(state: &State, q: &[(String, String)]) -> Response<Body> {
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let Some(service) = get("service") else {
        return error(StatusCode::BAD_REQUEST, "service is required");
    };
    let Some(cell) = state.stack.service(service) else {
        return engine_error(&berth_engine::Error::UnknownService {
            service: service.to_string(),
        });
    };
    let snapshot = cell.snapshot();
    let replica = match get("replica").map(str::parse::<u32>) {
        Some(Ok(i)) => snapshot.iter().find(|r| r.index == i),
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "replica must be a number"),
        None => snapshot.first(),
    };
    let Some(replica) = replica else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{service} has no such replica"),
        );
    };
    let env = cell.plan().replica_env(replica.index, &replica.ports);
    json(
        StatusCode::OK,
        &ExecTarget {
            env,
            working_dir: cell.plan().working_dir.clone(),
            container: cell
                .plan()
                .container
                .as_ref()
                .map(|c| crate::api::ExecContainer {
                    project: c.project.clone(),
                    replica: replica.index,
                }),
        },
    )
}
