//! The HTTP/1.1 client the proxy uses towards replicas: one per worker,
//! over hyper's `client::conn::http1`.
//!
//! Each worker keeps its own idle keep-alive connections, by replica
//! address. A request takes the most recently used idle connection of its
//! replica (or opens one) and has it until its response body ends; then
//! the connection goes back. Nothing on this path crosses threads: the
//! pool's lock is only ever taken by its worker, the key is the replica's
//! socket address (no URI hashing) and there is no boxed future per request.
//! hyper-util's legacy client cost about 10,000 more instructions per
//! request (`bench/RESULTS.md`, "Proxy").
//!
//! What that client did for the proxy, this one does too: idle connections
//! are capped per replica and closed after [`POOL_IDLE`]; a request that a
//! pooled connection could not take (it closed meanwhile) goes on another
//! one, unsent and whole; connect failures (refused, timed out) are told
//! apart from failures after the request went out, which is what the retry
//! rules need; connections get `TCP_NODELAY` and TCP keep-alive.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustc_hash::FxHashMap;
use tokio::net::TcpStream;

use crate::error::{ClientBodyError, caused_by};
use crate::retry_body::RetryBody;

/// Idle connections kept per replica, per worker.
const MAX_IDLE_PER_REPLICA: usize = 256;
/// An idle pooled connection is closed after about this long (up to one
/// [`SWEEP`] more).
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(30);
/// How often idle connections are checked for age.
const SWEEP: Duration = Duration::from_secs(5);
/// TCP keep-alive probes start after this much silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A worker's client: cheap to clone, every clone shares one pool.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    connect_timeout: Duration,
    idle: Mutex<FxHashMap<SocketAddr, Vec<Idle>>>,
    /// Sweeps done so far: the pool's clock, so that returning a
    /// connection reads no time.
    sweeps: AtomicU32,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<RetryBody>,
    /// The sweep count when it went idle.
    since: u32,
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// No connection to the replica (refused, unreachable, timed out):
    /// nothing was sent.
    Connect(io::Error),
    /// The connection failed after the request was handed to it.
    Request(hyper::Error),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Request(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(e) => Some(e),
            ClientError::Request(e) => Some(e),
        }
    }
}

impl ClientError {
    /// No connection was made: the replica refused or did not answer.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect(_))
    }

    /// The connection was not made in time (504) rather than refused (502).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Connect(e) if e.kind() == io::ErrorKind::TimedOut)
    }
}

/// Builds a worker's client with the proxy's connect timeout. Called on the
/// worker's runtime: it starts the task that closes connections idle too long.
pub(crate) fn build(connect_timeout: Duration) -> UpstreamClient {
    build_with(connect_timeout, POOL_IDLE, SWEEP)
}

/// [`build`] with idle connections closed after `idle`, checked every `every`.
fn build_with(connect_timeout: Duration, idle: Duration, every: Duration) -> UpstreamClient {
    let client = UpstreamClient(Arc::new(Inner {
        connect_timeout,
        idle: Mutex::default(),
        sweeps: AtomicU32::new(0),
    }));
    let limit = u32::try_from(idle.as_millis() / every.as_millis().max(1)).unwrap_or(u32::MAX);
    tokio::spawn(sweep(Arc::downgrade(&client.0), every, limit));
    client
}

/// Every `every`, closes the idle connections idle for more than `limit`
/// sweeps (so at least `limit` whole intervals) and those the replica
/// closed, until the client is gone.
async fn sweep(client: Weak<Inner>, every: Duration, limit: u32) {
    let mut every = tokio::time::interval(every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let Some(client) = client.upgrade() else {
            return;
        };
        let now = client.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        // Dropped after the lock is released: closing takes no lock time.
        let mut closed = Vec::new();
        {
            let mut idle = client.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.retain(|_, list| {
                let (keep, old): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| now.wrapping_sub(i.since) <= limit && !i.sender.is_closed());
                *list = keep;
                closed.extend(old);
                !list.is_empty()
            });
        }
        drop(closed);
    }
}

