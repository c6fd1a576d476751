//! A route's `headers: {set, remove}` and `security_headers`, applied to
//! every response of the route (berth's own error answers included).
//!
//! Order: `remove`, then `set`, then the security headers the response
//! does not carry yet (so `set` and the upstream's own choices win).
//! `security_headers` unset means on for TLS connections, off for plain.

use berth_compose::xberth::HeaderRules;
use http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The security headers every route gets when they are on.
const SECURITY: [(HeaderName, &str); 3] = [
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (X_FRAME_OPTIONS, "SAMEORIGIN"),
    (REFERRER_POLICY, "strict-origin-when-cross-origin"),
];

/// The default `Content-Security-Policy` of static routes: the page's own
/// scripts, styles, images and API (and WebSockets), inline styles and
/// `data:` images allowed, no inline scripts, no plugins, no framing by
/// other sites. A route that needs more sets its own with `headers.set`.
pub(crate) const STATIC_CSP: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self' ws: wss:; \
     frame-ancestors 'self'; base-uri 'self'; object-src 'none'";

/// A route's compiled header rules.
#[derive(Debug, Default)]
pub(crate) struct ResponseHeaders {
    set: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
    /// `security_headers` as written; `None`: as the listener decides.
    security: Option<bool>,
    /// A static route: the default CSP too.
    csp: bool,
}

impl ResponseHeaders {
    /// What a route without settings does: only the listener's default.
    pub(crate) const DEFAULT: ResponseHeaders = ResponseHeaders {
        set: Vec::new(),
        remove: Vec::new(),
        security: None,
        csp: false,
    };

    /// # Errors
    /// A header name or value that cannot be sent.
    pub(crate) fn new(
        rules: &HeaderRules,
        security: Option<bool>,
        is_static: bool,
    ) -> Result<Self, String> {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name"))
        };
        let mut set = Vec::with_capacity(rules.set.len());
        for (n, v) in &rules.set {
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("headers.set.{n}: {v:?} cannot be sent in a header"))?;
            set.push((name(n)?, value));
        }
        let remove = rules
            .remove
            .iter()
            .map(|n| name(n))
            .collect::<Result<_, _>>()?;
        Ok(ResponseHeaders {
            set,
            remove,
            security,
            csp: is_static,
        })
    }

    /// Whether these rules change nothing on a plain connection.
    pub(crate) fn is_default(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty() && self.security.is_none()
    }

    /// Applies the rules to a response that came over a TLS connection or not.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, secure: bool) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name, value.clone());
        }
        if !self.security.unwrap_or(secure) {
            return;
        }
        for (name, value) in &SECURITY {
            if !headers.contains_key(name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        if self.csp && !headers.contains_key(CONTENT_SECURITY_POLICY) {
            headers.insert(
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(STATIC_CSP),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(set: &[(&str, &str)], remove: &[&str]) -> HeaderRules {
        HeaderRules {
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            remove: remove.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn upstream() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("gunicorn"));
        h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("ALLOW-FROM x"));
        h
    }

    #[test]
    fn remove_then_set_then_missing_security_headers() {
        let r = ResponseHeaders::new(
            &rules(
                &[("x-frame-options", "DENY")],
                &["server", "x-frame-options"],
            ),
            Some(true),
            false,
        )
        .unwrap();
        let mut h = upstream();
        r.apply(&mut h, false);
        assert!(!h.contains_key("server"));
        assert_eq!(h[X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[REFERRER_POLICY], "strict-origin-when-cross-origin");
        assert!(!h.contains_key(CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn security_headers_follow_the_listener_unless_written() {
        let default = ResponseHeaders::new(&rules(&[], &[]), None, true).unwrap();
        let mut h = upstream();
        default.apply(&mut h, false);
        assert_eq!(h, upstream());
        default.apply(&mut h, true);
        assert_eq!(
            h[X_FRAME_OPTIONS], "ALLOW-FROM x",
            "the upstream's own wins"
        );
        assert_eq!(h[CONTENT_SECURITY_POLICY], STATIC_CSP);
        let off = ResponseHeaders::new(&rules(&[], &[]), Some(false), true).unwrap();
        let mut h = upstream();
        off.apply(&mut h, true);
        assert_eq!(h, upstream());
    }
}
