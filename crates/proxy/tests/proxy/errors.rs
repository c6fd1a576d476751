use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use crate::support::*;

#[tokio::test]
async fn no_ready_replica_is_503_naming_the_service() {
    let stack = FakeStack::new();
    stack.set("api", &[]);
    let proxy = start(
        settings(vec![
            service_route("/", "api"),
            service_route("/ghost", "ghost"),
        ]),
        stack,
    )
    .await;
    let a = get(&proxy.url("/x")).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.json()["service"], "api");
    assert_eq!(a.json()["status"], 503);
    assert!(a.json()["error"].as_str().unwrap().contains("api"));
    assert_eq!(get(&proxy.url("/ghost")).await.json()["service"], "ghost");
}

#[tokio::test]
async fn unreachable_replicas_are_502_and_browsers_get_html() {
    let (a, b) = (refusing_backend("api-1"), refusing_backend("api-2"));
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let json = get(&proxy.url("/x")).await;
    assert_eq!(json.status, 502);
    assert_eq!(json.json()["service"], "api");
    let html = get_with(
        &proxy.url("/x"),
        &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await;
    assert_eq!(html.status, 502);
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text().contains("<h1>502</h1>") && html.text().contains("api"));
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut route = service_route("/", "api");
    route.timeout = Some(secs(0.3));
    let proxy = start(settings(vec![route]), stack).await;
    let started = std::time::Instant::now();
    let a = get(&proxy.url("/slow?ms=3000")).await;
    assert_eq!(a.status, 504);
    assert_eq!(a.json()["service"], "api");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(get(&proxy.url("/slow?ms=10")).await.status, 200);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut small = service_route("/small", "api");
    small.max_body_size = Some(berth_compose::units::ByteSize(100));
    let proxy = start(settings(vec![service_route("/", "api"), small]), stack).await;
    let declared = send(
        Request::post(proxy.url("/small/x"))
            .body(Full::from(vec![b'a'; 101]))
            .unwrap(),
    )
    .await;
    assert_eq!(declared.status, 413);
    assert_eq!(declared.json()["status"], 413);
    let fits = send(
        Request::post(proxy.url("/small/x"))
            .body(Full::from(vec![b'a'; 100]))
            .unwrap(),
    )
    .await;
    assert_eq!(fits.status, 200);
    let big_elsewhere = send(
        Request::post(proxy.url("/x"))
            .body(Full::from(vec![b'a'; 5000]))
            .unwrap(),
    )
    .await;
    assert_eq!(big_elsewhere.status, 200, "the proxy-wide limit is 1 MiB");
    // Chunked, without Content-Length: cut while streaming.
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..5)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'a'; 50]))))
        .collect();
    let body = StreamBody::new(stream::iter(chunks)).boxed();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = client
        .request(Request::post(proxy.url("/small/x")).body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn oversized_heads_are_431() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![service_route("/", "api")]);
    s.max_header_size = berth_compose::units::ByteSize(4096);
    let proxy = start(s, stack).await;
    let big = "a".repeat(5000);
    let a = get_with(&proxy.url("/x"), &[("x-big", &big)]).await;
    assert_eq!(a.status, 431);
    assert_eq!(a.json()["status"], 431);
    let huge = "a".repeat(40_000);
    let answer = raw(
        proxy.addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Huge: {huge}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_requests_are_400_and_never_reach_a_service() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for request in [
        "GET / HTTP/1.1\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n".to_string(),
        "GARBAGE\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
            .to_string(),
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n".to_string(),
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
    ] {
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
    }
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Regression: a request body the client broke (a bad chunk size line) was
/// answered 502, blaming the service, and counted as an upstream failure.
#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack.clone()).await;
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
    ] {
        let request =
            format!("POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{body:?}: {answer}");
    }
    let metrics = get(&proxy.url("/metrics")).await.text();
    assert!(
        has_line(
            &metrics,
            "berth_proxy_requests_total{route=\"/\",code=\"400\",class=\"4xx\"} 2"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("class=\"5xx\""), "{metrics}");
    eventually("2 access log lines", || {
        stack
            .log_lines()
            .iter()
            .filter(|l| l["path"] == "/items")
            .count()
            >= 2
    })
    .await;
    for line in stack.log_lines().iter().filter(|l| l["path"] == "/items") {
        assert_eq!(line["status"], 400, "{line}");
    }
}

/// Regression: two identical `Content-Length` fields were accepted (hyper
/// drops the second); nginx refuses them, and a proxy should.
#[tokio::test]
async fn a_repeated_content_length_is_400() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for request in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\nX-A: 1\r\nCONTENT-LENGTH: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
    ] {
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
    }
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // One Content-Length is fine, also on a kept-alive connection.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for _ in 0..2 {
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await
        .unwrap();
        let answer = read_answer(&mut stream).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
