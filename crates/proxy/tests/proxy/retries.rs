use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::*;

#[tokio::test]
async fn a_backend_killed_under_load_loses_no_idempotent_request() {
    let (a, b, c) = (
        backend("api-1").await,
        backend("api-2").await,
        backend("api-3").await,
    );
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b, &c]);
    let proxy = Arc::new(start(settings(vec![service_route("/", "api")]), stack).await);
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (proxy, failed, done) = (proxy.clone(), failed.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let client = client();
            for _ in 0..60 {
                let req = Request::get(proxy.url("/slow?ms=5"))
                    .body(Full::<Bytes>::default())
                    .unwrap();
                match client.request(req).await {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while done.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The engine has not noticed yet: the dead replica stays in the set.
    assert!(b.hits.load(Ordering::SeqCst) > 0, "the victim was serving");
    b.kill();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 960);
    assert_eq!(failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refusing_replica_is_ejected_and_skipped() {
    let a = backend("api-1").await;
    let dead = backend("api-2").await;
    dead.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stack = FakeStack::new();
    stack.set("api", &[&a, &dead]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/x")).await.json()["replica"], "api-1");
    }
    let metrics = get(&proxy.url("/metrics")).await.text();
    assert!(
        metrics.contains(
            "berth_proxy_upstream_connect_failures_total{service=\"api\",replica=\"api-2\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_post_is_not_retried_after_it_was_sent_but_a_get_is() {
    let (a, b) = (backend("api-1").await, backend("api-2").await);
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let post = send(
        Request::post(proxy.url("/hangup"))
            .body(Full::from("data"))
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 502);
    assert_eq!(post.json()["service"], "api");
    assert_eq!(
        a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst),
        1
    );
    let get = get(&proxy.url("/hangup")).await;
    assert_eq!(get.status, 502, "both replicas hang up");
    assert_eq!(
        a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst),
        3,
        "the GET went to both"
    );
}

#[tokio::test]
async fn a_post_is_retried_when_the_connect_failed() {
    let a = backend("api-1").await;
    let dead = backend("api-2").await;
    dead.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stack = FakeStack::new();
    stack.set("api", &[&dead, &a]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for _ in 0..4 {
        let post = send(
            Request::post(proxy.url("/echo"))
                .body(Full::from("four"))
                .unwrap(),
        )
        .await;
        assert_eq!(post.status, 200);
        assert_eq!(post.json()["body_length"], 4);
    }
}
