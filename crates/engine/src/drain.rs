//! Draining: a replica is stopped only once whoever routes to it
//! (forwarders, the proxy) has let go and its in-flight requests and
//! connections are done, or its grace period has passed.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// Counts of connections and requests still going to an address, so an
/// old incarnation is stopped only once drained (forwarders and the proxy
/// report here).
pub type DrainProbe = Arc<dyn Fn(SocketAddr) -> usize + Send + Sync>;

/// Where connections and requests to a replica address are counted: the
/// forwarders, and whatever else registers (the edge proxy).
#[derive(Default)]
pub struct Drain {
    sources: std::sync::RwLock<Vec<DrainProbe>>,
}

impl Drain {
    /// Adds a source of in-flight counts.
    pub fn add(&self, probe: DrainProbe) {
        self.sources
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(probe);
    }

    /// Waits until nothing routes to or talks with `addrs` any more (seen
    /// twice in a row, 20 ms apart), or until `grace` has passed. Routers
    /// follow the published replica sets on their own tasks, so this starts
    /// after [`DEREGISTRATION_DELAY`](crate::plan::DEREGISTRATION_DELAY).
    pub async fn wait_idle(&self, addrs: &[std::net::SocketAddr], grace: Duration) {
        tokio::time::sleep(crate::plan::DEREGISTRATION_DELAY).await;
        let deadline = tokio::time::Instant::now() + grace;
        let mut quiet = 0;
        while quiet < 2 && tokio::time::Instant::now() < deadline {
            let busy: usize = addrs.iter().map(|a| self.count(*a)).sum();
            quiet = if busy == 0 { quiet + 1 } else { 0 };
            if quiet < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Routers listing an address, plus connections and requests in flight to it.
    pub fn count(&self, addr: std::net::SocketAddr) -> usize {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|p| p(addr))
            .sum()
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}
