//! The browser dashboard (`x-berth.dashboard`): the stack at a glance,
//! logs streaming, the edge's rates, the events timeline, and restart /
//! stop / start / scale through the control API the CLI uses. Served from
//! the binary (assets embedded, nothing fetched from outside), on its own
//! listener and/or under a path of the edge proxy.
//!
//! # Layout
//! - `mod.rs`: listeners, the request router, the security headers.
//! - `auth.rs`: the token, login codes, sessions, CSRF.
//! - `feed.rs`: the one server-sent-event stream every page shares.
//! - `edge.rs`: per-route rates and latencies from the proxy's totals.
//! - `model.rs`: what the file says of each service, secrets masked.
//! - `assets/`: the page (HTML, CSS, JavaScript; no build step).

pub mod auth;
pub mod edge;
pub mod feed;
pub mod model;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use berth_compose::xberth::{DashboardAuth, DashboardSettings};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::server::{Body, State, ndjson};
use auth::{Access, Principal};
use feed::Feed;

/// The service name the edge proxy's dashboard route points at (no
/// Compose service can have a colon in its name).
pub const MOUNT_SERVICE: &str = "berth:dashboard";

/// The header actions carry their session's CSRF token in.
const CSRF_HEADER: &str = "x-berth-csrf";

/// The page's own policy: nothing but its own files and its own stream.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard's listeners, bound before the stack's proxy starts (the
/// proxy's route to a mounted dashboard needs its address).
#[derive(Debug)]
pub struct Listeners {
    settings: DashboardSettings,
    access: Access,
    own: Option<TcpListener>,
    /// A loopback listener the edge proxy forwards `path` to.
    mount: Option<TcpListener>,
}

impl Listeners {
    /// Reads (or makes) the credentials and binds what `settings` asks for.
    ///
    /// # Errors
    /// An address that cannot be bound (in use, not this machine's); a
    /// token or password file that cannot be read or written.
    pub async fn bind(settings: &DashboardSettings) -> anyhow::Result<Listeners> {
        let access = Access::load(settings)?;
        let own = match &settings.listen {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("the dashboard cannot listen on {address} (x-berth.dashboard.listen)")
            })?),
            None => None,
        };
        let mount = match &settings.path {
            Some(_) => Some(
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("the dashboard cannot listen on a loopback port for the proxy")?,
            ),
            None => None,
        };
        Ok(Listeners {
            settings: settings.clone(),
            access,
            own,
            mount,
        })
    }

    /// Where the edge proxy reaches a mounted dashboard.
    pub fn mount_addr(&self) -> Option<SocketAddr> {
        self.mount.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Adds the dashboard's route to the proxy's settings, when it is mounted.
pub fn mount(
    proxy: &mut berth_compose::xberth::ProxySettings,
    dashboard: Option<&DashboardSettings>,
) {
    let Some(path) = dashboard.and_then(|d| d.path.clone()) else {
        return;
    };
    proxy.routes.retain(|r| r.path != path || r.host.is_some());
    proxy.routes.push(berth_compose::xberth::Route {
        path,
        host: None,
        target: berth_compose::xberth::RouteTarget::Service {
            service: MOUNT_SERVICE.to_string(),
            port: None,
            strip_prefix: false,
            lb: Default::default(),
        },
        max_body_size: None,
        timeout: None,
        policy: Default::default(),
    });
}

/// What `berth dashboard` asks the running stack for.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Login {
    /// The dashboard's addresses (its own listener, the proxy's with the path).
    pub urls: Vec<String>,
    /// A code valid once, for ten minutes, as `?token=`.
    pub code: String,
    /// With basic authentication: the user and the password's file.
    pub basic: Option<(String, String)>,
}

/// The running dashboard, as the control API sees it.
#[derive(Debug)]
pub struct Handle {
    access: Arc<Access>,
    settings: DashboardSettings,
    own: Option<SocketAddr>,
}

impl Handle {
    /// Says in the log stream where the dashboard is (the login link comes
    /// from `berth dashboard`).
    pub fn announce(&self, logs: &berth_engine::logs::LogHub, proxy: &[String]) {
        for url in self.urls(proxy) {
            logs.system(
                "berth",
                0,
                format!("dashboard on {url} (`berth dashboard` prints a login link)"),
            );
        }
    }

