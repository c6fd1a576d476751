//! The proxy's built-in answers: `health_path` and `metrics_path`.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{Body, full};
use crate::shared::Shared;

/// Aggregated stack health from the engine: 200 when every required service
/// is healthy, 503 otherwise, with the engine's JSON either way.
pub(crate) fn health(shared: &Shared) -> Response<Body> {
    let (healthy, detail) = shared.view.health();
    let mut response = Response::new(full(detail.to_string()));
    *response.status_mut() = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Prometheus text: the proxy's series, then the engine's.
pub(crate) fn metrics(shared: &Shared) -> Response<Body> {
    let table = shared.table();
    for (label, pool) in crate::shared::pools(&table.router) {
        let ready = pool.current().map_or(0, |set| set.len());
        shared.metrics.set_ready(label, &pool.service, ready);
    }
    let text = shared.metrics.encode(|out| shared.view.encode_metrics(out));
    let mut response = Response::new(full(text));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
