//! berth-proxy: the edge proxy in front of a berth stack.
//!
//! It serves `x-berth.proxy` ([`ProxySettings`]): routes by longest path
//! prefix (and optional host) to the ready replicas of a service, followed
//! live through a [`StackView`] the engine implements, or to a static
//! directory; answers `health_path` and `metrics_path` itself; passes
//! WebSockets and other upgrades through; compresses what is worth it; and
//! shuts down gracefully on a [`CancellationToken`].
//!
//! ```no_run
//! # async fn run(settings: berth_compose::xberth::ProxySettings, view: std::sync::Arc<dyn berth_proxy::StackView>) -> Result<(), berth_proxy::ProxyError> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let proxy = berth_proxy::serve(settings, view, shutdown.clone()).await?;
//! // ... later
//! shutdown.cancel();
//! proxy.join().await;
//! # Ok(()) }
//! ```
//!
//! The proxy runs on its own worker threads (see [`ServeOptions`]), each
//! with a single-threaded runtime, like nginx's worker processes; `serve`
//! only needs to be called from within a tokio runtime. Dropping the
//! [`Proxy`] handle does not stop it: cancel the token, then `join`.
//!
//! # Layout
//! One layer or concern per file, outermost first:
//! - `server`: listeners and the [`Proxy`] handle; `worker`: worker
//!   threads, accepting, the drain.
//! - `conn`: one client connection (HTTP/1.1 + h2c, timeouts, idle close).
//! - `activity`: traffic tracking for idle timeouts; `head`: the request
//!   head deadline (slowloris guard) apart from the idle timeout, and the
//!   repeated `Content-Length` check.
//! - `service`: the per-request pipeline (`Edge`, `Conn::answer`);
//!   `shared`, `setup`: the state it runs against, built from the settings.
//! - `client_ip`: who the client is (`trusted_proxies`, `X-Forwarded-For`).
//! - `policy`: what a route enforces and adds, made of `cors`,
//!   `rate_limit` and `response_headers` (`headers`, `security_headers`).
//! - `observe`, `metrics`, `access_log`: what is recorded per request;
//!   `log_batch`: access-log lines batched per worker, off the request path.
//! - `compress`, `negotiate`: response compression and header q-values.
//! - `limits`: head (431) and body (413) size limits.
//! - `router`: longest-prefix and host matching.
//! - `endpoints`: `health_path` and `metrics_path`.
//! - `forward`, `rewrite`, `headers`, `attempts`, `retry_body`, `client`,
//!   `balancer`: proxying to replicas.
//! - `tunnel`: upgraded connections.
//! - `static_files`, `confine`, `env_js`: static routes.
//! - `error`, `error_page`: failure classes and how they are shown.
//! - `view`: the [`StackView`] the engine implements.

mod access_log;
mod activity;
mod attempts;
mod balancer;
mod body;
mod client;
mod client_ip;
mod compress;
mod confine;
mod conn;
mod cors;
mod endpoints;
mod env_js;
mod error;
mod error_page;
mod forward;
mod head;
mod headers;
mod https;
mod limits;
mod log_batch;
mod metrics;
mod negotiate;
mod observe;
mod policy;
mod rate_limit;
mod response_headers;
mod retry_body;
mod rewrite;
mod router;
mod server;
mod service;
mod setup;
mod shards;
mod shared;
mod static_files;
mod stats;
mod tls;
mod tunnel;
mod view;
mod watched;
mod worker;

use std::sync::Arc;

pub use access_log::AccessLogBatch;
pub use berth_compose::xberth::ProxySettings;
pub use error::ProxyError;
pub use server::{Proxy, RouteTable, ServeOptions};
pub use stats::RouteStats;
pub use tls::{AcmeStatus, CertificateStatus, check_certificates};
pub use tokio_util::sync::CancellationToken;
pub use view::{ReplicaUses, StackView, Upstream, Upstreams};

/// Starts the proxy with the default [`ServeOptions`].
///
/// # Errors
/// [`ProxyError::Listen`] naming the address when a listener cannot be bound
/// (port in use, permission), [`ProxyError::InvalidListen`] for an address
/// that is not `ip:port`, [`ProxyError::StaticRoot`] when a static route's
/// directory does not exist, [`ProxyError::RoutePolicy`] for a route policy
/// the compose model would not have let through (a zero rate, a header that
/// cannot be sent).
pub async fn serve(
    settings: ProxySettings,
    view: Arc<dyn StackView>,
    shutdown: CancellationToken,
) -> Result<Proxy, ProxyError> {
    serve_with(settings, view, shutdown, ServeOptions::default()).await
}

/// Starts the proxy: binds every listener first, then serves until
/// `shutdown` is cancelled; [`Proxy::join`] completes after the drain.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    settings: ProxySettings,
    view: Arc<dyn StackView>,
    shutdown: CancellationToken,
    options: ServeOptions,
) -> Result<Proxy, ProxyError> {
    let listeners = server::bind_all(&settings.listen, &settings.listen_tls)?;
    // WebSockets get their grace within the drain, never beyond it.
    let websocket_grace = options.websocket_grace.min(options.drain_timeout);
    let shared = setup::build(
        &settings,
        view,
        shutdown,
        websocket_grace,
        options.state_dir.clone(),
    )?;
    server::start(listeners, Arc::new(shared), options)
}
