//! The request as a replica sees it: HTTP/1.1, `Host` kept (or taken from
//! the HTTP/2 `:authority`), hop-by-hop headers removed, `X-Forwarded-*`
//! and `X-Request-Id` set, and the route prefix stripped when asked.

use http::header::HOST;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Uri};

use crate::error::Failure;
use crate::headers::{set_forwarded, strip_hop_by_hop};
use crate::router;

/// Rewrites the request headers for the upstream, once per request.
pub(crate) fn rewrite_headers(
    parts: &mut Parts,
    upgrade: bool,
    (forwarded_for, secure, request_id): (&HeaderValue, bool, &HeaderValue),
) -> Result<(), Failure> {
    // HTTP/2 has no Host header: the upstream speaks HTTP/1.1 and needs one.
    if !parts.headers.contains_key(HOST) {
        let authority = parts.uri.authority().map(|a| a.as_str().to_string());
        match authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
            Some(host) => {
                parts.headers.insert(HOST, host);
            }
            None => return Err(Failure::BadRequest("missing Host header")),
        }
    }
    strip_hop_by_hop(&mut parts.headers, upgrade);
    let host = parts.headers.get(HOST).cloned();
    set_forwarded(
        &mut parts.headers,
        forwarded_for,
        secure,
        host.as_ref(),
        request_id,
    );
    Ok(())
}

/// The origin-form target the replica sees.
pub(crate) fn upstream_path(
    uri: &Uri,
    prefix: &str,
    strip_prefix: bool,
) -> Result<PathAndQuery, Failure> {
    let original = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    if !strip_prefix || prefix == "/" {
        if uri.path().starts_with('/') {
            return PathAndQuery::try_from(original)
                .map_err(|_| Failure::BadRequest("invalid path"));
        }
        return Err(Failure::BadRequest("request target must be a path"));
    }
    let path = router::strip(prefix, uri.path());
    let text = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    PathAndQuery::try_from(text).map_err(|_| Failure::BadRequest("invalid path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped_keeping_the_query() {
        let uri: Uri = "/api/items?limit=2".parse().unwrap();
        assert_eq!(upstream_path(&uri, "/api", true).unwrap(), "/items?limit=2");
        assert_eq!(
            upstream_path(&uri, "/api", false).unwrap(),
            "/api/items?limit=2"
        );
        let bare: Uri = "/api".parse().unwrap();
        assert_eq!(upstream_path(&bare, "/api", true).unwrap(), "/");
    }
}
