//! Load balancing over a service's ready replicas, followed live.
//!
//! A [`Pool`] follows the engine's `watch` channel for one service and port:
//! every pick reads the latest published set, so a replica that leaves gets
//! no new request and a new one is picked at once. Round robin is the
//! default; `least_conn` picks the replica with the fewest requests in
//! flight. A replica that refused a connection is ejected passively
//! (skipped) until the engine publishes a new set or [`EJECT_COOLDOWN`]
//! passes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use berth_compose::xberth::LoadBalancing;
use tokio::sync::watch;

use crate::view::{ReplicaUses, StackView, Upstream, Upstreams};

/// How long a replica that refused a connection is skipped.
pub(crate) const EJECT_COOLDOWN: Duration = Duration::from_secs(5);

/// One replica as the balancer tracks it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) upstream: Upstream,
    /// Requests in flight (for `least_conn`), shared with the slot of the
    /// same replica in the next published set.
    active: Arc<AtomicUsize>,
    /// Ejected until this many milliseconds after the pool's epoch; 0 = not.
    ejected_until_ms: AtomicU64,
    /// The engine's count of requests to this replica, if it keeps one.
    uses: Option<Arc<dyn ReplicaUses>>,
}

/// Keeps a replica counted as busy until dropped (end of the response body).
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    slot: Arc<Slot>,
    /// Counted in `slot.active` too (`least_conn`).
    active: bool,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.active {
            self.slot.active.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(uses) = &self.slot.uses {
            uses.leave();
        }
    }
}

/// The result of a pick.
#[derive(Debug)]
pub(crate) enum Pick {
    /// A replica, and whether another untried one would remain for a retry.
    Replica(Arc<Slot>, bool),
    /// The engine knows no such service (or has no replica ready).
    NoneReady,
    /// Every ready replica was already tried for this request.
    Exhausted,
}