    /// A login link's parts for `berth dashboard`; `proxy` are the edge
    /// proxy's URLs, for a mounted dashboard.
    ///
    /// # Errors
    /// No randomness for the code.
    pub fn login(&self, proxy: &[String]) -> anyhow::Result<Login> {
        let basic = match &self.settings.auth {
            DashboardAuth::Basic {
                user,
                password_file,
            } => Some((user.clone(), password_file.display().to_string())),
            _ => None,
        };
        Ok(Login {
            urls: self.urls(proxy),
            code: self.access.login_code()?,
            basic,
        })
    }

    /// Its addresses: its own listener's, and the proxy's with the path.
    fn urls(&self, proxy: &[String]) -> Vec<String> {
        let mut urls = Vec::new();
        if let Some(addr) = self.own {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
                format!("[{host}]")
            } else {
                host
            };
            urls.push(format!("http://{host}:{}/", addr.port()));
        }
        if let Some(path) = &self.settings.path {
            for base in proxy {
                let base = base.replace("0.0.0.0", "127.0.0.1");
                urls.push(format!("{}{path}/", base.trim_end_matches('/')));
            }
        }
        urls
    }
}

impl crate::api::server::Dashboard for Handle {
    fn login(&self, proxy: &[String]) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(Handle::login(self, proxy)?)?)
    }

    fn mount(&self, proxy: &mut berth_compose::xberth::ProxySettings) {
        mount(proxy, Some(&self.settings));
    }
}

/// What every request handler reads.
struct Inner {
    access: Arc<Access>,
    state: Arc<State>,
    feed: Feed,
    read_only: bool,
    /// Ends the streams.
    cancel: CancellationToken,
}

/// Serves the dashboard until `cancel` (the edge's: when the stack stops,
/// open streams end at once, so the proxy drains without them); its handle
/// goes into `state` for `berth dashboard`.
pub fn serve(listeners: Listeners, state: &Arc<State>, cancel: CancellationToken) -> Arc<Handle> {
    let Listeners {
        settings,
        access,
        own,
        mount,
    } = listeners;
    let access = Arc::new(access);
    let feed = Feed::default();
    feed::spawn(&feed, state, &cancel);
    let inner = Arc::new(Inner {
        access: access.clone(),
        state: state.clone(),
        feed,
        read_only: settings.read_only,
        cancel: cancel.clone(),
    });
    let own_addr = own.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(l) = own {
        accept(l, String::new(), inner.clone(), cancel.clone());
    }
    if let (Some(l), Some(path)) = (mount, settings.path.clone()) {
        accept(l, path, inner, cancel);
    }
    let handle = Arc::new(Handle {
        access,
        settings,
        own: own_addr,
    });
    let _ = state.dashboard.set(handle.clone());
    handle
}

fn accept(listener: TcpListener, prefix: String, inner: Arc<Inner>, cancel: CancellationToken) {
    let prefix: Arc<str> = prefix.into();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = cancel.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else {
                // Out of descriptors, say: a moment, then on.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (inner, prefix, cancel) = (inner.clone(), prefix.clone(), cancel.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (inner, prefix) = (inner.clone(), prefix.clone());
                    async move { Ok::<_, Infallible>(secure(handle(req, &inner, &prefix).await)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                    }
                }
            });
        }
    });
}

