//! The upstream connection pool: keep-alive connections are reused, and a
//! pooled connection the replica closed is replaced without failing a
//! request, bodies included.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_proxy::{Upstream, Upstreams};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let a = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&a]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for i in 0..50 {
        // A new client connection each time: only the upstream side is pooled.
        let answer = get(&proxy.url(&format!("/n{i}"))).await;
        assert_eq!(answer.status, 200);
    }
    assert_eq!(a.hits.load(Ordering::SeqCst), 50);
    // At most one connection per proxy worker.
    let conns = a.conns.load(Ordering::SeqCst);
    assert!(conns <= 4, "{conns} upstream connections for 50 requests");
}

/// An HTTP/1.1 server with a 20 ms keep-alive timeout: it closes a
/// connection on which no new request started within 20 ms. Counts
/// connections and requests; answers `got <body length>`.
async fn closing_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (conns, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, r) = (conns.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_closing(stream, r.clone()));
        }
    });
    (addr, conns, requests)
}

async fn serve_closing(mut stream: tokio::net::TcpStream, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // The next request must start within the keep-alive timeout.
        if buf.is_empty() {
            match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        // Head, then as many body bytes as Content-Length says.
        let (head_len, body_len) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                break (end + 4, len);
            }
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        while buf.len() < head_len + body_len {
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        buf.drain(..head_len + body_len);
        requests.fetch_add(1, Ordering::SeqCst);
        let body = format!("got {body_len}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_pooled_connection_the_replica_closed_is_replaced() {
    let (addr, conns, requests) = closing_backend().await;
    let stack = FakeStack::new();
    let set: Upstreams = Arc::from(vec![Upstream {
        replica: "api-1".into(),
        addr,
    }]);
    stack.set_raw("api", set);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let client = client();
    // Pauses well inside and well past the replica's keep-alive timeout (a
    // request that arrives just as the replica closes is lost with any
    // client: it was sent).
    let pauses = [0, 50, 2, 0, 60, 5, 45, 0, 80, 1];
    for (i, pause) in pauses.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let req = Request::post(proxy.url("/items"))
            .body(Full::new(Bytes::from_static(b"0123456789")))
            .unwrap();
        let answer = send(req).await;
        assert_eq!(
            (answer.status, answer.text().as_str()),
            (http::StatusCode::OK, "got 10"),
            "request {i}"
        );
        let answer = client
            .request(Request::get(proxy.url("/")).body(Full::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "request {i}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 20);
    // A new connection after each long pause at least; reuse otherwise.
    let conns = conns.load(Ordering::SeqCst);
    assert!((4..20).contains(&conns), "{conns} connections");
}
