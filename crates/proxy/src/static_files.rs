//! A static route: files from a directory through tower-http's `ServeDir`
//! (content types, ETag/If-None-Match, Last-Modified, Range, HEAD,
//! precompressed `.br`/`.gz`/`.zst` variants), plus what `ServeDir` does not
//! do: confinement to the root (see `confine`), the route's `index`, the SPA
//! fallback, cache headers and `/env-config.js`.

use std::io;
use std::path::Path;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use indexmap::IndexMap;
use tower_http::services::fs::{DefaultServeDirFallback, ServeDir};

use crate::body::{Body, boxed, empty, full};
use crate::confine::{BadPath, Confined, check_path};
use crate::error::Failure;
use crate::{env_js, router};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// One static route's directory and options.
#[derive(Debug)]
pub(crate) struct StaticSite {
    serve: ServeDir<DefaultServeDirFallback, Confined>,
    spa: bool,
    index: String,
    /// The full request path of `env-config.js` and its text, when `env_js` is set.
    env_js: Option<(String, Bytes)>,
}

impl StaticSite {
    /// # Errors
    /// When `root` is not a directory that can be resolved.
    pub(crate) fn new(
        prefix: &str,
        root: &Path,
        spa: bool,
        index: &str,
        env: &IndexMap<String, serde_json::Value>,
    ) -> io::Result<Self> {
        let backend = Confined::new(root)?;
        let serve = ServeDir::with_backend(backend.root(), backend.clone())
            .precompressed_br()
            .precompressed_zstd()
            .precompressed_gzip()
            .append_index_html_on_directories(false)
            .redirect_to_trailing_slash(false);
        let env_js = (!env.is_empty()).then(|| (env_js::path_for(prefix), env_js::script(env)));
        Ok(StaticSite {
            serve,
            spa,
            index: index.trim_start_matches('/').to_string(),
            env_js,
        })
    }

    /// Answers `req`, whose path starts with the route's `prefix`.
    pub(crate) async fn serve<B>(
        &self,
        mut req: Request<B>,
        prefix: &str,
    ) -> Result<Response<Body>, Failure> {
        let path = req.uri().path();
        if let Some((env_path, script)) = &self.env_js
            && path == env_path
        {
            return Ok(env_response(script.clone(), req.method()));
        }
        match check_path(path) {
            Ok(()) => {}
            Err(BadPath::Encoding) => return Err(Failure::BadRequest("path is not valid UTF-8")),
            Err(BadPath::Traversal) => {
                return Err(Failure::BadRequest("path leaves the static root"));
            }
        }
        let mut local = router::strip(prefix, path);
        if local.ends_with('/') {
            local.push_str(&self.index);
        }
        let fallback_wanted = self.spa
            && matches!(*req.method(), Method::GET | Method::HEAD)
            && !last_segment(&local).contains('.');
        let fallback_headers = fallback_wanted.then(|| req.headers().clone());
        *req.uri_mut() = local_uri(&local, req.uri())?;
        let (parts, _) = req.into_parts();
        let method = parts.method.clone();
        let mut response = self.call(Request::from_parts(parts, ())).await;
        let mut served = local;
        if response.status() == StatusCode::NOT_FOUND
            && let Some(headers) = fallback_headers
        {
            served = format!("/{}", self.index);
            let mut again = Request::new(());
            *again.method_mut() = method;
            *again.headers_mut() = headers;
            *again.uri_mut() = local_uri(&served, &Uri::from_static("/"))?;
            response = self.call(again).await;
        }
        if response.status() == StatusCode::NOT_FOUND {
            return Err(Failure::NotFound);
        }
        set_cache_control(&mut response, &served, &self.index);
        Ok(response)
    }

    async fn call(&self, req: Request<()>) -> Response<Body> {
        let req = req.map(|()| http_body_util::Empty::<Bytes>::new());
        match self.serve.clone().try_call(req).await {
            Ok(response) => response.map(boxed),
            Err(e) => {
                tracing::debug!(error = %e, "static file not served");
                let mut response = Response::new(empty());
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }
}

fn env_response(script: Bytes, method: &Method) -> Response<Body> {
    let len = script.len();
    let body = if method == Method::HEAD {
        empty()
    } else {
        full(script)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// `local` (already known to be a clean path) with the original query.
fn local_uri(local: &str, original: &Uri) -> Result<Uri, Failure> {
    let text = match original.query() {
        Some(q) => format!("{local}?{q}"),
        None => local.to_string(),
    };
    Uri::try_from(text).map_err(|_| Failure::BadRequest("invalid path"))
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `no-cache` for the index and HTML, a year for fingerprinted assets.
fn set_cache_control(response: &mut Response<Body>, served: &str, index: &str) {
    if !(response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED) {
        return;
    }
    let name = last_segment(served);
    let html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let value = if html || name == index {
        NO_CACHE
    } else if is_fingerprinted(name) {
        IMMUTABLE
    } else {
        return;
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(value));
}

/// Whether a file name carries a content hash: a segment (between `.`, `-`
/// or `_`, not the extension) of 8+ hex digits (`app.1e8414da.js`), or of
/// 8+ letters and digits mixing upper case, lower case and digits as
/// bundlers write them (`index-BXy3k2Ad.js`).
pub(crate) fn is_fingerprinted(name: &str) -> bool {
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) => stem,
        None => return false,
    };
    stem.split(['.', '-', '_']).skip(1).any(|s| {
        let hex = s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let mixed = s.len() >= 8
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes().any(|b| b.is_ascii_uppercase())
            && s.bytes().any(|b| b.is_ascii_lowercase());
        hex || mixed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_recognized() {
        assert!(is_fingerprinted("app.1e8414da.js"));
        assert!(is_fingerprinted("app.1e8414da.js.gz"));
        assert!(is_fingerprinted("index-BXy3k2Ad.js"));
        assert!(is_fingerprinted("style.0123abcd.css"));
        assert!(!is_fingerprinted("app.js"));
        assert!(!is_fingerprinted("index.html"));
        assert!(!is_fingerprinted("bootstrap-reboot.css"));
        assert!(!is_fingerprinted("deadbeef"));
        assert!(!is_fingerprinted("jquery-3.7.1.min.js"));
    }
}
