//! The proxy's counters as numbers, for the dashboard: requests by route
//! and status class, and each route's latency histogram, read off the same
//! exposition `/metrics` serves (so the request path keeps one set of
//! counters, and the two views cannot disagree).

use std::collections::BTreeMap;

/// One route's totals since the proxy started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteStats {
    /// The route's label (its path, `host/path` with a host; `none` for
    /// requests no route matched).
    pub route: String,
    /// Requests answered, by status class (`2xx`, `5xx`…).
    pub requests: BTreeMap<String, u64>,
    /// The latency histogram: (upper bound in seconds, requests at or
    /// under it), cumulative, `+Inf` last.
    pub latency: Vec<(f64, u64)>,
}

/// Every route's totals, from the text exposition `text`.
pub(crate) fn parse(text: &str) -> Vec<RouteStats> {
    let mut routes: BTreeMap<String, RouteStats> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let Some(route) = label("route") else {
            continue;
        };
        let entry = routes.entry(route.clone()).or_insert_with(|| RouteStats {
            route,
            ..RouteStats::default()
        });
        match name {
            "berth_proxy_requests_total" => {
                if let Some(class) = label("class") {
                    *entry.requests.entry(class).or_default() += value as u64;
                }
            }
            "berth_proxy_request_duration_seconds_bucket" => {
                let le = label("le").and_then(|l| match l.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    n => n.parse().ok(),
                });
                if let Some(le) = le {
                    entry.latency.push((le, value as u64));
                }
            }
            _ => {}
        }
    }
    let mut out: Vec<RouteStats> = routes.into_values().collect();
    for r in &mut out {
        r.latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// A sample's labels, unescaped, in order.
type Labels = Vec<(String, String)>;

/// `name{k="v",…} value` (the labels unescaped), or `name value`.
fn sample(line: &str) -> Option<(&str, Labels, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head, Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(other) => v.push(other),
                    None => break,
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), v));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_totals_come_from_the_exposition() {
        let m = crate::metrics::Metrics::new();
        let api = m.route("/api");
        api.record(200, 0.0004);
        api.record(201, 0.02);
        api.record(503, 0.3);
        m.route("/").record(404, 0.001);
        let stats = parse(&m.encode(|_| {}));
        let api = stats.iter().find(|r| r.route == "/api").unwrap();
        assert_eq!(api.requests.get("2xx"), Some(&2));
        assert_eq!(api.requests.get("5xx"), Some(&1));
        assert_eq!(api.latency.first(), Some(&(0.0005, 1)));
        assert_eq!(api.latency.last(), Some(&(f64::INFINITY, 3)));
        assert!(api.latency.windows(2).all(|w| w[0].1 <= w[1].1));
        let root = stats.iter().find(|r| r.route == "/").unwrap();
        assert_eq!(root.requests.get("4xx"), Some(&1));
    }

    #[test]
    fn escaped_label_values_are_read_back() {
        let (name, labels, value) = sample(r#"x_total{route="/a\"b",class="2xx"} 7"#).unwrap();
        assert_eq!(name, "x_total");
        assert_eq!(labels[0], ("route".into(), "/a\"b".into()));
        assert_eq!(labels[1], ("class".into(), "2xx".into()));
        assert_eq!(value, 7.0);
    }
}
