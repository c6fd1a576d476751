//! The pooled HTTP/1.1 client the proxy uses towards replicas.
//!
//! hyper-util's legacy client keeps idle keep-alive connections per replica
//! (capped, expired by a timer), retries a request that a pooled
//! connection's close cancelled before it was sent, and reports connect
//! failures apart from later ones, which is what the retry rules need.

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{ClientBodyError, caused_by};
use crate::retry_body::RetryBody;

/// The client type shared by every route.
pub(crate) type UpstreamClient = Client<HttpConnector, RetryBody>;

/// Idle connections kept per replica.
const MAX_IDLE_PER_REPLICA: usize = 256;
/// An idle pooled connection is closed after this.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Builds the client with the proxy's connect timeout.
pub(crate) fn build(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(MAX_IDLE_PER_REPLICA)
        .retry_canceled_requests(true)
        .set_host(false)
        .build(connector)
}

/// Whether a client error is a connect timeout (504) rather than a refusal (502).
pub(crate) fn is_timeout(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether the request body broke its size limit while streaming.
pub(crate) fn is_body_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<http_body_util::LengthLimitError>(error)
}

/// Whether reading the client's request body failed (see [`ClientBodyError`]).
pub(crate) fn is_client_body(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<ClientBodyError>(error)
}
