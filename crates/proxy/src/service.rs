//! The request pipeline every client connection runs.
//!
//! [`Edge`] (per connection) gives each request an id and a `Record`
//! (metrics, access log); `Conn::answer` checks the head (size, an
//! unambiguous `Content-Length`, `Host`), answers the built-in paths, picks
//! the route, checks its `policy` and hands the request to `forward` or
//! `static_files`; the policy then finishes the response (its headers, on
//! error answers too) and `compress` encodes it if it is worth it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{ACCEPT, ACCEPT_ENCODING, HOST};
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;

use crate::activity::Activity;
use crate::body::Body;
use crate::client::UpstreamClient;
use crate::client_ip::Client;
use crate::compress;
use crate::error::{ErrorSource, Failure};
use crate::forward::{Upstream, forward};
use crate::head::{HeadClock, check_content_length};
use crate::headers::{forwarded_for, new_request_id};
use crate::limits::check_head;
use crate::observe::Outcome;
use crate::observe::{Observed, Record, RouteTag};
use crate::policy::{Finish, Policy};
use crate::shared::{Shared, Table, Target};
use crate::{endpoints, error_page};

/// One client connection's context: the worker's upstream client and who
/// is on the other end.
#[derive(Debug)]
struct Conn {
    shared: Arc<Shared>,
    client: UpstreamClient,
    peer: SocketAddr,
    /// It came through a TLS listener.
    secure: bool,
    /// `X-Forwarded-For` for the requests of this connection (unless a
    /// trusted proxy names another client).
    forwarded_for: HeaderValue,
    activity: Arc<Activity>,
}

impl Conn {
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        request_id: &HeaderValue,
        table: &Table,
        client: &Client,
    ) -> (Outcome, Response<Body>) {
        let accept = req.headers().get(ACCEPT).cloned();
        let mut finish = None;
        let (outcome, result) = self
            .answer(req, request_id, table, client, &mut finish)
            .await;
        let mut response = result.unwrap_or_else(|failure| {
            match failure.source() {
                ErrorSource::Upstream => {
                    tracing::warn!(route = %outcome.tag.label, "{}", failure.message());
                }
                ErrorSource::Client | ErrorSource::Internal => {
                    tracing::debug!(route = %outcome.tag.label, "{}", failure.message());
                }
            }
            error_page::render(&failure, accept.as_ref())
        });
        if let Some(finish) = finish {
            finish.apply(&mut response);
        }
        (outcome, response)
    }

    /// `finish` is set once the route's policy checked the request.
    async fn answer<'t>(
        &self,
        req: Request<Incoming>,
        request_id: &HeaderValue,
        table: &'t Table,
        client: &Client,
        finish: &mut Option<Finish<'t>>,
    ) -> (Outcome, Result<Response<Body>, Failure>) {
        let shared = &*self.shared;
        let plain = |tag: &RouteTag| Outcome {
            tag: tag.clone(),
            replica: None,
            busy: None,
        };
        let (parts, body) = req.into_parts();
        let repeated_length = self
            .activity
            .head()
            .is_some_and(HeadClock::take_repeated_length);
        if let Err(f) = check_head(&parts, table.max_header)
            .and_then(|()| check_content_length(&parts, repeated_length))
        {
            return (plain(&shared.unrouted), Err(f));
        }
        let host = match host_of(&parts) {
            Ok(host) => host,
            Err(f) => return (plain(&shared.unrouted), Err(f)),
        };
        if let Some(answer) =
            crate::https::before_routing(shared, table.redirect_http, self.secure, host, &parts)
        {
            return (plain(&shared.builtin), Ok(answer));
        }
        let path = parts.uri.path();
        if table.health_path.as_deref() == Some(path) {
            return (plain(&shared.builtin), Ok(endpoints::health(shared)));
        }
        if table.metrics_path.as_deref() == Some(path) {
            return (plain(&shared.builtin), Ok(endpoints::metrics(shared)));
        }
        let Some((route, prefix)) = table.router.find(host, path) else {
            return (plain(&shared.unrouted), Err(Failure::NoRoute));
        };
        let mut outcome = plain(&route.tag);
        if let Some(policy) = Policy::of_route(route.policy.as_deref(), self.secure) {
            let (checked, answer) = policy.check(&parts, client.ip, self.secure);
            *finish = Some(checked);
            if let Some(answer) = answer {
                return (outcome, answer);
            }
        }
        let req = Request::from_parts(parts, body);
        let result = match &route.target {
            Target::Service(service) => {
                let to = Upstream {
                    client: &self.client,
                    forwarded_for: client.forwarded_for.as_ref().unwrap_or(&self.forwarded_for),
                    secure: self.secure,
                    request_id,
                };
                forward(shared, &to, service, prefix, req)
                    .await
                    .map(|answered| {
                        outcome.replica = Some(answered.replica);
                        outcome.busy = answered.busy;
                        answered.response
                    })
            }
            // Boxed: file serving's state is large and would otherwise be
            // part of every request's future, proxied ones included.
            Target::Static(site) => Box::pin(site.serve(req, prefix)).await,
        };
        (outcome, result)
    }
}

