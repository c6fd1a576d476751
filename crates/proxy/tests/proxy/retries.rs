use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    eventually("200 requests done", || done.load(Ordering::SeqCst) >= 200).await;
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
    let dead = refusing_backend("api-2");
    let stack = FakeStack::new();
    stack.set("api", &[&a, &dead]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    for _ in 0..20 {
        assert_eq!(get(&proxy.url("/x")).await.json()["replica"], "api-1");
    }
    let metrics = get(&proxy.url("/metrics")).await.text();
    assert!(
        has_line(
            &metrics,
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
    let dead = refusing_backend("api-2");
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

/// `api-1` hangs, `api-2` answers; the route's response timeout is 300 ms.
async fn one_hung_replica() -> (Running, Arc<FakeStack>, Backend, Backend) {
    let (hung, good) = (hung_backend("api-1").await, backend("api-2").await);
    let stack = FakeStack::new();
    stack.set("api", &[&hung, &good]);
    let mut route = service_route("/", "api");
    route.timeout = Some(secs(0.3));
    let proxy = start(settings(vec![route]), stack.clone()).await;
    (proxy, stack, hung, good)
}

/// Regression: GETs sent to a replica that accepts and never answers got
/// 504 after the response timeout until the health check removed it.
#[tokio::test]
async fn gets_to_a_hung_replica_are_retried_on_another_and_it_is_ejected() {
    let (proxy, stack, hung, good) = one_hung_replica().await;
    for i in 0..20 {
        let a = get(&proxy.url(&format!("/x{i}"))).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.text());
        assert_eq!(a.json()["replica"], "api-2");
    }
    eventually("the hung replica got a request", || {
        hung.hits.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        hung.hits.load(Ordering::SeqCst),
        1,
        "ejected after its first timeout"
    );
    assert_eq!(good.hits.load(Ordering::SeqCst), 20);
    let metrics = get(&proxy.url("/metrics")).await.text();
    assert!(
        has_line(
            &metrics,
            "berth_proxy_upstream_timeouts_total{service=\"api\",replica=\"api-1\"} 1"
        ),
        "{metrics}"
    );
    // Each request is logged once, with the replica that answered.
    eventually("20 access log lines", || {
        stack
            .log_lines()
            .iter()
            .filter(|l| l["path"].as_str().unwrap().starts_with("/x"))
            .count()
            >= 20
    })
    .await;
    let lines: Vec<_> = stack
        .log_lines()
        .into_iter()
        .filter(|l| l["path"].as_str().unwrap().starts_with("/x"))
        .collect();
    assert_eq!(lines.len(), 20);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 200 && l["upstream"] == "api-2"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_post_to_a_hung_replica_is_504_and_not_sent_twice() {
    let (proxy, _stack, hung, good) = one_hung_replica().await;
    // Without a body, so that only the method keeps it from being repeated.
    let post = send(
        Request::post(proxy.url("/items"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 504);
    assert_eq!(post.json()["service"], "api");
    eventually("the hung replica got the POST", || {
        hung.hits.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        good.hits.load(Ordering::SeqCst),
        0,
        "the POST was sent twice"
    );
    // The hung replica is ejected: the next requests, POSTs too, go to the
    // other one without waiting for another timeout.
    for i in 0..4 {
        let post = send(
            Request::post(proxy.url("/items"))
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(post.status, 200, "request {i}: {}", post.text());
    }
    assert_eq!(hung.hits.load(Ordering::SeqCst), 1);
    assert_eq!(good.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_timed_out_get_is_retried_once_not_on_every_replica() {
    let hung = [
        hung_backend("api-1").await,
        hung_backend("api-2").await,
        hung_backend("api-3").await,
    ];
    let stack = FakeStack::new();
    stack.set("api", &[&hung[0], &hung[1], &hung[2]]);
    let mut route = service_route("/", "api");
    route.timeout = Some(secs(0.3));
    let proxy = start(settings(vec![route]), stack).await;
    let a = get(&proxy.url("/x")).await;
    assert_eq!(a.status, 504);
    assert_eq!(a.json()["service"], "api");
    let sent = || {
        hung.iter()
            .map(|b| b.hits.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    eventually("two replicas got the GET", || sent() >= 2).await;
    assert_eq!(sent(), 2);
}
