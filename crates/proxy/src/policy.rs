//! What a route enforces and adds besides where it sends requests (its
//! `RoutePolicy`), compiled once per route table.
//!
//! Before the route's target is asked, in this order: the client must be in
//! `allow` (403 otherwise); a CORS preflight is answered here (`cors`); the
//! client must be within `rate_limit` (429 with `Retry-After` otherwise).
//! Every response of the route, the refusals and berth's other error
//! answers included, then gets `headers`, `security_headers` and the CORS
//! headers (a [`Finish`]).
//!
//! A service route without settings has no policy at all, so it costs
//! nothing per request on plain listeners; on TLS listeners it gets the
//! default security headers.

use std::net::IpAddr;

use berth_compose::xberth::{IpNet, RoutePolicy};
use http::Response;
use http::request::Parts;
use prometheus_client::metrics::counter::Counter;

use crate::body::Body;
use crate::cors::{CorsPolicy, Verdict};
use crate::error::Failure;
use crate::rate_limit::Limiter;
use crate::response_headers::ResponseHeaders;

/// A route's compiled policy.
#[derive(Debug)]
pub(crate) struct Policy {
    /// Empty: everyone.
    allow: Vec<IpNet>,
    cors: Option<CorsPolicy>,
    rate_limit: Option<Limiter>,
    headers: ResponseHeaders,
}

/// The policy of a service route without settings (for TLS connections).
static DEFAULT: Policy = Policy {
    allow: Vec::new(),
    cors: None,
    rate_limit: None,
    headers: ResponseHeaders::DEFAULT,
};

/// What is left to do to a response of a checked request.
#[derive(Debug)]
pub(crate) struct Finish<'t> {
    policy: &'t Policy,
    secure: bool,
    cors: Verdict,
}

impl Policy {
    /// The policy of a route (`None` when it has nothing to do);
    /// `rejected` makes the route's rate-limit counter.
    ///
    /// # Errors
    /// A setting the proxy cannot use (the compose model checks them all,
    /// so only hand-built settings get here).
    pub(crate) fn new(
        settings: &RoutePolicy,
        is_static: bool,
        rejected: impl FnOnce() -> Counter,
    ) -> Result<Option<Box<Policy>>, String> {
        let headers =
            ResponseHeaders::new(&settings.headers, settings.security_headers, is_static)?;
        let cors = settings.cors.as_ref().map(CorsPolicy::new).transpose()?;
        if settings.allow.is_empty()
            && cors.is_none()
            && settings.rate_limit.is_none()
            && headers.is_default()
            && !is_static
        {
            return Ok(None);
        }
        let rate_limit = match &settings.rate_limit {
            Some(limit) => Some(Limiter::new(limit, rejected())?),
            None => None,
        };
        Ok(Some(Box::new(Policy {
            allow: settings.allow.clone(),
            cors,
            rate_limit,
            headers,
        })))
    }

    /// The policy a request of a route with `policy` runs under.
    pub(crate) fn of_route(policy: Option<&Policy>, secure: bool) -> Option<&Policy> {
        policy.or(if secure { Some(&DEFAULT) } else { None })
    }

    /// Checks a request from `client`: what to do to its response, and the
    /// answer when berth gives it itself (a refusal, a preflight).
    pub(crate) fn check(
        &self,
        parts: &Parts,
        client: IpAddr,
        secure: bool,
    ) -> (Finish<'_>, Option<Result<Response<Body>, Failure>>) {
        let cors = self
            .cors
            .as_ref()
            .map_or(Verdict::Nothing, |c| c.verdict(&parts.headers));
        let finish = Finish {
            policy: self,
            secure,
            cors,
        };
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&client)) {
            return (finish, Some(Err(Failure::Forbidden)));
        }
        if let Some(cors) = &self.cors
            && CorsPolicy::is_preflight(&parts.method, &parts.headers)
        {
            let answer = match finish.cors {
                Verdict::Allowed(_) => Ok(cors.preflight()),
                Verdict::Nothing => Err(Failure::OriginNotAllowed),
            };
            return (finish, Some(answer));
        }
        if let Some(limiter) = &self.rate_limit
            && let Err(retry_after) = limiter.check(client, &parts.headers)
        {
            return (finish, Some(Err(Failure::RateLimited { retry_after })));
        }
        (finish, None)
    }
}

impl Finish<'_> {
    /// Adds and removes the route's response headers.
    pub(crate) fn apply(&self, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        self.policy.headers.apply(headers, self.secure);
        if let Some(cors) = &self.policy.cors {
            cors.add(&self.cors, headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_without_settings_have_no_policy_unless_static() {
        let none = RoutePolicy::default();
        assert!(
            Policy::new(&none, false, Counter::default)
                .unwrap()
                .is_none()
        );
        assert!(
            Policy::new(&none, true, Counter::default)
                .unwrap()
                .is_some()
        );
        assert!(Policy::of_route(None, false).is_none());
        assert!(Policy::of_route(None, true).is_some());
    }

    /// The issue's example, through the compose model: everything it lets
    /// through compiles.
    #[test]
    fn the_documented_example_compiles() {
        let yaml = r#"
services:
  api: {image: api}
x-berth:
  proxy:
    trusted_proxies: [10.0.0.0/8]
    routes:
      - path: /api
        service: api
        headers: {set: {X-Frame-Options: DENY}, remove: [Server]}
        security_headers: true
        cors: {origins: ["https://app.example.org"], methods: [GET, POST], headers: [Content-Type],
               credentials: true, max_age: 10m}
        rate_limit: {rate: 10/s, burst: 20, key: "header:X-Api-Key"}
        allow: [127.0.0.0/8, 10.0.0.0/8]
"#;
        let dir = std::env::temp_dir();
        let mut options = berth_compose::LoadOptions::new(dir, Default::default());
        options.files = vec!["-".into()];
        options.stdin = Some(yaml.into());
        let loaded = berth_compose::load(&options)
            .map_err(|d| d.render(false))
            .unwrap();
        let proxy = loaded.project.settings.proxy.unwrap();
        let route = &proxy.routes[0].policy;
        let policy = Policy::new(route, false, Counter::default)
            .unwrap()
            .unwrap();
        let (parts, ()) = http::Request::options("/api/x")
            .header("origin", "https://app.example.org")
            .header("access-control-request-method", "POST")
            .body(())
            .unwrap()
            .into_parts();
        let (finish, answer) = policy.check(&parts, [10, 1, 2, 3].into(), false);
        let mut response = answer.unwrap().unwrap();
        finish.apply(&mut response);
        let h = response.headers();
        assert_eq!(response.status(), 204);
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-headers"], "content-type");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }

    #[test]
    fn clients_outside_allow_are_refused() {
        let settings = RoutePolicy {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..RoutePolicy::default()
        };
        let policy = Policy::new(&settings, false, Counter::default)
            .unwrap()
            .unwrap();
        let (parts, ()) = http::Request::new(()).into_parts();
        let (_, answer) = policy.check(&parts, "10.1.2.3".parse().unwrap(), false);
        assert!(answer.is_none());
        let (_, answer) = policy.check(&parts, "127.0.0.1".parse().unwrap(), false);
        assert_eq!(answer.unwrap().unwrap_err(), Failure::Forbidden);
    }
}
