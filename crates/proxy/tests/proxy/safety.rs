use std::time::{Duration, Instant};

use berth_compose::xberth::ProxyTimeouts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn a_client_sending_headers_byte_by_byte_is_cut_off() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    s.timeouts = ProxyTimeouts {
        header_read: secs(1.0),
        ..ProxyTimeouts::default()
    };
    let proxy = start(s, stack).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut = false;
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(cut || read.is_ok(), "the connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    s.timeouts = ProxyTimeouts {
        idle: secs(0.8),
        ..ProxyTimeouts::default()
    };
    let proxy = start(s, stack).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_since = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok());
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_long_request_is_not_cut_by_the_idle_timeout() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    s.timeouts = ProxyTimeouts {
        idle: secs(0.4),
        ..ProxyTimeouts::default()
    };
    let proxy = start(s, stack).await;
    let a = get(&proxy.url("/slow?ms=1200")).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn idle_http2_connections_are_closed_too() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    // A head deadline shorter than idle: it must not apply to HTTP/2.
    s.timeouts = ProxyTimeouts {
        header_read: secs(0.3),
        idle: secs(0.8),
        ..ProxyTimeouts::default()
    };
    let proxy = start(s, stack).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(proxy.url("/echo"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let idle_since = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .unwrap()
        .unwrap()
        .ok();
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
}

/// `header_read` 300 ms, `idle` as given: a short head deadline and an idle
/// timeout far from it.
async fn keep_alive_proxy(idle: f64) -> (Running, Backend) {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    s.timeouts = ProxyTimeouts {
        header_read: secs(0.3),
        idle: secs(idle),
        ..ProxyTimeouts::default()
    };
    (start(s, stack).await, api)
}

const ECHO: &[u8] = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";

/// Regression: hyper's header read timeout also ran while a kept-alive
/// connection waited for its next request, so idle connections were closed
/// at `header_read` (10 s by default) instead of `idle` (60 s).
#[tokio::test]
async fn a_keep_alive_connection_is_closed_at_idle_not_at_header_read() {
    let (proxy, _api) = keep_alive_proxy(2.0).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(ECHO).await.unwrap();
    let first = read_answer(&mut stream).await.unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Quiet for three times header_read: still open, and usable.
    assert!(
        !closed_within(&mut stream, Duration::from_millis(900)).await,
        "closed while idle for less than the idle timeout"
    );
    stream.write_all(ECHO).await.unwrap();
    let second = read_answer(&mut stream).await.unwrap();
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Past idle it is closed.
    let idle_since = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_slow_head_on_a_kept_alive_connection_is_cut_at_header_read() {
    let (proxy, api) = keep_alive_proxy(10.0).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(ECHO).await.unwrap();
    assert!(read_answer(&mut stream).await.is_some());
    // The next head trickles in: traffic keeps the idle timeout away, the
    // head deadline (from its first byte) does not move.
    let started = Instant::now();
    let mut cut = false;
    for byte in b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if stream.write_all(&[*byte]).await.is_err()
            || closed_within(&mut stream, Duration::from_millis(50)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut || closed_within(&mut stream, Duration::from_secs(3)).await);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_that_never_sends_a_head_is_cut_at_header_read() {
    let (proxy, _api) = keep_alive_proxy(10.0).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}
