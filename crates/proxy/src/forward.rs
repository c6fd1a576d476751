//! Proxying one request to a replica of the route's service.
//!
//! The request is rewritten for the upstream (HTTP/1.1, origin path with the
//! prefix stripped if asked, hop-by-hop headers removed, `Host` kept,
//! `X-Forwarded-*` and `X-Request-Id` set) and sent to the replica the
//! balancer picks. A failed attempt is classified (see `error`): connect
//! failures eject the replica and go to the next one; a connection that
//! broke after sending is retried only for idempotent methods whose body can
//! be sent again. So is a replica that sent no response head in time: it is
//! ejected too, and the request is tried once more within
//! `attempts::budget`. A `101 Switching Protocols` answer starts a tunnel.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::attempts::{MAX_ATTEMPTS, Tried, budget, is_idempotent};
use crate::balancer::{ActiveGuard, Pick, Slot};
use crate::body::{Body, boxed};
use crate::client::{ClientError, Lease, Leased, UpstreamClient, is_body_limit, is_client_body};
use crate::error::{Failure, RetryType};
use crate::headers::{is_upgrade, strip_hop_by_hop};
use crate::limits::limit_body;
use crate::retry_body::{Home, RetryBody};
use crate::rewrite::{rewrite_headers, upstream_path};
pub(crate) use crate::shared::ServiceRoute;
use crate::shared::Shared;
use crate::tunnel;

/// How a request goes upstream: the worker's client, and who asked.
#[derive(Debug)]
pub(crate) struct Upstream<'a> {
    pub(crate) client: &'a UpstreamClient,
    /// The client's address, ready for `X-Forwarded-For`.
    pub(crate) forwarded_for: &'a HeaderValue,
    /// The client reached the proxy over TLS (`X-Forwarded-Proto: https`).
    pub(crate) secure: bool,
    pub(crate) request_id: &'a HeaderValue,
}

/// A replica's answer.
#[derive(Debug)]
pub(crate) struct Answered {
    pub(crate) response: Response<Body>,
    pub(crate) replica: Arc<str>,
    /// Counts the replica as busy (for `least_conn`) until dropped.
    pub(crate) busy: Option<ActiveGuard>,
}

/// Sends `req` to a replica and returns its response.
pub(crate) async fn forward(
    shared: &Shared,
    to: &Upstream<'_>,
    route: &ServiceRoute,
    prefix: &str,
    mut req: Request<Incoming>,
) -> Result<Answered, Failure> {
    let upgrade = req.version() <= Version::HTTP_11 && is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let websocket = upgrade
        && parts
            .headers
            .get(http::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let asker = (to.forwarded_for, to.secure, to.request_id);
    rewrite_headers(&mut parts, upgrade, asker)?;
    let path_and_query = upstream_path(&parts.uri, prefix, route.strip_prefix)?;
    let idempotent = is_idempotent(&parts.method);
    let home = if http_body::Body::is_end_stream(&body) {
        None
    } else {
        Some(Home::new(limit_body(&parts, body, route.max_body)?))
    };
    let service = &route.pool.service;
    let timed_out = || Failure::UpstreamTimeout {
        service: service.clone(),
    };
    let deadline = Instant::now() + budget(route.timeout);
    let mut tried = Tried::default();
    let mut last: Option<Failure> = None;
    let mut timed_out_before = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last.unwrap_or_else(timed_out));
        }
        let (slot, more) = next_replica(route, &tried, &mut last)?;
        tried.push(slot.upstream.addr);
        let body = attempt_body(home.as_ref(), service, &mut last)?;
        let upstream_req = upstream_request(&mut parts, &path_and_query, body, more);

        let mut guard = route.pool.begin(&slot);
        let wait = route.timeout.min(left);
        let sent = to.client.request(slot.upstream.addr, upstream_req);
        let failure = match tokio::time::timeout(wait, sent).await {
            Err(_) => {
                timed_out_on(shared, route, &slot);
                if timed_out_before {
                    // One retry after a timeout, not one per replica.
                    return Err(timed_out());
                }
                timed_out_before = true;
                timed_out()
            }
            Ok(Ok((response, lease))) => {
                let busy = guard.take();
                let client_side = client_upgrade.map(|on| (on, websocket));
                return Ok(answer(shared, response, lease, client_side, busy, &slot));
            }
            Ok(Err(e)) => failed(shared, route, &slot, &e)?,
        };
        let again = match failure.retry() {
            RetryType::Always => true,
            RetryType::IfIdempotent => idempotent,
            RetryType::Never => false,
        };
        if !again || tried.full() {
            return Err(failure);
        }
        last = Some(failure);
    }
}

