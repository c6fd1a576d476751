use std::collections::HashMap;
use std::sync::atomic::Ordering;

use crate::support::*;

#[tokio::test]
async fn health_is_200_or_503_with_the_engine_json() {
    let stack = FakeStack::new();
    let proxy = start(settings(vec![]), stack.clone()).await;
    let ok = get(&proxy.url("/health")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["services"]["api"]["replicas"], 1);
    stack.unhealthy.store(true, Ordering::SeqCst);
    let bad = get(&proxy.url("/health")).await;
    assert_eq!(bad.status, 503);
    assert_eq!(bad.json()["healthy"], false);
}

/// Parses the text format into `series -> value`, checking every line's shape.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty()
                    || line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("# UNIT ")
                    || line == "# EOF",
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "{line}");
        }
        out.insert(
            series.to_string(),
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}")),
        );
    }
    assert!(text.ends_with("# EOF\n"));
    out
}

#[tokio::test]
async fn metrics_count_requests_latency_and_ready_replicas() {
    let (a, b) = (backend("api-1").await, backend("api-2").await);
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b]);
    stack.set("empty", &[]);
    let proxy = start(
        settings(vec![
            service_route("/api", "api"),
            service_route("/e", "empty"),
        ]),
        stack,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get(&proxy.url("/api/x")).await.status, 200);
    }
    assert_eq!(get(&proxy.url("/e")).await.status, 503);
    assert_eq!(get(&proxy.url("/nowhere")).await.status, 404);
    let m = get(&proxy.url("/metrics")).await;
    assert!(
        m.header("content-type")
            .unwrap()
            .contains("openmetrics-text")
    );
    let series = parse(&m.text());
    assert_eq!(
        series["berth_proxy_requests_total{route=\"/api\",code=\"200\",class=\"2xx\"}"],
        3.0
    );
    assert_eq!(
        series["berth_proxy_requests_total{route=\"/e\",code=\"503\",class=\"5xx\"}"],
        1.0
    );
    assert_eq!(
        series["berth_proxy_requests_total{route=\"none\",code=\"404\",class=\"4xx\"}"],
        1.0
    );
    assert_eq!(
        series["berth_proxy_request_duration_seconds_count{route=\"/api\"}"],
        3.0
    );
    assert!(
        series.contains_key(
            "berth_proxy_request_duration_seconds_bucket{le=\"0.005\",route=\"/api\"}"
        )
    );
    assert_eq!(
        series["berth_proxy_upstream_ready{route=\"/api\",service=\"api\"}"],
        2.0
    );
    assert_eq!(
        series["berth_proxy_upstream_ready{route=\"/e\",service=\"empty\"}"],
        0.0
    );
    assert_eq!(
        series["berth_proxy_requests_in_flight"], 1.0,
        "the scrape itself"
    );
    assert_eq!(series["berth_service_restarts_total{service=\"api\"}"], 3.0);
}

#[tokio::test]
async fn each_request_is_one_access_log_line() {
    let a = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&a]);
    let proxy = start(settings(vec![service_route("/api", "api")]), stack.clone()).await;
    let started = std::time::Instant::now();
    let answer = get(&proxy.url("/api/echo?x=1")).await;
    get(&proxy.url("/missing")).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Lines are written once each response body is done: wait for both.
    crate::support::eventually("two access log lines", || stack.log_lines().len() >= 2).await;
    let mut lines = stack.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    // Each worker hands over its own lines: in order per worker only.
    lines.sort_by_key(|l| l["status"].as_u64());
    let first = &lines[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/api/echo?x=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], answer.body.len());
    assert_eq!(first["upstream"], "api-1");
    assert_eq!(first["route"], "/api");
    assert_eq!(first["request_id"], answer.header("x-request-id").unwrap());
    // The time the request took, as the client saw it at most.
    let duration = first["duration_ms"].as_f64().unwrap();
    assert!(
        duration > 0.0 && duration <= elapsed_ms,
        "{duration} of {elapsed_ms} ms"
    );
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["upstream"], serde_json::Value::Null);
}

/// The access log is buffered per worker: a clean stop hands over every
/// line still buffered, with nothing to wait for afterwards.
#[tokio::test]
async fn a_clean_stop_loses_no_access_log_line() {
    let a = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&a]);
    let proxy = start(settings(vec![service_route("/api", "api")]), stack.clone()).await;
    for i in 0..30 {
        assert_eq!(get(&proxy.url(&format!("/api/{i}"))).await.status, 200);
    }
    proxy.stop().await;
    let mut paths: Vec<String> = stack
        .log_lines()
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort_by_key(|p| p[5..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..30).map(|i| format!("/api/{i}")).collect();
    assert_eq!(paths, expected);
}
