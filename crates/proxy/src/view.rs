//! What the proxy needs from the running stack: ready replicas per service,
//! aggregated health, engine metrics and the log stream.
//!
//! The engine implements [`StackView`]; the proxy only subscribes. Replica
//! sets arrive on `watch` channels so a replica that turns unhealthy leaves
//! the load balancer the moment the engine publishes the new set.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::access_log::AccessLogBatch;

/// One ready replica of a service, for one declared port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The replica's name as logs and `ps` show it, e.g. `api-2`.
    pub replica: Arc<str>,
    /// Where the replica listens for this port.
    pub addr: SocketAddr,
}

/// The ready replicas of a service for one port, as last published.
pub type Upstreams = Arc<[Upstream]>;

/// The running stack as the proxy sees it.
pub trait StackView: Send + Sync + 'static {
    /// Ready replicas of `service` for its declared `port` (None = the service's only/first port),
    /// followed live: a replica that turns unhealthy or stops leaves at once, a new one joins when ready.
    fn upstreams(&self, service: &str, port: Option<u16>) -> Option<watch::Receiver<Upstreams>>;

    /// Aggregated health for `health_path`: JSON with every service's replicas, state and health,
    /// and whether all required services are healthy (200) or not (503).
    fn health(&self) -> (bool, serde_json::Value);

    /// Engine metrics (per-service restarts, replica health...) appended to the /metrics text.
    fn encode_metrics(&self, out: &mut String);

    /// Access-log lines (JSON, one per request) into berth's log stream
    /// under service `proxy`: a worker's buffer at a time, at least every
    /// second while requests come, and what is left when the proxy stops.
    fn access_log(&self, batch: AccessLogBatch);

    /// Where the requests to `addr` are counted: the proxy calls
    /// [`ReplicaUses::enter`] when one begins and [`ReplicaUses::leave`]
    /// when it ends (with the end of the response body). The engine counts
    /// these so a replica being replaced is stopped only once drained.
    /// Asked once per replica and kept, so counting a request takes no
    /// lookup. Default: nothing is counted.
    fn replica_uses(&self, addr: SocketAddr) -> Option<Arc<dyn ReplicaUses>> {
        let _ = addr;
        None
    }
}

/// Counts the requests in flight to one replica (see [`StackView::replica_uses`]).
pub trait ReplicaUses: std::fmt::Debug + Send + Sync + 'static {
    /// A request begins.
    fn enter(&self);
    /// A request that [`ReplicaUses::enter`] counted ends.
    fn leave(&self);
}
