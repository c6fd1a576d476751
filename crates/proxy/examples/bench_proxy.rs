//! berth-proxy for `bench/proxy.sh`: one route `/` to a fixed upstream.
//!
//! usage: bench_proxy LISTEN UPSTREAM   (e.g. 127.0.0.1:18083 127.0.0.1:18081)

use std::net::SocketAddr;
use std::sync::Arc;

use berth_compose::units::ByteSize;
use berth_compose::xberth::{LoadBalancing, ProxySettings, ProxyTimeouts, Route, RouteTarget};
use berth_proxy::{CancellationToken, StackView, Upstream, Upstreams};
use tokio::sync::watch;

/// A stack of one service with one replica, never changing.
struct Fixed(watch::Receiver<Upstreams>);

impl StackView for Fixed {
    fn upstreams(&self, _: &str, _: Option<u16>) -> Option<watch::Receiver<Upstreams>> {
        Some(self.0.clone())
    }
    fn health(&self) -> (bool, serde_json::Value) {
        (true, serde_json::json!({}))
    }
    fn encode_metrics(&self, _: &mut String) {}
    fn access_log(&self, _: berth_proxy::AccessLogBatch) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18083".into());
    let upstream: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18081".into())
        .parse()?;
    let set: Upstreams = Arc::from(vec![Upstream {
        replica: "bench-1".into(),
        addr: upstream,
    }]);
    let (tx, rx) = watch::channel(set);
    let settings = ProxySettings {
        listen: vec![listen],
        routes: vec![Route {
            path: "/".into(),
            host: None,
            target: RouteTarget::Service {
                service: "bench".into(),
                port: None,
                strip_prefix: false,
                lb: LoadBalancing::RoundRobin,
            },
            max_body_size: None,
            timeout: None,
            policy: Default::default(),
        }],
        health_path: Some("/health".into()),
        metrics_path: Some("/metrics".into()),
        access_log: false,
        max_body_size: ByteSize(10 * 1024 * 1024),
        max_header_size: ByteSize(64 * 1024),
        timeouts: ProxyTimeouts::default(),
        ..ProxySettings::default()
    };
    // The proxy runs on its own worker threads; this runtime only starts it.
    // BENCH_WORKERS=N sets how many (default: one per CPU).
    let options = berth_proxy::ServeOptions {
        workers: std::env::var("BENCH_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..berth_proxy::ServeOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let proxy =
            berth_proxy::serve_with(settings, Arc::new(Fixed(rx)), shutdown.clone(), options)
                .await?;
        println!("listening on {}", proxy.local_addrs()[0]);
        tokio::signal::ctrl_c().await?;
        shutdown.cancel();
        proxy.join().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    drop(tx);
    Ok(())
}