/// The next replica to try and whether another may follow it, or why
/// there is none (the last failure, when there was one).
fn next_replica(
    route: &ServiceRoute,
    tried: &Tried,
    last: &mut Option<Failure>,
) -> Result<(Arc<Slot>, bool), Failure> {
    let service = &route.pool.service;
    match route.pool.pick(tried.as_slice()) {
        Pick::Replica(slot, more) => Ok((slot, more && tried.len + 1 < MAX_ATTEMPTS)),
        Pick::NoneReady => Err(Failure::NoReadyReplica {
            service: service.clone(),
        }),
        Pick::Exhausted => Err(last.take().unwrap_or(Failure::ConnectFailed {
            service: service.clone(),
        })),
    }
}

/// The request body for one attempt: the client's, unless an earlier
/// attempt already spent it (then the request cannot be sent again).
fn attempt_body(
    home: Option<&Home>,
    service: &Arc<str>,
    last: &mut Option<Failure>,
) -> Result<RetryBody, Failure> {
    match home {
        None => Ok(RetryBody::empty()),
        Some(home) => home.take().ok_or_else(|| {
            last.take().unwrap_or(Failure::UpstreamBroken {
                service: service.clone(),
            })
        }),
    }
}

/// A replica that sent no response head in time: hung or overloaded, so
/// skipped for a while like one that refuses connections.
fn timed_out_on(shared: &Shared, route: &ServiceRoute, slot: &Slot) {
    route.pool.eject(slot);
    shared
        .metrics
        .upstream_timeout(&route.pool.service, &slot.upstream.replica);
    tracing::debug!(replica = %slot.upstream.replica, "no response head in time");
}

/// The request as it goes to one replica (origin-form target). The last
/// possible attempt takes the headers; earlier ones get a copy.
fn upstream_request(
    parts: &mut http::request::Parts,
    path_and_query: &http::uri::PathAndQuery,
    body: RetryBody,
    more: bool,
) -> Request<RetryBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = Uri::from(path_and_query.clone());
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = if more {
        parts.headers.clone()
    } else {
        std::mem::take(&mut parts.headers)
    };
    req
}

/// A replica's response head, for the client; an upgrade becomes a tunnel
/// (`client_side`: the client's upgrade, and whether it is a WebSocket).
fn answer(
    shared: &Shared,
    mut response: Response<Incoming>,
    lease: Lease,
    client_side: Option<(hyper::upgrade::OnUpgrade, bool)>,
    mut busy: Option<ActiveGuard>,
    slot: &Slot,
) -> Answered {
    let tunnel = match client_side {
        Some((client_side, websocket)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Some((client_side, hyper::upgrade::on(&mut response), websocket))
        }
        _ => None,
    };
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers, tunnel.is_some());
    let mut lease = lease;
    if let Some((client_side, upstream_side, websocket)) = tunnel {
        lease.forfeit();
        // The tunnel keeps the replica busy for as long as it is open:
        // least_conn counts it, and a draining replica waits for it (up to
        // its grace period). Its connection is the tunnel's now.
        tunnel::spawn(shared, client_side, upstream_side, websocket, busy.take());
    }
    Answered {
        response: Response::from_parts(head, boxed(Leased::new(body, lease))),
        replica: slot.upstream.replica.clone(),
        busy,
    }
}

/// What a failed attempt means: `Err` for the client's own fault (answered
/// at once), else the failure to retry or report. A replica that refused
/// the connection is ejected for a while.
fn failed(
    shared: &Shared,
    route: &ServiceRoute,
    slot: &Slot,
    e: &ClientError,
) -> Result<Failure, Failure> {
    let service = &route.pool.service;
    if is_body_limit(e) {
        return Err(Failure::BodyTooLarge);
    }
    if is_client_body(e) {
        tracing::debug!(error = %e, "request body unreadable");
        return Err(Failure::BadRequest("the request body could not be read"));
    }
    if !e.is_connect() {
        tracing::debug!(replica = %slot.upstream.replica, error = %e, "upstream failed");
        return Ok(Failure::UpstreamBroken {
            service: service.clone(),
        });
    }
    route.pool.eject(slot);
    shared
        .metrics
        .connect_failure(service, &slot.upstream.replica);
    tracing::debug!(replica = %slot.upstream.replica, error = %e, "connect failed");
    Ok(if e.is_timeout() {
        Failure::ConnectTimeout {
            service: service.clone(),
        }
    } else {
        Failure::ConnectFailed {
            service: service.clone(),
        }
    })
}
