//! Route policies over real sockets: `rate_limit`, `allow`, `cors`,
//! `headers`, `security_headers`, and the client address behind
//! `trusted_proxies`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_compose::units::Duration as Dur;
use berth_compose::xberth::{Cors, Rate, RateKey, RateLimit, Route, parse_network};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

fn rate_limit(count: u32, per_secs: u64, burst: u32) -> RateLimit {
    RateLimit {
        rate: Rate {
            count,
            per: Dur(Duration::from_secs(per_secs)),
        },
        burst,
        key: RateKey::ClientIp,
    }
}

fn limited(path: &str, limit: RateLimit) -> Route {
    let mut route = service_route(path, "api");
    route.policy.rate_limit = Some(limit);
    route
}

fn nets(list: &[&str]) -> Vec<berth_compose::xberth::IpNet> {
    list.iter().map(|n| parse_network(n).unwrap()).collect()
}

/// The `X-Forwarded-For` the backend received (it echoes its request).
fn upstream_xff(a: &Answer) -> String {
    a.json()["headers"]["x-forwarded-for"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_burst_gets_burst_plus_one_through_and_429s_with_retry_after() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(
        settings(vec![limited("/api", rate_limit(10, 1, 5))]),
        stack.clone(),
    )
    .await;
    // Twenty connections first, then the twenty requests at once.
    let mut streams = Vec::new();
    for _ in 0..20 {
        streams.push(TcpStream::connect(proxy.addr).await.unwrap());
    }
    for s in &mut streams {
        s.write_all(b"GET /api/x HTTP/1.1\r\nhost: berth\r\n\r\n")
            .await
            .unwrap();
    }
    let mut answers = Vec::new();
    for s in &mut streams {
        answers.push(read_answer(s).await.unwrap().to_ascii_lowercase());
    }
    let ok = answers
        .iter()
        .filter(|a| a.starts_with("http/1.1 200"))
        .count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|a| a.starts_with("http/1.1 429"))
        .collect();
    assert_eq!((ok, limited.len()), (6, 14), "{answers:#?}");
    assert!(limited.iter().all(|a| a.contains("\r\nretry-after: 1\r\n")));
    assert_eq!(api.hits.load(Ordering::SeqCst), 6);

    let metrics = get(&proxy.url("/metrics")).await.text();
    assert!(
        has_line(
            &metrics,
            "berth_proxy_rate_limited_total{route=\"/api\"} 14"
        ),
        "{metrics}"
    );
    eventually("14 refusals in the access log", || {
        let lines = stack.log_lines();
        lines.iter().filter(|l| l["status"] == 429).count() == 14
    })
    .await;
}

#[tokio::test]
async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![limited("/api", rate_limit(1, 60, 0))]);
    // Some proxy is trusted, but not the test's 127.0.0.1.
    s.trusted_proxies = nets(&["10.0.0.0/8"]);
    let proxy = start(s, stack.clone()).await;
    let first = get_with(&proxy.url("/api/x"), &[("x-forwarded-for", "6.6.6.6")]).await;
    assert_eq!(first.status, 200);
    assert_eq!(upstream_xff(&first), "127.0.0.1");
    for forged in ["6.6.6.7", "10.0.0.9", "198.51.100.1, 10.0.0.1"] {
        let a = get_with(&proxy.url("/api/x"), &[("x-forwarded-for", forged)]).await;
        assert_eq!(a.status, 429, "{forged}");
    }
    assert_eq!(api.hits.load(Ordering::SeqCst), 1);
    eventually("the access log names the peer", || {
        let lines = stack.log_lines();
        lines.len() == 4 && lines.iter().all(|l| l["client"] == "127.0.0.1")
    })
    .await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_key() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut s = settings(vec![limited("/api", rate_limit(1, 60, 0))]);
    s.trusted_proxies = nets(&["127.0.0.0/8", "10.0.0.0/8"]);
    let proxy = start(s, stack.clone()).await;
    let url = proxy.url("/api/x");
    let a = get_with(&url, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(
        (a.status.as_u16(), upstream_xff(&a)),
        (200, "198.51.100.1".into())
    );
    let again = get_with(&url, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(again.status, 429);
    // Walked right to left past the trusted 10.0.0.2; the forged 6.6.6.6
    // on the left is not the client.
    let b = get_with(
        &url,
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.2, 10.0.0.2")],
    )
    .await;
    assert_eq!(
        (b.status.as_u16(), upstream_xff(&b)),
        (200, "198.51.100.2".into())
    );
    // No header: the peer itself is the client.
    let c = get(&url).await;
    assert_eq!(
        (c.status.as_u16(), upstream_xff(&c)),
        (200, "127.0.0.1".into())
    );
    eventually("the access log names the forwarded clients", || {
        // Each worker hands over its own lines: in order per worker only.
        let mut clients: Vec<_> = stack
            .log_lines()
            .iter()
            .map(|l| l["client"].as_str().unwrap().to_string())
            .collect();
        clients.sort();
        clients == ["127.0.0.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"]
    })
    .await;
}

#[tokio::test]
async fn clients_outside_allow_get_403_and_never_reach_the_service() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let mut inside = service_route("/inside", "api");
    inside.policy.allow = nets(&["127.0.0.0/8"]);
    let mut outside = service_route("/outside", "api");
    outside.policy.allow = nets(&["10.0.0.0/8", "::1"]);
    let proxy = start(settings(vec![inside, outside]), stack).await;
    let refused = get(&proxy.url("/outside/x")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["status"], 403);
    assert_eq!(api.hits.load(Ordering::SeqCst), 0);
    assert_eq!(get(&proxy.url("/inside/x")).await.status, 200);
    assert_eq!(api.hits.load(Ordering::SeqCst), 1);
}

