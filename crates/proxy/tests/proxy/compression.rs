use std::io::Read;

use crate::support::*;

async fn proxy() -> (Backend, Running) {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    (api, proxy)
}

fn decode(encoding: &str, body: &[u8]) -> String {
    let mut out = String::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_string(&mut out)
            .unwrap(),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap(),
        other => panic!("{other}"),
    };
    out
}

#[tokio::test]
async fn the_preferred_encoding_is_negotiated_by_q_value() {
    let (_api, proxy) = proxy().await;
    let expected = "berth ".repeat(1000);
    for (accept, chosen) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=0.9", "br"),
        ("br;q=0.1, zstd;q=0.2, gzip;q=0.3", "gzip"),
    ] {
        let a = get_with(&proxy.url("/big"), &[("accept-encoding", accept)]).await;
        assert_eq!(a.header("content-encoding"), Some(chosen), "{accept}");
        assert_eq!(a.header("vary"), Some("accept-encoding"));
        assert!(a.body.len() < expected.len() / 4);
        assert_eq!(decode(chosen, &a.body), expected, "{accept}");
    }
}

#[tokio::test]
async fn small_unwanted_or_refused_responses_are_not_compressed() {
    let (_api, proxy) = proxy().await;
    let plain = get(&proxy.url("/big")).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body.len(), 6000);
    let refused = get_with(
        &proxy.url("/big"),
        &[("accept-encoding", "gzip;q=0, identity")],
    )
    .await;
    assert_eq!(refused.header("content-encoding"), None);
    let small = get_with(&proxy.url("/echo"), &[("accept-encoding", "gzip")]).await;
    assert!(small.body.len() < 1024);
    assert_eq!(small.header("content-encoding"), None);
}
