//! Request size limits: the head against `max_header_size` (431) and the
//! body against the route's `max_body_size` (413), up front from
//! `Content-Length` and while streaming for bodies without one.

use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::Body;
use crate::error::{ClientBodyError, Failure};

/// Checks the request head's size (as on the wire, approximately).
///
/// hyper refuses heads above its read buffer itself; this makes the limit
/// exact for HTTP/1 below that buffer's 8 KiB minimum and applies it to
/// HTTP/2 too.
pub(crate) fn check_head(parts: &Parts, max: u64) -> Result<(), Failure> {
    let uri = parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    let mut size = parts.method.as_str().len() + uri + 12;
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
    }
    if size as u64 > max {
        Err(Failure::HeadersTooLarge)
    } else {
        Ok(())
    }
}

/// The body, refused now if its declared length is too large, else limited
/// to `max` bytes while it streams; a read error is a [`ClientBodyError`].
pub(crate) fn limit_body(parts: &Parts, body: Incoming, max: u64) -> Result<Body, Failure> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Failure::BodyTooLarge);
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    Ok(Limited::new(body.map_err(ClientBodyError), limit).boxed_unsync())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_heads_are_refused() {
        let req = http::Request::builder()
            .uri("/x")
            .header("a", "b".repeat(100))
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        assert_eq!(check_head(&parts, 1000), Ok(()));
        assert_eq!(check_head(&parts, 100), Err(Failure::HeadersTooLarge));
    }
}
