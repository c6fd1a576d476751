use std::io::Write;
use std::path::PathBuf;

use berth_compose::xberth::RouteTarget;

use crate::support::*;

const APP_JS: &str = "console.log('berth');\n";

/// A site in `<tmp>/site` and a secret next to it in `<tmp>/secret.txt`.
fn site() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("site");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>index</title>",
    )
    .unwrap();
    std::fs::write(root.join("about.txt"), "about").unwrap();
    std::fs::write(root.join("style.css"), "body{}").unwrap();
    std::fs::write(root.join("big.txt"), "0123456789".repeat(100)).unwrap();
    let js = APP_JS.repeat(100);
    std::fs::write(root.join("assets/app.1e8414da.js"), &js).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(js.as_bytes()).unwrap();
    std::fs::write(root.join("assets/app.1e8414da.js.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "TOPSECRET").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(tmp.path(), root.join("up")).unwrap();
    (tmp, root)
}

async fn serve_site(spa: bool) -> (tempfile::TempDir, Running) {
    let (tmp, root) = site();
    let proxy = start(
        settings(vec![static_route("/", root, spa)]),
        FakeStack::new(),
    )
    .await;
    (tmp, proxy)
}

#[tokio::test]
async fn files_get_types_and_cache_headers() {
    let (_tmp, proxy) = serve_site(true).await;
    let index = get(&proxy.url("/")).await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert!(index.header("last-modified").is_some());
    let css = get(&proxy.url("/style.css")).await;
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(css.header("cache-control"), None);
    let js = get(&proxy.url("/assets/app.1e8414da.js")).await;
    assert!(js.header("content-type").unwrap().contains("javascript"));
    assert_eq!(
        js.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(js.text(), APP_JS.repeat(100));
}

#[tokio::test]
async fn etags_answer_304() {
    let (_tmp, proxy) = serve_site(false).await;
    let first = get(&proxy.url("/about.txt")).await;
    let etag = first.header("etag").unwrap().to_string();
    let again = get_with(&proxy.url("/about.txt"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let changed = get_with(&proxy.url("/about.txt"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(changed.status, 200);
}

#[tokio::test]
async fn ranges_answer_206_and_416() {
    let (_tmp, proxy) = serve_site(false).await;
    let part = get_with(&proxy.url("/big.txt"), &[("range", "bytes=10-14")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "01234");
    assert_eq!(part.header("content-range"), Some("bytes 10-14/1000"));
    let past = get_with(&proxy.url("/big.txt"), &[("range", "bytes=5000-")]).await;
    assert_eq!(past.status, 416);
    // A range is never compressed.
    let both = get_with(
        &proxy.url("/big.txt"),
        &[("range", "bytes=0-1"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(both.header("content-encoding"), None);
}

#[tokio::test]
async fn head_sends_no_body() {
    let (_tmp, proxy) = serve_site(false).await;
    let req = http::Request::head(proxy.url("/big.txt"))
        .body(Default::default())
        .unwrap();
    let head = send(req).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn precompressed_variants_are_served() {
    let (_tmp, proxy) = serve_site(false).await;
    let a = get_with(
        &proxy.url("/assets/app.1e8414da.js"),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(a.header("content-encoding"), Some("gzip"));
    assert!(a.header("content-type").unwrap().contains("javascript"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&a.body[..]), &mut text)
        .unwrap();
    assert_eq!(text, APP_JS.repeat(100));
    assert!(
        a.body.len() < 200,
        "the .gz file itself, {} bytes",
        a.body.len()
    );
}

#[tokio::test]
async fn the_spa_fallback_serves_index_but_missing_assets_stay_404() {
    let (_tmp, proxy) = serve_site(true).await;
    let route = get(&proxy.url("/about/team")).await;
    assert_eq!(route.status, 200);
    assert!(route.text().contains("<title>index</title>"));
    assert_eq!(route.header("cache-control"), Some("no-cache"));
    let missing = get(&proxy.url("/assets/missing.js")).await;
    assert_eq!(missing.status, 404);
    let (_tmp2, plain) = serve_site(false).await;
    assert_eq!(get(&plain.url("/about/team")).await.status, 404);
}

#[tokio::test]
async fn traversal_attempts_never_leave_the_root() {
    let (_tmp, proxy) = serve_site(true).await;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/.%2e/secret.txt",
        "/leak.txt",
        "/up/secret.txt",
        "/a%00b",
    ] {
        let answer = raw(
            proxy.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert!(status == "400" || status == "404", "{path}: {answer}");
        assert!(!answer.contains("TOPSECRET"), "{path} leaked");
    }
}

#[tokio::test]
async fn env_config_js_is_generated_and_escaped() {
    let (_tmp, root) = site();
    let mut route = static_route("/", root, true);
    if let RouteTarget::Static { env_js, .. } = &mut route.target {
        env_js.insert("API_BASE_URL".into(), serde_json::json!("/api"));
        env_js.insert(
            "EVIL".into(),
            serde_json::json!("</script><script>alert('x')</script>\"'"),
        );
    }
    let proxy = start(settings(vec![route]), FakeStack::new()).await;
    let js = get(&proxy.url("/env-config.js")).await;
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("application/javascript")
    );
    assert_eq!(js.header("cache-control"), Some("no-cache"));
    let text = js.text();
    assert!(
        text.starts_with("window._env_ = {\"API_BASE_URL\":\"/api\""),
        "{text}"
    );
    assert!(!text.contains("</script>"), "{text}");
    let json = text
        .trim_start_matches("window._env_ = ")
        .trim_end()
        .trim_end_matches(';');
    let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(parsed["EVIL"], "</script><script>alert('x')</script>\"'");
}
