//! A route's `rate_limit`: GCRA per client key (governor's keyed limiter).
//!
//! `rate: COUNT/PER, burst: B` is a quota of one request per `PER/COUNT`
//! with `B + 1` allowed at once. The key is the client's address (after
//! `trusted_proxies`) or a request header's value; requests without the
//! header share one key. Header values are kept as a keyed 128-bit hash,
//! so a key costs the same small entry however long the value is.
//!
//! One limiter per route, shared by every worker thread. Keys whose state
//! is back to "fresh" are dropped every [`SWEEP_CHECKS`] checks and, while
//! a tokio runtime runs, every [`SWEEP_EVERY`] (so an idle proxy gives its
//! memory back too).

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_compose::xberth::{RateKey, RateLimit};
use governor::clock::{Clock, QuantaClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName};
use prometheus_client::metrics::counter::Counter;

/// Checks between two sweeps of stale keys, however busy the proxy is.
const SWEEP_CHECKS: u64 = 1 << 16;
/// Time between two sweeps of stale keys, however idle the proxy is.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// What one client is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    /// A keyed hash of the header's value.
    Header(u128),
    /// Requests without the header.
    NoHeader,
}

type Keyed<C> = RateLimiter<Key, DashMapStateStore<Key>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A route's compiled `rate_limit`.
#[derive(Clone)]
pub(crate) struct Limiter<C: Clock = QuantaClock>(Arc<Inner<C>>);

struct Inner<C: Clock> {
    limiter: Keyed<C>,
    /// The header counted per value; `None`: the client's address.
    header: Option<HeaderName>,
    /// Two independent seeds make the 128-bit hash of header values.
    seeds: (RandomState, RandomState),
    checks: AtomicU64,
    /// `berth_proxy_rate_limited_total` of the route.
    rejected: Counter,
}

impl<C: Clock> std::fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("header", &self.0.header)
            .field("keys", &self.0.limiter.len())
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// The limiter for `limit`; sweeps from a task on the current tokio
    /// runtime, if there is one.
    ///
    /// # Errors
    /// A rate or header name the proxy cannot use.
    pub(crate) fn new(limit: &RateLimit, rejected: Counter) -> Result<Self, String> {
        let limiter = Self::with_clock(limit, rejected, QuantaClock::default())?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep_while_alive(Arc::downgrade(&limiter.0)));
        }
        Ok(limiter)
    }
}

impl<C: Clock> Limiter<C> {
    fn with_clock(limit: &RateLimit, rejected: Counter, clock: C) -> Result<Self, String> {
        let period = limit
            .rate
            .per
            .0
            .checked_div(limit.rate.count)
            .filter(|p| !p.is_zero());
        let burst = limit.burst.checked_add(1).and_then(NonZeroU32::new);
        let (Some(quota), Some(burst)) = (period.and_then(Quota::with_period), burst) else {
            return Err(format!("rate_limit: {} cannot be enforced", limit.rate));
        };
        let header = match &limit.key {
            RateKey::ClientIp => None,
            RateKey::Header(name) => Some(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("rate_limit: {name:?} is not a header name"))?,
            ),
        };
        Ok(Limiter(Arc::new(Inner {
            limiter: RateLimiter::dashmap_with_clock(quota.allow_burst(burst), clock),
            header,
            seeds: (RandomState::new(), RandomState::new()),
            checks: AtomicU64::new(0),
            rejected,
        })))
    }

    /// Counts one request of `client`: `Err` with the seconds to wait
    /// (rounded up, at least 1) when it is over the limit.
    pub(crate) fn check(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), u64> {
        let inner = &*self.0;
        let key = match &inner.header {
            None => Key::Ip(client),
            Some(name) => match headers.get(name) {
                Some(value) => {
                    let (a, b) = &inner.seeds;
                    let bytes = value.as_bytes();
                    Key::Header(u128::from(a.hash_one(bytes)) << 64 | u128::from(b.hash_one(bytes)))
                }
                None => Key::NoHeader,
            },
        };
        if inner.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_CHECKS == SWEEP_CHECKS - 1 {
            self.sweep();
        }
        inner.limiter.check_key(&key).map_err(|not_until| {
            inner.rejected.inc();
            let wait = not_until.wait_time_from(inner.limiter.clock().now());
            retry_after(wait)
        })
    }

    /// Drops the keys whose state is back to fresh, and their memory.
    fn sweep(&self) {
        self.0.limiter.retain_recent();
        self.0.limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.limiter.len()
    }
}

