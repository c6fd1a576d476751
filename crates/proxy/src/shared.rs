//! The state every request runs against, built once by `setup`.

use std::sync::Arc;
use std::time::Duration;

use berth_compose::xberth::ProxyTimeouts;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::balancer::Pool;
use crate::client_ip::TrustedProxies;
use crate::metrics::{Metrics, RouteTag};
use crate::policy::Policy;
use crate::router::Router;
use crate::static_files::StaticSite;
use crate::view::StackView;

/// What a route does.
#[derive(Debug)]
pub(crate) enum Target {
    Service(ServiceRoute),
    Static(StaticSite),
}

/// A compiled route.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    pub(crate) tag: RouteTag,
    pub(crate) target: Target,
    /// What the route enforces and adds; `None`: nothing.
    pub(crate) policy: Option<Box<Policy>>,
}

/// Plain durations from the configured timeouts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
    pub(crate) websocket_idle: Duration,
}

impl From<&ProxyTimeouts> for Timeouts {
    fn from(t: &ProxyTimeouts) -> Self {
        Timeouts {
            header_read: t.header_read.0,
            idle: t.idle.0,
            websocket_idle: t.websocket_idle.0,
        }
    }
}

/// What a reconfiguration changes while the proxy serves: a connection
/// takes the current table when it opens (its timeouts), a request when it
/// arrives (everything else), and keeps it.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) router: Router<RouteEntry>,
    pub(crate) health_path: Option<String>,
    pub(crate) metrics_path: Option<String>,
    pub(crate) access_log: bool,
    /// Whose `X-Forwarded-For` names the client.
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) timeouts: Timeouts,
    /// Largest request head.
    pub(crate) max_header: u64,
    /// The connection builder for that head size.
    pub(crate) builder: Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    /// Plain listeners redirect to https.
    pub(crate) redirect_http: bool,
    /// `Strict-Transport-Security` for TLS responses.
    pub(crate) hsts: Option<http::HeaderValue>,
    /// Each worker builds its upstream client with this connect timeout
    /// (again when it changes).
    pub(crate) connect_timeout: Duration,
}

/// Everything requests share, built once by `serve`.
pub(crate) struct Shared {
    pub(crate) table: std::sync::RwLock<Arc<Table>>,
    pub(crate) builtin: RouteTag,
    pub(crate) unrouted: RouteTag,
    pub(crate) view: Arc<dyn StackView>,
    pub(crate) metrics: Metrics,
    /// Certificates and the handshake configuration of TLS listeners.
    pub(crate) tls: crate::tls::TlsEdge,
    /// The port of the first TLS listener, for `redirect_http`.
    pub(crate) https_port: std::sync::atomic::AtomicU16,
    pub(crate) websocket_grace: Duration,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
    pub(crate) hard_stop: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("table", &self.table())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The table as it is now.
    pub(crate) fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Where `redirect_http` sends clients.
    pub(crate) fn https_port(&self) -> u16 {
        self.https_port.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes `table` the one new connections and requests take; those
    /// under way finish with the old one.
    pub(crate) fn set_table(&self, table: Table) {
        *self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
    }
}

/// A route that targets a service.
#[derive(Debug)]
pub(crate) struct ServiceRoute {
    pub(crate) pool: Pool,
    pub(crate) strip_prefix: bool,
    /// Upstream response timeout (504 after).
    pub(crate) timeout: Duration,
    pub(crate) max_body: u64,
}

/// Each service route's label and pool in a route table.
pub(crate) fn pools(router: &Router<RouteEntry>) -> impl Iterator<Item = (&str, &Pool)> {
    router.targets().filter_map(|r| match &r.target {
        Target::Service(s) => Some((&*r.tag.label, &s.pool)),
        Target::Static(_) => None,
    })
}
