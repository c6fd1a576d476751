//! What plain and TLS listeners do differently: ACME http-01 answers,
//! `redirect_http` (308 to the same URL on https) and HSTS.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode, request::Parts};

use crate::body::{Body, empty, full};
use crate::shared::Shared;

/// Where ACME http-01 tokens are fetched (RFC 8555 §8.3).
pub(crate) const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer a plain or TLS listener gives before routing, if any: an
/// ACME http-01 token (any listener, as CAs follow redirects), else a 308
/// to https from a plain listener when `redirect_http` is on.
pub(crate) fn before_routing(
    shared: &Shared,
    redirect: bool,
    secure: bool,
    host: Option<&str>,
    parts: &Parts,
) -> Option<Response<Body>> {
    let path = parts.uri.path();
    if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PREFIX) {
        let answer = shared
            .tls
            .http01
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some(key_authorization) = answer {
            let mut response = Response::new(full(key_authorization));
            let headers = response.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Some(response);
        }
    }
    if secure || !redirect {
        return None;
    }
    let port = shared.https_port();
    Some(to_https(host, parts, port))
}

/// 308 to the request's URL on https at `port` (left out when 443).
fn to_https(host: Option<&str>, parts: &Parts, port: u16) -> Response<Body> {
    let name = host.map_or("localhost", host_name);
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{port}{target}")
    };
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(LOCATION, value);
        }
        Err(_) => *response.status_mut() = StatusCode::BAD_REQUEST,
    }
    response
}

/// `host[:port]` without the port (`[::1]:80` -> `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The `Strict-Transport-Security` value for `max_age` seconds (none for 0).
pub(crate) fn hsts(max_age: u64) -> Option<HeaderValue> {
    (max_age > 0)
        .then(|| HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains")).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_path_and_swap_the_port() {
        let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        let at = |host, uri, port| {
            to_https(Some(host), &parts(uri), port).headers()[LOCATION]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            at("example.org", "/a?b=1", 443),
            "https://example.org/a?b=1"
        );
        assert_eq!(
            at("example.org:8080", "/", 8443),
            "https://example.org:8443/"
        );
        assert_eq!(at("[::1]:8080", "/x", 8443), "https://[::1]:8443/x");
        assert_eq!(
            to_https(None, &parts("/"), 443).status(),
            StatusCode::PERMANENT_REDIRECT
        );
        assert_eq!(hsts(0), None);
        assert_eq!(hsts(10).unwrap(), "max-age=10; includeSubDomains");
    }
}
