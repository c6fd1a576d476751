//! A route's `cors`: berth answers preflights itself and adds the CORS
//! headers to the route's responses, its own error answers included.
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! from an allowed origin gets `204` with the allowed methods, headers and
//! max age; from any other origin `403` without CORS headers. Neither
//! reaches the service. Other requests go on as usual; when their origin is
//! allowed the response gets `Access-Control-Allow-Origin` (the origin, or
//! `*` for `origins: ["*"]` without credentials), `-Allow-Credentials`,
//! `-Expose-Headers` and `Vary: Origin`.

use berth_compose::xberth::Cors;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::{Body, empty};

/// A route's compiled `cors`, every header value made once.
#[derive(Debug)]
pub(crate) struct CorsPolicy {
    /// `None`: any origin.
    origins: Option<Vec<HeaderValue>>,
    credentials: bool,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// What CORS makes of one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a CORS request, or one from an origin not allowed: no headers.
    Nothing,
    /// An allowed origin: this `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
}

impl CorsPolicy {
    /// # Errors
    /// A list entry that cannot be a header value.
    pub(crate) fn new(cors: &Cors) -> Result<Self, String> {
        let joined = |list: &[String], what: &str| -> Result<Option<HeaderValue>, String> {
            if list.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&list.join(", "))
                .map(Some)
                .map_err(|_| format!("cors.{what}: {list:?} cannot be sent in a header"))
        };
        let any = cors.origins.iter().any(|o| o == "*");
        let origins = if any {
            None
        } else {
            let list = cors.origins.iter().map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| format!("cors.origins: {o:?} is not an origin"))
            });
            Some(list.collect::<Result<Vec<_>, _>>()?)
        };
        let methods = joined(&cors.methods, "methods")?
            .unwrap_or(HeaderValue::from_static("GET, HEAD, POST"));
        Ok(CorsPolicy {
            origins,
            credentials: cors.credentials,
            methods,
            headers: joined(&cors.headers, "headers")?,
            expose: joined(&cors.expose_headers, "expose_headers")?,
            max_age: cors.max_age.map(|d| HeaderValue::from(d.0.as_secs())),
        })
    }

    /// Whether the request's `Origin` is allowed, and what to answer it.
    pub(crate) fn verdict(&self, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(ORIGIN) else {
            return Verdict::Nothing;
        };
        match &self.origins {
            None if !self.credentials => Verdict::Allowed(HeaderValue::from_static("*")),
            None => Verdict::Allowed(origin.clone()),
            Some(list) => {
                let bytes = origin.as_bytes();
                if list
                    .iter()
                    .any(|o| o.as_bytes().eq_ignore_ascii_case(bytes))
                {
                    Verdict::Allowed(origin.clone())
                } else {
                    Verdict::Nothing
                }
            }
        }
    }

    /// Whether `method` and `headers` make a preflight request.
    pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(ORIGIN)
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to an allowed preflight (`add` then adds the origin).
    pub(crate) fn preflight(&self) -> Response<Body> {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        if let Some(headers) = &self.headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, headers.clone());
        }
        if let Some(age) = &self.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        response
    }

    /// Adds the CORS headers for `verdict` to a response of the route.
    pub(crate) fn add(&self, verdict: &Verdict, headers: &mut HeaderMap) {
        if self.origins.is_some() || self.credentials {
            // The answer depends on the origin: caches must keep them apart.
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Verdict::Allowed(origin) = verdict else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::new(&Cors {
            origins: origins.iter().map(|o| o.to_string()).collect(),
            methods: vec!["GET".into(), "POST".into()],
            headers: vec!["content-type".into()],
            expose_headers: vec!["x-total".into()],
            credentials,
            max_age: Some(berth_compose::units::Duration(
                std::time::Duration::from_secs(600),
            )),
        })
        .unwrap()
    }

    fn from(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        h
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let c = cors(&["https://app.example.org"], true);
        let ok = c.verdict(&from("https://app.example.org"));
        assert_eq!(
            ok,
            Verdict::Allowed(HeaderValue::from_static("https://app.example.org"))
        );
        assert_eq!(c.verdict(&from("https://evil.example")), Verdict::Nothing);
        assert_eq!(c.verdict(&HeaderMap::new()), Verdict::Nothing);
        let mut h = HeaderMap::new();
        c.add(&ok, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.org");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], "x-total");
        assert_eq!(h[VARY], "Origin");
        let mut h = HeaderMap::new();
        c.add(&Verdict::Nothing, &mut h);
        assert!(!h.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn any_origin_without_credentials_is_a_star() {
        let c = cors(&["*"], false);
        assert_eq!(
            c.verdict(&from("https://x.example")),
            Verdict::Allowed(HeaderValue::from_static("*"))
        );
        let mut h = HeaderMap::new();
        c.add(&c.verdict(&from("https://x.example")), &mut h);
        assert!(!h.contains_key(VARY));
    }

    #[test]
    fn preflights_carry_the_lists() {
        let c = cors(&["https://app.example.org"], false);
        let r = c.preflight();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(r.headers()[ACCESS_CONTROL_MAX_AGE], "600");
        let mut h = from("https://app.example.org");
        assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &h));
        h.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(CorsPolicy::is_preflight(&Method::OPTIONS, &h));
        assert!(!CorsPolicy::is_preflight(&Method::GET, &h));
    }
}
