use std::collections::HashMap;
use std::sync::atomic::Ordering;

use berth_compose::xberth::{LoadBalancing, RouteTarget};

use crate::support::*;

async fn replicas_hit(url: &str, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        let a = get(url).await;
        *seen
            .entry(a.json()["replica"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    seen
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let (a, b, c) = (
        backend("api-1").await,
        backend("api-2").await,
        backend("api-3").await,
    );
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b, &c]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let seen = replicas_hit(&proxy.url("/x"), 30).await;
    assert_eq!(seen.len(), 3);
    assert!(seen.values().all(|&n| n == 10), "{seen:?}");
}

#[tokio::test]
async fn least_conn_avoids_the_busy_replica() {
    let (a, b) = (backend("api-1").await, backend("api-2").await);
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b]);
    let mut route = service_route("/", "api");
    if let RouteTarget::Service { lb, .. } = &mut route.target {
        *lb = LoadBalancing::LeastConn;
    }
    let proxy = start(settings(vec![route]), stack).await;
    let slow_url = proxy.url("/slow?ms=1500");
    let slow = tokio::spawn(async move { get(&slow_url).await.text() });
    eventually("the slow request reached a replica", || {
        a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst) == 1
    })
    .await;
    let busy = if a.hits.load(Ordering::SeqCst) == 1 {
        "api-1"
    } else {
        "api-2"
    };
    let seen = replicas_hit(&proxy.url("/x"), 10).await;
    assert_eq!(seen.get(busy), None, "{seen:?}");
    assert!(slow.await.unwrap().contains(busy));
    // Once it is idle again, both share the load.
    let seen = replicas_hit(&proxy.url("/x"), 10).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn a_removed_replica_gets_no_new_requests_and_a_new_one_joins() {
    let (a, b, c) = (
        backend("api-1").await,
        backend("api-2").await,
        backend("api-3").await,
    );
    let stack = FakeStack::new();
    stack.set("api", &[&a, &b]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack.clone()).await;
    assert_eq!(replicas_hit(&proxy.url("/x"), 4).await.len(), 2);
    stack.set("api", &[&b]);
    let before = a.hits.load(Ordering::SeqCst);
    let seen = replicas_hit(&proxy.url("/x"), 10).await;
    assert_eq!(seen.get("api-2"), Some(&10), "{seen:?}");
    assert_eq!(a.hits.load(Ordering::SeqCst), before);
    stack.set("api", &[&b, &c]);
    let seen = replicas_hit(&proxy.url("/x"), 10).await;
    assert_eq!(seen.get("api-3"), Some(&5), "{seen:?}");
}