/// The ready replicas of one service port.
pub(crate) struct Pool {
    pub(crate) service: Arc<str>,
    port: Option<u16>,
    lb: LoadBalancing,
    view: Arc<dyn StackView>,
    /// Resolved lazily: the engine may learn about the service after start.
    rx: OnceLock<watch::Receiver<Upstreams>>,
    /// The slots for the last set seen, rebuilt when the engine publishes.
    members: RwLock<(Upstreams, Arc<[Arc<Slot>]>)>,
    next: AtomicUsize,
    epoch: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(
        view: Arc<dyn StackView>,
        service: &str,
        port: Option<u16>,
        lb: LoadBalancing,
    ) -> Self {
        let resolved = OnceLock::new();
        if let Some(rx) = view.upstreams(service, port) {
            let _ = resolved.set(rx);
        }
        let empty: Upstreams = Arc::from(Vec::new());
        Pool {
            service: service.into(),
            port,
            lb,
            view,
            rx: resolved,
            members: RwLock::new((empty, Arc::from(Vec::new()))),
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The replicas published right now.
    pub(crate) fn current(&self) -> Option<Upstreams> {
        if let Some(rx) = self.rx.get() {
            return Some(rx.borrow().clone());
        }
        let rx = self.view.upstreams(&self.service, self.port)?;
        let set = rx.borrow().clone();
        let _ = self.rx.set(rx);
        Some(set)
    }

    /// Slots for the current set, carrying counters over for replicas that stay.
    fn slots(&self) -> Option<Arc<[Arc<Slot>]>> {
        let set = self.current()?;
        if let Ok(m) = self.members.read()
            && Arc::ptr_eq(&m.0, &set)
        {
            return Some(m.1.clone());
        }
        let mut m = self.members.write().ok()?;
        if Arc::ptr_eq(&m.0, &set) {
            return Some(m.1.clone());
        }
        // A new set: its health says the replicas are ready, so ejections end.
        let slots: Arc<[Arc<Slot>]> = set
            .iter()
            .map(|u| {
                let kept = m.1.iter().find(|s| s.upstream == *u);
                let active = kept.map_or_else(Arc::default, |s| s.active.clone());
                let uses = match kept {
                    Some(s) => s.uses.clone(),
                    None => self.view.replica_uses(u.addr),
                };
                Arc::new(Slot {
                    upstream: u.clone(),
                    active,
                    ejected_until_ms: AtomicU64::new(0),
                    uses,
                })
            })
            .collect();
        *m = (set, slots.clone());
        Some(slots)
    }

    /// Picks a replica not in `tried`, preferring ones not ejected.
    pub(crate) fn pick(&self, tried: &[SocketAddr]) -> Pick {
        let Some(slots) = self.slots() else {
            return Pick::NoneReady;
        };
        if slots.is_empty() {
            return Pick::NoneReady;
        }
        let now = self.now_ms();
        let fresh = |s: &Slot| !tried.contains(&s.upstream.addr);
        let healthy = |s: &Slot| fresh(s) && s.ejected_until_ms.load(Ordering::Relaxed) <= now;
        let chosen = self
            .choose(&slots, &healthy)
            .or_else(|| self.choose(&slots, &fresh));
        match chosen {
            Some(slot) => {
                let more = slots
                    .iter()
                    .any(|s| fresh(s) && s.upstream.addr != slot.upstream.addr);
                Pick::Replica(slot, more)
            }
            None => Pick::Exhausted,
        }
    }

    fn choose(&self, slots: &[Arc<Slot>], ok: &dyn Fn(&Slot) -> bool) -> Option<Arc<Slot>> {
        let n = slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let ring = (0..n).map(|i| &slots[(start + i) % n]).filter(|s| ok(s));
        match self.lb {
            LoadBalancing::RoundRobin => ring.into_iter().next().cloned(),
            LoadBalancing::LeastConn => ring
                .min_by_key(|s| s.active.load(Ordering::Relaxed))
                .cloned(),
        }
    }

    /// Counts a request against `slot` until the guard drops: for
    /// `least_conn` (round robin skips the shared atomics), and for the
    /// engine, which stops a replica being replaced only once it is drained.
    pub(crate) fn begin(&self, slot: &Arc<Slot>) -> Option<ActiveGuard> {
        let least_conn = self.lb == LoadBalancing::LeastConn;
        if !least_conn && slot.uses.is_none() {
            return None;
        }
        if least_conn {
            slot.active.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(uses) = &slot.uses {
            uses.enter();
        }
        Some(ActiveGuard {
            slot: slot.clone(),
            active: least_conn,
        })
    }

    /// Skips `slot` for [`EJECT_COOLDOWN`] or until the set changes.
    pub(crate) fn eject(&self, slot: &Slot) {
        let until = self.now_ms() + EJECT_COOLDOWN.as_millis() as u64;
        slot.ejected_until_ms.store(until, Ordering::Relaxed);
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 always means "not ejected".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(watch::Receiver<Upstreams>);
    impl StackView for Fake {
        fn upstreams(&self, _: &str, _: Option<u16>) -> Option<watch::Receiver<Upstreams>> {
            Some(self.0.clone())
        }
        fn health(&self) -> (bool, serde_json::Value) {
            (true, serde_json::Value::Null)
        }
        fn encode_metrics(&self, _: &mut String) {}
        fn access_log(&self, _: crate::AccessLogBatch) {}
    }

    fn set(ports: &[u16]) -> Upstreams {
        ports
            .iter()
            .map(|p| Upstream {
                replica: format!("api-{p}").into(),
                addr: SocketAddr::from(([127, 0, 0, 1], *p)),
            })
            .collect()
    }

    fn pick(pool: &Pool) -> u16 {
        match pool.pick(&[]) {
            Pick::Replica(s, _) => s.upstream.addr.port(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn round_robin_follows_the_published_set() {
        let (tx, rx) = watch::channel(set(&[1, 2, 3]));
        let pool = Pool::new(Arc::new(Fake(rx)), "api", None, LoadBalancing::RoundRobin);
        let mut seen = HashMap::new();
        for _ in 0..30 {
            *seen.entry(pick(&pool)).or_insert(0) += 1;
        }
        assert_eq!(seen.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
        tx.send_replace(set(&[2, 4]));
        for _ in 0..10 {
            assert!([2, 4].contains(&pick(&pool)));
        }
        tx.send_replace(set(&[]));
        assert!(matches!(pool.pick(&[]), Pick::NoneReady));
    }

    #[test]
    fn least_conn_prefers_idle_replicas_and_ejection_skips() {
        let (tx, rx) = watch::channel(set(&[1, 2]));
        let pool = Pool::new(Arc::new(Fake(rx)), "api", None, LoadBalancing::LeastConn);
        let Pick::Replica(busy, true) = pool.pick(&[]) else {
            panic!()
        };
        let _guard = pool.begin(&busy);
        for _ in 0..5 {
            assert_ne!(pick(&pool), busy.upstream.addr.port());
        }
        let Pick::Replica(other, false) = pool.pick(&[busy.upstream.addr]) else {
            panic!()
        };
        pool.eject(&other);
        assert_eq!(pick(&pool), busy.upstream.addr.port());
        assert!(matches!(
            pool.pick(&[busy.upstream.addr, other.upstream.addr]),
            Pick::Exhausted
        ));
        // A new set ends the ejection.
        tx.send_replace(set(&[1, 2]));
        let ports: Vec<u16> = (0..4).map(|_| pick(&pool)).collect();
        assert!(ports.contains(&other.upstream.addr.port()));
    }
}
