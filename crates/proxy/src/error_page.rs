//! The proxy's own error answers: JSON for API clients, a small HTML page
//! for browsers, chosen by `Accept`.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response};

use crate::body::{Body, full};
use crate::error::Failure;
use crate::negotiate::{quality_of, split_list};

/// The response for `failure`, in the format the client prefers.
pub(crate) fn render(failure: &Failure, accept: Option<&HeaderValue>) -> Response<Body> {
    let status = failure.status();
    let message = failure.message();
    let (content_type, text) = if prefers_html(accept) {
        ("text/html; charset=utf-8", html(status.as_u16(), &message))
    } else {
        let mut object = serde_json::Map::new();
        object.insert("error".into(), message.into());
        object.insert("status".into(), status.as_u16().into());
        if let Some(service) = failure.service() {
            object.insert("service".into(), service.into());
        }
        (
            "application/json",
            serde_json::Value::Object(object).to_string(),
        )
    };
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Failure::RateLimited { retry_after } = failure {
        headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    response
}

/// Whether `Accept` ranks HTML above JSON (JSON wins ties and absence).
fn prefers_html(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let html = quality_for(accept, "text", "html");
    let json = quality_for(accept, "application", "json");
    html > json
}

/// The quality `accept` gives `kind/sub`, the most specific entry winning.
fn quality_for(accept: &str, kind: &str, sub: &str) -> u16 {
    let mut best: Option<(u8, u16)> = None;
    for item in split_list(accept) {
        let (range, q) = quality_of(item);
        let (k, s) = range.split_once('/').unwrap_or((range, ""));
        let specificity = if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) {
            2
        } else if k.eq_ignore_ascii_case(kind) && s == "*" {
            1
        } else if k == "*" && s == "*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| specificity > b) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

fn html(status: u16, message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status}</title></head>\
         <body><h1>{status}</h1><p>{escaped}</p><hr><p>berth</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &'static str) -> Option<&'static HeaderValue> {
        Some(Box::leak(Box::new(HeaderValue::from_static(v))))
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        assert!(prefers_html(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!prefers_html(accept("application/json")));
        assert!(!prefers_html(accept("*/*")));
        assert!(!prefers_html(None));
        assert!(!prefers_html(accept("text/html;q=0.5, application/json")));
    }

    #[test]
    fn html_escapes_the_message() {
        assert!(html(400, "<x>").contains("&lt;x&gt;"));
    }
}
