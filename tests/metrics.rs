//! berth's `/metrics` read by its real consumer: Debian's Prometheus
//! scrapes the edge proxy from a generated `prometheus.yml`, and its query
//! API answers with the proxy's request rate and the replicas' health.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Load, REPLICA_SERVER, Test, http_get, proxy_addr};

const SEC: Duration = Duration::from_secs(1);

const STACK: &str = r#"
services:
  web:
    command: ["python3", "server.py"]
    deploy: {replicas: 2}
    healthcheck:
      test: ["CMD", "python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ['PORT'])"]
      interval: 1s
      timeout: 2s
    x-berth:
      ready: {http: /}
x-berth:
  proxy:
    listen: ["127.0.0.1:0"]
    metrics_path: /metrics
    routes:
      - {path: /, service: web}
"#;

/// Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target`'s `/metrics` every second.
    fn start(t: &Test, target: &str) -> Prometheus {
        let config = t.dir().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: berth\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        // Prometheus takes an address, not a socket: a port the kernel just
        // gave out and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", t.dir().join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is required for this test (Debian package prometheus; .ci/run installs it)");
        Prometheus { child, addr }
    }

    /// The result vector of an instant query, once `ok` holds for it
    /// (within `timeout`).
    fn query_until(
        &self,
        query: &str,
        timeout: Duration,
        ok: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let mut last = String::new();
        loop {
            if let Ok((200, body)) = http_get(&self.addr, &format!("/api/v1/query?query={encoded}"))
            {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
                if ok(&result) {
                    return result;
                }
                last = body;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered {query} as expected; last answer: {last}"
            );
            std::thread::sleep(SEC / 4);
        }
    }
}

fn value(series: &serde_json::Value) -> f64 {
    series["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_real_prometheus_scrapes_the_request_rate_and_the_replicas_health() {
    let mut up = Test::new()
        .file("server.py", REPLICA_SERVER)
        .compose(STACK)
        .args(["up"])
        .spawn();
    up.wait_for("stack is up", 60 * SEC);
    let proxy = proxy_addr(&up.test);
    let prometheus = Prometheus::start(&up.test, &proxy);
    let load = Load::start(&proxy, 2);
    // The target is up: Prometheus parsed the exposition.
    prometheus.query_until("up{job=\"berth\"}", 60 * SEC, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    // The proxy's request rate on the route, from its counter.
    let rate = prometheus.query_until(
        "sum(rate(berth_proxy_requests_total{route=\"/\",class=\"2xx\"}[5s]))",
        60 * SEC,
        |r| r.len() == 1 && value(&r[0]) > 1.0,
    );
    assert!(value(&rate[0]) < 1000.0, "{rate:?}");
    // Each replica's health, by replica.
    let healthy = prometheus.query_until("berth_replica_healthy{service=\"web\"}", 30 * SEC, |r| {
        r.len() == 2 && r.iter().all(|s| value(s) == 1.0)
    });
    let mut replicas: Vec<&str> = healthy
        .iter()
        .map(|s| s["metric"]["replica"].as_str().unwrap())
        .collect();
    replicas.sort_unstable();
    assert_eq!(replicas, ["1", "2"], "{healthy:?}");
    // The latency histogram is a histogram to Prometheus.
    prometheus.query_until(
        "histogram_quantile(0.99, sum by (le) (rate(berth_proxy_request_duration_seconds_bucket{route=\"/\"}[5s])))",
        30 * SEC,
        |r| r.len() == 1 && value(&r[0]) > 0.0,
    );
    load.finish_without_failures(10);
    drop(prometheus);
    assert_eq!(up.interrupt(), Some(130));
}