impl UpstreamClient {
    /// Sends `req` (origin-form target, `Host` set) to the replica at `addr`
    /// and returns its response head, with the connection on loan until
    /// the body ends (see [`Leased`]).
    ///
    /// # Errors
    /// [`ClientError::Connect`] when no connection could be made (the
    /// request body was not touched), [`ClientError::Request`] when the
    /// connection failed after taking the request.
    pub(crate) async fn request(
        &self,
        addr: SocketAddr,
        mut req: Request<RetryBody>,
    ) -> Result<(Response<Incoming>, Lease), ClientError> {
        while let Some(mut sender) = self.take(addr) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, self.lease(addr, sender))),
                Err(mut e) => match e.take_message() {
                    // Not sent: the connection closed meanwhile.
                    Some(unsent) => req = unsent,
                    None => return Err(ClientError::Request(e.into_error())),
                },
            }
        }
        let mut sender = self.connect(addr).await?;
        match sender.send_request(req).await {
            Ok(response) => Ok((response, self.lease(addr, sender))),
            Err(e) => Err(ClientError::Request(e)),
        }
    }

    /// The most recently used idle connection to `addr` still open.
    fn take(&self, addr: SocketAddr) -> Option<SendRequest<RetryBody>> {
        let mut idle = self.0.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(&addr)?;
        while let Some(Idle { sender, .. }) = list.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn lease(&self, addr: SocketAddr, sender: SendRequest<RetryBody>) -> Lease {
        Lease {
            back: Some((sender, self.clone(), addr)),
        }
    }

    /// Takes a connection back once its response is complete.
    fn put(&self, addr: SocketAddr, sender: SendRequest<RetryBody>) {
        if sender.is_closed() {
            return;
        }
        let since = self.0.sweeps.load(Ordering::Relaxed);
        let mut idle = self.0.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_REPLICA {
            list.push(Idle { sender, since });
        }
    }

    /// A new connection to `addr`, its HTTP/1 task spawned on this worker.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<RetryBody>, ClientError> {
        let stream =
            match tokio::time::timeout(self.0.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(ClientError::Connect(e)),
                Err(_) => {
                    return Err(ClientError::Connect(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", self.0.connect_timeout),
                    )));
                }
            };
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(ClientError::Connect)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A connection on loan for one response: [`Lease::release`] gives it back
/// to the pool; dropped without that, the connection is closed (its
/// response was not read to the end, or it became a tunnel).
#[derive(Debug)]
pub(crate) struct Lease {
    back: Option<(SendRequest<RetryBody>, UpstreamClient, SocketAddr)>,
}

impl Lease {
    /// The response is complete: the connection can take the next request.
    pub(crate) fn release(&mut self) {
        if let Some((sender, client, addr)) = self.back.take() {
            client.put(addr, sender);
        }
    }

    /// The connection cannot be reused (it broke, or became a tunnel).
    pub(crate) fn forfeit(&mut self) {
        self.back = None;
    }
}

pin_project_lite::pin_project! {
    /// A replica's response body that gives its connection back to the
    /// pool when it ends.
    #[derive(Debug)]
    pub(crate) struct Leased {
        #[pin]
        inner: Incoming,
        lease: Lease,
    }
}

impl Leased {
    /// `body` with its connection's lease; an empty body gives it back at once.
    pub(crate) fn new(inner: Incoming, mut lease: Lease) -> Self {
        if inner.is_end_stream() {
            lease.release();
        }
        Leased { inner, lease }
    }
}

impl HttpBody for Leased {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.lease.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.lease.release(),
            Poll::Ready(Some(Err(_))) => this.lease.forfeit(),
            _ => {}
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

/// Whether the request body broke its size limit while streaming.
pub(crate) fn is_body_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<http_body_util::LengthLimitError>(error)
}

/// Whether reading the client's request body failed (see [`ClientBodyError`]).
pub(crate) fn is_client_body(error: &(dyn std::error::Error + 'static)) -> bool {
    caused_by::<ClientBodyError>(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A replica that answers each request on a connection with `ok`, and
    /// reports when a connection was closed by the other side.
    async fn replica() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            let _ = closed.send(());
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn get(client: &UpstreamClient, addr: SocketAddr) -> Bytes {
        let req = Request::get("/")
            .header(http::header::HOST, "replica")
            .body(RetryBody::empty())
            .unwrap();
        let (response, lease) = client.request(addr, req).await.unwrap();
        let body = Leased::new(response.into_body(), lease);
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_is_reused_then_closed_once_idle_too_long() {
        let (addr, mut closed) = replica().await;
        let idle = Duration::from_millis(300);
        let client = build_with(Duration::from_secs(5), idle, Duration::from_millis(50));
        for _ in 0..3 {
            assert_eq!(get(&client, addr).await, "ok");
        }
        // One connection served all three, and went back to the pool.
        let pooled = || client.0.idle.lock().unwrap().get(&addr).map_or(0, Vec::len);
        assert_eq!(pooled(), 1);
        let since = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), closed.recv())
            .await
            .expect("the idle connection is closed")
            .unwrap();
        assert!(
            since.elapsed() >= idle,
            "closed after {:?}",
            since.elapsed()
        );
        assert_eq!(pooled(), 0);
        assert!(closed.try_recv().is_err(), "only one connection was opened");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_and_the_body_is_untouched() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let client = build(Duration::from_secs(5));
        let req = Request::get("/").body(RetryBody::empty()).unwrap();
        let Err(e) = client.request(addr, req).await else {
            panic!("nothing listens there");
        };
        assert!(e.is_connect() && !e.is_timeout(), "{e}");
    }
}