/// Whole seconds, rounded up, at least 1.
fn retry_after(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Sweeps every [`SWEEP_EVERY`] until the limiter is gone (its route
/// table was replaced and the last request on it finished).
async fn sweep_while_alive<C>(limiter: Weak<Inner<C>>)
where
    C: Clock + Send + Sync + 'static,
    C::Instant: Reference + Send + Sync,
{
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(inner) = limiter.upgrade() else {
            return;
        };
        Limiter(inner).sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_compose::units::Duration as Dur;
    use berth_compose::xberth::Rate;
    use governor::clock::FakeRelativeClock;
    use http::HeaderValue;

    fn limit(count: u32, per: u64, burst: u32, key: RateKey) -> RateLimit {
        RateLimit {
            rate: Rate {
                count,
                per: Dur(Duration::from_secs(per)),
            },
            burst,
            key,
        }
    }

    fn api_key(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_str(value).unwrap());
        h
    }

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn burst_plus_one_at_once_then_the_rate() {
        let clock = FakeRelativeClock::default();
        let counter = Counter::default();
        let l = Limiter::with_clock(
            &limit(10, 1, 5, RateKey::ClientIp),
            counter.clone(),
            clock.clone(),
        )
        .unwrap();
        let results: Vec<_> = (0..20).map(|_| l.check(ME, &HeaderMap::new())).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 6);
        assert_eq!(results[6], Err(1));
        assert_eq!(counter.get(), 14);
        // One more every 100 ms; another client is not affected.
        clock.advance(Duration::from_millis(100));
        assert!(l.check(ME, &HeaderMap::new()).is_ok());
        assert!(l.check(ME, &HeaderMap::new()).is_err());
        assert!(
            l.check("10.0.0.1".parse().unwrap(), &HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn header_keys_count_per_value_and_absent_headers_share_one() {
        let clock = FakeRelativeClock::default();
        let key = RateKey::Header("x-api-key".into());
        let l = Limiter::with_clock(&limit(1, 60, 0, key), Counter::default(), clock).unwrap();
        assert!(l.check(ME, &api_key("a")).is_ok());
        assert_eq!(l.check(ME, &api_key("a")), Err(60));
        assert!(l.check(ME, &api_key("b")).is_ok());
        assert!(l.check(ME, &HeaderMap::new()).is_ok());
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check(other, &HeaderMap::new()).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(100)), 1);
        assert_eq!(retry_after(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after(Duration::from_secs(3)), 3);
    }

    #[test]
    fn rates_that_cannot_be_enforced_are_errors() {
        let bad = limit(0, 1, 1, RateKey::ClientIp);
        assert!(Limiter::new(&bad, Counter::default()).is_err());
        let bad = limit(1, 1, 1, RateKey::Header("bad name".into()));
        assert!(Limiter::new(&bad, Counter::default()).is_err());
    }

    fn fill(l: &Limiter<FakeRelativeClock>, keys: usize) {
        for i in 0..keys {
            let _ = l.check(ME, &api_key(&format!("key-{i}")));
        }
    }

    #[test]
    fn busy_limiters_drop_idle_keys_every_so_many_checks() {
        let clock = FakeRelativeClock::default();
        let key = RateKey::Header("x-api-key".into());
        let l =
            Limiter::with_clock(&limit(10, 1, 5, key), Counter::default(), clock.clone()).unwrap();
        let first = usize::try_from(SWEEP_CHECKS).unwrap() - 1;
        fill(&l, first);
        assert_eq!(l.len(), first);
        clock.advance(Duration::from_secs(2));
        // The next check sweeps: only its own key is left.
        fill(&l, 1);
        assert!(l.len() <= 1, "{} keys left", l.len());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_limiters_give_their_memory_back() {
        let clock = FakeRelativeClock::default();
        let key = RateKey::Header("x-api-key".into());
        let l =
            Limiter::with_clock(&limit(10, 1, 5, key), Counter::default(), clock.clone()).unwrap();
        tokio::spawn(sweep_while_alive(Arc::downgrade(&l.0)));
        fill(&l, 50_000);
        assert_eq!(l.len(), 50_000);
        // Keys stay while their state differs from a fresh one...
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert_eq!(l.len(), 50_000);
        // ... and go at the next sweep once it does not.
        clock.advance(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + SWEEP_EVERY * 3;
        while l.len() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} keys left",
                l.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
