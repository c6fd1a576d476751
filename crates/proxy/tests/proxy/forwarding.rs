use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::*;

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_headers_stripped() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let a = get_with(
        &proxy.url("/echo"),
        &[
            ("host", "shop.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-request-id", "spoofed"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    let seen = &a.json()["headers"];
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["host"], "shop.example");
    assert_eq!(seen["x-end-to-end"], "kept");
    let id = seen["x-request-id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(
        a.header("x-request-id"),
        Some(id),
        "the client sees the same id"
    );
    for hop in ["x-secret", "keep-alive", "te", "proxy-authorization"] {
        assert!(seen.get(hop).is_none(), "{hop} reached the backend");
    }
    // The response's hop-by-hop headers do not reach the client either.
    assert_eq!(a.header("x-replica"), Some("api-1"));
    assert_eq!(a.header("x-hop"), None);
    assert_eq!(a.header("keep-alive"), None);
}

#[tokio::test]
async fn http2_clients_reach_http1_backends_with_a_host() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut handles = Vec::new();
    for i in 0..10 {
        let req = Request::post(proxy.url(&format!("/echo?i={i}")))
            .body(Full::from("abc"))
            .unwrap();
        handles.push(tokio::spawn(h2.request(req)));
    }
    for h in handles {
        let response = h.await.unwrap().unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["version"], "HTTP/1.1");
        assert_eq!(json["headers"]["host"], proxy.addr.to_string());
        assert_eq!(json["body_length"], 3);
    }
}