fn cors_route(path: &str, service: &str) -> Route {
    let mut route = service_route(path, service);
    route.policy.cors = Some(Cors {
        origins: vec!["https://app.example.org".into()],
        methods: vec!["GET".into(), "POST".into()],
        headers: vec!["content-type".into()],
        expose_headers: vec!["x-replica".into()],
        credentials: true,
        max_age: Some(Dur(Duration::from_secs(600))),
    });
    route
}

fn preflight(url: &str, origin: &str) -> Request<Full<Bytes>> {
    Request::options(url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Full::default())
        .unwrap()
}

const APP: &str = "https://app.example.org";

#[tokio::test]
async fn cors_preflights_are_answered_by_berth() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![cors_route("/api", "api")]), stack).await;
    let ok = send(preflight(&proxy.url("/api/items"), APP)).await;
    assert_eq!(ok.status, 204);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert_eq!(ok.header("vary"), Some("Origin"));
    let evil = send(preflight(&proxy.url("/api/items"), "https://evil.example")).await;
    assert_eq!(evil.status, 403);
    assert!(
        !evil
            .headers
            .keys()
            .any(|k| k.as_str().starts_with("access-control-"))
    );
    assert_eq!(api.hits.load(Ordering::SeqCst), 0);
    // A plain OPTIONS is not a preflight: the service answers it.
    let plain = send(
        Request::options(proxy.url("/api/items"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(plain.status, 200);
    assert_eq!(api.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cors_headers_are_on_answers_and_on_errors_for_allowed_origins_only() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    stack.set("down", &[]);
    let proxy = start(
        settings(vec![cors_route("/api", "api"), cors_route("/down", "down")]),
        stack,
    )
    .await;
    let ok = get_with(&proxy.url("/api/x"), &[("origin", APP)]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some(APP));
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        ok.header("access-control-expose-headers"),
        Some("x-replica")
    );
    assert_eq!(ok.header("vary"), Some("Origin"));
    let error = get_with(&proxy.url("/down/x"), &[("origin", APP)]).await;
    assert_eq!(error.status, 503);
    assert_eq!(error.header("access-control-allow-origin"), Some(APP));
    let evil = get_with(&proxy.url("/api/x"), &[("origin", "https://evil.example")]).await;
    assert_eq!(evil.status, 200);
    assert_eq!(evil.header("access-control-allow-origin"), None);
    assert_eq!(evil.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn route_headers_are_set_and_removed_on_answers_and_errors() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    stack.set("down", &[]);
    let rules = |route: &mut Route| {
        let h = &mut route.policy.headers;
        h.set.insert("x-frame-options".into(), "DENY".into());
        h.set.insert("cache-control".into(), "private".into());
        h.remove = vec!["x-replica".into()];
    };
    let mut api_route = service_route("/api", "api");
    rules(&mut api_route);
    let mut down = service_route("/down", "down");
    rules(&mut down);
    let proxy = start(settings(vec![api_route, down]), stack).await;
    let a = get(&proxy.url("/api/x")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-frame-options"), Some("DENY"));
    assert_eq!(a.header("cache-control"), Some("private"));
    assert_eq!(a.header("x-replica"), None);
    let error = get(&proxy.url("/down/x")).await;
    assert_eq!(error.status, 503);
    assert_eq!(error.header("x-frame-options"), Some("DENY"));
    assert_eq!(error.header("cache-control"), Some("private"));
}

#[tokio::test]
async fn security_headers_are_on_when_asked_and_off_by_default_on_plain_listeners() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("index.html"), "<!doctype html><p>hi</p>").unwrap();
    let mut on = service_route("/on", "api");
    on.policy.security_headers = Some(true);
    let mut off = service_route("/off", "api");
    off.policy.security_headers = Some(false);
    let default = service_route("/default", "api");
    let mut site = static_route("/site", tmp.path().to_path_buf(), false);
    site.policy.security_headers = Some(true);
    let plain_site = static_route("/plain-site", tmp.path().to_path_buf(), false);
    let proxy = start(settings(vec![on, off, default, site, plain_site]), stack).await;

    let a = get(&proxy.url("/on/x")).await;
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        a.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        a.header("content-security-policy"),
        None,
        "not a static route"
    );
    for path in ["/off/x", "/default/x", "/plain-site/"] {
        let a = get(&proxy.url(path)).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.header("x-content-type-options"), None, "{path}");
        assert_eq!(a.header("content-security-policy"), None, "{path}");
    }
    let page = get(&proxy.url("/site/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self' ws: wss:"));
}
