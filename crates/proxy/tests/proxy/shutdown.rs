use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use berth_proxy::ServeOptions;
use futures_util::StreamExt;

use crate::support::*;

#[tokio::test]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let url = proxy.url("/slow?ms=800");
    let slow = tokio::spawn(async move { get(&url).await });
    eventually("the slow request reached the replica", || {
        api.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let addr = proxy.addr;
    let started = Instant::now();
    proxy.stop().await;
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, 200, "the request in flight finished");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn websockets_get_a_grace_period_then_a_close_frame() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let shutdown = berth_proxy::CancellationToken::new();
    let options = ServeOptions {
        workers: 2,
        drain_timeout: Duration::from_secs(5),
        websocket_grace: Duration::from_millis(500),
        state_dir: None,
    };
    let proxy = berth_proxy::serve_with(
        settings(vec![service_route("/", "api")]),
        stack,
        shutdown.clone(),
        options,
    )
    .await
    .unwrap();
    let addr = proxy.local_addrs()[0];
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let started = Instant::now();
    shutdown.cancel();
    let frame = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .unwrap();
    assert!(
        matches!(
            frame,
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
        ),
        "{frame:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(450));
    tokio::time::timeout(Duration::from_secs(3), proxy.join())
        .await
        .unwrap();
}
