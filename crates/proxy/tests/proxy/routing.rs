use crate::support::*;
use berth_compose::xberth::RouteTarget;

#[tokio::test]
async fn longest_prefix_on_whole_segments_wins() {
    let (api, admin, web) = (
        backend("api-1").await,
        backend("admin-1").await,
        backend("web-1").await,
    );
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    stack.set("admin", &[&admin]);
    stack.set("web", &[&web]);
    let proxy = start(
        settings(vec![
            service_route("/", "web"),
            service_route("/api", "api"),
            service_route("/api/admin", "admin"),
        ]),
        stack,
    )
    .await;
    for (path, replica) in [
        ("/api", "api-1"),
        ("/api/items", "api-1"),
        ("/apix", "web-1"),
        ("/api/admin/users", "admin-1"),
        ("/api/administrator", "api-1"),
        ("/", "web-1"),
    ] {
        let a = get(&proxy.url(path)).await;
        assert_eq!(a.json()["replica"], replica, "{path}");
        assert_eq!(a.json()["uri"], path, "the path is passed unchanged");
    }
}

#[tokio::test]
async fn host_routes_match_the_host_without_port() {
    let (a, b) = (backend("a-1").await, backend("b-1").await);
    let stack = FakeStack::new();
    stack.set("a", &[&a]);
    stack.set("b", &[&b]);
    let mut hosted = service_route("/", "b");
    hosted.host = Some("b.example".into());
    let proxy = start(settings(vec![service_route("/", "a"), hosted]), stack).await;
    let plain = get(&proxy.url("/x")).await;
    assert_eq!(plain.json()["replica"], "a-1");
    let other = get_with(&proxy.url("/x"), &[("host", "B.example:8080")]).await;
    assert_eq!(other.json()["replica"], "b-1");
    assert_eq!(
        other.json()["headers"]["host"],
        "B.example:8080",
        "Host is kept"
    );
}

#[tokio::test]
async fn strip_prefix_removes_the_route_path() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut route = service_route("/api", "api");
    if let RouteTarget::Service { strip_prefix, .. } = &mut route.target {
        *strip_prefix = true;
    }
    let proxy = start(settings(vec![route]), stack).await;
    assert_eq!(
        get(&proxy.url("/api/items?limit=2")).await.json()["uri"],
        "/items?limit=2"
    );
    assert_eq!(get(&proxy.url("/api")).await.json()["uri"], "/");
    let none = get(&proxy.url("/other")).await;
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["status"], 404);
}

#[tokio::test]
async fn health_and_metrics_paths_are_answered_before_routes() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let health = get(&proxy.url("/health")).await;
    assert_eq!(health.json()["healthy"], true);
    assert!(
        get(&proxy.url("/metrics"))
            .await
            .text()
            .contains("berth_proxy_requests_total")
    );
    assert_eq!(api.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}