/// The headers every answer carries.
fn secure(mut response: Response<Body>) -> Response<Body> {
    let h = response.headers_mut();
    let set = |h: &mut http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(http::HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cache-control", "no-store");
    response
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    reply(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Where a request's path is, under the dashboard's `prefix`.
enum Local<'a> {
    /// The page's own path (`/`, `/api/…`).
    Path(&'a str),
    /// The prefix without its slash: the browser goes to `prefix/`.
    Bare,
    /// Not under the prefix.
    Elsewhere,
}

fn local_path<'a>(path: &'a str, prefix: &str) -> Local<'a> {
    if prefix.is_empty() {
        return Local::Path(path);
    }
    match path.strip_prefix(prefix) {
        Some("") => Local::Bare,
        Some(rest) if rest.starts_with('/') => Local::Path(rest),
        _ => Local::Elsewhere,
    }
}

fn redirect(location: &str, cookie: Option<String>) -> Response<Body> {
    let mut b = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", location);
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(Full::new(Bytes::new()).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// The session cookie for `id`, for the page under `prefix`.
fn session_cookie(id: &str, prefix: &str, tls: bool) -> String {
    format!(
        "{}={id}; Path={prefix}/; HttpOnly; SameSite=Strict{}",
        auth::COOKIE,
        if tls { "; Secure" } else { "" }
    )
}

/// Whether the browser reached the dashboard over TLS (through the proxy).
fn over_tls(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
}

/// `?token=`: a login; the same URL without it, with a session cookie.
fn login(req: &Request<Incoming>, inner: &Inner, prefix: &str, given: &str) -> Response<Body> {
    if !inner.access.accepts_login(given) {
        return unauthorized(
            inner,
            req.uri().path(),
            "this login link is not valid (a login code works once, for ten minutes): run `berth dashboard` for a new one",
        );
    }
    let Ok(id) = inner.access.open_session() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session",
        );
    };
    let rest: Vec<(String, String)> = query(req)
        .into_iter()
        .filter(|(k, _)| k != "token")
        .collect();
    let mut location = req.uri().path().to_string();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    redirect(&location, Some(session_cookie(&id, prefix, over_tls(req))))
}

fn unauthorized(inner: &Inner, path: &str, message: &str) -> Response<Body> {
    let mut r = if path.ends_with('/') {
        reply(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            format!(
                "<!doctype html><meta charset=utf-8><title>berth dashboard</title><h1>Log in</h1><p>{message}.</p><p>Open the link <code>berth dashboard</code> prints.</p>"
            ),
        )
    } else {
        error(StatusCode::UNAUTHORIZED, message)
    };
    if let Ok(v) = http::HeaderValue::from_str(inner.access.challenge()) {
        r.headers_mut().insert("www-authenticate", v);
    }
    r
}

async fn handle(req: Request<Incoming>, inner: &Inner, prefix: &str) -> Response<Body> {
    let path = match local_path(req.uri().path(), prefix) {
        Local::Path(p) => p.to_string(),
        Local::Bare => return redirect(&format!("{prefix}/"), None),
        Local::Elsewhere => return error(StatusCode::NOT_FOUND, "not the dashboard's path"),
    };
    if let Some((_, given)) = query(&req).into_iter().find(|(k, _)| k == "token") {
        return login(&req, inner, prefix, &given);
    }
    let Some((principal, opened)) = inner.access.identify(req.headers()) else {
        return unauthorized(inner, &path, "the dashboard needs a login");
    };
    let tls = over_tls(&req);
    let mut response = route(req, inner, &path, &principal).await;
    if let (true, Principal::Session(id)) = (opened, &principal)
        && let Ok(v) = http::HeaderValue::from_str(&session_cookie(id, prefix, tls))
    {
        response.headers_mut().append("set-cookie", v);
    }
    response
}

async fn route(
    req: Request<Incoming>,
    inner: &Inner,
    path: &str,
    principal: &Principal,
) -> Response<Body> {
    match (req.method().clone(), path) {
        (Method::GET, "/") => asset(&req, "index.html"),
        (Method::GET, "/app.js" | "/app.css" | "/icon.svg") => asset(&req, &path[1..]),
        (Method::GET, "/api/session") => {
            let csrf = match principal {
                Principal::Session(id) => inner.access.csrf(id),
                Principal::Bearer => None,
            };
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "project": inner.state.project,
                    "csrf": csrf,
                    "read_only": inner.read_only,
                }),
            )
        }
        (Method::GET, "/api/stream") => stream(&req, inner),
        (Method::GET, "/api/model") => json(
            StatusCode::OK,
            &model::view(&inner.state.model(), &inner.state.inherited),
        ),
        (Method::GET, "/api/v1/ps" | "/api/v1/logs" | "/api/v1/events") => {
            control(req, inner).await
        }
        (Method::POST, "/api/v1/restart" | "/api/v1/stop" | "/api/v1/start" | "/api/v1/scale") => {
            if inner.read_only {
                return error(
                    StatusCode::FORBIDDEN,
                    "this dashboard is read-only (x-berth.dashboard.read_only)",
                );
            }
            if let Principal::Session(id) = principal {
                let given = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !inner.access.csrf_matches(id, given) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "this action lacks its CSRF token: reload the page",
                    );
                }
            }
            control(req, inner).await
        }
        (_, p) if p.starts_with("/api/") => error(
            StatusCode::NOT_FOUND,
            &format!("{} {p} is not something the dashboard does", req.method()),
        ),
        _ => error(StatusCode::NOT_FOUND, "no such page"),
    }
}

