use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::support::*;

/// Reads the body frame by frame, noting when each arrived.
async fn arrivals(
    url: &str,
    accept_encoding: Option<&str>,
) -> (http::HeaderMap, Vec<(Duration, Bytes)>) {
    let mut req = Request::get(url);
    if let Some(enc) = accept_encoding {
        req = req.header("accept-encoding", enc);
    }
    let response = client()
        .request(req.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    let (parts, mut body) = response.into_parts();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            out.push((start.elapsed(), data));
        }
    }
    (parts.headers, out)
}

#[tokio::test]
async fn server_sent_events_arrive_as_they_are_sent() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let (headers, frames) = arrivals(&proxy.url("/stream?n=5&ms=200"), Some("gzip, br")).await;
    assert_eq!(
        headers.get("content-encoding"),
        None,
        "SSE is never compressed"
    );
    assert_eq!(frames.len(), 5, "one frame per event");
    assert_eq!(frames[0].1, "data: event 0\n\n");
    // The first event comes at once, the last about 800 ms later.
    assert!(
        frames[0].0 < Duration::from_millis(150),
        "{:?}",
        frames[0].0
    );
    assert!(
        frames[4].0 >= Duration::from_millis(700),
        "{:?}",
        frames[4].0
    );
}

#[tokio::test]
async fn compressed_streams_still_stream() {
    let api = backend("api-1").await;
    let stack = FakeStack::new();
    stack.set("api", &[&api]);
    let proxy = start(settings(vec![service_route("/", "api")]), stack).await;
    let (headers, frames) = arrivals(&proxy.url("/chunks?n=4&ms=300"), Some("gzip")).await;
    assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
    // Something arrives well before the backend finishes (~900 ms).
    assert!(
        frames[0].0 < Duration::from_millis(250),
        "{:?}",
        frames[0].0
    );
    let early = frames
        .iter()
        .filter(|(t, _)| *t < Duration::from_millis(500))
        .count();
    assert!(
        early >= 1 && early < frames.len(),
        "{:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    let all: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&all[..]), &mut text).unwrap();
    assert!(text.starts_with("chunk 0 ") && text.contains("chunk 3 "));
}
