//! Request metrics kept per worker and summed when scraped.
//!
//! Every proxied request counts itself (in flight, by status code, in its
//! route's latency histogram). With one set of counters the workers took
//! turns on the same cache lines for each request — prometheus-client's
//! histogram is a lock, the per-code counters sat behind another. Here
//! each worker writes only its own shard, padded to its own cache lines;
//! `/metrics` adds the shards up, as nginx's workers keep their own
//! counters.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Shards per metric; workers beyond this share them (index modulo).
const SHARDS: usize = 8;

/// The latency histogram's upper bounds, in seconds (`+Inf` follows).
pub(crate) const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

thread_local! {
    /// The shard this thread writes: its worker's index; 0 off the workers.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes this thread write shard `worker` (modulo the shard count).
pub(crate) fn set_worker(worker: usize) {
    SHARD.with(|s| s.set(worker % SHARDS));
}

fn shard() -> usize {
    SHARD.with(Cell::get)
}

/// A value on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A gauge whose shards each count their own ups and downs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShardedGauge(Arc<[Padded<AtomicI64>; SHARDS]>);

impl ShardedGauge {
    pub(crate) fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dec(&self) {
        self.0[shard()].0.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> i64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for ShardedGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for ShardedGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One worker's part of a route's counts.
#[derive(Debug, Default)]
struct RouteShard {
    /// Requests per latency bucket, `+Inf` last.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    /// Total latency, in nanoseconds.
    sum_nanos: AtomicU64,
    /// Requests by status code. Only this shard's worker locks it but for
    /// scrapes, so the lock is never contended on the request path.
    codes: Mutex<Vec<(u16, u64)>>,
}

/// A route's request counts and latency histogram, sharded per worker.
#[derive(Debug)]
pub(crate) struct RouteCounts {
    label: String,
    shards: [Padded<RouteShard>; SHARDS],
}

impl RouteCounts {
    /// Records one finished request.
    pub(crate) fn record(&self, status: u16, seconds: f64) {
        let shard = &self.shards[shard()].0;
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion: a negative or NaN time counts 0.
        let nanos = (seconds * 1e9) as u64;
        shard.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        let mut codes = shard.codes.lock().unwrap_or_else(PoisonError::into_inner);
        match codes.iter_mut().find(|(code, _)| *code == status) {
            Some((_, n)) => *n += 1,
            None => codes.push((status, 1)),
        }
    }

    /// Requests by status code over all shards, by code.
    fn codes(&self) -> Vec<(u16, u64)> {
        let mut all: Vec<(u16, u64)> = Vec::new();
        for shard in &self.shards {
            let codes = shard.0.codes.lock().unwrap_or_else(PoisonError::into_inner);
            for &(code, n) in codes.iter() {
                match all.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, total)) => *total += n,
                    None => all.push((code, n)),
                }
            }
        }
        all.sort_unstable();
        all
    }

    /// The histogram over all shards: sum, count and per-bucket counts.
    fn latency(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|bound| (bound, 0))
            .collect();
        let mut nanos = 0u64;
        for shard in &self.shards {
            for (total, n) in buckets.iter_mut().zip(&shard.0.buckets) {
                total.1 += n.load(Ordering::Relaxed);
            }
            nanos = nanos.wrapping_add(shard.0.sum_nanos.load(Ordering::Relaxed));
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        (nanos as f64 / 1e9, count, buckets)
    }
}

/// Every route's counts, one entry per route label for the life of the
/// proxy (a reconfigured route keeps counting where it was).
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes(Arc<Mutex<Vec<Arc<RouteCounts>>>>);

impl Routes {
    /// The counts of `label`, made on first use.
    pub(crate) fn route(&self, label: &str) -> Arc<RouteCounts> {
        let mut routes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = routes.iter().find(|r| r.label == label) {
            return found.clone();
        }
        let counts = Arc::new(RouteCounts {
            label: label.to_string(),
            shards: Default::default(),
        });
        routes.push(counts.clone());
        counts
    }

    fn all(&self) -> Vec<Arc<RouteCounts>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `berth_proxy_requests_total{route,code,class}`.
    pub(crate) fn requests(&self) -> Requests {
        Requests(self.clone())
    }

    /// `berth_proxy_request_duration_seconds{route}`.
    pub(crate) fn latency(&self) -> Latency {
        Latency(self.clone())
    }
}

/// The request counters of every route, as one metric family.
#[derive(Debug)]
pub(crate) struct Requests(Routes);

impl EncodeMetric for Requests {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for route in self.0.all() {
            for (code, n) in route.codes() {
                let class = match code / 100 {
                    1 => "1xx",
                    2 => "2xx",
                    3 => "3xx",
                    4 => "4xx",
                    5 => "5xx",
                    _ => "other",
                };
                let code = code.to_string();
                let labels = [
                    ("route", route.label.as_str()),
                    ("code", code.as_str()),
                    ("class", class),
                ];
                encoder
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// The latency histograms of every route, as one metric family.
#[derive(Debug)]
pub(crate) struct Latency(Routes);

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for route in self.0.all() {
            let (sum, count, buckets) = route.latency();
            let labels = [("route", route.label.as_str())];
            encoder
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_written_by_different_workers_add_up() {
        let routes = Routes::default();
        let api = routes.route("/api");
        assert!(Arc::ptr_eq(&api, &routes.route("/api")));
        let gauge = ShardedGauge::default();
        std::thread::scope(|s| {
            for worker in 0..3 {
                let (api, gauge) = (&api, &gauge);
                s.spawn(move || {
                    set_worker(worker);
                    gauge.inc();
                    api.record(200, 0.0004);
                    api.record(200, 0.02);
                    api.record(503, 20.0);
                });
            }
        });
        gauge.dec();
        assert_eq!(gauge.get(), 2);
        assert_eq!(api.codes(), [(200, 6), (503, 3)]);
        let (sum, count, buckets) = api.latency();
        assert_eq!(count, 9);
        assert!((sum - 3.0 * 20.0204).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[0], (0.0005, 3));
        assert_eq!(buckets[5], (0.025, 3));
        assert_eq!(buckets[LATENCY_BOUNDS.len()], (f64::INFINITY, 3));
    }
}
