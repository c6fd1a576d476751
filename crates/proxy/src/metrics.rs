//! Prometheus metrics of the proxy, in the OpenMetrics text format, with the
//! engine's own metrics appended.
//!
//! Series: `berth_proxy_requests_total{route,code,class}`,
//! `berth_proxy_request_duration_seconds{route}` (histogram),
//! `berth_proxy_requests_in_flight`, `berth_proxy_upstream_ready{route,service}`,
//! `berth_proxy_upstream_connect_failures_total{service,replica}`,
//! `berth_proxy_upstream_timeouts_total{service,replica}` and
//! `berth_proxy_rate_limited_total{route}`.
//! The per-request series (requests, latency, in flight) are sharded per
//! worker and summed when scraped (see `shards`); a route's handle is made
//! once, so the request path does no label hashing.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::shards::{RouteCounts, Routes, ShardedGauge};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    route: String,
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    service: String,
    replica: String,
}

/// Every metric the proxy keeps.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    routes: Routes,
    pub(crate) in_flight: ShardedGauge,
    ready: Family<ReadyLabels, Gauge>,
    connect_failures: Family<ReplicaLabels, Counter>,
    timeouts: Family<ReplicaLabels, Counter>,
    tls_handshake_failures: Counter,
    rate_limited: Family<RouteLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let routes = Routes::default();
        let in_flight = ShardedGauge::default();
        let ready = Family::<ReadyLabels, Gauge>::default();
        let connect_failures = Family::<ReplicaLabels, Counter>::default();
        let timeouts = Family::<ReplicaLabels, Counter>::default();
        let rate_limited = Family::<RouteLabels, Counter>::default();
        registry.register(
            "berth_proxy_requests",
            "Requests answered, by route and status",
            routes.requests(),
        );
        registry.register(
            "berth_proxy_request_duration_seconds",
            "Time from request head to the end of the response body, by route",
            routes.latency(),
        );
        registry.register(
            "berth_proxy_requests_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        registry.register(
            "berth_proxy_upstream_ready",
            "Ready replicas behind a route",
            ready.clone(),
        );
        registry.register(
            "berth_proxy_upstream_connect_failures",
            "Connections to a replica that failed",
            connect_failures.clone(),
        );
        registry.register(
            "berth_proxy_upstream_timeouts",
            "Requests a replica did not answer within the response timeout",
            timeouts.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "berth_proxy_tls_handshake_failures",
            "TLS handshakes that failed or did not finish in time",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "berth_proxy_rate_limited",
            "Requests refused by a route's rate limit (429)",
            rate_limited.clone(),
        );
        Metrics {
            tls_handshake_failures,
            registry,
            routes,
            in_flight,
            ready,
            connect_failures,
            timeouts,
            rate_limited,
        }
    }

    /// The counter of `route`'s rate-limit refusals, for its limiter.
    pub(crate) fn rate_limited(&self, route: &str) -> Counter {
        let labels = RouteLabels {
            route: route.to_string(),
        };
        self.rate_limited.get_or_create(&labels).clone()
    }

    /// Handles for `route` (the route's label, `none` when nothing matched).
    pub(crate) fn route(&self, route: &str) -> Arc<RouteCounts> {
        self.routes.route(route)
    }

    /// Counts a failed connection to a replica.
    pub(crate) fn connect_failure(&self, service: &str, replica: &str) {
        let labels = ReplicaLabels {
            service: service.to_string(),
            replica: replica.to_string(),
        };
        self.connect_failures.get_or_create(&labels).inc();
    }

    /// Counts a TLS handshake that failed or took too long.
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Counts a request a replica did not answer in time.
    pub(crate) fn upstream_timeout(&self, service: &str, replica: &str) {
        let labels = ReplicaLabels {
            service: service.to_string(),
            replica: replica.to_string(),
        };
        self.timeouts.get_or_create(&labels).inc();
    }

    /// Sets how many replicas are ready behind a route (read at scrape time).
    pub(crate) fn set_ready(&self, route: &str, service: &str, count: usize) {
        let labels = ReadyLabels {
            route: route.to_string(),
            service: service.to_string(),
        };
        self.ready.get_or_create(&labels).set(count as i64);
    }

    /// The text exposition, with `engine` (the engine's own series) before `# EOF`.
    pub(crate) fn encode(&self, engine: impl FnOnce(&mut String)) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if out.ends_with("# EOF\n") {
            out.truncate(out.len() - "# EOF\n".len());
        }
        engine(&mut out);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_appear_with_engine_text_before_eof() {
        let m = Metrics::new();
        let api = m.route("/api");
        api.record(200, 0.01);
        api.record(200, 0.02);
        api.record(503, 0.001);
        m.set_ready("/api", "api", 2);
        let text = m.encode(|out| out.push_str("berth_restarts_total{service=\"api\"} 1\n"));
        // Whole lines: `... 2` must not pass for `... 20`.
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has(
            "berth_proxy_requests_total{route=\"/api\",code=\"200\",class=\"2xx\"} 2"
        ));
        assert!(has(
            "berth_proxy_requests_total{route=\"/api\",code=\"503\",class=\"5xx\"} 1"
        ));
        assert!(has(
            "berth_proxy_request_duration_seconds_count{route=\"/api\"} 3"
        ));
        assert!(has(
            "berth_proxy_upstream_ready{route=\"/api\",service=\"api\"} 2"
        ));
        assert!(text.ends_with("berth_restarts_total{service=\"api\"} 1\n# EOF\n"));
    }
}

/// A route's label and its metric handles.
#[derive(Debug, Clone)]
pub(crate) struct RouteTag {
    pub(crate) label: Arc<str>,
    pub(crate) metrics: Arc<RouteCounts>,
}