/// The request, as the control API's (`/api/v1/…` → `/v1/…`).
async fn control(req: Request<Incoming>, inner: &Inner) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let Some(local) = path_and_query
        .find("/api/v1/")
        .map(|i| &path_and_query[i + 4..])
    else {
        return error(StatusCode::NOT_FOUND, "no such page");
    };
    match local.parse() {
        Ok(uri) => parts.uri = uri,
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad path"),
    }
    crate::api::server::handle(Request::from_parts(parts, body), inner.state.clone()).await
}

/// The live stream: what the page missed (`Last-Event-ID`) or the recent
/// history, then every new frame, with a heartbeat every 15 s.
fn stream(req: &Request<Incoming>, inner: &Inner) -> Response<Body> {
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let feed = inner.feed.clone();
    let mut newest = feed.subscribe();
    newest.mark_unchanged();
    let catchup = feed.resume(last.as_deref());
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let shutdown = inner.cancel.clone();
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"retry: 1000\n\n"))
            .await
            .is_err()
        {
            return;
        }
        for f in catchup.frames {
            if tx.send(f).await.is_err() {
                return;
            }
        }
        let mut seen = catchup.last;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(15));
        heartbeat.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = newest.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let c = feed.after(seen);
                    seen = c.last;
                    for f in c.frames {
                        if tx.send(f).await.is_err() {
                            return;
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    if tx.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut response = ndjson(rx, inner.cancel.clone());
    let h = response.headers_mut();
    h.insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// An embedded file; gzipped when the browser takes it.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/icon.svg"),
    },
];

/// Each asset gzipped, once.
fn gzipped() -> &'static Vec<Bytes> {
    static GZ: OnceLock<Vec<Bytes>> = OnceLock::new();
    GZ.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                let _ = e.write_all(a.body);
                Bytes::from(e.finish().unwrap_or_default())
            })
            .collect()
    })
}

fn asset(req: &Request<Incoming>, name: &str) -> Response<Body> {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return error(StatusCode::NOT_FOUND, "no such file");
    };
    let a = &ASSETS[i];
    let gzip = req
        .headers()
        .get_all("accept-encoding")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("gzip"));
    let mut r = if gzip {
        let mut r = reply(StatusCode::OK, a.content_type, gzipped()[i].clone());
        r.headers_mut()
            .insert("content-encoding", http::HeaderValue::from_static("gzip"));
        r
    } else {
        reply(StatusCode::OK, a.content_type, Bytes::from_static(a.body))
    };
    r.headers_mut()
        .insert("vary", http::HeaderValue::from_static("accept-encoding"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_stay_under_60_kb_gzipped() {
        let total: usize = gzipped().iter().map(Bytes::len).sum();
        assert!(total < 60 * 1024, "{total} bytes gzipped");
    }

    #[test]
    fn the_page_loads_nothing_from_outside_and_nothing_inline() {
        let html = String::from_utf8_lossy(ASSETS[0].body);
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>") && !html.contains("style="));
        let js = String::from_utf8_lossy(ASSETS[1].body).replace("http://www.w3.org/2000/svg", "");
        assert!(!js.contains("http://") && !js.contains("https://"));
        assert!(
            !js.contains("innerHTML"),
            "the page builds its DOM, never parses HTML"
        );
    }
}
