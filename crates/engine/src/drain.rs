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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// Uses of each replica address: routers listing it, connections and
/// requests to it. Forwarders and the edge proxy report here.
#[derive(Default)]
pub struct Drain {
    /// Each address's counter; one is dropped once nothing holds it.
    counts: Mutex<HashMap<SocketAddr, Arc<Uses>>>,
    /// Woken whenever some address's count reaches zero.
    idle: Notify,
}

/// The use count of one replica address. Who counts many uses of one
/// address (the proxy, a request each) keeps this handle
/// ([`Drain::uses`]) and counts without a lookup or a lock.
#[derive(Debug)]
pub struct Uses {
    n: AtomicUsize,
    drain: Weak<Drain>,
}

impl Uses {
    /// Counts one use until the returned guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.add();
        InFlight { uses: self.clone() }
    }

    /// Counts one use, until [`Uses::leave`]: for callers that keep their
    /// own guard.
    pub fn add(&self) {
        // Sequentially consistent: a router counts first and checks its
        // list second, a drain changes the list first and reads the count
        // second; one of the two always sees the other.
        self.n.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends one use counted by [`Uses::add`].
    pub fn leave(&self) {
        if self.n.fetch_sub(1, Ordering::SeqCst) == 1
            && let Some(drain) = self.drain.upgrade()
        {
            drain.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// The counter of `addr`'s uses, to count many uses with.
    pub fn uses(self: &Arc<Self>, addr: SocketAddr) -> Arc<Uses> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(uses) = counts.get(&addr) {
            return uses.clone();
        }
        // A new address: forget those nothing holds any more (no use, no handle).
        counts.retain(|_, uses| Arc::strong_count(uses) > 1);
        let uses = Arc::new(Uses {
            n: AtomicUsize::new(0),
            drain: Arc::downgrade(self),
        });
        counts.insert(addr, uses.clone());
        uses
    }

    /// Counts one use of `addr` until the returned guard drops.
    pub fn enter(self: &Arc<Self>, addr: SocketAddr) -> InFlight {
        self.uses(addr).enter()
    }

    /// Uses of `addr` right now.
    pub fn count(&self, addr: SocketAddr) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .map_or(0, |uses| uses.n.load(Ordering::SeqCst))
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
    uses: Arc<Uses>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.uses.leave();
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

    #[tokio::test(start_paused = true)]
    async fn a_kept_counter_counts_without_a_lookup_and_wakes_the_drain() {
        let drain: Arc<Drain> = Arc::default();
        let uses = drain.uses(addr(1));
        assert!(Arc::ptr_eq(&uses, &drain.uses(addr(1))));
        uses.add();
        let guard = uses.enter();
        assert_eq!(drain.count(addr(1)), 2);
        let waiting = {
            let drain = drain.clone();
            tokio::spawn(async move { drain.wait_idle(&[addr(1)], Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(guard);
        assert!(!waiting.is_finished());
        uses.leave();
        waiting.await.unwrap();
        assert_eq!(drain.count(addr(1)), 0);
        // Counters nothing holds are forgotten when a new address comes.
        drop(uses);
        let _other = drain.uses(addr(2));
        assert_eq!(drain.counts.lock().unwrap().len(), 1);
    }
}
