//! From [`ProxySettings`] to the shared state requests run against.

use std::sync::Arc;

use berth_compose::xberth::{ProxySettings, RouteTarget};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::balancer::Pool;
use crate::client_ip::TrustedProxies;
use crate::error::ProxyError;
use crate::forward::ServiceRoute;
use crate::metrics::Metrics;
use crate::observe::RouteTag;
use crate::policy::Policy;
use crate::router::Router;
use crate::shared::{RouteEntry, Shared, Table, Target, Timeouts};
use crate::static_files::StaticSite;
use crate::view::StackView;

/// Compiles routes, opens static roots and builds the upstream client.
pub(crate) fn build(
    settings: &ProxySettings,
    view: Arc<dyn StackView>,
    shutdown: CancellationToken,
    websocket_grace: std::time::Duration,
    state_dir: Option<std::path::PathBuf>,
) -> Result<Shared, ProxyError> {
    let metrics = Metrics::new();
    let tls = crate::tls::TlsEdge::new(state_dir);
    tls.configure(settings.tls.as_ref(), &shutdown)?;
    let table = table(settings, &view, &metrics)?;
    let tag = |label: &str| RouteTag {
        label: label.into(),
        metrics: metrics.route(label),
    };
    let builtin = tag("builtin");
    let unrouted = tag("none");
    Ok(Shared {
        table: std::sync::RwLock::new(Arc::new(table)),
        builtin,
        unrouted,
        view,
        metrics,
        tls,
        https_port: std::sync::atomic::AtomicU16::new(443),
        websocket_grace,
        tasks: TaskTracker::new(),
        shutdown,
        hard_stop: CancellationToken::new(),
    })
}

/// What of the settings a running proxy can change (see [`Table`]).
pub(crate) fn table(
    settings: &ProxySettings,
    view: &Arc<dyn StackView>,
    metrics: &Metrics,
) -> Result<Table, ProxyError> {
    Ok(Table {
        router: routes(settings, view, metrics)?,
        health_path: settings.health_path.clone(),
        metrics_path: settings.metrics_path.clone(),
        access_log: settings.access_log,
        redirect_http: settings.redirect_http,
        hsts: crate::https::hsts(settings.hsts),
        trusted_proxies: TrustedProxies::new(&settings.trusted_proxies),
        timeouts: Timeouts::from(&settings.timeouts),
        max_header: settings.max_header_size.0,
        builder: Arc::new(crate::conn::builder(settings.max_header_size.0)),
        connect_timeout: settings.timeouts.connect.0,
    })
}

/// The route table of the settings: each route's target (a pool following
/// the service's ready replicas, or a static site) and its metrics.
fn routes(
    settings: &ProxySettings,
    view: &Arc<dyn StackView>,
    metrics: &Metrics,
) -> Result<Router<RouteEntry>, ProxyError> {
    let tag = |label: &str| RouteTag {
        label: label.into(),
        metrics: metrics.route(label),
    };
    let mut routes = Vec::with_capacity(settings.routes.len());
    for route in &settings.routes {
        let label = match &route.host {
            Some(host) => format!("{host}{}", route.path),
            None => route.path.clone(),
        };
        let target = match &route.target {
            RouteTarget::Service {
                service,
                port,
                strip_prefix,
                lb,
            } => Target::Service(ServiceRoute {
                pool: Pool::new(view.clone(), service, *port, *lb),
                strip_prefix: *strip_prefix,
                timeout: route.timeout.unwrap_or(settings.timeouts.response).0,
                max_body: route.max_body_size.unwrap_or(settings.max_body_size).0,
            }),
            RouteTarget::Static {
                root,
                spa,
                index,
                env_js,
            } => {
                let site =
                    StaticSite::new(&route.path, root, *spa, index, env_js).map_err(|source| {
                        ProxyError::StaticRoot {
                            route: route.path.clone(),
                            root: root.clone(),
                            source,
                        }
                    })?;
                Target::Static(site)
            }
        };
        let is_static = matches!(target, Target::Static(_));
        let policy = Policy::new(&route.policy, is_static, || metrics.rate_limited(&label))
            .map_err(|message| ProxyError::RoutePolicy {
                route: route.path.clone(),
                message,
            })?;
        routes.push((
            route.path.clone(),
            route.host.clone(),
            RouteEntry {
                tag: tag(&label),
                target,
                policy,
            },
        ));
    }
    Ok(Router::new(routes))
}
