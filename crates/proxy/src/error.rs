//! Errors: [`ProxyError`] for starting the proxy, [`Failure`] for one request.
//!
//! A request failure is classified the way pingora does it: where it came
//! from ([`ErrorSource`]) and whether the request may be tried again on
//! another replica ([`RetryType`]). The class alone decides the status code
//! (502 vs 503 vs 504) and the retry; nothing matches on messages.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A `listen` entry is not an `ip:port` address.
    #[error("x-berth.proxy.listen: {address:?} is not an ip:port address")]
    InvalidListen {
        /// The address as configured.
        address: String,
    },
    /// Binding a listener failed, typically because the port is in use.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address as configured.
        address: String,
        #[source]
        source: io::Error,
    },
    /// A route's policy cannot be enforced as written.
    #[error("route {route}: {message}")]
    RoutePolicy {
        /// The route's path.
        route: String,
        /// What is wrong.
        message: String,
    },
    /// A static route's directory cannot be served.
    #[error("route {route}: static directory {} cannot be served: {source}", root.display())]
    StaticRoot {
        /// The route's path.
        route: String,
        /// The directory as configured.
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A certificate or key cannot be served, or TLS cannot be set up.
    #[error("{message}")]
    Tls {
        /// Where it is configured and what is wrong.
        message: String,
    },
}

/// Reading the client's request body failed (a malformed chunk, a client
/// gone mid-body): the client's fault, whatever the upstream client makes
/// of it. Found in an error's source chain by `caused_by`.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read")]
pub(crate) struct ClientBodyError(#[source] pub(crate) hyper::Error);

/// Whether `E` is in `error`'s source chain.
pub(crate) fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Who caused a request failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorSource {
    /// The client sent something the proxy will not pass on.
    Client,
    /// A replica could not be reached or misbehaved.
    Upstream,
    /// The proxy itself (no route, no replica).
    Internal,
}

/// Whether a failed attempt may be sent to another replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryType {
    /// Nothing reached the replica: always safe to retry.
    Always,
    /// Bytes may have reached the replica: only idempotent requests.
    IfIdempotent,
    /// Never retried.
    Never,
}

/// Why one request failed; rendered by `error_page`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No route matches the request.
    NoRoute,
    /// A static route has no such file.
    NotFound,
    /// The route's service has no ready replica, or is unknown to the engine.
    NoReadyReplica { service: Arc<str> },
    /// Every replica tried refused the connection.
    ConnectFailed { service: Arc<str> },
    /// Connecting timed out.
    ConnectTimeout { service: Arc<str> },
    /// The connection broke after the request was (partly) sent.
    UpstreamBroken { service: Arc<str> },
    /// No response head within the route's timeout.
    UpstreamTimeout { service: Arc<str> },
    /// The request body is larger than the route allows.
    BodyTooLarge,
    /// The request head is larger than `max_header_size`.
    HeadersTooLarge,
    /// The request is malformed and never reaches a service.
    BadRequest(&'static str),
    /// The client is not in the route's `allow` list.
    Forbidden,
    /// A CORS preflight from an origin the route does not allow.
    OriginNotAllowed,
    /// The client is over the route's `rate_limit`; it may try again in
    /// this many seconds.
    RateLimited { retry_after: u64 },
}

impl Failure {
    /// The status code the client sees.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Failure::NoRoute | Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::NoReadyReplica { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::ConnectFailed { .. } | Failure::UpstreamBroken { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Failure::ConnectTimeout { .. } | Failure::UpstreamTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::Forbidden | Failure::OriginNotAllowed => StatusCode::FORBIDDEN,
            Failure::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Who caused it.
    pub(crate) fn source(&self) -> ErrorSource {
        match self {
            Failure::BodyTooLarge
            | Failure::HeadersTooLarge
            | Failure::BadRequest(_)
            | Failure::Forbidden
            | Failure::OriginNotAllowed
            | Failure::RateLimited { .. } => ErrorSource::Client,
            Failure::NoRoute | Failure::NotFound | Failure::NoReadyReplica { .. } => {
                ErrorSource::Internal
            }
            _ => ErrorSource::Upstream,
        }
    }

    /// Whether another replica may be tried.
    pub(crate) fn retry(&self) -> RetryType {
        match self {
            Failure::ConnectFailed { .. } | Failure::ConnectTimeout { .. } => RetryType::Always,
            // Sent, perhaps processed: only requests that may be repeated.
            Failure::UpstreamBroken { .. } | Failure::UpstreamTimeout { .. } => {
                RetryType::IfIdempotent
            }
            _ => RetryType::Never,
        }
    }

    /// The service concerned, when there is one.
    pub(crate) fn service(&self) -> Option<&str> {
        match self {
            Failure::NoReadyReplica { service }
            | Failure::ConnectFailed { service }
            | Failure::ConnectTimeout { service }
            | Failure::UpstreamBroken { service }
            | Failure::UpstreamTimeout { service } => Some(service),
            _ => None,
        }
    }

    /// A one-line description for the client.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::NoRoute => "no route for this path".into(),
            Failure::NotFound => "not found".into(),
            Failure::NoReadyReplica { service } => {
                format!("service {service} has no ready replica")
            }
            Failure::ConnectFailed { service } => {
                format!("no replica of service {service} could be reached")
            }
            Failure::ConnectTimeout { service } => {
                format!("connecting to service {service} timed out")
            }
            Failure::UpstreamBroken { service } => {
                format!("service {service} closed the connection before answering")
            }
            Failure::UpstreamTimeout { service } => {
                format!("service {service} did not answer in time")
            }
            Failure::BodyTooLarge => "request body too large".into(),
            Failure::HeadersTooLarge => "request header fields too large".into(),
            Failure::BadRequest(why) => format!("bad request: {why}"),
            Failure::Forbidden => "this route does not accept requests from your address".into(),
            Failure::OriginNotAllowed => "this origin may not call this route".into(),
            Failure::RateLimited { retry_after } => {
                format!("too many requests: try again in {retry_after} s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_decides_status_and_retry() {
        let s: Arc<str> = "api".into();
        let refused = Failure::ConnectFailed { service: s.clone() };
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(refused.retry(), RetryType::Always);
        assert_eq!(refused.source(), ErrorSource::Upstream);
        let broken = Failure::UpstreamBroken { service: s.clone() };
        assert_eq!(broken.retry(), RetryType::IfIdempotent);
        let slow = Failure::UpstreamTimeout { service: s.clone() };
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(slow.retry(), RetryType::IfIdempotent);
        let none = Failure::NoReadyReplica { service: s };
        assert_eq!(none.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(none.message().contains("api"));
        assert_eq!(Failure::BodyTooLarge.source(), ErrorSource::Client);
    }

    #[test]
    fn causes_are_found_down_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::other("inner"));
        assert!(caused_by::<io::Error>(&e));
        assert!(!caused_by::<ClientBodyError>(&e));
    }
}