/// `host[:port]` as RFC 9110 allows it (reg-name, IPv4 or `[IPv6]`), without
/// allocating.
fn valid_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'-' | b'_' | b'~' | b':' | b'[' | b']' | b'%')
                || matches!(
                    b,
                    b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
                )
        })
}

/// The request's host: the `Host` header, else the URI's authority (HTTP/2).
fn host_of(parts: &http::request::Parts) -> Result<Option<&str>, Failure> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Failure::BadRequest("more than one Host header"));
    }
    if !parts.uri.path().starts_with('/') {
        return Err(Failure::BadRequest("request target must be a path"));
    }
    match header {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| Failure::BadRequest("invalid Host header"))?;
            if !valid_host(text) {
                return Err(Failure::BadRequest("invalid Host header"));
            }
            Ok(Some(text))
        }
        None if parts.version == Version::HTTP_11 && parts.uri.authority().is_none() => {
            Err(Failure::BadRequest("missing Host header"))
        }
        None => Ok(parts.uri.authority().map(http::uri::Authority::as_str)),
    }
}

/// The per-connection hyper service: one boxed future per request, holding
/// the request's `Record`, the dispatch and, when it applies, compression.
#[derive(Debug, Clone)]
pub(crate) struct Edge(Arc<Conn>);

impl Edge {
    pub(crate) fn new(
        shared: Arc<Shared>,
        client: UpstreamClient,
        peer: SocketAddr,
        secure: bool,
        activity: Arc<Activity>,
    ) -> Self {
        Edge(Arc::new(Conn {
            shared,
            client,
            peer,
            secure,
            forwarded_for: forwarded_for(peer.ip()),
            activity,
        }))
    }
}

impl hyper::service::Service<Request<Incoming>> for Edge {
    type Response = Response<Observed<Body>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let conn = self.0.clone();
        Box::pin(async move {
            let request_id = new_request_id();
            let table = conn.shared.table();
            let client = table.trusted_proxies.client(conn.peer.ip(), req.headers());
            let record = Record::start(
                conn.shared.clone(),
                conn.activity.clone(),
                &req,
                request_id.clone(),
                client.ip,
                table.access_log,
            );
            let accept_encoding = req.headers().get(ACCEPT_ENCODING).cloned();
            let (outcome, mut response) = conn.dispatch(req, &request_id, &table, &client).await;
            if conn.secure
                && let Some(hsts) = &table.hsts
            {
                response
                    .headers_mut()
                    .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            let response = match accept_encoding {
                Some(accepted) if compress::worth_it(&response) => {
                    compress::encode(accepted, response).await
                }
                _ => response,
            };
            Ok(record.attach(outcome, response))
        })
    }
}
