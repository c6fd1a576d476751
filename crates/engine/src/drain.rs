//! Draining: a replica is stopped only once whoever routes to it
//! (forwarders, the proxy) has let go and its in-flight requests and
//! connections are done, or its grace period has passed.
//!
//! Everything that uses a replica address holds an [`InFlight`] for it: a
//! router while its published list names the address, a forwarded
//! connection or a proxied request while it runs. [`Drain`] counts them per
//! address and wakes whoever waits when a count reaches zero, so
//! [`Drain::wait_idle`] is an awaited event, never a poll.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Uses of each replica address: routers listing it, connections and
/// requests to it. Forwarders and the edge proxy report here.
#[derive(Default)]
pub struct Drain {
    counts: Mutex<HashMap<SocketAddr, usize>>,
    /// Woken whenever some address's count reaches zero.
    idle: Notify,
}

impl Drain {
    /// Counts one use of `addr` until the returned guard drops.
    pub fn enter(self: &Arc<Self>, addr: SocketAddr) -> InFlight {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr)
            .or_insert(0) += 1;
        InFlight {
            drain: self.clone(),
            addr,
        }
    }

    /// Uses of `addr` right now.
    pub fn count(&self, addr: SocketAddr) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .copied()
            .unwrap_or(0)
    }

    fn leave(&self, addr: SocketAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(n) = counts.get_mut(&addr) else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&addr);
            drop(counts);
            self.idle.notify_waiters();
        }
    }

    /// Waits until nothing routes to or talks with `addrs` any more, or
    /// until `grace` has passed. Routers follow the published replica sets
    /// on their own tasks, so the count is trusted only after
    /// [`DEREGISTRATION_DELAY`](crate::plan::DEREGISTRATION_DELAY).
    pub async fn wait_idle(&self, addrs: &[SocketAddr], grace: Duration) {
        tokio::time::sleep(crate::plan::DEREGISTRATION_DELAY).await;
        let _ = tokio::time::timeout(grace, self.idle(addrs)).await;
    }

    /// Completes once every one of `addrs` is unused.
    async fn idle(&self, addrs: &[SocketAddr]) {
        loop {
            // Registered before the counts are read, so a count that
            // reaches zero in between still wakes this wait.
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if addrs.iter().all(|a| self.count(*a) == 0) {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}

/// One counted use of a replica address; uncounted when dropped.
#[derive(Debug)]
#[must_use = "the use is counted only while the guard lives"]
pub struct InFlight {
    drain: Arc<Drain>,
    addr: SocketAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.drain.leave(self.addr);
    }
}

/// Holds an [`InFlight`] for every address of a router's published list,
/// so that a drain sees the address in use while the router may pick it.
#[derive(Debug)]
pub struct Listed {
    drain: Arc<Drain>,
    held: HashMap<SocketAddr, InFlight>,
}

impl Listed {
    pub fn new(drain: Arc<Drain>) -> Listed {
        Listed {
            drain,
            held: HashMap::new(),
        }
    }

    /// Follows a new list. Call it after the list is published: an address
    /// that left it is let go only then, so a router that counts a pick
    /// first and checks the list second never races a drain.
    pub fn update(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let next: HashMap<SocketAddr, InFlight> = addrs
            .into_iter()
            .map(|a| {
                let guard = self.held.remove(&a).unwrap_or_else(|| self.drain.enter(a));
                (a, guard)
            })
            .collect();
        // What is left in `held` is no longer listed: dropped here.
        self.held = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_last_use_to_end_and_no_longer() {
        let drain: Arc<Drain> = Arc::default();
        let (a, b) = (addr(1), addr(2));
        let first = drain.enter(a);
        let second = drain.enter(a);
        let _other = drain.enter(b);
        let started = tokio::time::Instant::now();
        let waiting = {
            let drain = drain.clone();
            tokio::spawn(async move { drain.wait_idle(&[a], Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(first);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        drop(second);
        waiting.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(drain.count(a), 0);
        assert_eq!(drain.count(b), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_grace_period() {
        let drain: Arc<Drain> = Arc::default();
        let _busy = drain.enter(addr(1));
        let started = tokio::time::Instant::now();
        drain.wait_idle(&[addr(1)], Duration::from_secs(3)).await;
        assert_eq!(
            started.elapsed(),
            crate::plan::DEREGISTRATION_DELAY + Duration::from_secs(3)
        );
    }

    #[test]
    fn a_listed_address_is_in_use_until_it_leaves_the_list() {
        let drain: Arc<Drain> = Arc::default();
        let mut listed = Listed::new(drain.clone());
        listed.update([addr(1), addr(2)]);
        assert_eq!((drain.count(addr(1)), drain.count(addr(2))), (1, 1));
        listed.update([addr(2), addr(3)]);
        assert_eq!(
            (
                drain.count(addr(1)),
                drain.count(addr(2)),
                drain.count(addr(3))
            ),
            (0, 1, 1)
        );
        drop(listed);
        assert_eq!(drain.count(addr(3)), 0);
    }
}
