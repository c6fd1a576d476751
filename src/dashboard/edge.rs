//! The edge view: per route, requests per second, the share of 5xx
//! answers, and p50/p99 latency over the last seconds, from the proxy's
//! running totals sampled each second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::SystemTime;

use berth_compose::xberth::RouteTarget;
use berth_proxy::RouteStats;
use serde::Serialize;

/// Latency percentiles cover this many one-second samples.
const WINDOW: usize = 10;

/// One route as the edge view shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RouteRow {
    pub route: String,
    /// `service:NAME` or `static:DIR`; empty for `builtin` and `none`.
    pub target: String,
    /// Requests answered in the last second.
    pub rps: f64,
    /// The share of them answered 5xx, 0..1.
    pub error_rate: f64,
    /// Over the last ten seconds, in milliseconds; `None` without requests.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    pub ts: String,
    pub routes: Vec<RouteRow>,
}

/// The totals of the last samples, per route.
#[derive(Debug, Default)]
pub struct Window {
    samples: HashMap<String, VecDeque<RouteStats>>,
}

fn total(s: &RouteStats) -> u64 {
    s.requests.values().sum()
}

fn errors(s: &RouteStats) -> u64 {
    s.requests.get("5xx").copied().unwrap_or(0)
}

/// The `q` quantile (0..1) of the requests between two cumulative
/// histograms, interpolated within its bucket, in milliseconds.
pub fn quantile(old: &[(f64, u64)], new: &[(f64, u64)], q: f64) -> Option<f64> {
    let at = |h: &[(f64, u64)], le: f64| h.iter().find(|(b, _)| *b == le).map_or(0, |(_, n)| *n);
    let deltas: Vec<(f64, u64)> = new
        .iter()
        .map(|(le, n)| (*le, n.saturating_sub(at(old, *le))))
        .collect();
    let count = deltas.last()?.1;
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for (le, n) in &deltas {
        if *n as f64 >= rank {
            if le.is_infinite() {
                // Beyond the last bound: say the last bound.
                return Some(lower.0 * 1000.0);
            }
            let in_bucket = (n - lower.1) as f64;
            let into = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some((lower.0 + (le - lower.0) * into.clamp(0.0, 1.0)) * 1000.0);
        }
        lower = (*le, *n);
    }
    None
}

/// Each route's label (as the proxy's metrics name it) and what it serves.
pub fn route_targets(model: &berth_compose::Project) -> BTreeMap<String, String> {
    model
        .settings
        .proxy
        .iter()
        .flat_map(|p| &p.routes)
        .map(|r| {
            let label = format!("{}{}", r.host.as_deref().unwrap_or(""), r.path);
            let target = match &r.target {
                RouteTarget::Service { service, .. } => format!("service:{service}"),
                RouteTarget::Static { root, .. } => format!("static:{}", root.display()),
            };
            (label, target)
        })
        .collect()
}

impl Window {
    /// Takes this second's totals; the view of each route (`targets`: each
    /// route's label and target, from [`route_targets`]).
    pub fn sample(
        &mut self,
        now: SystemTime,
        stats: Vec<RouteStats>,
        targets: &BTreeMap<String, String>,
    ) -> EdgeView {
        let mut routes = Vec::new();
        for s in stats {
            let samples = self.samples.entry(s.route.clone()).or_default();
            let previous = samples.back().cloned().unwrap_or_default();
            let oldest = samples.front().cloned().unwrap_or_default();
            let served = total(&s).saturating_sub(total(&previous));
            let failed = errors(&s).saturating_sub(errors(&previous));
            routes.push(RouteRow {
                route: s.route.clone(),
                target: targets.get(&s.route).cloned().unwrap_or_default(),
                rps: served as f64,
                error_rate: if served == 0 {
                    0.0
                } else {
                    failed as f64 / served as f64
                },
                p50_ms: quantile(&oldest.latency, &s.latency, 0.5),
                p99_ms: quantile(&oldest.latency, &s.latency, 0.99),
                total: total(&s),
            });
            samples.push_back(s);
            if samples.len() > WINDOW {
                samples.pop_front();
            }
        }
        // Routes with no request yet are listed too.
        for (label, target) in targets {
            if !routes.iter().any(|r| &r.route == label) {
                routes.push(RouteRow {
                    route: label.clone(),
                    target: target.clone(),
                    rps: 0.0,
                    error_rate: 0.0,
                    p50_ms: None,
                    p99_ms: None,
                    total: 0,
                });
            }
        }
        routes.sort_by(|a, b| a.route.cmp(&b.route));
        EdgeView {
            ts: humantime::format_rfc3339_millis(now).to_string(),
            routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(counts: &[(f64, u64)]) -> Vec<(f64, u64)> {
        counts.to_vec()
    }

    #[test]
    fn percentiles_interpolate_within_the_bucket_of_the_window() {
        let old = hist(&[(0.001, 10), (0.01, 10), (0.1, 10), (f64::INFINITY, 10)]);
        // 100 more requests: 50 under 1 ms, 40 more under 10 ms, 10 under 100 ms.
        let new = hist(&[(0.001, 60), (0.01, 100), (0.1, 110), (f64::INFINITY, 110)]);
        let p50 = quantile(&old, &new, 0.5).unwrap();
        assert!((p50 - 1.0).abs() < 1e-9, "{p50}");
        let p99 = quantile(&old, &new, 0.99).unwrap();
        assert!((p99 - 91.0).abs() < 1e-6, "{p99}");
        assert_eq!(quantile(&new, &new, 0.5), None);
    }

    #[test]
    fn rates_and_errors_are_per_second() {
        let mut w = Window::default();
        let stats = |ok: u64, bad: u64| RouteStats {
            route: "/api".into(),
            requests: [("2xx".to_string(), ok), ("5xx".to_string(), bad)].into(),
            latency: vec![(0.01, ok + bad), (f64::INFINITY, ok + bad)],
        };
        let targets = BTreeMap::from([("/api".to_string(), "service:api".to_string())]);
        w.sample(SystemTime::now(), vec![stats(100, 0)], &targets);
        let v = w.sample(SystemTime::now(), vec![stats(190, 10)], &targets);
        assert_eq!(v.routes[0].target, "service:api");
        assert_eq!(v.routes[0].rps, 100.0);
        assert!((v.routes[0].error_rate - 0.1).abs() < 1e-9);
        assert_eq!(v.routes[0].total, 200);
        assert!(v.routes[0].p99_ms.is_some());
    }
}
