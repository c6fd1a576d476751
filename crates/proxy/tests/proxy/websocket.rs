use std::time::{Duration, Instant};

use berth_compose::xberth::ProxyTimeouts;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn websockets_echo_through_the_proxy() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/ws", "api")]), stack).await;
    let (mut ws, response) = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        [1, 2, 3]
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn an_idle_websocket_is_closed() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/ws", "api")]);
    s.timeouts = ProxyTimeouts {
        websocket_idle: secs(0.6),
        ..ProxyTimeouts::default()
    };
    let proxy = start(s, stack).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", proxy.addr))
        .await
        .unwrap();
    // Traffic keeps it open past the idle time.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.send(Message::text("ping")).await.unwrap();
        assert!(ws.next().await.unwrap().unwrap().is_text());
    }
    let quiet = Instant::now();
    let ending = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    match ending {
        Some(Ok(Message::Close(frame))) => assert_eq!(u16::from(frame.unwrap().code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}
