//! Per-request bookkeeping: in-flight gauges, the latency histogram, status
//! counters and the access log, recorded when the response body is done
//! (or dropped, if the client went away first: status 499).

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::access_log::Entry;
use crate::activity::Activity;
use crate::balancer::ActiveGuard;
use crate::log_batch;
use crate::shared::Shared;

pub(crate) use crate::metrics::RouteTag;

/// Status logged when the client left before the response.
const CLIENT_CLOSED: u16 = 499;

/// One request being answered; records itself when dropped.
#[derive(Debug)]
pub(crate) struct Record {
    shared: Arc<Shared>,
    conn: Arc<Activity>,
    start: Instant,
    method: Method,
    /// Path and query, kept only when access logging is on.
    path: Option<String>,
    request_id: HeaderValue,
    client: IpAddr,
    status: u16,
    route: Option<RouteTag>,
    replica: Option<Arc<str>>,
    /// Dropped with the record: the replica stops counting as busy.
    busy: Option<ActiveGuard>,
    bytes: u64,
}

impl Record {
    pub(crate) fn start<B>(
        shared: Arc<Shared>,
        conn: Arc<Activity>,
        req: &http::Request<B>,
        request_id: HeaderValue,
        client: IpAddr,
        access_log: bool,
    ) -> Self {
        shared.metrics.in_flight.inc();
        conn.request_started();
        let path = access_log.then(|| {
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string()
        });
        Record {
            shared,
            conn,
            start: Instant::now(),
            method: req.method().clone(),
            path,
            request_id,
            client,
            status: CLIENT_CLOSED,
            route: None,
            replica: None,
            busy: None,
            bytes: 0,
        }
    }

    /// Notes how the request was answered and wraps the response body.
    pub(crate) fn attach<B>(
        mut self,
        outcome: Outcome,
        response: Response<B>,
    ) -> Response<Observed<B>> {
        let (mut parts, body) = response.into_parts();
        self.status = parts.status.as_u16();
        self.route = Some(outcome.tag);
        self.replica = outcome.replica;
        self.busy = outcome.busy;
        parts
            .headers
            .insert(&crate::headers::X_REQUEST_ID, self.request_id.clone());
        Response::from_parts(
            parts,
            Observed {
                inner: body,
                record: self,
            },
        )
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let shared = &self.shared;
        shared.metrics.in_flight.dec();
        self.conn.request_done();
        let route = self.route.as_ref();
        route
            .map_or(&shared.unrouted.metrics, |r| &r.metrics)
            .record(self.status, elapsed.as_secs_f64());
        if let Some(path) = &self.path {
            let now = SystemTime::now();
            let entry = Entry {
                time: now - elapsed,
                method: self.method.as_str(),
                path,
                status: self.status,
                bytes: self.bytes,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                upstream: self.replica.as_deref(),
                request_id: self.request_id.to_str().unwrap_or(""),
                route: route.map(|r| &*r.label),
                client: self.client,
            };
            log_batch::record(&shared.view, now, |out| entry.write(out));
        }
        self.busy.take();
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and owns the request's [`Record`].
    #[derive(Debug)]
    pub(crate) struct Observed<B> {
        #[pin]
        inner: B,
        record: Record,
    }
}

impl<B> HttpBody for Observed<B>
where
    B: HttpBody<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.record.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What answering a request produced, for the response and its `Record`.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) tag: RouteTag,
    /// The replica that answered, when one did.
    pub(crate) replica: Option<Arc<str>>,
    /// Keeps the replica counted as busy until the body is done.
    pub(crate) busy: Option<ActiveGuard>,
}
